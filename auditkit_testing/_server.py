"""The ``fake_audit_server`` fixture: a fake audit service, one namespace per test.

One server serves the whole test session: started in-process on first use, or an
external one (such as the container) named with ``--audit-server-url``. Each test
gets its own namespace on it (the ``X-Fake-Namespace`` header), so tests running in
parallel, in other xdist workers or other test runs, never see each other's events.
"""

from __future__ import annotations

import contextvars
import dataclasses
import hashlib
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, final

import httpx

from auditkit import DropReason, Event, HttpTransport, InvalidEventError, Outcome

from ._extras import import_extra
from ._memory import REASONS, RecordedOutcome

if TYPE_CHECKING:
    from auditkit._buffered import BufferedRecorder

__all__ = [
    "DEFAULT_API_KEY",
    "NAMESPACE_HEADER",
    "FakeAuditServer",
    "ServerSession",
    "StartError",
    "namespace_for",
]

#: The header that selects a namespace on the fake server.
NAMESPACE_HEADER = "X-Fake-Namespace"
#: The key the fixtures send when none is configured; the fake server accepts any
#: non-empty key unless it was started with ``--api-key``.
DEFAULT_API_KEY = "auditkit-test-key"
# Options of the recorder audit_buffered_recorder builds: short intervals, so that
# tests waiting for delivery wait milliseconds, and a bounded retry budget.
_RECORDER_DEFAULTS: dict[str, Any] = {
    "batch_size": 50,
    "flush_interval": 0.02,
    "backoff_initial": 0.01,
    "backoff_max": 0.2,
    "retry_budget": 10.0,
    "exit_timeout": 2.0,
}
# The recorder counts that failure messages show.
_COUNTS = (
    "enqueued",
    "delivered",
    "skipped",
    "cancelled",
    "invalid",
    "dropped",
    "timed_out",
    "failed",
)
_DROP_REASONS = {
    DropReason.EVICTED: "evicted to make room for a newer event (drop_oldest)",
    DropReason.RECORDER_CLOSED: "its scope closed after the recorder was closed",
    DropReason.BUFFER_FULL: "the buffer was full when its scope closed",
}
# How long to wait for an external server's health check.
_PROBE_TIMEOUT = 5.0
# Options of HttpTransport that configure its own httpx client.
_TLS_OPTIONS = frozenset({"verify", "cert", "proxy"})
# One token per test process, so that two runs against one server never collide.
_RUN_TOKEN = uuid.uuid4().hex[:8]


class StartError(Exception):
    """The fake server could not be started or reached; the message says why."""


def namespace_for(nodeid: str) -> str:
    """Return the namespace of a test: unique per run, xdist worker and test id."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    digest = hashlib.sha256(nodeid.encode("utf-8")).hexdigest()[:16]
    return f"{_RUN_TOKEN}-{worker}-{digest}"[:128]


@final
class ServerSession:
    """The session's server: started on first use, stopped at the end of the session.

    Args:
        external_url: The URL of a running server to use instead of starting one.
        api_key: The key the fixtures send.
    """

    def __init__(self, external_url: str | None, api_key: str) -> None:
        self._external_url = external_url.rstrip("/") if external_url else None
        self.api_key = api_key
        self._lock = threading.Lock()
        # Set once under _lock by url(): the server's URL, or why it failed.
        self._url: str | None = None
        self._failure: str | None = None
        self._handle: Any = None

    @property
    def external(self) -> bool:
        """True when the fixtures drive a server started elsewhere."""
        return self._external_url is not None

    def url(self) -> str:
        """Return the server's URL, starting or probing it on the first call.

        Blocks up to about ten seconds on the first call; later calls return at
        once. A failure is remembered, so every later test fails at once too.

        Raises:
            StartError: The server could not be started or reached.
        """
        with self._lock:
            if self._url is None and self._failure is None:
                try:
                    self._url = self._connect()
                except StartError as exc:
                    self._failure = str(exc)
            if self._failure is not None:
                raise StartError(self._failure)
            assert self._url is not None
            return self._url

    def stop(self) -> None:
        """Stop the in-process server, if one was started. Blocks until it stops."""
        with self._lock:
            handle, self._handle = self._handle, None
        if handle is not None:
            handle.stop()

    def _connect(self) -> str:
        if self._external_url is not None:
            _probe(self._external_url)
            return self._external_url
        fake_server = import_extra(
            "fake_server", extra="server", feature="The fake_audit_server fixture"
        )
        try:
            self._handle = fake_server.serve_in_thread(host="127.0.0.1", port=0)
        except Exception as exc:
            raise StartError(
                f"The in-process fake audit server did not start: {exc!r}"
            ) from None
        return str(self._handle.url)


@final
class FakeAuditServer:
    """The ``fake_audit_server`` fixture: one test's view of the fake audit service.

    Everything it reads and changes (events, the request journal, faults, counts)
    belongs to the test's own namespace, reset before the test; send events with
    the :attr:`headers` it gives, or through :meth:`recorder` or
    :meth:`transport`, which add them. Every method makes one HTTP request to
    the server and blocks until it answers.

    Args:
        url: The server's base URL.
        api_key: The key to send.
        namespace: The namespace of this test.
    """

    #: How failure messages name this source.
    audit_source_name = "the fake audit server"

    def __init__(self, url: str, api_key: str, namespace: str) -> None:
        fake_server = import_extra(
            "fake_server", extra="server", feature="The fake_audit_server fixture"
        )
        self._url = url
        self._api_key = api_key
        self._namespace = namespace
        self._fake_server = fake_server
        self._client = fake_server.Client(url, namespace=namespace, api_key=api_key)
        self._recorders: list[BufferedRecorder] = []
        # httpx clients made for this test's transports, closed with it.
        self._clients: list[httpx.Client] = []
        self._log = _RecordLog()

    def __repr__(self) -> str:
        return f"<FakeAuditServer {self._url} namespace={self._namespace!r}>"

    @property
    def url(self) -> str:
        """The server's base URL: give it to the code under test as the endpoint."""
        return self._url

    @property
    def api_key(self) -> str:
        """The API key the fixtures send."""
        return self._api_key

    @property
    def namespace(self) -> str:
        """This test's namespace on the server."""
        return self._namespace

    @property
    def headers(self) -> dict[str, str]:
        """Headers that route a request to this test's namespace."""
        return {NAMESPACE_HEADER: self._namespace}

    @property
    def client(self) -> Any:
        """The underlying ``fake_server.Client``, bound to this test's namespace."""
        return self._client

    def events(self, **filters: Any) -> list[Event]:
        """Return the stored events, oldest first.

        Args:
            **filters: The filters of the query API: ``action``, ``actor_id``,
                ``actor_type``, ``target_type``, ``target_id``, ``tenant_id``,
                ``status``, ``since``, ``until``.
        """
        return list(self._client.events(**filters))

    def requests(self) -> list[dict[str, Any]]:
        """Return the journal of ingest requests, oldest first (keys masked)."""
        return list(self._client.requests())

    def add_fault(self, status: int | None = None, **options: Any) -> None:
        """Queue a fault for the next ingest requests of this test.

        Args:
            status: The status to answer with, such as 503.
            **options: ``times``, ``retry_after``, ``delay`` and ``drop``
                (``"before_body"`` or ``"after_body"``), as for ``/_fake/faults``.
        """
        self._client.add_fault(status=status, **options)

    def clear_faults(self) -> None:
        """Forget the faults not yet used."""
        self._client.clear_faults()

    def stats(self) -> Any:
        """Return the counts of stored events, requests, duplicates and rejections."""
        return self._client.stats()

    def wait(
        self, count: int = 1, *, timeout: float = 5.0, **filters: Any
    ) -> list[Event]:
        """Block until ``count`` events matching ``filters`` are stored.

        Blocks for at most ``timeout`` seconds, in one long-poll request
        (``/_fake/wait``); the server answers as soon as the events are there.

        Returns:
            The first ``count`` matching events, oldest first.

        Raises:
            AuditAssertionError: Fewer than ``count`` matched within ``timeout``.
        """
        __tracebackhide__ = True
        try:
            return list(self._client.wait(count, timeout=timeout, **filters))
        except self._fake_server.WaitTimeoutError as exc:
            from ._assertions import AuditAssertionError

            asked = ", ".join(f"{key}={value!r}" for key, value in filters.items())
            raise AuditAssertionError(
                f"auditkit: waited {timeout:g} s for {count} events"
                f"{' matching ' + asked if asked else ''} on the fake audit server: "
                f"{exc}"
            ) from None

    def reset(self) -> None:
        """Forget this test's events, faults and journal."""
        self._client.reset()

    def transport(self, **options: Any) -> HttpTransport:
        """Return an :class:`~auditkit.HttpTransport` that sends to this namespace.

        Args:
            **options: Passed to :class:`~auditkit.HttpTransport`; ``headers`` are
                merged with the namespace header.
        """
        headers = {**options.pop("headers", {}), **self.headers}
        if "client" not in options and not _TLS_OPTIONS & options.keys():
            # Past the httpx transports that respx and pytest-httpx patch, so that
            # a test mocking httpx for its own code still delivers here. Closed
            # with the fixture: a client passed in is not the transport's to close.
            from fake_server._direct import DirectTransport

            client = httpx.Client(transport=DirectTransport())
            self._clients.append(client)
            options["client"] = client
        return HttpTransport(self._url, self._api_key, headers=headers, **options)

    def recorder(self, **options: Any) -> BufferedRecorder:
        """Return a :class:`~auditkit.BufferedRecorder` that delivers here.

        It flushes every few milliseconds and retries briefly, so tests wait little;
        it is closed when the test ends. Assertions given the recorder read this
        server, after flushing the recorder.

        Args:
            **options: Passed to :class:`~auditkit.BufferedRecorder`, overriding
                the short defaults (``flush_interval``, ``retry_budget``...).
        """
        # Imported here so that loading the plugin never depends on the worker.
        from auditkit._buffered import BufferedRecorder

        from ._sources import register_alias

        transport = options.pop("transport", None) or self.transport()
        hooks = self._log.hooks(
            options.pop("on_invalid", None), options.pop("on_drop", None)
        )
        recorder = BufferedRecorder(
            self._url,
            self._api_key,
            transport=transport,
            **{**_RECORDER_DEFAULTS, **options, **hooks},
        )
        self._log.watch(recorder)
        self._recorders.append(recorder)
        register_alias(recorder, _FlushingSource(recorder, self))
        return recorder

    def close(self) -> None:
        """Close the recorders made by :meth:`recorder` (waiting up to 5 s each),
        forget the namespace's data and close the connections. Idempotent."""
        recorders, self._recorders = self._recorders, []
        try:
            for recorder in recorders:
                recorder.close(timeout=5.0)
        finally:
            self._forget()

    def _forget(self) -> None:
        # Forgetting the namespace keeps a long-running shared server small; a
        # server that went away meanwhile has nothing left to forget.
        try:
            self._client.reset()
        except (httpx.HTTPError, self._fake_server.FakeServerError):
            pass
        finally:
            self._client.close()
            clients, self._clients = self._clients, []
            for client in clients:
                client.close()

    # The assertion source protocol.

    def audit_events(self) -> Sequence[Event]:
        """Return the stored events, for the assertions."""
        return self.events()

    def audit_wait(
        self, condition: Callable[[Sequence[Event]], bool], timeout: float
    ) -> bool:
        """Block until ``condition(events)`` holds, for at most ``timeout`` seconds.

        Each round asks the server to answer once one more event is stored
        (``/_fake/wait``), so it wakes on delivery instead of polling.
        """
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            events = self.events()
            if condition(events):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._wait_quietly(len(events) + 1, remaining)

    def audit_outcomes(self) -> Sequence[RecordedOutcome]:
        """Return the record calls on this test's recorders that stored nothing."""
        return self._log.outcomes()

    def audit_diagnostics(self) -> Sequence[str]:
        """Describe ingest requests that stored nothing, for failure messages."""
        try:
            journal = self.requests()
        except (httpx.HTTPError, self._fake_server.FakeServerError) as exc:
            return [f"The request journal could not be read: {exc!r}."]
        notes = [f"{_plural(len(journal), 'ingest request')} received."]
        for entry in journal:
            status = entry.get("status")
            if status != 200:
                events = _plural(int(entry.get("events") or 0), "event")
                answer = (
                    "dropped without an answer"
                    if status == "dropped"
                    else f"answered with {status}"
                )
                notes.append(f"A request of {events} was {answer}.")
        return notes

    def _wait_quietly(self, count: int, timeout: float) -> None:
        try:
            self._client.wait(count, timeout=timeout)
        except self._fake_server.WaitTimeoutError:
            # The timeout only ends this round; the caller checks the events
            # again and owns the deadline.
            return


@final
class _FlushingSource:
    """Lets the assertions take a recorder made by :meth:`FakeAuditServer.recorder`."""

    def __init__(self, recorder: BufferedRecorder, server: FakeAuditServer) -> None:
        self._recorder = recorder
        self._server = server
        self.audit_source_name = "the fake audit server (after flushing the recorder)"

    def audit_events(self) -> Sequence[Event]:
        self._recorder.flush(timeout=5.0)
        return self._server.events()

    def audit_wait(
        self, condition: Callable[[Sequence[Event]], bool], timeout: float
    ) -> bool:
        return self._server.audit_wait(condition, timeout)

    def audit_outcomes(self) -> Sequence[RecordedOutcome]:
        return self._server.audit_outcomes()

    def audit_diagnostics(self) -> Sequence[str]:
        stats = self._recorder.stats()
        counts = ", ".join(f"{name} {getattr(stats, name)}" for name in _COUNTS)
        return [f"The recorder counts: {counts}.", *self._server.audit_diagnostics()]


@dataclasses.dataclass(slots=True)
class _Call:
    """One watched record() call in progress: the log it reports to and why."""

    log: _RecordLog
    reason: str | None = None


# The watched record() call running in this thread or task, so that the recorder's
# hooks, which it calls synchronously during the call, can say why it stored nothing.
_CURRENT_CALL: contextvars.ContextVar[_Call | None] = contextvars.ContextVar(
    "auditkit_testing_record_call", default=None
)


@final
class _RecordLog:
    """The record calls that stored nothing, on the recorders one test made.

    A ``BufferedRecorder`` reports only counts; this log keeps each refused event
    and why, so that failure messages can show them as for the in-memory recorder.
    """

    def __init__(self) -> None:
        # Appended to under _lock by any recording thread; read by the assertions.
        self._lock = threading.Lock()
        self._outcomes: list[RecordedOutcome] = []

    def outcomes(self) -> list[RecordedOutcome]:
        with self._lock:
            return list(self._outcomes)

    def hooks(self, on_invalid: Any, on_drop: Any) -> dict[str, Any]:
        """Return the recorder's ``on_invalid`` and ``on_drop``, calling the user's."""

        def note_invalid(event: Event, error: InvalidEventError) -> None:
            call = _CURRENT_CALL.get()
            if call is not None and call.log is self:
                call.reason = str(error)
            if on_invalid is not None:
                on_invalid(event, error)

        def note_drop(event: Any, reason: DropReason) -> None:
            call = _CURRENT_CALL.get()
            if (
                call is not None
                and call.log is self
                and reason is DropReason.BUFFER_FULL
            ):
                call.reason = REASONS[Outcome.DROPPED]
            else:
                # An eviction, or a deferred event dropped when its scope closed:
                # no record() call returns it, so it is noted here.
                self._note(Outcome.DROPPED, event, _DROP_REASONS.get(reason))
            if on_drop is not None:
                on_drop(event, reason)

        return {"on_invalid": note_invalid, "on_drop": note_drop}

    def watch(self, recorder: BufferedRecorder) -> None:
        """Note every ``record()`` and ``arecord()`` of ``recorder`` that stores
        nothing."""
        record, arecord = recorder.record, recorder.arecord

        def watched_record(event: Event, *, timeout: float | None = None) -> Outcome:
            call = _Call(self)
            token = _CURRENT_CALL.set(call)
            try:
                outcome = record(event, timeout=timeout)
            finally:
                _CURRENT_CALL.reset(token)
            self._note(outcome, event, call.reason)
            return outcome

        async def watched_arecord(
            event: Event, *, timeout: float | None = None
        ) -> Outcome:
            call = _Call(self)
            token = _CURRENT_CALL.set(call)
            try:
                outcome = await arecord(event, timeout=timeout)
            finally:
                _CURRENT_CALL.reset(token)
            self._note(outcome, event, call.reason)
            return outcome

        # Instance attributes shadow the methods for this recorder only; the
        # fixture's recorder stays a plain BufferedRecorder.
        recorder.record = watched_record  # type: ignore[method-assign]
        recorder.arecord = watched_arecord  # type: ignore[method-assign]

    def _note(self, outcome: Outcome, event: Any, reason: str | None) -> None:
        if outcome in (Outcome.ENQUEUED, Outcome.DEFERRED):
            return
        if isinstance(event, dict):
            try:
                event = Event.from_wire(event)
            except InvalidEventError:
                pass  # shown as the dict it is
        elif isinstance(event, Event):
            event = dataclasses.replace(event)
        noted = RecordedOutcome(outcome, event, reason or REASONS.get(outcome))
        with self._lock:
            self._outcomes.append(noted)


def _probe(url: str) -> None:
    try:
        response = httpx.get(f"{url}/healthz", timeout=_PROBE_TIMEOUT)
    except httpx.HTTPError as exc:
        raise StartError(
            f"The audit server at {url} can't be reached: {exc!r}. Check "
            "--audit-server-url (or AUDITKIT_SERVER_URL) and that the server runs."
        ) from None
    if response.status_code != 200:
        raise StartError(
            f"The audit server at {url} answered /healthz with "
            f"{response.status_code}; is it the auditkit fake server?"
        )


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
