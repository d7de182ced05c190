"""A small synchronous client for the fake server's query and control API."""

from __future__ import annotations

import functools
import gzip as gzip_module
import json
import ssl
from collections.abc import Iterable
from datetime import datetime
from types import TracebackType
from typing import Any, Literal, Self, TypedDict, final

import httpx

from auditkit import Event
from auditkit._ids import format_timestamp
from auditkit._wire import snapshot_event

from ._direct import DirectTransport

__all__ = [
    "Client",
    "FakeServerError",
    "JournalEntry",
    "ServerLimits",
    "ServerStats",
    "WaitTimeoutError",
]


class JournalEntry(TypedDict):
    """One ingest request as ``GET /_fake/requests`` reports it."""

    method: str
    path: str
    #: Header names in lower case; the API key is masked.
    headers: dict[str, str]
    #: How many events the body held (0 if it could not be decoded).
    events: int
    #: The status answered, ``"dropped"`` for a dropped connection.
    status: int | str | None
    #: The fault applied to the request, if any.
    fault: dict[str, Any] | None
    #: When it arrived, RFC 3339 in UTC.
    at: str


class ServerStats(TypedDict):
    """Counts of one namespace, as ``GET /_fake/stats`` reports them."""

    events: int
    requests: int
    accepted: int
    duplicates: int
    rejected: int
    dropped: int
    faults_applied: int
    faults_pending: int


class ServerLimits(TypedDict):
    """The limits ``GET /v1/limits`` advertises."""

    max_batch_events: int
    max_batch_bytes: int
    max_event_bytes: int


class FakeServerError(RuntimeError):
    """The fake server answered a :class:`Client` call with an unexpected status.

    Args:
        status: The HTTP status.
        message: What the server said, or a description of the answer.
    """

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(f"The fake server answered {status}: {message}")


class WaitTimeoutError(FakeServerError, TimeoutError):
    """:meth:`Client.wait` timed out before enough events arrived."""


@final
class Client:
    """Reads what a fake server stored and drives its faults, synchronously.

    Every call is one or a few HTTP requests that block for at most ``timeout``
    seconds each (:meth:`wait` for its own timeout on top). Not thread-safe: give
    each thread its own client. Close it, or use it as a context manager::

        with fake_server.Client(server.url, namespace="test-42") as client:
            client.add_fault(status=503, times=2, retry_after=0)
            ...
            events = client.wait(3, timeout=5, action="secret.read")

    Args:
        url: The server's base URL.
        namespace: Sent as ``X-Fake-Namespace`` with every request, so that the
            client sees and changes only that namespace; ``None`` for the default.
        api_key: The bearer key for the query API (``/_fake/`` needs none).
        timeout: The timeout of each HTTP request, in seconds.
    """

    def __init__(
        self,
        url: str,
        *,
        namespace: str | None = None,
        api_key: str = "test-key",
        timeout: float = 10.0,
    ) -> None:
        headers = {"authorization": f"Bearer {api_key}"}
        if namespace is not None:
            headers["x-fake-namespace"] = namespace
        self.namespace = namespace
        self._timeout = timeout
        self._http = httpx.Client(
            base_url=url.rstrip("/"),
            headers=headers,
            timeout=timeout,
            # Not httpx's own transport: a test that mocks httpx (respx,
            # pytest-httpx) must still reach the server.
            transport=DirectTransport(ssl_context=_ssl_context()),
        )

    def __repr__(self) -> str:
        return (
            f"<fake_server.Client {self._http.base_url} namespace={self.namespace!r}>"
        )

    def close(self) -> None:
        """Close the client's connections."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def health(self) -> bool:
        """Return whether the server answers ``GET /healthz`` with 200."""
        try:
            return self._http.get("/healthz").status_code == 200
        except httpx.HTTPError:
            return False

    def limits(self) -> ServerLimits:
        """Return the limits the server enforces."""
        data: ServerLimits = self._call("GET", "/v1/limits")
        return data

    def reset(self) -> None:
        """Forget the namespace's events, faults, journal and counts."""
        self._call("POST", "/_fake/reset")

    def add_fault(
        self,
        *,
        status: int | None = None,
        times: int = 1,
        retry_after: float | None = None,
        delay: float | None = None,
        drop: Literal["before_body", "after_body"] | None = None,
    ) -> None:
        """Queue a fault for the next ``times`` ingest requests, after those queued.

        Args:
            status: Answer with this status and store nothing.
            times: How many ingest requests it applies to.
            retry_after: The ``Retry-After`` to send with ``status``, in seconds.
            delay: Seconds to wait before answering (or dropping).
            drop: Close the connection without answering, ``"before_body"`` is
                read or ``"after_body"`` was handled (its events are stored).

        Raises:
            FakeServerError: The server refused the fault; the message says why.
        """
        fault = {
            "status": status,
            "times": times,
            "retry_after": retry_after,
            "delay": delay,
            "drop": drop,
        }
        self._call("POST", "/_fake/faults", json=fault)

    def clear_faults(self) -> None:
        """Clear the faults still queued."""
        self._call("DELETE", "/_fake/faults")

    def faults(self) -> list[dict[str, Any]]:
        """Return the faults still queued, with how many requests each has left."""
        faults: list[dict[str, Any]] = self._call("GET", "/_fake/faults")["faults"]
        return faults

    def requests(self) -> list[JournalEntry]:
        """Return the journal of ingest requests, oldest first."""
        entries: list[JournalEntry] = self._call("GET", "/_fake/requests")["requests"]
        return entries

    def stats(self) -> ServerStats:
        """Return the namespace's counts."""
        stats: ServerStats = self._call("GET", "/_fake/stats")
        return stats

    def events(
        self, *, page_size: int = 1000, **filters: str | datetime
    ) -> list[Event]:
        """Return every stored event matching ``filters``, oldest first.

        Follows the pagination to the end, one request per ``page_size`` events.

        Args:
            page_size: Events per request, 1 to 1000.
            **filters: Any of ``action``, ``actor_id``, ``actor_type``,
                ``target_type``, ``target_id``, ``tenant_id``, ``status``, ``since``
                and ``until`` (a string or an aware datetime).
        """
        params: dict[str, str | int] = {**_filter_values(filters), "limit": page_size}
        events: list[Event] = []
        while True:
            page = self._call("GET", "/v1/events", params=params)
            events.extend(Event.from_wire(wire) for wire in page["events"])
            if page["next_cursor"] is None:
                return events
            params["cursor"] = page["next_cursor"]

    def wait(
        self, count: int = 1, *, timeout: float = 10.0, **filters: str | datetime
    ) -> list[Event]:
        """Block until ``count`` events matching ``filters`` are stored.

        The server answers as soon as they are there, so this returns without
        polling; it blocks for at most ``timeout`` seconds plus the request's own
        timeout.

        Returns:
            The first ``count`` matching events (at most 1000), oldest first.

        Raises:
            WaitTimeoutError: Fewer than ``count`` matched within ``timeout``.
        """
        body = {"count": count, "timeout": timeout, **_filter_values(filters)}
        response = self._http.post(
            "/_fake/wait", json=body, timeout=timeout + self._timeout
        )
        if response.status_code == 408:
            raise WaitTimeoutError(408, _describe(response))
        data = _check(response)
        return [Event.from_wire(wire) for wire in data["events"]]

    def ingest(
        self, events: Iterable[Event | dict[str, Any]], *, gzip: bool = False
    ) -> dict[str, Any]:
        """Send one batch to ``POST /v1/events`` and return the server's answer.

        Events are sent as given; an :class:`~auditkit.Event` with no id or time
        gets them filled in, as a recorder would. Any status is returned, not
        raised, so that tests can look at 4xx answers.

        Returns:
            ``{"status": ..., **body}``: the HTTP status and the decoded body.
        """
        wires = [
            snapshot_event(event, max_event_bytes=None)
            if isinstance(event, Event)
            else event
            for event in events
        ]
        body = json.dumps({"events": wires}).encode()
        headers = {"content-type": "application/json"}
        if gzip:
            body = gzip_module.compress(body)
            headers["content-encoding"] = "gzip"
        response = self._http.post("/v1/events", content=body, headers=headers)
        return {"status": response.status_code, **response.json()}

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return _check(self._http.request(method, path, **kwargs))


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle takes tens of milliseconds; tests make many clients.
    return httpx.create_ssl_context()


def _check(response: httpx.Response) -> Any:
    if response.status_code != 200:
        raise FakeServerError(response.status_code, _describe(response))
    return response.json()


def _describe(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200] or "no body"


def _filter_values(filters: dict[str, str | datetime]) -> dict[str, str]:
    return {
        name: format_timestamp(value) if isinstance(value, datetime) else value
        for name, value in filters.items()
    }
