"""The harness's httpx transport: real HTTP/1.1 out of reach of httpx mocks."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import httpx
import pytest
import respx

import fake_server
from fake_server._direct import DirectTransport


@pytest.fixture(scope="module")
def server() -> Iterator[fake_server.ServerHandle]:
    with fake_server.serve_in_thread() as handle:
        yield handle


def test_requests_reach_the_server_while_respx_mocks_httpx(
    server: fake_server.ServerHandle,
) -> None:
    with (
        respx.mock() as mock,
        httpx.Client(transport=DirectTransport(), base_url=server.url) as client,
    ):
        answer = client.get("/healthz")
        posted = client.post(
            "/_fake/reset", headers={fake_server.NAMESPACE_HEADER: "direct"}
        )

    assert answer.status_code == 200
    assert answer.json() == {"status": "ok"}
    assert posted.is_success
    assert not mock.calls


def test_a_kept_alive_connection_carries_the_next_request(
    server: fake_server.ServerHandle,
) -> None:
    transport = DirectTransport()
    with httpx.Client(transport=transport, base_url=server.url) as client:
        for _ in range(3):
            assert client.get("/healthz").status_code == 200
        [idle] = transport._idle.values()

    assert len(idle) == 1


def test_a_refused_connection_is_an_httpx_connect_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    with (
        httpx.Client(transport=DirectTransport()) as client,
        pytest.raises(httpx.ConnectError),
    ):
        client.get(f"http://127.0.0.1:{port}/healthz")


def test_a_server_that_never_answers_is_an_httpx_read_timeout() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    thread = threading.Thread(target=lambda: accepted.append(listener.accept()[0]))
    thread.start()
    port = listener.getsockname()[1]
    try:
        with (
            httpx.Client(transport=DirectTransport(), timeout=0.2) as client,
            pytest.raises(httpx.ReadTimeout),
        ):
            client.get(f"http://127.0.0.1:{port}/healthz")
    finally:
        thread.join(10)
        for sock in accepted:
            sock.close()
        listener.close()


def test_other_schemes_are_refused() -> None:
    with (
        httpx.Client(transport=DirectTransport()) as client,
        pytest.raises(httpx.UnsupportedProtocol),
    ):
        client.get("ftp://127.0.0.1/file")
