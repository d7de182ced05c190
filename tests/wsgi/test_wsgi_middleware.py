"""The WSGI middleware on real Flask applications."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from flask import Flask, Response, stream_with_context

import auditkit
from auditkit import Actor, ConfigurationError, Outcome, Result, Target
from auditkit.wsgi import AuditMiddleware
from auditkit_testing import InMemoryRecorder


class Boom(Exception):
    """The exception the failing views raise."""


def _record(recorder: InMemoryRecorder, **fields: Any) -> Outcome:
    event = auditkit.current_event()
    for name, value in fields.items():
        setattr(event, name, value)
    return recorder.record(event)


def _flask_app(recorder: InMemoryRecorder, *, testing: bool = True) -> Flask:
    """Views that each exercise one way a request can go."""
    app = Flask(__name__)
    app.testing = testing

    @app.get("/everything")
    def everything() -> str:
        _record(
            recorder,
            action="doc.update",
            actor=Actor("user", "view-user"),
            target=Target("doc", "7"),
            result=Result("denied", 451, "view says so"),
            tenant_id="view-tenant",
            metadata={"k": "v"},
        )
        return "ok"

    @app.get("/action-only")
    def action_only() -> str:
        _record(recorder, action="doc.read")
        return "ok"

    @app.get("/async")
    async def async_view() -> str:
        _record(recorder, action="doc.async", target=Target("doc", "a"))
        return "ok"

    @app.get("/no-action")
    def no_action() -> str:
        _record(recorder)
        return "ok"

    @app.get("/set-not-recorded")
    def set_not_recorded() -> str:
        auditkit.current_event().action = "doc.list"
        return "ok"

    @app.get("/status/<int:code>")
    def status(code: int) -> tuple[str, int]:
        _record(recorder, action="doc.status")
        return "x", code

    @app.get("/raises")
    def raises() -> str:
        _record(recorder, action="doc.explode")
        raise Boom("view failed")

    @app.get("/times-out")
    def times_out() -> str:
        _record(recorder, action="doc.slow")
        raise TimeoutError("the database did not answer in time")

    @app.get("/stream")
    def stream() -> Response:
        _record(recorder, action="doc.export")

        def chunks() -> Iterator[str]:
            yield "first,"
            auditkit.current_event().metadata["rows"] = 2
            yield "second"

        return Response(chunks())

    @app.get("/stream-with-context")
    def stream_in_context() -> Response:
        _record(recorder, action="doc.export")

        @stream_with_context
        def chunks() -> Iterator[str]:
            yield "a"
            auditkit.current_event().metadata["streamed"] = True
            yield "b"

        return Response(chunks())  # type: ignore[call-arg]

    @app.get("/stream-fails")
    def stream_fails() -> Response:
        _record(recorder, action="doc.export")

        def chunks() -> Iterator[str]:
            yield "first,"
            raise Boom("stream broke")

        return Response(chunks())

    @app.get("/echo-request")
    def echo_request() -> dict[str, Any]:
        info = auditkit.current_event().request
        assert info is not None
        return {"id": info.id, "ip": info.ip, "path": info.path, "method": info.method}

    return app


def _wrap(app: Flask, recorder: InMemoryRecorder, **options: Any) -> Flask:
    app.wsgi_app = AuditMiddleware(app.wsgi_app, recorder, **options)  # type: ignore[method-assign]
    return app


def _user_from_environ(environ: Any) -> Actor | None:
    user = environ.get("HTTP_X_USER")
    return Actor("user", user) if user else None


def test_view_fields_win_over_hooks_and_defaults() -> None:
    recorder = InMemoryRecorder()
    app = _wrap(
        _flask_app(recorder),
        recorder,
        actor=_user_from_environ,
        tenant=lambda environ: "hook-tenant",
    )

    response = app.test_client().get("/everything?secret=1", headers={"X-User": "al"})

    assert response.status_code == 200
    [event] = recorder.events
    assert event.action == "doc.update"
    assert event.actor == Actor("user", "view-user")
    assert event.target == Target("doc", "7")
    assert event.result == Result("denied", 451, "view says so")
    assert event.tenant_id == "view-tenant"
    assert event.metadata == {"k": "v"}
    assert event.request is not None
    assert (event.request.method, event.request.path) == ("GET", "/everything")


def test_unset_fields_get_the_middleware_defaults() -> None:
    recorder = InMemoryRecorder()
    app = _wrap(
        _flask_app(recorder),
        recorder,
        actor=_user_from_environ,
        tenant=lambda environ: "hook-tenant",
    )

    app.test_client().get(
        "/action-only", headers={"X-User": "al", "User-Agent": "ua/2"}
    )

    [event] = recorder.events
    assert event.actor == Actor("user", "al")
    assert event.tenant_id == "hook-tenant"
    assert event.target is None
    assert event.result == Result("success", 200)
    assert event.request is not None
    assert event.request.user_agent == "ua/2"
    assert event.request.ip == "127.0.0.1"
    uuid.UUID(event.request.id or "")


def test_the_event_is_finished_even_if_the_body_is_never_read() -> None:
    """Flask's test client reads the status only; Content-Length says it is done."""
    recorder = InMemoryRecorder()
    app = _wrap(_flask_app(recorder), recorder)

    status = app.test_client().get("/status/401").status_code

    assert status == 401
    [event] = recorder.events
    assert event.result == Result("denied", 401)


def test_an_async_view_sees_the_request_event() -> None:
    recorder = InMemoryRecorder()
    app = _wrap(_flask_app(recorder), recorder)

    app.test_client().get("/async")

    [event] = recorder.events
    assert (event.action, event.target) == ("doc.async", Target("doc", "a"))


def test_nothing_is_recorded_for_a_view_that_sets_no_action() -> None:
    recorder = InMemoryRecorder()
    app = _wrap(_flask_app(recorder), recorder, auto_record=True)

    app.test_client().get("/no-action")

    assert recorder.events == []


def test_an_action_set_but_not_recorded_is_sent_only_with_auto_record() -> None:
    recorder = InMemoryRecorder()
    _wrap(_flask_app(recorder), recorder).test_client().get("/set-not-recorded")
    assert recorder.events == []

    auto = _wrap(_flask_app(recorder), recorder, auto_record=True)
    auto.test_client().get("/set-not-recorded")
    auto.test_client().get("/action-only")

    assert [e.action for e in recorder.events] == ["doc.list", "doc.read"]


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (200, Result("success", 200)),
        (204, Result("success", 204)),
        (301, Result("success", 301)),
        (401, Result("denied", 401)),
        (403, Result("denied", 403)),
        (404, Result("error", 404)),
        (409, Result("error", 409)),
        (500, Result("error", 500)),
    ],
)
def test_result_comes_from_the_status(code: int, expected: Result) -> None:
    recorder = InMemoryRecorder()
    app = _wrap(_flask_app(recorder), recorder)

    with app.test_client().get(f"/status/{code}") as response:
        assert response.status_code == code

    [event] = recorder.events
    assert event.result == expected


def test_an_exception_is_recorded_as_error_500_and_reraised_unchanged() -> None:
    recorder = InMemoryRecorder()
    app = _wrap(_flask_app(recorder), recorder)

    with pytest.raises(Boom, match="view failed"):
        app.test_client().get("/raises")

    [event] = recorder.events
    assert (event.action, event.result) == ("doc.explode", Result("error", 500))


def test_an_exception_flask_turns_into_a_500_is_an_error() -> None:
    recorder = InMemoryRecorder()
    app = _wrap(_flask_app(recorder, testing=False), recorder)
    logging.getLogger(app.name).disabled = True

    try:
        response = app.test_client().get("/raises")
    finally:
        logging.getLogger(app.name).disabled = False

    assert response.status_code == 500
    [event] = recorder.events
    assert event.result == Result("error", 500)


def test_a_view_that_times_out_is_an_error() -> None:
    recorder = InMemoryRecorder()
    app = _wrap(_flask_app(recorder), recorder)

    with pytest.raises(TimeoutError):
        app.test_client().get("/times-out")

    [event] = recorder.events
    assert (event.action, event.result) == ("doc.slow", Result("error", 500))


@pytest.mark.parametrize(
    ("path", "metadata"),
    [("/stream", {"rows": 2}), ("/stream-with-context", {"streamed": True})],
)
def test_a_streamed_body_is_finished_when_it_is_exhausted(
    path: str, metadata: dict[str, Any]
) -> None:
    recorder = InMemoryRecorder()
    app = _wrap(_flask_app(recorder), recorder)

    response = app.test_client().get(path)
    assert recorder.events == []

    assert response.get_data() in (b"first,second", b"ab")
    [event] = recorder.events
    assert event.metadata == metadata
    assert event.result == Result("success", 200)


def test_a_stream_closed_early_is_finished_at_close() -> None:
    """A client that hangs up mid-stream: the server closes the body."""
    recorder = InMemoryRecorder()
    app = _wrap(_flask_app(recorder), recorder)

    response = app.test_client().get("/stream")
    response.close()

    [event] = recorder.events
    assert (event.action, event.result) == ("doc.export", Result("success", 200))


def test_a_stream_that_fails_after_the_status_is_an_error() -> None:
    recorder = InMemoryRecorder()
    app = _wrap(_flask_app(recorder), recorder)

    response = app.test_client().get("/stream-fails")
    with pytest.raises(Boom):
        response.get_data()

    [event] = recorder.events
    assert event.result == Result("error", 500)


def test_the_response_is_passed_through_unchanged() -> None:
    recorder = InMemoryRecorder()
    bare = _flask_app(recorder).test_client()
    wrapped = _wrap(_flask_app(recorder), recorder).test_client()

    for path in ("/everything", "/status/404", "/stream"):
        expected, actual = bare.get(path), wrapped.get(path)
        assert (actual.status, actual.headers.to_wsgi_list(), actual.get_data()) == (
            expected.status,
            expected.headers.to_wsgi_list(),
            expected.get_data(),
        )


def test_nothing_of_the_request_is_left_in_the_thread_context() -> None:
    recorder = InMemoryRecorder()
    app = _wrap(_flask_app(recorder), recorder)

    app.test_client().get("/stream").get_data()

    assert auditkit.current_scope() is None


def test_a_hook_that_raises_is_logged_and_the_request_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = InMemoryRecorder()

    def actor(environ: Any) -> Actor:
        raise LookupError("no such user")

    app = _wrap(_flask_app(recorder), recorder, actor=actor, tenant=lambda e: "t1")

    with caplog.at_level(logging.WARNING, logger="auditkit"):
        response = app.test_client().get("/action-only")

    assert response.status_code == 200
    [event] = recorder.events
    assert (event.actor, event.tenant_id) == (None, "t1")
    [log] = [r for r in caplog.records if r.name == "auditkit.wsgi"]
    assert log.levelno == logging.WARNING
    assert "actor hook raised" in log.getMessage()


def test_an_async_hook_is_refused_under_wsgi() -> None:
    async def actor_coroutine(environ: Any) -> Actor:
        return Actor("user", "x")  # pragma: no cover - never called

    actor: Any = actor_coroutine

    with pytest.raises(ConfigurationError, match=r"auditkit\.asgi"):
        AuditMiddleware(Flask(__name__).wsgi_app, InMemoryRecorder(), actor=actor)


def test_the_request_id_comes_from_the_configured_header() -> None:
    recorder = InMemoryRecorder()
    app = _wrap(_flask_app(recorder), recorder, request_id_header="X-Trace-Id")

    body = app.test_client().get("/echo-request", headers={"X-Trace-Id": "t-9"}).json

    assert body is not None
    assert body["id"] == "t-9"


def test_the_path_is_the_full_path_without_the_query() -> None:
    recorder = InMemoryRecorder()
    app = _wrap(_flask_app(recorder), recorder)

    body = (
        app.test_client()
        .get("/echo-request?q=1", environ_base={"SCRIPT_NAME": ""})
        .json
    )

    assert body is not None
    assert (body["path"], body["method"]) == ("/echo-request", "GET")


@pytest.mark.parametrize(
    ("remote", "headers", "expected"),
    [
        ("203.0.113.9", {"X-Forwarded-For": "1.2.3.4"}, "203.0.113.9"),
        ("10.0.0.1", {"X-Forwarded-For": "6.6.6.6, 198.51.100.7"}, "198.51.100.7"),
        ("10.0.0.1", {"Forwarded": "for=198.51.100.7"}, "198.51.100.7"),
    ],
)
def test_forwarding_headers_are_believed_only_from_trusted_proxies(
    remote: str, headers: dict[str, str], expected: str
) -> None:
    recorder = InMemoryRecorder()
    app = _wrap(_flask_app(recorder), recorder, trusted_proxies=["10.0.0.0/8"])

    body = (
        app.test_client()
        .get("/echo-request", headers=headers, environ_base={"REMOTE_ADDR": remote})
        .json
    )

    assert body is not None
    assert body["ip"] == expected


def test_works_under_httpx_wsgi_transport_and_threads() -> None:
    recorder = InMemoryRecorder()
    app = _wrap(_flask_app(recorder), recorder)
    transport = httpx.WSGITransport(app=app, remote_addr="192.0.2.50")
    errors: list[BaseException] = []

    def hit(index: int) -> None:
        try:
            with httpx.Client(transport=transport, base_url="http://t") as client:
                client.get("/action-only", headers={"x-request-id": f"r{index}"})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=hit, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    ids = sorted(e.request.id for e in recorder.events if e.request and e.request.id)
    assert ids == sorted(f"r{i}" for i in range(8))
    assert {e.request.ip for e in recorder.events if e.request} == {"192.0.2.50"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"recorder": None}, "recorder must be"),
        ({"trusted_proxies": ["not-an-ip"]}, "'not-an-ip'"),
        ({"tenant": 3}, "tenant must be a callable"),
    ],
)
def test_bad_arguments_are_refused_at_construction(
    kwargs: dict[str, Any], message: str
) -> None:
    arguments: dict[str, Any] = {"recorder": InMemoryRecorder(), **kwargs}

    with pytest.raises(ConfigurationError, match=message):
        AuditMiddleware(Flask(__name__).wsgi_app, **arguments)


def test_a_recorder_that_raises_does_not_change_the_response(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = InMemoryRecorder()

    def broken(wire: Any, event: Any) -> Outcome:
        raise RuntimeError("recorder bug")

    recorder._put_deferred = broken  # type: ignore[method-assign]
    app = _wrap(_flask_app(recorder), recorder)

    with caplog.at_level(logging.ERROR, logger="auditkit"):
        response = app.test_client().get("/action-only")

    assert (response.status_code, response.get_data()) == (200, b"ok")
    assert [r.name for r in caplog.records] == ["auditkit.wsgi"]


def test_the_module_exports_its_middleware_and_hook_types_sorted() -> None:
    import auditkit.wsgi as module

    assert all(hasattr(module, name) for name in module.__all__)
    assert {"AuditMiddleware", "ActorHook", "TenantHook"} <= set(module.__all__)
    assert module.__all__ == sorted(module.__all__)
