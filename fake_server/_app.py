"""The fake audit service as an ASGI application: the v1 protocol and ``/_fake/``.

Handlers run on the server's event loop and call the store directly: each store call
is a short SQLite operation under a lock, and doing it inline keeps every ingest
request atomic with respect to the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any, Final, final

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from auditkit import Limits
from auditkit._ids import format_timestamp

from ._ingest import (
    RequestError,
    check_content_headers,
    check_events,
    parse_batch,
    read_body,
    rejection,
)
from ._openapi import openapi_document
from ._state import NAMESPACE_HEADER, Fault, Registry, parse_namespace
from ._store import BadRequestError, EventStore, Filters, decode_cursor, encode_cursor

__all__ = ["ServerConfig", "create_app"]

logger = logging.getLogger("fake_server")

_DEFAULT_PAGE = 100
_MAX_PAGE = 1000
_MAX_WAIT_SECONDS = 300.0
_MAX_WAIT_EVENTS = 1000
_MAX_CONTROL_BODY = 64 * 1024
# How long a dropped connection may take to be noticed by the server before the
# handler gives up waiting for it (the answer is suppressed either way).
_DROP_SETTLE_SECONDS = 2.0
_TRANSPORT_KEY: Final = "fake_server.transport"
_DROPPED_KEY: Final = "fake_server.dropped"
_QUERY_PARAMS = frozenset(("limit", "cursor", *Filters.__dataclass_fields__))


@final
@dataclasses.dataclass(frozen=True, slots=True)
class ServerConfig:
    """How a fake server behaves.

    Args:
        api_keys: The accepted keys, each mapped to the tenant it is bound to or to
            ``None``; ``None`` accepts any non-empty bearer key.
        db: A SQLite file that keeps events across restarts; ``None`` keeps them in
            memory.
        limits: The batch and event limits to enforce and to advertise.
        body_timeout: How long, in seconds, reading a request body may wait for
            more bytes; a body that stops arriving (a ``Content-Length`` larger
            than what is sent) is answered with 408 and the connection closed.
    """

    api_keys: Mapping[str, str | None] | None = None
    db: str | None = None
    limits: Limits = dataclasses.field(default_factory=Limits)
    body_timeout: float = 5.0

    def __post_init__(self) -> None:
        timeout = self.body_timeout
        if type(timeout) not in (int, float) or not 0 < timeout <= _MAX_WAIT_SECONDS:
            raise ValueError(
                f"body_timeout must be a number of seconds above 0 and at most "
                f"{_MAX_WAIT_SECONDS:g}, got {timeout!r}."
            )

    def __repr__(self) -> str:
        keys = "None" if self.api_keys is None else f"<{len(self.api_keys)} keys>"
        return (
            f"ServerConfig(api_keys={keys}, db={self.db!r}, limits={self.limits!r}, "
            f"body_timeout={self.body_timeout!r})"
        )


def create_app(config: ServerConfig | None = None) -> _FakeServerApp:
    """Return the fake server as an ASGI application.

    Serve it with uvicorn, or use :func:`fake_server.serve_in_thread`, which does.

    Note:
        Faults that drop the connection need uvicorn; under another server a dropped
        request ends in a started, unfinished response instead.

    Args:
        config: How the server behaves; the defaults accept any key and keep events
            in memory.
    """
    return _FakeServerApp(config or ServerConfig())


@final
class _FakeServerApp:
    """The Starlette routes, wrapped to log each request and to drop connections."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.store = EventStore(config.db)
        self.registry = Registry()
        # Created on first use, on the event loop that serves the app.
        self._stored: asyncio.Condition | None = None
        # Set once, on the event loop, when the server begins to stop: waits and
        # delays end early so that a graceful stop never has to cancel them.
        self._stopping: asyncio.Event | None = None
        # Requests inside /_fake/wait; changed on the event loop only.
        self._waiting = 0
        routes = [
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/openapi.json", self.openapi, methods=["GET"]),
            Route("/v1/limits", self.limits, methods=["GET"]),
            Route("/v1/events", self.ingest, methods=["POST"]),
            Route("/v1/events", self.query, methods=["GET"]),
            Route("/_fake/reset", self.reset, methods=["POST"]),
            Route("/_fake/faults", self.add_fault, methods=["POST"]),
            Route("/_fake/faults", self.list_faults, methods=["GET"]),
            Route("/_fake/faults", self.clear_faults, methods=["DELETE"]),
            Route("/_fake/requests", self.journal, methods=["GET"]),
            Route("/_fake/stats", self.stats, methods=["GET"]),
            Route("/_fake/wait", self.wait, methods=["POST"]),
        ]
        self._app = Starlette(
            routes=routes,
            exception_handlers={HTTPException: _http_error},  # type: ignore[dict-item]
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        # uvicorn's receive is a method of the request cycle, which holds the
        # connection's transport: closing it is how a fault drops the connection.
        cycle = getattr(receive, "__self__", None)
        scope[_TRANSPORT_KEY] = getattr(cycle, "transport", None)
        started = time.perf_counter()
        status: list[int] = []

        async def send_unless_dropped(message: Message) -> None:
            if scope.get(_DROPPED_KEY):
                return
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        try:
            await self._app(scope, receive, send_unless_dropped)
        finally:
            logger.info(
                "%s %r %s %.1f ms",
                scope["method"],
                scope["path"][:200],
                status[0] if status else "dropped",
                (time.perf_counter() - started) * 1000,
            )
        if scope.get(_DROPPED_KEY) and scope[_TRANSPORT_KEY] is None:
            # Limitation: without uvicorn's transport the connection can't be closed
            # from here; a started, unfinished response is the nearest thing, and
            # the server logs it as an error.
            await send({"type": "http.response.start", "status": 200, "headers": []})
            raise ConnectionAbortedError("The fault dropped the connection.")

    # Protocol endpoints.

    async def healthz(self, request: Request) -> Response:
        """``GET /healthz``."""
        return _json({"status": "ok"})

    async def openapi(self, request: Request) -> Response:
        """``GET /openapi.json``: the protocol as an OpenAPI 3.0 document."""
        return _json(openapi_document())

    async def limits(self, request: Request) -> Response:
        """``GET /v1/limits``."""
        limits = self.config.limits
        return _json(
            {
                "max_batch_events": limits.max_batch_events,
                "max_batch_bytes": limits.max_batch_bytes,
                "max_event_bytes": limits.max_event_bytes,
            }
        )

    async def ingest(self, request: Request) -> Response:
        """``POST /v1/events``: faults first, then auth, body, validation, storage."""
        try:
            namespace = parse_namespace(request.headers.get(NAMESPACE_HEADER))
        except BadRequestError as exc:
            return _error(400, "bad_namespace", exc.message, exc.field)

        entry = _journal_entry(request)
        fault = self.registry.take_fault(namespace)
        if fault is not None:
            entry["fault"] = fault.to_json()
            if fault.delay:
                await self._sleep_unless_stopping(fault.delay)
            if fault.drop == "before_body":
                return await self._drop(request, namespace, entry)
            if fault.status is not None:
                return await self._answer_fault(request, namespace, entry, fault)

        response, counts = await self._ingest_batch(request, namespace, entry)
        if fault is not None and fault.drop == "after_body":
            return await self._drop(request, namespace, entry, counts)
        entry["status"] = response.status_code
        self.registry.record(namespace, entry, **counts)
        return response

    async def query(self, request: Request) -> Response:
        """``GET /v1/events``: filtered, oldest first, one page per call."""
        try:
            namespace = parse_namespace(request.headers.get(NAMESPACE_HEADER))
            tenant = self._authenticate(request)
            filters, after, limit = _parse_query(request)
        except RequestError as exc:
            return _error(exc.status, exc.code, exc.message, auth=exc.status == 401)
        except BadRequestError as exc:
            return _error(400, "bad_request", exc.message, exc.field)
        if tenant is not None:
            if filters.tenant_id not in (None, tenant):
                return _error(
                    403,
                    "tenant_forbidden",
                    "The API key is bound to another tenant.",
                    "tenant_id",
                )
            filters = filters.with_tenant(tenant)

        page, more = self.store.query(namespace, filters, after=after, limit=limit)
        next_cursor = encode_cursor(page[-1][0]) if more else None
        return _json({"events": [wire for _, wire in page], "next_cursor": next_cursor})

    # Control endpoints.

    async def reset(self, request: Request) -> Response:
        """``POST /_fake/reset``: forget the namespace's events, faults and journal."""
        namespace, _ = await self._control_request(request, body=False)
        self.store.clear(namespace)
        self.registry.reset(namespace)
        return _json({"reset": True, "namespace": namespace})

    async def add_fault(self, request: Request) -> Response:
        """``POST /_fake/faults``: queue a fault for the next ingest requests."""
        namespace, data = await self._control_request(request)
        try:
            fault, times = Fault.parse(data)
        except BadRequestError as exc:
            return _error(400, "bad_fault", exc.message, exc.field)
        return _json({"faults": self.registry.add_fault(namespace, fault, times)})

    async def list_faults(self, request: Request) -> Response:
        """``GET /_fake/faults``: the faults still queued."""
        namespace, _ = await self._control_request(request, body=False)
        return _json({"faults": self.registry.faults(namespace)})

    async def clear_faults(self, request: Request) -> Response:
        """``DELETE /_fake/faults``."""
        namespace, _ = await self._control_request(request, body=False)
        self.registry.clear_faults(namespace)
        return _json({"faults": []})

    async def journal(self, request: Request) -> Response:
        """``GET /_fake/requests``: the ingest requests, oldest first."""
        namespace, _ = await self._control_request(request, body=False)
        return _json({"requests": self.registry.journal(namespace)})

    async def stats(self, request: Request) -> Response:
        """``GET /_fake/stats``."""
        namespace, _ = await self._control_request(request, body=False)
        counters = self.registry.counters(namespace)
        return _json({"events": self.store.count(namespace), **counters})

    async def wait(self, request: Request) -> Response:
        """``POST /_fake/wait``: answer once ``count`` matching events are stored.

        Answers 408 at the timeout, and 503 if the server stops first.
        """
        namespace, data = await self._control_request(request)
        try:
            count, timeout, filters = _parse_wait(data)
        except BadRequestError as exc:
            return _error(400, "bad_request", exc.message, exc.field)

        matched = await self._wait_for(namespace, filters, count, timeout)
        if matched < count and self._stopping_event().is_set():
            message = f"The server is stopping; {matched} of {count} events stored."
            return _json(
                {"error": message, "code": "stopping", "matched": matched}, 503
            )
        if matched < count:
            message = f"{matched} of {count} events after {timeout:g} s."
            return _json({"error": message, "code": "timeout", "matched": matched}, 408)

        page, _ = self.store.query(
            namespace, filters, limit=min(max(count, 1), _MAX_WAIT_EVENTS)
        )
        return _json({"matched": matched, "events": [wire for _, wire in page]})

    @property
    def waiting(self) -> int:
        """How many ``/_fake/wait`` requests are waiting for events right now."""
        return self._waiting

    async def stop_waiting(self) -> None:
        """End pending waits and fault delays at once, because the server stops.

        Waits still short of their count answer 503 and delays are cut short;
        waits and delays that start afterwards end at once too. Call it on the
        event loop that serves the app; the server does before a graceful stop.
        """
        self._stopping_event().set()
        await self._notify_stored()

    # Helpers.

    async def _ingest_batch(
        self, request: Request, namespace: str, entry: dict[str, Any]
    ) -> tuple[Response, dict[str, int]]:
        limits = self.config.limits
        try:
            tenant = self._authenticate(request)
            is_gzip = check_content_headers(
                request.headers.get("content-type"),
                request.headers.get("content-encoding"),
            )
            body = await read_body(
                _body_chunks(request, self.config.body_timeout),
                content_length=request.headers.get("content-length"),
                is_gzip=is_gzip,
                limit=limits.max_batch_bytes,
            )
            events = parse_batch(body, limits)
        except RequestError as exc:
            entry["events"] = exc.events
            headers = {"connection": "close"} if exc.close else None
            response = _error(
                exc.status,
                exc.code,
                exc.message,
                auth=exc.status == 401,
                headers=headers,
            )
            return response, {}

        entry["events"] = len(events)
        valid, rejected = check_events(
            events, tenant_id=tenant, max_event_bytes=limits.max_event_bytes
        )
        outcomes = self.store.insert(namespace, [wire for _, wire in valid])
        for (index, wire), outcome in zip(valid, outcomes, strict=True):
            if outcome == "conflict":
                rejected.append(
                    rejection(
                        index,
                        wire,
                        "id_conflict",
                        "id",
                        "An event with this id was already stored with other content.",
                    )
                )
        rejected.sort(key=lambda item: item["index"])
        counts = {
            "accepted": outcomes.count("accepted"),
            "duplicates": outcomes.count("duplicate"),
            "rejected": len(rejected),
        }
        if counts["accepted"]:
            await self._notify_stored()
        status = 422 if events and len(rejected) == len(events) else 200
        return _json({**counts, "rejected": rejected}, status), counts

    def _authenticate(self, request: Request) -> str | None:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise RequestError(
                401, "unauthorized", "Send the API key as Authorization: Bearer <key>."
            )
        keys = self.config.api_keys
        if keys is None:
            return None
        for known, tenant in keys.items():
            if hmac.compare_digest(known.encode(), key.encode("utf-8", "replace")):
                return tenant
        raise RequestError(
            401, "unauthorized", "The API key is not one of this server's."
        )

    async def _answer_fault(
        self, request: Request, namespace: str, entry: dict[str, Any], fault: Fault
    ) -> Response:
        # Read the body so that the connection stays usable for the next request,
        # and count its events for the journal, as a client's retry is checked
        # against it.
        entry["events"] = await self._count_events(request)
        headers = {}
        if fault.retry_after is not None:
            headers["retry-after"] = f"{fault.retry_after:g}"
        status = fault.status if fault.status is not None else 503
        entry["status"] = status
        self.registry.record(namespace, entry)
        return _error(
            status,
            "injected_fault",
            "A fault injected through /_fake/faults.",
            headers=headers,
        )

    async def _count_events(self, request: Request) -> int:
        limits = self.config.limits
        chunks = _body_chunks(request, self.config.body_timeout)
        try:
            is_gzip = check_content_headers(
                request.headers.get("content-type"),
                request.headers.get("content-encoding"),
            )
            body = await read_body(
                chunks,
                content_length=None,
                is_gzip=is_gzip,
                limit=limits.max_batch_bytes,
            )
            return len(parse_batch(body, limits))
        except RequestError as exc:
            # Read what is left, if anything; how that ends doesn't change the answer.
            with contextlib.suppress(RequestError):
                async for _ in chunks:
                    pass
            return exc.events

    async def _drop(
        self,
        request: Request,
        namespace: str,
        entry: dict[str, Any],
        counts: dict[str, int] | None = None,
    ) -> Response:
        entry["status"] = "dropped"
        self.registry.record(namespace, entry, dropped=1, **(counts or {}))
        request.scope[_DROPPED_KEY] = True
        transport = request.scope.get(_TRANSPORT_KEY)
        if transport is not None:
            transport.close()
            # Wait until uvicorn has seen the connection go, so that it neither
            # answers with a 500 nor logs the unanswered request as an error.
            try:
                async with asyncio.timeout(_DROP_SETTLE_SECONDS):
                    while (await request.receive())["type"] != "http.disconnect":
                        pass
            except TimeoutError:  # pragma: no cover - the close is seen at once
                pass
        return Response(status_code=204)

    async def _control_request(
        self, request: Request, *, body: bool = True
    ) -> tuple[str, Any]:
        try:
            namespace = parse_namespace(request.headers.get(NAMESPACE_HEADER))
        except BadRequestError as exc:
            raise HTTPException(400, exc.message) from None
        if not body:
            return namespace, None

        raw = bytearray()
        try:
            async for chunk in _body_chunks(request, self.config.body_timeout):
                raw += chunk
                if len(raw) > _MAX_CONTROL_BODY:
                    raise HTTPException(
                        413, "The body is too large.", {"connection": "close"}
                    )
        except RequestError as exc:
            headers = {"connection": "close"} if exc.close else None
            raise HTTPException(exc.status, exc.message, headers) from None
        try:
            data = json.loads(raw.decode("utf-8") or "null", parse_constant=_no_nan)
        except (ValueError, RecursionError):
            raise HTTPException(400, "The body is not valid UTF-8 JSON.") from None
        return namespace, data

    async def _wait_for(
        self, namespace: str, filters: Filters, count: int, timeout: float
    ) -> int:
        """Return the number of matching events once it reaches ``count``, or at
        the timeout; each ingest that stores something wakes the waiters."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        stored = self._condition()
        stopping = self._stopping_event()
        self._waiting += 1
        try:
            async with stored:
                while (matched := self.store.count(namespace, filters)) < count:
                    remaining = deadline - loop.time()
                    if remaining <= 0 or stopping.is_set():
                        break
                    try:
                        await asyncio.wait_for(stored.wait(), remaining)
                    except TimeoutError:
                        pass
        finally:
            self._waiting -= 1
        return matched

    async def _sleep_unless_stopping(self, seconds: float) -> None:
        try:
            async with asyncio.timeout(seconds):
                await self._stopping_event().wait()
        except TimeoutError:
            pass

    def _stopping_event(self) -> asyncio.Event:
        if self._stopping is None:
            self._stopping = asyncio.Event()
        return self._stopping

    def _condition(self) -> asyncio.Condition:
        if self._stored is None:
            self._stored = asyncio.Condition()
        return self._stored

    async def _notify_stored(self) -> None:
        stored = self._condition()
        async with stored:
            stored.notify_all()


def _parse_query(request: Request) -> tuple[Filters, int, int]:
    params = request.query_params
    for name in params:
        if name not in _QUERY_PARAMS:
            raise BadRequestError(
                f"Unknown query parameter {name[:100]!r}.", name[:100]
            )
        if len(params.getlist(name)) > 1:
            raise BadRequestError(f"{name} is given more than once.", name)
    filters = Filters.parse(params)
    limit_text = params.get("limit", str(_DEFAULT_PAGE))
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= _MAX_PAGE:
        raise BadRequestError(
            f"limit must be an integer from 1 to {_MAX_PAGE}.", "limit"
        )
    cursor = params.get("cursor")
    after = decode_cursor(cursor) if cursor is not None else 0
    return filters, after, int(limit_text)


def _parse_wait(data: Any) -> tuple[int, float, Filters]:
    if not isinstance(data, dict):
        raise BadRequestError('The body must be a JSON object like {"count": 1}.')
    for key in data:
        if key not in ("count", "timeout", *Filters.__dataclass_fields__):
            raise BadRequestError(f"Unknown field {key[:100]!r}.", key[:100])
    count = data.get("count")
    if type(count) is not int or not 0 <= count <= 1_000_000:
        raise BadRequestError("count is required: an integer from 0.", "count")
    timeout = data.get("timeout", 10.0)
    if type(timeout) not in (int, float) or not 0 <= timeout <= _MAX_WAIT_SECONDS:
        raise BadRequestError(
            f"timeout must be a number of seconds from 0 to {_MAX_WAIT_SECONDS:g}.",
            "timeout",
        )
    return count, float(timeout), Filters.parse(data)


def _journal_entry(request: Request) -> dict[str, Any]:
    headers: dict[str, str] = {}
    for raw_name, raw_value in request.headers.raw:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        if name == "authorization":
            scheme = value.split(" ", 1)[0]
            value = f"{scheme} ***" if scheme.lower() == "bearer" else "***"
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return {
        "method": request.method,
        "path": request.url.path,
        "headers": headers,
        "events": 0,
        "status": None,
        "fault": None,
        "at": format_timestamp(datetime.now(UTC)),
    }


async def _body_chunks(request: Request, timeout: float) -> AsyncIterator[bytes]:
    """Yield the body's chunks; raise a 408 if none arrives within ``timeout``."""
    stream = request.stream()
    while True:
        try:
            async with asyncio.timeout(timeout):
                chunk = await anext(stream)
        except StopAsyncIteration:
            return
        except ClientDisconnect:
            raise RequestError(
                400, "disconnected", "The client disconnected."
            ) from None
        except TimeoutError:
            raise RequestError(
                408,
                "body_timeout",
                f"The body stopped arriving for {timeout:g} s; send as many bytes "
                "as Content-Length says.",
                close=True,
            ) from None
        if chunk:
            yield chunk


def _json(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    # ASCII escapes keep any text a client sent (a lone surrogate included)
    # encodable in the answer.
    body = json.dumps(data, ensure_ascii=True, separators=(",", ":"))
    return Response(body, status, headers, media_type="application/json")


def _error(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    *,
    auth: bool = False,
    headers: Mapping[str, str] | None = None,
) -> Response:
    all_headers = dict(headers or {})
    if auth:
        all_headers["www-authenticate"] = "Bearer"
    return _json({"error": message, "code": code, "field": field}, status, all_headers)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    return _error(exc.status_code, "http_error", exc.detail, headers=exc.headers)


def _no_nan(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")
