"""The ASGI middleware on real Starlette and FastAPI applications."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

import auditkit
from auditkit import Actor, ConfigurationError, Outcome, Result, Target
from auditkit.asgi import AuditMiddleware
from auditkit_testing import InMemoryRecorder


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Boom(Exception):
    """The exception the failing handlers raise."""


def _record(recorder: InMemoryRecorder, **fields: Any) -> Outcome:
    event = auditkit.current_event()
    for name, value in fields.items():
        setattr(event, name, value)
    return recorder.record(event)


def _starlette_app(recorder: InMemoryRecorder) -> Starlette:
    """Handlers that each exercise one way a request can go."""

    async def everything(request: Request) -> PlainTextResponse:
        _record(
            recorder,
            action="doc.update",
            actor=Actor("user", "handler-user"),
            target=Target("doc", "7"),
            result=Result("denied", 451, "handler says so"),
            tenant_id="handler-tenant",
            metadata={"k": "v"},
        )
        return PlainTextResponse("ok")

    async def action_only(request: Request) -> PlainTextResponse:
        _record(recorder, action="doc.read")
        return PlainTextResponse("ok")

    async def no_action(request: Request) -> PlainTextResponse:
        _record(recorder)
        return PlainTextResponse("ok")

    async def set_not_recorded(request: Request) -> PlainTextResponse:
        auditkit.current_event().action = "doc.list"
        return PlainTextResponse("ok")

    async def status(request: Request) -> PlainTextResponse:
        _record(recorder, action="doc.status")
        return PlainTextResponse("x", status_code=int(request.path_params["code"]))

    def sync_handler(request: Request) -> PlainTextResponse:
        _record(recorder, action="doc.sync", target=Target("doc", "sync"))
        return PlainTextResponse("ok")

    async def raises(request: Request) -> PlainTextResponse:
        _record(recorder, action="doc.explode")
        raise Boom("handler failed")

    async def times_out(request: Request) -> PlainTextResponse:
        _record(recorder, action="doc.slow")
        with anyio.fail_after(0):
            await anyio.sleep(5)
        return PlainTextResponse("never")

    async def stream(request: Request) -> StreamingResponse:
        event = auditkit.current_event()
        event.action = "doc.export"
        recorder.record(event)

        async def chunks() -> Any:
            yield b"first,"
            # Set while streaming: the request is not over until the last chunk.
            auditkit.current_event().metadata["rows"] = 2
            yield b"second"

        return StreamingResponse(chunks())

    async def stream_fails(request: Request) -> StreamingResponse:
        _record(recorder, action="doc.export")

        async def chunks() -> Any:
            yield b"first,"
            raise Boom("stream broke")

        return StreamingResponse(chunks())

    async def with_background(request: Request) -> PlainTextResponse:
        _record(recorder, action="doc.mail")

        def later() -> None:
            auditkit.current_event().metadata["late"] = True

        return PlainTextResponse("ok", background=BackgroundTask(later))

    async def echo_request(request: Request) -> JSONResponse:
        info = auditkit.current_event().request
        assert info is not None
        return JSONResponse({"id": info.id, "ip": info.ip, "path": info.path})

    return Starlette(
        routes=[
            Route("/everything", everything),
            Route("/action-only", action_only),
            Route("/no-action", no_action),
            Route("/set-not-recorded", set_not_recorded),
            Route("/status/{code:int}", status),
            Route("/sync", sync_handler),
            Route("/raises", raises),
            Route("/times-out", times_out),
            Route("/stream", stream),
            Route("/stream-fails", stream_fails),
            Route("/background", with_background),
            Route("/echo-request", echo_request),
        ]
    )


def _client(
    app: Any, *, client: tuple[str, int] = ("127.0.0.1", 5000)
) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=client)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def _get(app: Any, path: str, **kwargs: Any) -> httpx.Response:
    client_address = kwargs.pop("client", ("127.0.0.1", 5000))
    async with _client(app, client=client_address) as client:
        return await client.get(path, **kwargs)


def _user_from_header(scope: Any) -> Actor | None:
    for name, value in scope["headers"]:
        if name == b"x-user":
            return Actor("user", value.decode())
    return None


@pytest.mark.anyio
async def test_handler_fields_win_over_hooks_and_defaults() -> None:
    recorder = InMemoryRecorder()
    app = AuditMiddleware(
        _starlette_app(recorder),
        recorder,
        actor=_user_from_header,
        tenant=lambda scope: "hook-tenant",
    )

    response = await _get(app, "/everything?secret=1", headers={"x-user": "alice"})

    assert response.status_code == 200
    assert [(o.outcome, o.deferred) for o in recorder.outcomes] == [
        (Outcome.DEFERRED, False),
        (Outcome.ENQUEUED, True),
    ]
    [event] = recorder.events
    assert event.action == "doc.update"
    assert event.actor == Actor("user", "handler-user")
    assert event.target == Target("doc", "7")
    assert event.result == Result("denied", 451, "handler says so")
    assert event.tenant_id == "handler-tenant"
    assert event.metadata == {"k": "v"}
    assert event.request is not None
    assert event.request.method == "GET"
    assert event.request.path == "/everything"
    assert event.request.ip == "127.0.0.1"


@pytest.mark.anyio
async def test_unset_fields_get_the_middleware_defaults() -> None:
    recorder = InMemoryRecorder()
    app = AuditMiddleware(
        _starlette_app(recorder),
        recorder,
        actor=_user_from_header,
        tenant=lambda scope: "hook-tenant",
    )

    await _get(app, "/action-only", headers={"x-user": "alice", "user-agent": "ua/1"})

    [event] = recorder.events
    assert event.action == "doc.read"
    assert event.actor == Actor("user", "alice")
    assert event.tenant_id == "hook-tenant"
    assert event.target is None
    assert event.result == Result("success", 200)
    assert event.request is not None
    assert event.request.user_agent == "ua/1"
    uuid.UUID(event.request.id or "")


@pytest.mark.anyio
async def test_nothing_is_recorded_for_a_handler_that_sets_no_action() -> None:
    recorder = InMemoryRecorder()
    app = AuditMiddleware(_starlette_app(recorder), recorder, auto_record=True)

    response = await _get(app, "/no-action")

    assert response.status_code == 200
    assert recorder.events == []
    assert [o.outcome for o in recorder.outcomes] == [Outcome.SKIPPED]


@pytest.mark.anyio
async def test_an_action_set_but_not_recorded_is_sent_only_with_auto_record() -> None:
    recorder = InMemoryRecorder()
    plain = AuditMiddleware(_starlette_app(recorder), recorder)
    await _get(plain, "/set-not-recorded")
    assert recorder.events == []

    auto = AuditMiddleware(_starlette_app(recorder), recorder, auto_record=True)
    await _get(auto, "/set-not-recorded")

    [event] = recorder.events
    assert event.action == "doc.list"
    assert event.result == Result("success", 200)


@pytest.mark.anyio
async def test_auto_record_does_not_send_a_recorded_event_twice() -> None:
    recorder = InMemoryRecorder()
    app = AuditMiddleware(_starlette_app(recorder), recorder, auto_record=True)

    await _get(app, "/action-only")

    assert [e.action for e in recorder.events] == ["doc.read"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (201, Result("success", 201)),
        (302, Result("success", 302)),
        (400, Result("error", 400)),
        (401, Result("denied", 401)),
        (403, Result("denied", 403)),
        (404, Result("error", 404)),
        (503, Result("error", 503)),
    ],
)
async def test_result_comes_from_the_status(code: int, expected: Result) -> None:
    recorder = InMemoryRecorder()
    app = AuditMiddleware(_starlette_app(recorder), recorder)

    response = await _get(app, f"/status/{code}")

    assert response.status_code == code
    [event] = recorder.events
    assert event.result == expected


@pytest.mark.anyio
async def test_a_sync_handler_sees_the_request_event() -> None:
    recorder = InMemoryRecorder()
    app = AuditMiddleware(_starlette_app(recorder), recorder)

    await _get(app, "/sync")

    [event] = recorder.events
    assert (event.action, event.target) == ("doc.sync", Target("doc", "sync"))
    assert event.result == Result("success", 200)


@pytest.mark.anyio
async def test_an_exception_is_recorded_as_error_500_and_reraised_unchanged() -> None:
    recorder = InMemoryRecorder()
    raised: list[BaseException] = []

    async def handler(request: Request) -> PlainTextResponse:
        _record(recorder, action="doc.explode")
        error = Boom("handler failed")
        raised.append(error)
        raise error

    inner = Starlette(routes=[Route("/", handler)])
    app = AuditMiddleware(inner, recorder)

    with pytest.raises(Boom) as caught:
        await _get(app, "/")

    assert caught.value is raised[0]
    [event] = recorder.events
    assert event.result == Result("error", 500)


@pytest.mark.anyio
async def test_added_with_add_middleware_an_exception_is_still_an_error() -> None:
    recorder = InMemoryRecorder()
    app = _starlette_app(recorder)
    app.add_middleware(AuditMiddleware, recorder=recorder)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)

    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/raises")

    assert response.status_code == 500
    [event] = recorder.events
    assert (event.action, event.result) == ("doc.explode", Result("error", 500))


@pytest.mark.anyio
async def test_a_handler_that_times_out_is_an_error() -> None:
    recorder = InMemoryRecorder()
    app = AuditMiddleware(_starlette_app(recorder), recorder)

    with pytest.raises(TimeoutError):
        await _get(app, "/times-out")

    [event] = recorder.events
    assert (event.action, event.result) == ("doc.slow", Result("error", 500))


@pytest.mark.anyio
async def test_a_streamed_response_is_finished_after_its_last_chunk() -> None:
    recorder = InMemoryRecorder()
    app = AuditMiddleware(_starlette_app(recorder), recorder)

    response = await _get(app, "/stream")

    assert response.content == b"first,second"
    [event] = recorder.events
    assert event.metadata == {"rows": 2}
    assert event.result == Result("success", 200)


@pytest.mark.anyio
async def test_a_stream_that_fails_after_the_status_is_an_error() -> None:
    recorder = InMemoryRecorder()
    app = AuditMiddleware(_starlette_app(recorder), recorder)

    with pytest.raises(Boom):
        await _get(app, "/stream-fails")

    [event] = recorder.events
    assert event.result == Result("error", 500)


@pytest.mark.anyio
async def test_work_after_the_response_does_not_change_the_event() -> None:
    recorder = InMemoryRecorder()
    app = AuditMiddleware(_starlette_app(recorder), recorder)

    response = await _get(app, "/background")

    assert response.status_code == 200
    [event] = recorder.events
    assert event.metadata == {}


@pytest.mark.anyio
async def test_the_response_is_passed_through_unchanged() -> None:
    recorder = InMemoryRecorder()
    bare = _starlette_app(recorder)
    wrapped = AuditMiddleware(_starlette_app(recorder), recorder)

    for path in ("/everything", "/status/404", "/stream"):
        expected = await _get(bare, path)
        actual = await _get(wrapped, path)
        assert (actual.status_code, actual.headers.raw, actual.content) == (
            expected.status_code,
            expected.headers.raw,
            expected.content,
        )


@pytest.mark.anyio
async def test_async_hooks_resolve_actor_and_tenant() -> None:
    recorder = InMemoryRecorder()

    async def actor(scope: Any) -> Actor:
        await anyio.lowlevel.checkpoint()
        return Actor("service", "billing")

    async def tenant(scope: Any) -> str:
        return "acme"

    app = AuditMiddleware(
        _starlette_app(recorder), recorder, actor=actor, tenant=tenant
    )

    await _get(app, "/action-only")

    [event] = recorder.events
    assert (event.actor, event.tenant_id) == (Actor("service", "billing"), "acme")


@pytest.mark.anyio
async def test_a_hook_that_raises_is_logged_and_the_request_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = InMemoryRecorder()

    def actor(scope: Any) -> Actor:
        raise LookupError("no such user")

    async def tenant(scope: Any) -> str:
        raise LookupError("no such tenant")

    app = AuditMiddleware(
        _starlette_app(recorder), recorder, actor=actor, tenant=tenant
    )

    with caplog.at_level(logging.WARNING, logger="auditkit"):
        response = await _get(app, "/action-only")

    assert response.status_code == 200
    [event] = recorder.events
    assert (event.actor, event.tenant_id) == (None, None)
    hook_records = [r for r in caplog.records if r.name == "auditkit.asgi"]
    assert [r.levelno for r in hook_records] == [logging.WARNING, logging.WARNING]
    assert "actor hook raised" in hook_records[0].getMessage()
    assert "tenant hook raised" in hook_records[1].getMessage()


@pytest.mark.anyio
async def test_a_hook_returning_the_wrong_type_leaves_the_field_unset(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = InMemoryRecorder()
    wrong_actor: Any = lambda scope: "alice"  # noqa: E731 (a hook breaking its type)
    wrong_tenant: Any = lambda scope: 42  # noqa: E731 (as above)
    app = AuditMiddleware(
        _starlette_app(recorder), recorder, actor=wrong_actor, tenant=wrong_tenant
    )

    with caplog.at_level(logging.WARNING, logger="auditkit"):
        await _get(app, "/action-only")

    [event] = recorder.events
    assert (event.actor, event.tenant_id) == (None, None)
    assert len([r for r in caplog.records if r.name == "auditkit.asgi"]) == 2


@pytest.mark.anyio
async def test_the_request_id_comes_from_the_configured_header() -> None:
    recorder = InMemoryRecorder()
    app = AuditMiddleware(
        _starlette_app(recorder), recorder, request_id_header="X-Correlation-ID"
    )

    await _get(app, "/action-only", headers={"x-correlation-id": "corr-1"})
    await _get(app, "/action-only", headers={"x-request-id": "ignored"})

    first, second = recorder.events
    assert first.request is not None
    assert first.request.id == "corr-1"
    assert second.request is not None
    assert second.request.id != "ignored"
    uuid.UUID(second.request.id or "")


@pytest.mark.anyio
async def test_oversized_client_headers_cannot_make_the_event_invalid() -> None:
    recorder = InMemoryRecorder()
    app = AuditMiddleware(_starlette_app(recorder), recorder)

    await _get(
        app,
        "/action-only",
        headers={"x-request-id": "r" * 5000, "user-agent": "u" * 5000},
    )

    [event] = recorder.events
    assert event.request is not None
    assert event.request.id == "r" * 256
    assert event.request.user_agent == "u" * 1024


@pytest.mark.anyio
async def test_forwarding_headers_from_an_untrusted_peer_are_ignored() -> None:
    recorder = InMemoryRecorder()
    app = AuditMiddleware(
        _starlette_app(recorder), recorder, trusted_proxies=["10.0.0.0/8"]
    )

    response = await _get(
        app,
        "/echo-request",
        client=("203.0.113.9", 1),
        headers={"x-forwarded-for": "1.2.3.4", "forwarded": "for=1.2.3.4"},
    )

    assert response.json()["ip"] == "203.0.113.9"


@pytest.mark.anyio
async def test_without_trusted_proxies_forwarding_headers_are_ignored() -> None:
    recorder = InMemoryRecorder()
    app = AuditMiddleware(_starlette_app(recorder), recorder)

    response = await _get(
        app,
        "/echo-request",
        client=("10.0.0.2", 1),
        headers={"x-forwarded-for": "1.2.3.4"},
    )

    assert response.json()["ip"] == "10.0.0.2"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        # The proxy appended the real client after the address the client forged.
        ({"x-forwarded-for": "6.6.6.6, 198.51.100.7"}, "198.51.100.7"),
        # Two trusted proxies between us and the client are skipped.
        ({"x-forwarded-for": "6.6.6.6, 198.51.100.7, 10.1.1.1"}, "198.51.100.7"),
        (
            {"forwarded": 'for=6.6.6.6, for="198.51.100.7:4711";proto=https'},
            "198.51.100.7",
        ),
        ({"forwarded": 'for="[2001:db8::17]:4711"'}, "2001:db8::17"),
        # No header at all: the proxy's own address is all we know.
        ({}, "10.0.0.1"),
    ],
)
async def test_a_trusted_proxy_forwards_the_client_address(
    headers: dict[str, str], expected: str
) -> None:
    recorder = InMemoryRecorder()
    app = AuditMiddleware(
        _starlette_app(recorder), recorder, trusted_proxies=["10.0.0.0/8"]
    )

    response = await _get(app, "/echo-request", client=("10.0.0.1", 1), headers=headers)

    assert response.json()["ip"] == expected


@pytest.mark.anyio
async def test_a_forged_second_forwarding_header_falls_back_to_the_proxy() -> None:
    """A proxy that sets X-Forwarded-For but passes a client's Forwarded through."""
    recorder = InMemoryRecorder()
    app = AuditMiddleware(
        _starlette_app(recorder), recorder, trusted_proxies=["10.0.0.1"]
    )

    response = await _get(
        app,
        "/echo-request",
        client=("10.0.0.1", 1),
        headers={"x-forwarded-for": "198.51.100.7", "forwarded": "for=6.6.6.6"},
    )

    assert response.json()["ip"] == "10.0.0.1"


@pytest.mark.anyio
async def test_the_path_excludes_the_query_string() -> None:
    recorder = InMemoryRecorder()
    app = AuditMiddleware(_starlette_app(recorder), recorder)

    response = await _get(app, "/echo-request?token=secret")

    assert response.json()["path"] == "/echo-request"


@pytest.mark.anyio
async def test_a_client_disconnect_does_not_erase_the_event() -> None:
    recorder = InMemoryRecorder()
    streaming = anyio.Event()
    state: dict[str, Any] = {}

    async def handler(request: Request) -> StreamingResponse:
        _record(recorder, action="doc.download")

        async def chunks() -> Any:
            yield b"part"
            streaming.set()
            await anyio.sleep_forever()
            yield b"never"  # pragma: no cover - the stream is cancelled first

        state["scope"] = auditkit.current_scope()
        return StreamingResponse(chunks())

    app = AuditMiddleware(Starlette(routes=[Route("/", handler)]), recorder)
    sent: list[dict[str, Any]] = []
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await streaming.wait()
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": [],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
    }
    with anyio.fail_after(10):
        await app(scope, receive, send)

    assert sent[0]["status"] == 200
    assert not state["scope"].cancelled
    [event] = recorder.events
    assert (event.action, event.result) == ("doc.download", Result("success", 200))


@pytest.mark.anyio
async def test_a_cancelled_request_task_still_enqueues_its_recorded_event() -> None:
    recorder = InMemoryRecorder()
    handler_waiting = anyio.Event()

    async def handler(request: Request) -> PlainTextResponse:
        _record(recorder, action="doc.delete")
        handler_waiting.set()
        await anyio.sleep_forever()
        return PlainTextResponse("never")  # pragma: no cover - cancelled first

    app = AuditMiddleware(Starlette(routes=[Route("/", handler)]), recorder)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(_get, app, "/")
            await handler_waiting.wait()
            group.cancel_scope.cancel()

    [event] = recorder.events
    assert (event.action, event.result) == ("doc.delete", Result("error", 500))


async def _drive(
    app: Any, scope: dict[str, Any], incoming: list[dict[str, Any]]
) -> Any:
    """Run one ASGI connection by hand: feed ``incoming``, return what was sent."""
    sent: list[dict[str, Any]] = []
    pending = list(incoming)

    async def receive() -> dict[str, Any]:
        if pending:
            return pending.pop(0)
        await anyio.sleep_forever()
        raise AssertionError("unreachable")  # pragma: no cover

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    with anyio.fail_after(10):
        await app(scope, receive, send)
    return sent


@pytest.mark.anyio
async def test_lifespan_passes_through_untouched() -> None:
    recorder = InMemoryRecorder()
    seen: list[object] = []

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        seen.append(("startup", auditkit.current_scope()))
        yield
        seen.append(("shutdown", auditkit.current_scope()))

    app = AuditMiddleware(Starlette(lifespan=lifespan), recorder)

    sent = await _drive(
        app,
        {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
        [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}],
    )

    assert [m["type"] for m in sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
    assert seen == [("startup", None), ("shutdown", None)]
    assert recorder.outcomes == []


@pytest.mark.anyio
async def test_websockets_pass_through_untouched() -> None:
    recorder = InMemoryRecorder()

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        in_scope = auditkit.current_scope() is not None
        await websocket.send_text(f"{await websocket.receive_text()} {in_scope}")
        await websocket.close()

    app = AuditMiddleware(Starlette(routes=[WebSocketRoute("/ws", echo)]), recorder)
    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "path": "/ws",
        "raw_path": b"/ws",
        "query_string": b"",
        "root_path": "",
        "headers": [],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
        "subprotocols": [],
    }

    sent = await _drive(
        app,
        scope,
        [{"type": "websocket.connect"}, {"type": "websocket.receive", "text": "hello"}],
    )

    assert [m["type"] for m in sent] == [
        "websocket.accept",
        "websocket.send",
        "websocket.close",
    ]
    assert sent[1]["text"] == "hello False"
    assert recorder.outcomes == []


def _fastapi_app(recorder: InMemoryRecorder) -> FastAPI:
    app = FastAPI()

    def current_user(request: Request) -> str:
        return request.headers.get("x-user", "anonymous")

    @app.get("/async/{doc_id}")
    async def read_async(
        doc_id: str, user: str = Depends(current_user)
    ) -> dict[str, str]:
        _record(recorder, action="doc.read", target=Target("doc", doc_id))
        return {"id": doc_id}

    @app.get("/sync/{doc_id}")
    def read_sync(doc_id: str) -> dict[str, str]:
        event = auditkit.current_event()
        event.action = "doc.read"
        event.target = Target("doc", doc_id)
        if doc_id == "hidden":
            event.result = Result("denied", 403, "not yours")
        recorder.record(event)
        return {"id": doc_id}

    @app.get("/untracked")
    def untracked() -> dict[str, str]:
        return {}

    return app


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_fastapi_handlers_record_through_the_middleware(kind: str) -> None:
    recorder = InMemoryRecorder()
    app = _fastapi_app(recorder)
    app.add_middleware(AuditMiddleware, recorder=recorder, actor=_user_from_header)

    response = await _get(app, f"/{kind}/42", headers={"x-user": "carol"})

    assert response.json() == {"id": "42"}
    [event] = recorder.events
    assert event.action == "doc.read"
    assert event.target == Target("doc", "42")
    assert event.actor == Actor("user", "carol")
    assert event.result == Result("success", 200)
    assert event.request is not None
    assert event.request.path == f"/{kind}/42"


@pytest.mark.anyio
async def test_fastapi_handler_result_wins_over_the_status() -> None:
    recorder = InMemoryRecorder()
    app = _fastapi_app(recorder)
    app.add_middleware(AuditMiddleware, recorder=recorder)

    await _get(app, "/sync/hidden")
    await _get(app, "/untracked")

    [event] = recorder.events
    assert event.result == Result("denied", 403, "not yours")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"recorder": object()}, "recorder must be"),
        ({"trusted_proxies": "10.0.0.1"}, "wrap it in a list"),
        ({"trusted_proxies": ["10.0.0.300"]}, "'10.0.0.300'"),
        ({"actor": "alice"}, "actor must be a callable"),
        ({"request_id_header": " "}, "request_id_header"),
        ({"request_id_header": "x-réq"}, "request_id_header"),
    ],
)
def test_bad_arguments_are_refused_at_construction(
    kwargs: dict[str, Any], message: str
) -> None:
    arguments: dict[str, Any] = {"recorder": InMemoryRecorder(), **kwargs}

    with pytest.raises(ConfigurationError, match=message):
        AuditMiddleware(Starlette(), **arguments)


def test_auditkit_does_not_import_web_frameworks() -> None:
    import subprocess
    import sys

    code = (
        "import sys, auditkit.asgi, auditkit.wsgi; "
        "print(sorted(m for m in ('starlette', 'fastapi', 'flask', 'django') "
        "if m in sys.modules))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )

    assert output.stdout.strip() == "[]"


@pytest.mark.anyio
async def test_cancelled_while_enqueueing_the_other_recorders_still_get_the_event() -> (
    None
):
    """One recorder waits for buffer space when the task is cancelled: the event
    deferred to another recorder is enqueued anyway, without waiting."""
    slow, fast = InMemoryRecorder(), InMemoryRecorder()
    waiting = anyio.Event()

    async def wait_for_space(wire: Any, event: Any) -> Outcome:
        waiting.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")  # pragma: no cover

    slow._aput_deferred = wait_for_space  # type: ignore[method-assign]

    async def handler(request: Request) -> PlainTextResponse:
        event = auditkit.current_event()
        event.action = "doc.share"
        slow.record(event)
        fast.record(event)
        return PlainTextResponse("ok")

    app = AuditMiddleware(Starlette(routes=[Route("/", handler)]), slow)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(_get, app, "/")
            await waiting.wait()
            group.cancel_scope.cancel()

    assert slow.events == []
    [event] = fast.events
    assert (event.action, event.result) == ("doc.share", Result("success", 200))


@pytest.mark.anyio
async def test_a_recorder_that_raises_does_not_change_the_response(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = InMemoryRecorder()

    async def broken(wire: Any, event: Any) -> Outcome:
        raise RuntimeError("recorder bug")

    recorder._aput_deferred = broken  # type: ignore[method-assign]
    app = AuditMiddleware(_starlette_app(recorder), recorder)

    with caplog.at_level(logging.ERROR, logger="auditkit"):
        response = await _get(app, "/action-only")

    assert (response.status_code, response.text) == (200, "ok")
    assert [r.name for r in caplog.records] == ["auditkit.asgi"]


def test_the_module_exports_its_middleware_and_hook_types_sorted() -> None:
    import auditkit.asgi as module

    assert all(hasattr(module, name) for name in module.__all__)
    assert {"AuditMiddleware", "ActorHook", "TenantHook"} <= set(module.__all__)
    assert module.__all__ == sorted(module.__all__)


@pytest.mark.anyio
async def test_a_handler_cancelling_its_scope_keeps_what_it_recorded() -> None:
    recorder = InMemoryRecorder()

    async def handler(request: Request) -> PlainTextResponse:
        _record(recorder, action="doc.purge")
        scope = auditkit.current_scope()
        assert scope is not None
        scope.cancel()
        later = recorder.record(auditkit.Event(action="doc.purge.step"))
        return PlainTextResponse(later.value)

    app = AuditMiddleware(
        Starlette(routes=[Route("/", handler)]), recorder, auto_record=True
    )

    response = await _get(app, "/")

    assert response.text == "cancelled"
    [event] = recorder.events
    assert (event.action, event.result) == ("doc.purge", Result("success", 200))
