"""The ASGI middleware behind a real uvicorn server, with a client that hangs up."""

from __future__ import annotations

import socket
import threading
from collections.abc import AsyncIterator, Iterator

import anyio
import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

import auditkit
from auditkit import Actor
from auditkit.asgi import AuditMiddleware
from auditkit_testing import InMemoryRecorder, assert_recorded


@pytest.fixture
def served() -> Iterator[tuple[str, InMemoryRecorder, threading.Event]]:
    """A streaming app under uvicorn on a free port of 127.0.0.1; stopped after."""
    recorder = InMemoryRecorder()
    stream_ended = threading.Event()

    async def download(request: Request) -> StreamingResponse:
        event = auditkit.current_event()
        event.action = "file.download"
        recorder.record(event)

        async def chunks() -> AsyncIterator[bytes]:
            try:
                while True:
                    yield b"x" * 1024
                    await anyio.sleep(0.01)
            finally:
                stream_ended.set()

        return StreamingResponse(chunks())

    app = AuditMiddleware(
        Starlette(routes=[Route("/download", download)]),
        recorder,
        actor=lambda scope: Actor("user", "mallory"),
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    # Listening before uvicorn starts: a client's connection waits in the backlog
    # until the server accepts it, so there is no start-up to wait for.
    sock.listen()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}", recorder, stream_ended
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def test_a_client_hanging_up_mid_stream_cannot_erase_its_event(
    served: tuple[str, InMemoryRecorder, threading.Event],
) -> None:
    url, recorder, stream_ended = served

    with (
        httpx.Client(base_url=url) as client,
        client.stream("GET", "/download") as response,
    ):
        assert response.status_code == 200
        first = next(response.iter_bytes())
        assert first
    # The connection is closed here, long before the stream would end on its own.

    assert stream_ended.wait(30)
    assert_recorded(
        recorder,
        "file.download",
        actor=Actor("user", "mallory"),
        request={"method": "GET", "path": "/download", "ip": "127.0.0.1"},
        count=1,
        timeout=30,
    )
    # Which result depends on how the server reports the hang-up to Starlette: the
    # stream is either stopped quietly (the 200 stands) or fails (an error).
    [event] = recorder.events
    assert event.result is not None
    assert (event.result.status, event.result.code) in {
        ("success", 200),
        ("error", 500),
    }
