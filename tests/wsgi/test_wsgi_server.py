"""The WSGI middleware behind a real WSGI server, with a client that hangs up."""

from __future__ import annotations

import threading
import time
import wsgiref.simple_server
from collections.abc import Iterator

import httpx
import pytest
from flask import Flask, Response

import auditkit
from auditkit import Actor, Result
from auditkit.wsgi import AuditMiddleware
from auditkit_testing import InMemoryRecorder, assert_recorded


class _QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output clean."""

    def log_exception(self, exc_info: object) -> None:
        """A client hanging up is the point of the test, not a failure."""


class _QuietServer(wsgiref.simple_server.WSGIServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """The broken pipe of the hang-up lands here; nothing to report."""


@pytest.fixture
def served() -> Iterator[tuple[str, InMemoryRecorder, threading.Event]]:
    """A streaming Flask app under wsgiref on a free port; stopped after."""
    recorder = InMemoryRecorder()
    stream_ended = threading.Event()
    app = Flask(__name__)

    @app.get("/download")
    def download() -> Response:
        event = auditkit.current_event()
        event.action = "file.download"
        recorder.record(event)

        def chunks() -> Iterator[bytes]:
            try:
                # Paced like a real download; ends only when the client goes away.
                while True:
                    yield b"x" * 1024
                    time.sleep(0.005)
            finally:
                stream_ended.set()

        return Response(chunks())

    app.wsgi_app = AuditMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, recorder, actor=lambda environ: Actor("user", "mallory")
    )
    server = wsgiref.simple_server.make_server(
        "127.0.0.1", 0, app, server_class=_QuietServer, handler_class=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", recorder, stream_ended
    finally:
        server.shutdown()
        thread.join(timeout=30)
        server.server_close()


def test_a_client_hanging_up_mid_stream_cannot_erase_its_event(
    served: tuple[str, InMemoryRecorder, threading.Event],
) -> None:
    url, recorder, stream_ended = served

    with (
        httpx.Client(base_url=url) as client,
        client.stream("GET", "/download") as response,
    ):
        assert response.status_code == 200
        assert next(response.iter_bytes())

    assert stream_ended.wait(30)
    assert_recorded(
        recorder,
        "file.download",
        actor=Actor("user", "mallory"),
        result=Result("success", 200),
        count=1,
        timeout=30,
    )
