"""Reading, decoding and checking an ingest request, with bounded memory.

Every failure here is a :class:`RequestError` carrying the status the wire protocol
gives it (400, 413, 415), so that no input, however broken, reaches a 500.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import AsyncIterator, Iterable
from typing import Any, final

from auditkit import InvalidEventError, Limits
from auditkit._wire import parse_wire_event

__all__ = [
    "RequestError",
    "check_content_headers",
    "check_events",
    "parse_batch",
    "read_body",
]

# How much of an oversized body is read and thrown away so that the client, which
# sends the whole body before reading the answer, gets the 413 instead of a reset.
_MAX_DRAIN_BYTES = 64 * 1024 * 1024
# Gzip adds at most a few bytes per 16 KiB block of incompressible input: a
# compressed body longer than this bound can only decompress to more than the limit.
_GZIP_SLACK_DIVISOR = 64
_GZIP_SLACK_BYTES = 1024
_GZIP_WBITS = 16 + zlib.MAX_WBITS


@final
class RequestError(Exception):
    """A request the fake server refuses as a whole.

    Args:
        status: The HTTP status to answer with.
        code: A short machine-readable reason.
        message: The reason as a sentence.
        close: Close the connection after answering (the body was not all read).
        events: How many events the body held, when that is known.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        close: bool = False,
        events: int = 0,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.close = close
        self.events = events
        super().__init__(message)


def check_content_headers(content_type: str | None, encoding: str | None) -> bool:
    """Check the body's type and encoding; return whether it is gzip-encoded.

    Raises:
        RequestError: 415 for anything but JSON, identity or gzip.
    """
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise RequestError(
            415,
            "unsupported_media_type",
            "The body must be sent with Content-Type: application/json.",
        )
    coding = (encoding or "identity").strip().lower()
    if coding not in ("identity", "gzip"):
        raise RequestError(
            415,
            "unsupported_encoding",
            "Content-Encoding must be gzip or absent.",
        )
    return coding == "gzip"


async def read_body(
    chunks: AsyncIterator[bytes],
    *,
    content_length: str | None,
    is_gzip: bool,
    limit: int,
) -> bytes:
    """Read a request body, decompressing gzip on the fly, up to ``limit`` bytes.

    The limit applies to the decompressed body and is checked while decompressing,
    so a small gzip bomb is refused after at most ``limit`` bytes of output.

    Raises:
        RequestError: 413 over the limit, 400 for a broken gzip stream.
    """
    raw_limit = limit
    if is_gzip:
        raw_limit += limit // _GZIP_SLACK_DIVISOR + _GZIP_SLACK_BYTES
    if _declared_length(content_length) > raw_limit:
        await _drain(chunks)
        raise _too_large(limit)

    received = 0
    body = bytearray()
    inflater = _Inflater(limit) if is_gzip else None
    async for chunk in chunks:
        received += len(chunk)
        if received > raw_limit:
            await _drain(chunks)
            raise _too_large(limit)
        if inflater is None:
            body += chunk
            continue
        try:
            inflater.feed(chunk, body)
        except RequestError:
            await _drain(chunks)
            raise
    if len(body) > limit:
        raise _too_large(limit)
    if inflater is not None:
        inflater.finish()
    return bytes(body)


def parse_batch(body: bytes, limits: Limits) -> list[Any]:
    """Decode ``{"events": [...]}`` and return the list of events, unchecked.

    Raises:
        RequestError: 400 for anything but a JSON object with an ``events`` list,
            413 for more events than a batch may hold.
    """
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise RequestError(
            400, "malformed_json", f"The body is not valid UTF-8 JSON: {_brief(exc)}"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("events"), list):
        raise RequestError(
            400, "malformed_body", 'The body must be a JSON object {"events": [...]}.'
        )
    if len(data) != 1:
        raise RequestError(
            400, "unknown_field", 'The body may hold only the field "events".'
        )
    events: list[Any] = data["events"]
    if len(events) > limits.max_batch_events:
        raise RequestError(
            413,
            "too_many_events",
            f"{len(events)} events, over the limit of {limits.max_batch_events} "
            "per request; split the batch.",
            events=len(events),
        )
    return events


def check_events(
    events: Iterable[Any], *, tenant_id: str | None, max_event_bytes: int
) -> tuple[list[tuple[int, dict[str, Any]]], list[dict[str, Any]]]:
    """Validate each event the way the SDK does, and bind it to ``tenant_id``.

    Args:
        events: The decoded events of one request.
        tenant_id: The tenant of the request's key, if it is bound to one: events
            without a tenant get it, events naming another are rejected.
        max_event_bytes: The largest an encoded event may be.

    Returns:
        The valid events as (index, normalised wire dict), and a rejection entry
        for each of the others.
    """
    valid: list[tuple[int, dict[str, Any]]] = []
    rejected: list[dict[str, Any]] = []
    for index, raw in enumerate(events):
        try:
            wire = parse_wire_event(raw, max_event_bytes=max_event_bytes)
        except InvalidEventError as exc:
            rejected.append(rejection(index, raw, exc.code, exc.field, exc.message))
            continue
        except RecursionError:  # pragma: no cover - the JSON decoder nests less deep
            rejected.append(rejection(index, raw, "too_deep", "", "Nested too deep."))
            continue

        if tenant_id is not None:
            if wire["tenant_id"] is None:
                wire["tenant_id"] = tenant_id
            elif wire["tenant_id"] != tenant_id:
                rejected.append(
                    rejection(
                        index,
                        raw,
                        "tenant_mismatch",
                        "tenant_id",
                        "The API key is bound to another tenant.",
                    )
                )
                continue
        valid.append((index, wire))
    return valid, rejected


def rejection(
    index: int, raw: Any, code: str, field: str, error: str
) -> dict[str, Any]:
    """Return the entry of ``rejected`` for the event at ``index``."""
    event_id = raw.get("id") if isinstance(raw, dict) else None
    if not isinstance(event_id, str) or len(event_id) > 64:
        event_id = None
    return {
        "index": index,
        "id": event_id,
        "code": code,
        "field": field,
        "error": error,
    }


@final
class _Inflater:
    """Decompresses gzip members one after another, never beyond ``limit + 1``."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._inflater = zlib.decompressobj(_GZIP_WBITS)

    def feed(self, data: bytes, out: bytearray) -> None:
        try:
            while data:
                room = self._limit + 1 - len(out)
                out += self._inflater.decompress(data, room)
                if len(out) > self._limit:
                    raise _too_large(self._limit)
                if self._inflater.eof:
                    # The rest belongs to a further gzip member, as in `cat a.gz b.gz`.
                    data = self._inflater.unused_data
                    if data:
                        self._inflater = zlib.decompressobj(_GZIP_WBITS)
                else:
                    data = self._inflater.unconsumed_tail
        except zlib.error as exc:
            raise RequestError(
                400, "malformed_gzip", f"The gzip stream is broken: {_brief(exc)}"
            ) from None

    def finish(self) -> None:
        if not self._inflater.eof:
            raise RequestError(
                400, "malformed_gzip", "The gzip stream ends before its end marker."
            )


def _declared_length(value: str | None) -> int:
    # The HTTP parser has already refused a malformed Content-Length.
    return int(value) if value is not None and value.isdigit() else 0


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    # A body that stops arriving (a Content-Length larger than what is sent) or a
    # client that hangs up ends the drain: the answer is the reason for draining.
    drained = 0
    try:
        async for chunk in chunks:
            drained += len(chunk)
            if drained > _MAX_DRAIN_BYTES:
                return
    except RequestError:
        return


def _too_large(limit: int) -> RequestError:
    return RequestError(
        413,
        "body_too_large",
        f"The body is over the limit of {limit} bytes once decompressed; "
        "split the batch.",
        close=True,
    )


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _brief(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deep."
    text = str(exc) or type(exc).__name__
    return text[:200].rstrip(".") + "."
