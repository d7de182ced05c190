"""HttpTransport over real sockets: dropped connections, silence, keep-alive."""

from __future__ import annotations

import gzip
import json
import socket
import time

from auditkit import HttpTransport, SendStatus

from ._helpers import API_KEY, make_batch
from ._socket_server import Action, scripted_server

ACCEPTED = json.dumps({"accepted": 1, "duplicates": 0, "rejected": []}).encode()


def test_connection_dropped_after_the_body_asks_for_a_retry() -> None:
    with scripted_server([Action("drop_after_body")]) as server:
        with HttpTransport(server.url, API_KEY) as transport:
            batch = make_batch(1)
            first = transport.send(batch)
            second = transport.send(batch)

        assert first.status is SendStatus.RETRY
        assert second.status is SendStatus.DELIVERED
        assert server.bodies == [batch.body, batch.body]


def test_connection_dropped_before_the_body_asks_for_a_retry() -> None:
    with scripted_server([Action("drop_before_body")]) as server:
        with HttpTransport(server.url, API_KEY) as transport:
            result = transport.send(make_batch(30, padding=2000))

    assert result.status is SendStatus.RETRY


def test_silent_service_times_out_into_a_retry() -> None:
    with scripted_server([Action("hang")]) as server:
        with HttpTransport(server.url, API_KEY) as transport:
            started = time.monotonic()
            result = transport.send(make_batch(1), timeout=0.2)
            elapsed = time.monotonic() - started

    assert result.status is SendStatus.RETRY
    assert "ReadTimeout" in result.reason
    # Generous: only a send that ignores its timeout takes this long.
    assert elapsed < 10


def test_answer_trickled_a_byte_at_a_time_times_out_into_a_retry() -> None:
    """Each byte comes within the read timeout; the whole body does not."""
    trickle = Action("trickle", body=b" " * 200)
    with scripted_server([trickle]) as server:
        with HttpTransport(server.url, API_KEY, timeout=0.5) as transport:
            started = time.monotonic()
            result = transport.send(make_batch(1))
            elapsed = time.monotonic() - started

    assert result.status is SendStatus.RETRY
    assert "timed out" in result.reason
    # Read to its end, the body would take 20 s.
    assert elapsed < 10.0


def test_refused_connection_asks_for_a_retry() -> None:
    # A port that was free a moment ago: nothing listens on it.
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    with HttpTransport(f"http://127.0.0.1:{port}", API_KEY) as transport:
        result = transport.send(make_batch(1))

    assert result.status is SendStatus.RETRY
    assert "connect" in result.reason


def test_consecutive_sends_reuse_one_connection() -> None:
    answers = [Action("answer", 200, ACCEPTED) for _ in range(3)]
    with scripted_server(answers) as server:
        with HttpTransport(server.url, API_KEY) as transport:
            results = [transport.send(make_batch(1)) for _ in range(3)]

    assert {result.status for result in results} == {SendStatus.DELIVERED}
    assert server.connections == 1


def test_gzip_body_arrives_intact_over_a_socket() -> None:
    with scripted_server([Action("answer", 200, ACCEPTED)]) as server:
        with HttpTransport(server.url, API_KEY, gzip_threshold=0) as transport:
            batch = make_batch(5)
            transport.send(batch)

    assert gzip.decompress(server.bodies[0]) == batch.body
