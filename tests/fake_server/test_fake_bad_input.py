"""No input, however malformed, gets a 5xx or changes what is stored."""

# This folder is not a package, so mypy's override for tests.* misses it:
# mypy: allow-untyped-defs, allow-incomplete-defs
# mypy: allow-untyped-calls, check-untyped-defs

from __future__ import annotations

import gzip
import json
import socket
import time

import pytest
from fake_server_support import (
    batch,
    fast_client,
    serve_app,
    unique_namespace,
    wire_event,
)
from hypothesis import HealthCheck, given, settings, strategies as st

import fake_server

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=8,
)
_EVENT_FIELDS = st.dictionaries(
    st.sampled_from([*wire_event(), "extra"]), _JSON, max_size=9
)
_BODIES = st.one_of(
    st.binary(max_size=300),
    _JSON.map(lambda value: json.dumps(value).encode()),
    st.lists(_EVENT_FIELDS, max_size=5).map(
        lambda events: json.dumps({"events": events}).encode()
    ),
    st.lists(st.builds(lambda extra: {**wire_event(), **extra}, _EVENT_FIELDS)).map(
        lambda events: json.dumps({"events": events}).encode()
    ),
)


@pytest.fixture(scope="module")
def server():
    with fake_server.serve_in_thread() as handle:
        yield handle


@pytest.fixture(scope="module")
def http(server):
    with fast_client(base_url=server.url) as client:
        yield client


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    body=_BODIES,
    compress=st.booleans(),
    content_type=st.sampled_from(
        ["application/json", "text/plain", "", "application/JSON"]
    ),
    path=st.sampled_from(["/v1/events", "/_fake/faults", "/_fake/wait"]),
)
def test_malformed_requests_never_get_a_server_error(
    http, body, compress, content_type, path
):
    headers = {"authorization": "Bearer k", "content-type": content_type}
    if compress:
        body = gzip.compress(body)
        headers["content-encoding"] = "gzip"
    if path == "/_fake/wait":
        body = body[:0] + b'{"count": 0, "timeout": 0}' if body[:1] != b"{" else body
    headers["x-fake-namespace"] = unique_namespace()

    response = http.post(path, content=body, headers=headers)
    stored = http.get("/_fake/stats", headers=headers).json()["events"]

    assert response.status_code < 500
    assert response.headers["content-type"] == "application/json"
    if response.status_code >= 400 and path == "/v1/events":
        assert stored == 0


@pytest.fixture(scope="module")
def impatient():
    handle, _ = serve_app(fake_server.ServerConfig(body_timeout=0.2))
    with handle:
        yield handle


def _send_raw(url: str, request: bytes) -> bytes:
    """Send ``request`` as is, keep the connection open, return all of the answer."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    answer = b""
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize(
    ("path", "declared", "status"),
    [
        ("/v1/events", 10_000, b"408"),
        ("/v1/events", 10**12, b"413"),
        ("/_fake/faults", 10_000, b"408"),
        ("/_fake/wait", 10_000, b"408"),
    ],
)
def test_a_content_length_longer_than_the_body_gets_an_answer(
    impatient, path, declared, status
):
    """The client waits for the answer while the server waits for the rest of the
    body: without a body timeout neither would ever give up."""
    body = batch(wire_event()) if path == "/v1/events" else b'{"count": 1'
    head = (
        f"POST {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer k\r\n"
        f"content-type: application/json\r\ncontent-length: {declared}\r\n\r\n"
    )
    started = time.monotonic()

    answer = _send_raw(impatient.url, head.encode() + body)

    assert answer.startswith(b"HTTP/1.1 " + status)
    assert b"connection: close" in answer.lower()
    assert time.monotonic() - started < 5  # a real hang lasts until the client quits
    with impatient.client() as client:
        assert client.stats()["events"] == 0
