"""A local HTTP sink that counts the events each SDK delivers to it.

It speaks just enough HTTP/1.1 (keep-alive, ``Content-Length`` or chunked bodies,
gzip) to stand in for every service the benchmark talks to, and counts the events
in each decoded batch:

- auditkit: ``POST /v1/events``, ``{"events": [...]}``
- Segment: ``POST /v1/batch``, ``{"batch": [...]}``
- PostHog: ``POST /batch/``, ``{"batch": [...]}``
- OpenTelemetry: ``POST /v1/logs``, an OTLP protobuf ``ExportLogsServiceRequest``
- Sentry: ``POST /api/<project>/envelope/``, an envelope; its ``event`` items count

``GET /_count`` answers ``{"events": n, "requests": n, "bytes": n}``, and
``POST /_reset`` sets them back to zero. With ``--delay`` every ingest answer waits
that many seconds first (requests are served concurrently, as a real slow service
would). It listens on 127.0.0.1 only.

Run it as ``python -m bench._sink [--port P] [--delay SECONDS]``; it prints the port
it listens on as its first line of output.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import importlib
import json
import zlib
from collections.abc import Callable
from typing import Any

__all__ = ["count_events", "main", "serve"]

_MAX_BODY = 64 * 1024 * 1024


def _logs_request_type() -> Any:
    # Imported by name: it is optional, and type checking must not need it.
    try:
        module = importlib.import_module(
            "opentelemetry.proto.collector.logs.v1.logs_service_pb2"
        )
    except ImportError:  # the OpenTelemetry rows are skipped without it
        return None
    return module.ExportLogsServiceRequest


def _json_loads() -> Callable[[bytes], Any]:
    try:
        import orjson
    except ImportError:
        return json.loads
    return orjson.loads


_LOGS_REQUEST = _logs_request_type()
_loads = _json_loads()


class _Counts:
    def __init__(self) -> None:
        self.events = 0
        self.requests = 0
        self.bytes = 0


def count_events(path: str, body: bytes) -> int:
    """Return how many events the decoded request body for ``path`` carries."""
    if path.startswith("/v1/logs"):
        if _LOGS_REQUEST is None:
            return 0
        request = _LOGS_REQUEST()
        request.ParseFromString(body)
        return sum(
            len(scope.log_records)
            for resource in request.resource_logs
            for scope in resource.scope_logs
        )
    if path.startswith("/api/") and "envelope" in path:
        return _count_envelope_events(body)
    data = _loads(body)
    if isinstance(data, dict):
        for key in ("events", "batch"):
            items = data.get(key)
            if isinstance(items, list):
                return len(items)
    return 0


def _count_envelope_events(body: bytes) -> int:
    # An envelope: a header line, then items, each a header line and a payload whose
    # length the header may give (otherwise the payload runs to the next newline).
    _, _, rest = body.partition(b"\n")
    count = 0
    while rest:
        header_line, _, rest = rest.partition(b"\n")
        if not header_line.strip():
            continue
        header = json.loads(header_line)
        length = header.get("length")
        if length is None:
            _, _, rest = rest.partition(b"\n")
        else:
            rest = rest[length + 1 :]
        if header.get("type") == "event":
            count += 1
    return count


def _answer_for(path: str, count: int) -> tuple[bytes, bytes]:
    if path.startswith("/v1/logs"):
        return b"application/x-protobuf", b""
    if path.startswith("/v1/events"):
        body = {"accepted": count, "duplicates": 0, "rejected": []}
        return b"application/json", json.dumps(body).encode()
    return b"application/json", b"{}"


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if headers.get("transfer-encoding", "").lower() == "chunked":
        parts: list[bytes] = []
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            if size == 0:
                await reader.readline()
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readline()
    length = int(headers.get("content-length", "0"))
    if length > _MAX_BODY:
        raise ValueError("body too large")
    return await reader.readexactly(length) if length else b""


def _decode(body: bytes, encoding: str) -> bytes:
    encoding = encoding.lower()
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    return body


async def _handle(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    counts: _Counts,
    delay: float,
) -> None:
    try:
        while True:
            request_line = await reader.readline()
            if not request_line:
                return
            method, path, _ = request_line.decode("latin-1").split(" ", 2)
            headers: dict[str, str] = {}
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            raw = await _read_body(reader, headers)
            status, content_type, answer = await _serve_one(
                method, path, raw, headers, counts, delay
            )
            writer.write(
                b"HTTP/1.1 %d OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s"
                % (status, content_type, len(answer), answer)
            )
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, ValueError):
        return
    finally:
        writer.close()


async def _serve_one(
    method: str,
    path: str,
    raw: bytes,
    headers: dict[str, str],
    counts: _Counts,
    delay: float,
) -> tuple[int, bytes, bytes]:
    if path == "/_count":
        body = {
            "events": counts.events,
            "requests": counts.requests,
            "bytes": counts.bytes,
        }
        return 200, b"application/json", json.dumps(body).encode()
    if path == "/_reset":
        counts.events = counts.requests = counts.bytes = 0
        return 200, b"application/json", b"{}"
    if method != "POST":
        return 200, b"application/json", b"{}"
    if delay:
        await asyncio.sleep(delay)
    count = count_events(path, _decode(raw, headers.get("content-encoding", "")))
    counts.events += count
    counts.requests += 1
    counts.bytes += len(raw)
    content_type, answer = _answer_for(path, count)
    return 200, content_type, answer


async def serve(port: int, delay: float, ready: Any = None) -> None:
    """Serve until cancelled; print the port (or call ``ready(port)``) once bound."""
    counts = _Counts()
    server = await asyncio.start_server(
        lambda r, w: _handle(r, w, counts, delay), "127.0.0.1", port, backlog=512
    )
    bound = server.sockets[0].getsockname()[1]
    if ready is not None:
        ready(bound)
    else:
        print(bound, flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    """Run the sink from the command line until it is killed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(args.port, args.delay))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
