"""serve_in_thread and the public surface of fake_server."""

# This folder is not a package, so mypy's override for tests.* misses it:
# mypy: allow-untyped-defs, allow-incomplete-defs
# mypy: allow-untyped-calls, check-untyped-defs

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import httpx
import pytest
from fake_server_support import batch, serve_app, wait_until, wire_event

import fake_server

_JSON = "application/json"


def test_serve_in_thread_serves_until_stopped():
    handle = fake_server.serve_in_thread()
    try:
        assert handle.running
        assert httpx.get(f"{handle.url}/healthz").json() == {"status": "ok"}
    finally:
        handle.stop()

    assert not handle.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{handle.url}/healthz")
    handle.stop()  # a second stop does nothing


def test_a_port_in_use_fails_with_the_reason():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        with pytest.raises(OSError, match="in use"):
            fake_server.serve_in_thread(port=port)


def test_two_servers_get_different_free_ports():
    with fake_server.serve_in_thread() as one, fake_server.serve_in_thread() as two:
        assert one.url != two.url
        with one.client() as first, two.client() as second:
            assert first.health()
            assert second.health()


def test_reprs_never_show_api_keys():
    config = fake_server.ServerConfig(api_keys={"very-secret": "t"})
    with fake_server.Client("http://127.0.0.1:1", api_key="very-secret") as client:
        shown = repr(config) + repr(client)

    assert "very-secret" not in shown


def test_exported_names_are_the_public_surface():
    public = {
        name
        for name in dir(fake_server)
        if not name.startswith("_") and name not in {"annotations"}
    }

    assert set(fake_server.__all__) == public


def test_stopping_answers_a_pending_wait_with_503_and_cuts_delays_short():
    """uvicorn cancels what is still running after its grace period, which would
    answer a pending wait, or a request held by a delay fault, with a 500."""
    handle, app = serve_app(fake_server.ServerConfig())
    answers: dict[str, httpx.Response | BaseException] = {}

    def call(name: str, **request: Any) -> None:
        try:
            answers[name] = httpx.post(timeout=30, **request)
        except httpx.HTTPError as exc:
            answers[name] = exc

    with handle.client() as client:
        client.add_fault(delay=60)
    callers = [
        threading.Thread(
            target=call,
            args=("wait",),
            kwargs={
                "url": f"{handle.url}/_fake/wait",
                "json": {"count": 1, "action": "never.sent"},
            },
        ),
        threading.Thread(
            target=call,
            args=("ingest",),
            kwargs={
                "url": f"{handle.url}/v1/events",
                "content": batch(wire_event()),
                "headers": {"authorization": "Bearer k", "content-type": _JSON},
            },
        ),
    ]
    for caller in callers:
        caller.start()
    wait_until(lambda: app.waiting == 1)
    with handle.client() as client:
        wait_until(lambda: client.stats()["faults_applied"] == 1)

    started = time.monotonic()
    handle.stop()
    for caller in callers:
        caller.join(10)

    assert time.monotonic() - started < 5  # a real hang would take 60 s
    wait = answers["wait"]
    assert isinstance(wait, httpx.Response)
    assert wait.status_code == 503
    assert wait.json() == {
        "error": "The server is stopping; 0 of 1 events stored.",
        "code": "stopping",
        "matched": 0,
    }
    ingest = answers["ingest"]
    assert isinstance(ingest, httpx.Response)
    assert ingest.status_code == 200
