"""Security checks over real sockets: the API key stays secret, a tenant-bound key
stays in its tenant, and forged forwarding headers don't change the client address."""

from __future__ import annotations

import logging
import threading
import wsgiref.simple_server
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import auditkit
import auditkit.asgi
import auditkit.wsgi
from auditkit_testing import InMemoryRecorder

from ._harness import (
    ServerProcess,
    UvicornThread,
    control,
    fetch_stored_events,
    free_port,
)

pytestmark = pytest.mark.e2e

_GOOD_KEY = "sk-e2e-GOOD-7f3a9c1e5b2d4f60"
_WRONG_KEY = "sk-e2e-WRONG-0b8e2d6a4c1f3e57"
_KEY_A = "sk-e2e-tenant-a-51c9e7"
_KEY_B = "sk-e2e-tenant-b-2d8f04"
_FORGED = "203.0.113.66"


@pytest.fixture
def keyed_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A fake server that knows one unbound key and two tenant-bound keys."""
    server = ServerProcess(
        db=None,
        log_dir=tmp_path,
        api_keys=[_GOOD_KEY, f"{_KEY_A}=tenant-a", f"{_KEY_B}=tenant-b"],
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _event(action: str, **fields: Any) -> auditkit.Event:
    event = auditkit.Event(action=action, actor=auditkit.Actor("user", "u1"), **fields)
    event.id = auditkit.new_event_id()
    return event


def _texts_of(records: Iterable[logging.LogRecord]) -> Iterator[str]:
    for record in records:
        yield record.getMessage()
        yield repr(record.args)
        if record.exc_info and record.exc_info[1] is not None:
            yield repr(record.exc_info[1])
            yield str(record.exc_info[1])
        if record.exc_text:
            yield record.exc_text


def test_api_key_appears_in_no_log_repr_exception_or_report(
    keyed_server: ServerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    """A run with retries (injected faults) and refusals (a wrong key, 401) at
    DEBUG: neither key shows up anywhere the SDK writes."""
    caplog.set_level(logging.DEBUG)
    failures: list[str] = []
    url = keyed_server.url
    for fault in (
        {"status": 503, "times": 2, "retry_after": 0},
        {"drop": "before_body", "times": 1},
        {"status": 429, "times": 1, "retry_after": 0},
    ):
        control(url, "POST", "/_fake/faults", fault).raise_for_status()
    good = auditkit.BufferedRecorder(url, _GOOD_KEY, flush_interval=0.05)
    wrong = auditkit.BufferedRecorder(
        url,
        _WRONG_KEY,
        flush_interval=0.05,
        on_failure=lambda events, reason: failures.append(reason),
    )

    with good, wrong:
        for n in range(20):
            good.record(_event("secret.read", metadata={"n": n}))
            wrong.record(_event("secret.read", metadata={"n": n}))
        assert good.flush(timeout=30.0)
        assert wrong.flush(timeout=30.0)
        shown = [repr(good), repr(wrong), str(good.stats()), str(wrong.stats())]
    shown += [repr(good), repr(wrong)]

    assert good.stats().retried > 0, "no retry happened: the run proved little"
    assert wrong.stats().failed == 20
    assert failures, "the 401 was not reported to on_failure"
    assert len(fetch_stored_events(url, api_key=_GOOD_KEY)) == 20
    journal = control(url, "GET", "/_fake/requests").json()["requests"]
    everything = [*_texts_of(caplog.records), *shown, *failures, repr(journal)]
    everything.append(keyed_server.log_text())
    for key in (_GOOD_KEY, _WRONG_KEY):
        leaks = [text for text in everything if key in text]
        assert not leaks, leaks[:3]


def test_api_key_is_not_shown_by_configuration_errors() -> None:
    for make in (
        lambda: auditkit.HttpTransport("ftp://audit.invalid", _GOOD_KEY),
        lambda: auditkit.HttpTransport("http://audit.invalid", _GOOD_KEY, timeout=-1),
        lambda: auditkit.BufferedRecorder("not a url", _GOOD_KEY),
        lambda: auditkit.BufferedRecorder(
            "http://audit.invalid", _GOOD_KEY, capacity=0
        ),
    ):
        with pytest.raises(auditkit.ConfigurationError) as caught:
            make()
        assert _GOOD_KEY not in str(caught.value)
        assert _GOOD_KEY not in repr(caught.value)


def test_api_key_is_not_shown_by_an_unreachable_service(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    reasons: list[str] = []
    endpoint = f"http://127.0.0.1:{free_port()}"
    recorder = auditkit.BufferedRecorder(
        endpoint,
        _GOOD_KEY,
        flush_interval=0.05,
        on_failure=lambda events, reason: reasons.append(reason),
    )

    recorder.record(_event("secret.read"))
    recorder.close(timeout=2.0)

    assert reasons, "the undelivered event was not reported"
    everything = [*_texts_of(caplog.records), *reasons, repr(recorder)]
    assert not [text for text in everything if _GOOD_KEY in text]


def _post(url: str, key: str, events: list[dict[str, Any]]) -> httpx.Response:
    return httpx.post(
        url + "/v1/events",
        json={"events": events},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10.0,
    )


def _wire(event: auditkit.Event) -> dict[str, Any]:
    wire = event.to_wire()
    wire["occurred_at"] = "2024-05-01T12:00:00.000000Z"
    return wire


def test_tenant_bound_keys_neither_read_nor_write_another_tenants_events(
    keyed_server: ServerProcess,
) -> None:
    url = keyed_server.url
    mine = _wire(_event("doc.read"))
    assert _post(url, _KEY_A, [mine]).json()["accepted"] == 1

    # Writing into another tenant is refused, and stores nothing.
    foreign = _wire(_event("doc.read", tenant_id="tenant-b"))
    refused = _post(url, _KEY_A, [foreign])
    assert refused.status_code == 422
    assert refused.json()["rejected"][0]["field"] == "tenant_id"

    # Reading: each key sees its own tenant only, whatever filter it asks for.
    seen_by_a = fetch_stored_events(url, api_key=_KEY_A)
    assert [e["id"] for e in seen_by_a] == [mine["id"]]
    assert seen_by_a[0]["tenant_id"] == "tenant-a"
    assert fetch_stored_events(url, api_key=_KEY_B) == []
    probe = httpx.get(
        url + "/v1/events",
        params={"tenant_id": "tenant-a"},
        headers={"Authorization": f"Bearer {_KEY_B}"},
        timeout=10.0,
    )
    assert probe.status_code == 403 or probe.json()["events"] == []

    # Re-sending A's id under B's key can't change A's event.
    hijack = dict(mine, action="doc.delete", tenant_id=None)
    _post(url, _KEY_B, [hijack])
    assert fetch_stored_events(url, api_key=_KEY_A) == seen_by_a
    assert control(url, "GET", "/_fake/stats").json()["events"] == 1


def test_sdk_reports_an_event_for_another_tenant_as_failed(
    keyed_server: ServerProcess,
) -> None:
    failures: list[tuple[int, str]] = []
    recorder = auditkit.BufferedRecorder(
        keyed_server.url,
        _KEY_A,
        flush_interval=0.05,
        on_failure=lambda events, reason: failures.append((len(events), reason)),
    )

    with recorder:
        recorder.record(_event("doc.read", tenant_id="tenant-b"))
        recorder.record(_event("doc.read"))
        assert recorder.flush(timeout=30.0)

    assert recorder.stats().failed == 1
    assert recorder.stats().delivered == 1
    assert [count for count, _ in failures] == [1]
    assert "tenant_id" in failures[0][1]


# The middleware: a real server, a client on 127.0.0.1 sending forged headers.

_FORGING_HEADERS = {
    "X-Forwarded-For": _FORGED,
    "Forwarded": f"for={_FORGED}",
}


async def _audited(request: Request) -> PlainTextResponse:
    event = auditkit.current_event()
    event.action = "page.view"
    _ASGI_RECORDER.get().record(event)
    return PlainTextResponse("ok")


class _RecorderSlot:
    """Lets a module-level handler reach the recorder of the running test."""

    def __init__(self) -> None:
        self._recorder: InMemoryRecorder | None = None

    def set(self, recorder: InMemoryRecorder) -> None:
        self._recorder = recorder

    def get(self) -> InMemoryRecorder:
        assert self._recorder is not None
        return self._recorder


_ASGI_RECORDER = _RecorderSlot()


def _asgi_app(recorder: InMemoryRecorder, trusted: tuple[str, ...]) -> Any:
    _ASGI_RECORDER.set(recorder)
    app = Starlette(routes=[Route("/page", _audited)])
    return auditkit.asgi.AuditMiddleware(app, recorder, trusted_proxies=trusted)


@pytest.mark.parametrize(
    ("trusted", "expected_ip"),
    [((), "127.0.0.1"), (("10.0.0.0/8",), "127.0.0.1"), (("127.0.0.1",), _FORGED)],
)
def test_asgi_middleware_ignores_forwarding_headers_unless_the_peer_is_trusted(
    trusted: tuple[str, ...], expected_ip: str
) -> None:
    recorder = InMemoryRecorder()

    with UvicornThread(_asgi_app(recorder, trusted)) as server:
        response = httpx.get(server.url + "/page", headers=_FORGING_HEADERS, timeout=10)
        response.raise_for_status()
        assert recorder.wait_for(lambda events: len(events) >= 1, timeout=10.0)

    [event] = recorder.events
    assert event.request is not None
    assert event.request.ip == expected_ip


def _wsgi_app(recorder: InMemoryRecorder) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        event = auditkit.current_event()
        event.action = "page.view"
        recorder.record(event)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    return app


class _QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.mark.parametrize(
    ("trusted", "expected_ip"), [((), "127.0.0.1"), (("127.0.0.0/8",), _FORGED)]
)
def test_wsgi_middleware_ignores_forwarding_headers_unless_the_peer_is_trusted(
    trusted: tuple[str, ...], expected_ip: str
) -> None:
    recorder = InMemoryRecorder()
    app = auditkit.wsgi.AuditMiddleware(
        _wsgi_app(recorder), recorder, trusted_proxies=trusted
    )
    server = wsgiref.simple_server.make_server(
        "127.0.0.1", 0, app, handler_class=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/page"
        httpx.get(url, headers=_FORGING_HEADERS, timeout=10).raise_for_status()
        assert recorder.wait_for(lambda events: len(events) >= 1, timeout=10.0)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10.0)

    [event] = recorder.events
    assert event.request is not None
    assert event.request.ip == expected_ip
