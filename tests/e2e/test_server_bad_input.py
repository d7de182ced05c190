"""Hostile requests to the fake server: never a 500, nothing stored from a refused
request, no crash, and bounded memory on a huge body.

The OpenAPI-driven run of the fake server lives with the server's own tests; this
module fuzzes what a schema can't describe: raw bytes, lying headers, compression.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import auditkit

from ._harness import API_KEY, ServerProcess, control, fetch_stored_events

pytestmark = pytest.mark.e2e

_MiB = 1024 * 1024
# Far above what a server that reads and discards a body in chunks needs, far below
# the 50 MiB that one buffering the body whole would take.
_RSS_BOUND = 24 * _MiB


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One fake server subprocess for the module (its RSS can be measured)."""
    log_dir: Path = tmp_path_factory.mktemp("server-bad-input")
    process = ServerProcess(db=None, log_dir=log_dir)
    process.start()
    try:
        yield process
    finally:
        process.stop()


def _stored_count(where: str | httpx.Client) -> int:
    if isinstance(where, httpx.Client):
        response = where.get("/_fake/stats")
    else:
        response = control(where, "GET", "/_fake/stats")
    count: int = response.json()["events"]
    return count


def _valid_wire() -> dict[str, Any]:
    event = auditkit.Event(action="fuzz.valid", actor=auditkit.Actor("user", "u1"))
    event.id = auditkit.new_event_id()
    wire = event.to_wire()
    wire["occurred_at"] = "2024-05-01T12:00:00.000000Z"
    return wire


_JSON_LEAVES = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
)
_JSON = st.recursive(
    _JSON_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
_FIELDS = [
    "id",
    "action",
    "occurred_at",
    "actor",
    "target",
    "result",
    "tenant_id",
    "request",
    "metadata",
    "extra",
]


@st.composite
def _mutated_batches(draw: st.DrawFn) -> bytes:
    """A batch of almost-valid events, each with one field replaced by junk."""
    events: list[Any] = []
    for _ in range(draw(st.integers(0, 5))):
        wire = _valid_wire()
        if draw(st.booleans()):
            wire[draw(st.sampled_from(_FIELDS))] = draw(_JSON)
        events.append(wire)
    body: Any = {"events": events}
    if draw(st.integers(0, 9)) == 0:
        body = draw(st.sampled_from([events, {"events": events, "x": 1}, {}]))
    return json.dumps(body).encode()


def _deep(depth: int, opener: bytes, closer: bytes) -> bytes:
    return b'{"events": [' + opener * depth + closer * depth + b"]}"


_BODIES = st.one_of(
    st.binary(max_size=512),
    _JSON.map(lambda value: json.dumps(value).encode()),
    _mutated_batches(),
    st.integers(10, 100_000).map(lambda n: _deep(n, b"[", b"]")),
    st.integers(10, 50_000).map(lambda n: _deep(n, b'{"a":', b"}")),
    st.sampled_from(
        [
            b"",
            b"null",
            b'{"events": null}',
            b'{"events": ["\xff\xfe"]}',
            b'{"events": [{"id": "\\ud800"}]}',
            b'{"events": [1e999999]}',
            b'{"events": [NaN, Infinity]}',
            b'\xef\xbb\xbf{"events": []}',
            b'{"events": [], "events": [1]}',
            b"{" * 10,
        ]
    ),
)
_CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "APPLICATION/JSON",
        "application/json; charset=latin-1",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "",
        None,
    ]
)
_ENCODINGS = st.sampled_from(
    [None, "gzip", "identity", "br", "deflate", "gzip, gzip", "x-unknown", "GZIP"]
)


@st.composite
def _requests(draw: st.DrawFn) -> tuple[dict[str, str], bytes]:
    body = draw(_BODIES)
    headers = {
        "Authorization": draw(
            st.sampled_from(
                [f"Bearer {API_KEY}"] * 4
                + [
                    "",
                    "Bearer",
                    "Basic abc",
                    "bearer  x",
                    "Token k",
                ]
            )
        )
    }
    content_type = draw(_CONTENT_TYPES)
    if content_type is not None:
        headers["Content-Type"] = content_type
    encoding = draw(_ENCODINGS)
    if encoding is not None:
        headers["Content-Encoding"] = encoding
        body = _encode(draw, body, encoding)
    return headers, body


def _encode(draw: st.DrawFn, body: bytes, encoding: str) -> bytes:
    how = draw(st.sampled_from(["gzip", "truncated", "garbage", "as_is", "deflate"]))
    if how == "gzip":
        return gzip.compress(body)
    if how == "truncated":
        packed = gzip.compress(body)
        return packed[: draw(st.integers(0, max(len(packed) - 1, 0)))]
    if how == "garbage":
        return b"\x1f\x8b\x08\x00" + draw(st.binary(max_size=64))
    if how == "deflate":
        return zlib.compress(body)
    return body


def test_fuzzed_ingest_requests_never_get_a_500_nor_store_garbage(
    server: ServerProcess, long_run: bool
) -> None:
    client = httpx.Client(base_url=server.url, timeout=30.0)

    @settings(
        max_examples=400 if long_run else 50,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(request=_requests())
    def check(request: tuple[dict[str, str], bytes]) -> None:
        headers, body = request
        before = _stored_count(client)

        response = client.post("/v1/events", content=body, headers=headers)

        assert response.status_code < 500, (response.status_code, response.text)
        accepted = response.json()["accepted"] if response.status_code == 200 else 0
        assert _stored_count(client) - before == accepted

    with client:
        check()

    assert httpx.get(server.url + "/healthz", timeout=5.0).status_code == 200
    # What was stored is valid: every stored event passes the strict check.
    for wire in fetch_stored_events(server.url):
        auditkit.Event.from_wire(wire)


def _raw_exchange(port: int, request: bytes, *, read_timeout: float = 10.0) -> bytes:
    """Send raw bytes, half-close, and read whatever comes back until EOF."""
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as sock:
        try:
            sock.sendall(request)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except OSError:
            pass
        return answer


def _head(body: bytes, **headers: str) -> bytes:
    lines = ["POST /v1/events HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


_AUTH = {"Authorization": f"Bearer {API_KEY}", "Content_Type": "application/json"}


@pytest.mark.parametrize(
    ("name", "request_bytes"),
    [
        ("longer than sent", _head(b'{"events": []}', Content_Length="500", **_AUTH)),
        (
            "shorter than sent",
            _head(b'{"events": [1, 2, 3]}', Content_Length="5", **_AUTH),
        ),
        ("negative", _head(b"{}", Content_Length="-1", **_AUTH)),
        ("not a number", _head(b"{}", Content_Length="abc", **_AUTH)),
        ("huge", _head(b"{}", Content_Length=str(10**18), **_AUTH)),
        ("two values", _head(b"{}", Content_Length="2, 3", **_AUTH)),
        (
            "with chunked",
            _head(
                b"2\r\n{}\r\n0\r\n\r\n",
                Content_Length="2",
                Transfer_Encoding="chunked",
                **_AUTH,
            ),
        ),
        (
            "bad chunk size",
            _head(b"zz\r\n{}\r\n0\r\n\r\n", Transfer_Encoding="chunked", **_AUTH),
        ),
        (
            "header junk",
            b"POST /v1/events HTTP/1.1\r\nHost: x\r\n\x00\x01: \xff\r\n\r\n",
        ),
    ],
)
def test_lying_or_broken_framing_is_refused_without_a_500_or_a_crash(
    server: ServerProcess, name: str, request_bytes: bytes
) -> None:
    before = _stored_count(server.url)

    answer = _raw_exchange(server.port, request_bytes)

    status_line = answer.split(b"\r\n", 1)[0]
    # No answer at all is fine (the server waited for a body that never came);
    # a 5xx is not.
    if status_line:
        status = int(status_line.split()[1])
        assert 400 <= status < 500, answer[:300]
    assert _stored_count(server.url) == before
    assert httpx.get(server.url + "/healthz", timeout=5.0).status_code == 200


def _stream_huge_body(port: int, total: int, result: dict[str, Any]) -> None:
    head = _head(b"", Transfer_Encoding="chunked", **_AUTH)
    chunk = b"[" * 65536
    frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=30.0) as sock:
        try:
            sock.sendall(head)
            for _ in range(total // len(chunk)):
                sock.sendall(frame)
            sock.sendall(b"0\r\n\r\n")
        except OSError as exc:
            result["send_error"] = exc
        try:
            result["answer"] = sock.recv(4096)
        except OSError as exc:
            result["recv_error"] = exc


def _peak_rss_while(server: ServerProcess, worker: threading.Thread) -> int:
    peak = server.rss_bytes()
    pause = threading.Event()
    while worker.is_alive():
        peak = max(peak, server.rss_bytes())
        pause.wait(0.01)
    return max(peak, server.rss_bytes())


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc")
def test_a_50_mib_streamed_body_is_refused_with_413_in_bounded_memory(
    server: ServerProcess,
) -> None:
    before_rss = server.rss_bytes()
    before = _stored_count(server.url)
    result: dict[str, Any] = {}
    sender = threading.Thread(
        target=_stream_huge_body, args=(server.port, 50 * _MiB, result), daemon=True
    )

    sender.start()
    peak = _peak_rss_while(server, sender)
    sender.join(timeout=60.0)

    answer = result.get("answer", b"")
    assert answer.startswith(b"HTTP/1.1 413"), result
    assert peak - before_rss < _RSS_BOUND, (
        f"RSS grew by {(peak - before_rss) / _MiB:.1f} MiB"
    )
    assert _stored_count(server.url) == before
    assert httpx.get(server.url + "/healthz", timeout=5.0).status_code == 200


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc")
def test_a_gzip_bomb_is_refused_with_413_in_bounded_memory(
    server: ServerProcess,
) -> None:
    """64 MiB of zeros compress to about 64 KiB: the limit must apply while
    decompressing, not after."""
    bomb = gzip.compress(b'{"events": [' + b" " * (64 * _MiB) + b"]}", compresslevel=9)
    before_rss = server.rss_bytes()
    headers = {
        "Authorization": f"Bearer {API_KEY}",
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
    }
    answer: dict[str, Any] = {}

    def send() -> None:
        answer["response"] = httpx.post(
            server.url + "/v1/events", content=bomb, headers=headers, timeout=30.0
        )

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    peak = _peak_rss_while(server, sender)
    sender.join(timeout=60.0)

    assert answer["response"].status_code == 413
    assert peak - before_rss < _RSS_BOUND, (
        f"RSS grew by {(peak - before_rss) / _MiB:.1f} MiB"
    )
