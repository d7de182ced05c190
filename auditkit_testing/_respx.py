"""A respx router that stands in for the audit service's ingest endpoint."""

from __future__ import annotations

import dataclasses
import gzip
import json
import threading
from collections import deque
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Self, final

import httpx

from auditkit import Event, InvalidEventError

from ._extras import import_extra

__all__ = ["AuditRespx", "CapturedRequest"]

respx: Any = import_extra("respx", extra="testing", feature="The audit_respx fixture")

_INGEST_PATH = "/v1/events"
_NAMESPACE_HEADER = "x-fake-namespace"


@final
@dataclasses.dataclass(frozen=True, slots=True)
class CapturedRequest:
    """One ingest request the mock received.

    Attributes:
        request: The request as httpx sent it.
        events: The events the body carried, decoded; empty if it could not be read.
        status: The status the mock answered with.
        error: The exception raised instead of answering, for an injected error.
    """

    request: httpx.Request
    events: tuple[Event, ...]
    status: int | None
    error: str | None = None


@dataclasses.dataclass(slots=True)
class _Fault:
    times: int
    status: int | None
    retry_after: float | None
    error: BaseException | type[BaseException] | None


@final
class AuditRespx:
    """Mocks ``POST {base_url}/v1/events`` with respx and keeps what was posted.

    Each posted batch is decoded (gzip too) and checked like the real service does:
    valid events are stored once per id (resending a batch makes duplicates, not
    copies), invalid ones are reported as rejected. Queued faults answer the next
    requests instead. Every other request is left alone: another respx router
    active in the test gets it, and without one it goes to the network.

    Use it as the ``audit_respx`` fixture, or as a context manager::

        with AuditRespx("https://audit.example.com") as audit:
            ...
            assert_recorded(audit, "user.login")

    Args:
        base_url: The service's base URL, as given to the recorder; ``None``
            catches ``/v1/events`` on any host.

    Note:
        A respx router or pytest-httpx mock that answers every request itself (for
        example respx with ``assert_all_mocked=False``, started before this one)
        takes the ingest requests too; give it a route for other hosts only.
    """

    def __init__(self, base_url: str | None = None) -> None:
        self._base_url = base_url.rstrip("/") if base_url is not None else None
        self._router = respx.mock(assert_all_called=False, assert_all_mocked=True)
        if self._base_url is None:
            pattern = {"path__regex": r"/v1/events\Z"}
        else:
            pattern = {"url": self._base_url + _INGEST_PATH}
        self.route = self._router.route(method="POST", **pattern)
        self.route.side_effect = self._answer
        self._router.route(name="auditkit-pass").side_effect = self._pass_on
        # Guarded by _lock: what was stored and received, and the queued faults.
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._events: list[Event] = []
        self._ids: set[str] = set()
        self._requests: list[CapturedRequest] = []
        self._faults: deque[_Fault] = deque()

    def __repr__(self) -> str:
        return f"<AuditRespx {self._base_url or '*'}{_INGEST_PATH}>"

    @property
    def base_url(self) -> str | None:
        """The base URL it mocks, or ``None`` for any host."""
        return self._base_url

    @property
    def router(self) -> Any:
        """The underlying ``respx.MockRouter``, for extra routes of your own."""
        return self._router

    @property
    def events(self) -> list[Event]:
        """The events stored so far, oldest first, each id once: a new list."""
        with self._lock:
            return list(self._events)

    @property
    def requests(self) -> list[CapturedRequest]:
        """Every ingest request received, oldest first: a new list."""
        with self._lock:
            return list(self._requests)

    def add_fault(
        self,
        status: int | None = 503,
        *,
        times: int = 1,
        retry_after: float | None = None,
        error: BaseException | type[BaseException] | None = None,
    ) -> None:
        """Answer the next ``times`` ingest requests with a failure.

        Faults queue in order, as on the fake server. Events in a failed request
        are not stored.

        Args:
            status: The status to answer with, such as 503, 429 or 500.
            times: How many requests the fault answers.
            retry_after: A ``Retry-After`` header value, in seconds.
            error: An exception to raise instead of answering, such as
                ``httpx.ConnectError``; ``status`` is then ignored.

        Raises:
            ValueError: ``times`` is not a positive integer.
        """
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise ValueError(f"times must be a positive integer, got {times!r}.")
        with self._lock:
            self._faults.append(_Fault(times, status, retry_after, error))

    def clear_faults(self) -> None:
        """Forget the faults not yet used."""
        with self._lock:
            self._faults.clear()

    def start(self) -> None:
        """Start mocking; requests made from any thread are routed from now on."""
        self._router.start()

    def stop(self) -> None:
        """Stop mocking. The captured events stay readable."""
        self._router.stop(quiet=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # The assertion source protocol.

    #: How failure messages name this source.
    audit_source_name = "the audit_respx mock"

    def audit_events(self) -> Sequence[Event]:
        """Return the stored events, for the assertions."""
        return self.events

    def audit_wait(
        self, condition: Callable[[Sequence[Event]], bool], timeout: float
    ) -> bool:
        """Block until ``condition(events)`` holds, waking on each stored batch.

        Blocks the calling thread for at most ``timeout`` seconds. Thread-safe.
        """
        with self._lock:
            return self._changed.wait_for(
                lambda: condition(list(self._events)), timeout=max(timeout, 0.0)
            )

    def audit_diagnostics(self) -> Sequence[str]:
        """Describe the requests that stored nothing, for failure messages."""
        with self._lock:
            requests = list(self._requests)
        notes = [f"{_plural(len(requests), 'ingest request')} received."]
        for captured in requests:
            if captured.status != 200:
                answer = captured.error or f"status {captured.status}"
                notes.append(
                    f"A request of {_plural(len(captured.events), 'event')} was "
                    f"answered with {answer}."
                )
        return notes

    # Private: answering requests.

    def _answer(self, request: httpx.Request) -> httpx.Response | httpx.Request:
        if _NAMESPACE_HEADER in request.headers:
            # Meant for a real fake server (fake_audit_server): let it through.
            return request

        fault = self._take_fault()
        if fault is not None:
            return self._inject(request, fault)

        decoded = _decode(request)
        if isinstance(decoded, httpx.Response):
            self._note(request, (), decoded.status_code)
            return decoded

        payload, events = self._store(decoded)
        status = (
            422 if decoded and not payload["accepted"] + payload["duplicates"] else 200
        )
        self._note(request, tuple(events), status)
        return httpx.Response(status, json=payload)

    def _pass_on(self, request: httpx.Request) -> httpx.Request | None:
        # No match lets the next active respx router answer; when there is none,
        # handing back the request makes respx send it over the network.
        mocker = getattr(self._router, "Mocker", None)
        routers = getattr(mocker, "routers", [])
        if any(router is not self._router for router in routers):
            return None
        return request

    def _take_fault(self) -> _Fault | None:
        with self._lock:
            if not self._faults:
                return None
            fault = self._faults[0]
            fault.times -= 1
            if fault.times == 0:
                self._faults.popleft()
            return fault

    def _inject(self, request: httpx.Request, fault: _Fault) -> httpx.Response:
        decoded = _decode(request)
        events = (
            tuple(e for e in decoded if isinstance(e, Event))
            if isinstance(decoded, list)
            else ()
        )
        if fault.error is not None:
            error = fault.error
            if isinstance(error, type) and issubclass(error, httpx.RequestError):
                error = error("Injected by audit_respx.", request=request)
            self._note(request, events, None, error=repr(error))
            raise error
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = f"{fault.retry_after:g}"
        self._note(request, events, fault.status)
        return httpx.Response(
            fault.status or 503, headers=headers, json={"error": "Injected fault."}
        )

    def _store(
        self, decoded: list[Event | dict[str, Any]]
    ) -> tuple[dict[str, Any], list[Event]]:
        accepted = duplicates = 0
        rejected = [item for item in decoded if isinstance(item, dict)]
        events = [item for item in decoded if isinstance(item, Event)]
        with self._lock:
            for event in events:
                if event.id in self._ids:
                    duplicates += 1
                    continue
                self._ids.add(event.id)
                self._events.append(event)
                accepted += 1
            self._changed.notify_all()
        payload = {"accepted": accepted, "duplicates": duplicates, "rejected": rejected}
        return payload, events

    def _note(
        self,
        request: httpx.Request,
        events: tuple[Event, ...],
        status: int | None,
        *,
        error: str | None = None,
    ) -> None:
        with self._lock:
            self._requests.append(CapturedRequest(request, events, status, error))


def _decode(request: httpx.Request) -> list[Event | dict[str, Any]] | httpx.Response:
    """Decode an ingest body into events and rejection entries, or an error answer."""
    if not request.headers.get("authorization", "").startswith("Bearer "):
        return httpx.Response(401, json={"error": "Missing bearer key."})
    body = request.content
    encoding = request.headers.get("content-encoding", "identity").lower()
    if encoding == "gzip":
        try:
            body = gzip.decompress(body)
        except (OSError, EOFError):
            return httpx.Response(400, json={"error": "The gzip body is corrupt."})
    elif encoding != "identity":
        return httpx.Response(415, json={"error": "Unsupported content encoding."})
    try:
        items = json.loads(body)["events"]
    except (ValueError, KeyError, TypeError):
        return httpx.Response(400, json={"error": 'Expected {"events": [...]}.'})
    if not isinstance(items, list):
        return httpx.Response(400, json={"error": "events must be a list."})
    return [_decode_event(index, item) for index, item in enumerate(items)]


def _decode_event(index: int, item: Any) -> Event | dict[str, Any]:
    try:
        return Event.from_wire(item)
    except InvalidEventError as exc:
        event_id = item.get("id") if isinstance(item, dict) else None
        return {
            "index": index,
            "id": event_id,
            "code": exc.code,
            "field": exc.field,
            "error": exc.message,
        }


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
