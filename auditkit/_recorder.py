"""The ``Recorder`` protocol, its statistics, and the rules every recorder keeps."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

from ._config import DEFAULT_MAX_EVENT_BYTES
from ._events import Event
from ._exceptions import ConfigurationError, InvalidEventError
from ._ids import next_id_and_timestamp
from ._logging import RateLimitedLog
from ._outcome import Outcome
from ._scope import Scope, _current
from ._wire import snapshot_event

__all__ = ["InvalidHook", "Recorder", "RecorderBase", "Stats"]

logger = logging.getLogger("auditkit")

# Stands in for an event's id and time while it is validated only to be dropped:
# the same lengths as real ones, so that the size check gives the same answer.
_PLACEHOLDER_STAMP = (
    "00000000-0000-7000-8000-000000000000",
    "1970-01-01T00:00:00.000000Z",
)

#: The signature of ``on_invalid(event, error)``.
InvalidHook = Callable[[Event, InvalidEventError], None]


@runtime_checkable
class Recorder(Protocol):
    """What records audit events: :class:`BufferedRecorder`, the in-memory recorder
    of ``auditkit_testing``, or your own.

    Every recorder keeps these rules, checked in this order: a closed recorder
    returns ``CLOSED``; a cancelled current scope (or a passed deadline) returns
    ``CANCELLED`` without touching the event; an event with no action is ``SKIPPED``;
    the event bound to an open scope is ``DEFERRED`` and enqueued once when the scope
    closes; content that can't be sent is ``INVALID``; then the buffer's policy
    decides. Enqueueing takes a snapshot, so later changes to the event object
    change nothing, and ``record()`` never does I/O.

    Example::

        recorder = auditkit.BufferedRecorder("https://audit.example.com", api_key)
        event = auditkit.Event(action="user.login", actor=auditkit.Actor("user", "42"))
        outcome = recorder.record(event)   # returns in microseconds
    """

    def record(self, event: Event, *, timeout: float | None = None) -> Outcome:
        """Record ``event``; never raises for a runtime condition, returns what
        happened instead. ``timeout`` bounds a wait for space under
        ``Policy.BLOCK``."""
        ...

    async def arecord(self, event: Event, *, timeout: float | None = None) -> Outcome:
        """Like :meth:`record`, waiting for space without blocking the event loop.
        A cancelled task gets :class:`asyncio.CancelledError`, with nothing
        enqueued."""
        ...

    def flush(self, timeout: float | None = None) -> bool:
        """Return True once everything recorded before the call was delivered or
        definitively failed and reported; False at the timeout."""
        ...

    def close(self, timeout: float | None = None) -> bool:
        """Flush, then stop; later records return ``CLOSED``. True if the flush
        completed."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Stats:
    """A consistent snapshot of a recorder's counters.

    Every event that was enqueued is, at any moment, in exactly one place::

        enqueued == delivered + failed + evicted + depth + in_flight
    """

    #: Events accepted into the buffer (deferred events count when their scope closed).
    enqueued: int = 0
    #: Events the audit service acknowledged (accepted or known duplicates).
    delivered: int = 0
    #: Events dropped for lack of space: refused when the buffer was full, plus
    #: :attr:`evicted`.
    dropped: int = 0
    #: The part of :attr:`dropped` that had been enqueued (``Policy.DROP_OLDEST``).
    evicted: int = 0
    #: Records of events with no action.
    skipped: int = 0
    #: Records refused because the scope was cancelled or its deadline passed.
    cancelled: int = 0
    #: Records refused because the content can't be sent.
    invalid: int = 0
    #: Records under ``Policy.BLOCK`` that gave up waiting for space.
    timed_out: int = 0
    #: Records accepted as deferred to their scope.
    deferred: int = 0
    #: Enqueued events that finally failed (rejected, or out of retries) and were
    #: reported to ``on_failure``.
    failed: int = 0
    #: Delivery attempts that were retried.
    retried: int = 0
    #: Events waiting in the buffer now.
    depth: int = 0
    #: Events taken from the buffer by the worker and not yet settled.
    in_flight: int = 0


class _Counters:
    """The mutable counters behind :class:`Stats`; guarded by the recorder's lock."""

    __slots__ = tuple(field.name for field in dataclasses.fields(Stats))

    enqueued: int
    delivered: int
    dropped: int
    evicted: int
    skipped: int
    cancelled: int
    invalid: int
    timed_out: int
    deferred: int
    failed: int
    retried: int
    depth: int
    in_flight: int

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)

    def freeze(self, **live: int) -> Stats:
        values = {name: getattr(self, name) for name in self.__slots__}
        values.update(live)
        return Stats(**values)


class RecorderBase:
    """The rule checks shared by every recorder auditkit ships.

    Subclasses store the snapshot: :meth:`_put`, :meth:`_aput` and
    :meth:`_put_deferred` get the event already checked against every rule and
    turned into its wire form, and apply the buffer's policy.

    Args:
        max_event_bytes: The largest an event may be, encoded as JSON.
        on_invalid: Called as ``on_invalid(event, error)`` on the recording thread
            when an event's content can't be sent; exceptions it raises are logged
            and swallowed.
    """

    def __init__(
        self,
        *,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        on_invalid: InvalidHook | None = None,
    ) -> None:
        if (
            isinstance(max_event_bytes, bool)
            or not isinstance(max_event_bytes, int)
            or max_event_bytes < 256
        ):
            raise ConfigurationError(
                f"max_event_bytes must be an integer of at least 256, "
                f"got {max_event_bytes!r}."
            )
        self._max_event_bytes = max_event_bytes
        self._on_invalid = on_invalid
        # Guards the subclass's buffer and _counts.
        self._lock = threading.Lock()
        self._counts = _Counters()
        # Set once, under _lock, by close(); read without it on the hot path.
        self._closed = False
        self._invalid_log = RateLimitedLog(logger)

    def record(self, event: Event, *, timeout: float | None = None) -> Outcome:
        """Record ``event`` under the rules of :class:`Recorder`.

        Never raises for a runtime condition. ``timeout`` (seconds, counted from the
        call) bounds a wait for space under ``Policy.BLOCK``; other policies never
        wait. Thread-safe.
        """
        current = _current.get()
        if (
            current is None
            and not self._closed
            and type(event) is Event
            and event.action
        ):
            # The common case, outside any scope and open: the rules that are left
            # can only find the content invalid. The same checks, without two calls.
            # A full buffer that drops the newest event needs the event validated
            # (INVALID comes first) but not given an id and a time.
            stamp = _PLACEHOLDER_STAMP if self._refuses_new_events() else None
            try:
                wire = snapshot_event(
                    event, max_event_bytes=self._max_event_bytes, stamp=stamp
                )
                if stamp is not None:
                    outcome = self._refuse(event)
                    if outcome is not None:
                        return outcome
                    # Space freed meanwhile: the event goes in, stamped for real.
                    wire = snapshot_event(event, max_event_bytes=self._max_event_bytes)
            except InvalidEventError as exc:
                self._report_invalid(event, exc)
                return Outcome.INVALID
            return self._put(wire, event, timeout, None)

        early = self._check_rules(event, current)
        if early is not None:
            return early

        snapshot = self._snapshot(event, None)
        if snapshot is None:
            return Outcome.INVALID
        return self._put(snapshot, event, timeout, current)

    async def arecord(self, event: Event, *, timeout: float | None = None) -> Outcome:
        """Record ``event`` from async code; waits for space without blocking the loop.

        Under ``Policy.BLOCK`` a full buffer suspends the task until space frees,
        ``timeout`` passes (``TIMED_OUT``), or the scope is cancelled or runs out of
        time (``CANCELLED``). If the task itself is cancelled,
        :class:`asyncio.CancelledError` propagates and nothing is enqueued.
        """
        current = _current.get()
        early = self._check_rules(event, current)
        if early is not None:
            return early

        wire = self._snapshot(event, None)
        if wire is None:
            return Outcome.INVALID
        return await self._aput(wire, event, timeout, current)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self, timeout: float | None = None) -> bool:  # pragma: no cover
        raise NotImplementedError

    def _check_rules(self, event: Event, current: Scope | None) -> Outcome | None:
        """Apply the rules that come before the buffer; None means "go on"."""
        if self._closed:
            return Outcome.CLOSED
        if current is not None and current.cancelled:
            self._count("cancelled")
            return Outcome.CANCELLED
        if not isinstance(event, Event):
            self._report_invalid(
                event,
                InvalidEventError(
                    "", "wrong_type", f"Expected an auditkit.Event, got {event!r:.60}."
                ),
            )
            return Outcome.INVALID
        if not event.action:
            self._count("skipped")
            return Outcome.SKIPPED
        if current is not None:
            bound = current._find_binding(event)
            if bound is not None:
                bound._defer(self, event, next_id_and_timestamp())
                self._count("deferred")
                return Outcome.DEFERRED
        return None

    def _refuses_new_events(self) -> bool:
        """Whether a new event would be dropped right now without waiting.

        A hint read without the lock: True lets :meth:`record` skip stamping an
        event that :meth:`_refuse` is about to drop. Recorders that never drop the
        newest event keep this default.
        """
        return False

    def _refuse(self, event: Event) -> Outcome | None:  # pragma: no cover
        """Drop ``event`` if the buffer is still full; None if space freed since."""
        raise NotImplementedError

    def _snapshot(
        self, event: Event, stamp: tuple[str, str] | None
    ) -> dict[str, Any] | None:
        try:
            return snapshot_event(
                event, max_event_bytes=self._max_event_bytes, stamp=stamp
            )
        except InvalidEventError as exc:
            self._report_invalid(event, exc)
            return None

    def _report_invalid(self, event: Any, error: InvalidEventError) -> None:
        self._count("invalid")
        # The reason names the field and the problem, never the field's value.
        self._invalid_log.log("auditkit: an event was not recorded: %s", error)
        if self._on_invalid is not None:
            try:
                self._on_invalid(event, error)
            except Exception:
                logger.exception("auditkit: the on_invalid hook raised")

    def _enqueue_deferred(self, event: Event, stamp: tuple[str, str]) -> Outcome:
        """Enqueue an event deferred to a scope that is now closing.

        The scope's cancellation no longer matters: the event was accepted when it
        was recorded. Never blocks an event loop.
        """
        wire = self._check_deferred(event, stamp)
        if isinstance(wire, Outcome):
            return wire
        return self._put_deferred(wire, event)

    async def _aenqueue_deferred(self, event: Event, stamp: tuple[str, str]) -> Outcome:
        """Like :meth:`_enqueue_deferred`, for a scope closed with ``async with``."""
        wire = self._check_deferred(event, stamp)
        if isinstance(wire, Outcome):
            return wire
        return await self._aput_deferred(wire, event)

    def _check_deferred(
        self, event: Event, stamp: tuple[str, str]
    ) -> dict[str, Any] | Outcome:
        if self._closed:
            self._report_closed_deferred(event)
            return Outcome.CLOSED
        if not event.action:
            # The handler cleared the action after recording: it opted out.
            self._count("skipped")
            return Outcome.SKIPPED
        wire = self._snapshot(event, stamp)
        return Outcome.INVALID if wire is None else wire

    def _report_closed_deferred(self, event: Event) -> None:
        """A deferred event reached a recorder that was closed meanwhile."""
        logger.warning(
            "auditkit: a deferred event could not be enqueued because its recorder "
            "was closed before its scope ended"
        )

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self._counts, name, getattr(self._counts, name) + n)

    # The buffer, implemented by subclasses. Each is called without the lock held.

    def _put(
        self,
        wire: dict[str, Any],
        event: Event,
        timeout: float | None,
        current: Scope | None,
    ) -> Outcome:  # pragma: no cover - abstract
        raise NotImplementedError

    async def _aput(
        self,
        wire: dict[str, Any],
        event: Event,
        timeout: float | None,
        current: Scope | None,
    ) -> Outcome:  # pragma: no cover - abstract
        raise NotImplementedError

    def _put_deferred(
        self, wire: dict[str, Any], event: Event
    ) -> Outcome:  # pragma: no cover - abstract
        raise NotImplementedError

    async def _aput_deferred(self, wire: dict[str, Any], event: Event) -> Outcome:
        return self._put_deferred(wire, event)


def _is_loop_running() -> bool:
    """Whether the calling thread is running an asyncio event loop."""
    return asyncio._get_running_loop() is not None
