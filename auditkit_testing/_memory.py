"""A recorder that keeps events in memory, for tests."""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, final

from auditkit import (
    ConfigurationError,
    DropReason,
    Event,
    InvalidEventError,
    Outcome,
    Policy,
    Stats,
)
from auditkit._recorder import RecorderBase, _is_loop_running
from auditkit._scope import Scope
from auditkit._waiters import SlotQueue, WaitEnd

__all__ = ["REASONS", "InMemoryRecorder", "RecordedOutcome"]

# The same logger as the recorders of auditkit, so that a test's caplog sees what
# production would log.
logger = logging.getLogger("auditkit")


@final
@dataclasses.dataclass(frozen=True, slots=True)
class RecordedOutcome:
    """One call to ``record()`` and what came of it.

    Attributes:
        outcome: What the recorder returned.
        event: A shallow copy of the event as it was passed (not the snapshot).
        reason: Why it was not enqueued, for ``INVALID``, ``DROPPED``, ``SKIPPED``,
            ``CANCELLED``, ``TIMED_OUT`` and ``CLOSED``; ``None`` otherwise.
        deferred: True for the enqueue that happened when a scope closed.
    """

    outcome: Outcome
    event: Event
    reason: str | None = None
    deferred: bool = False


#: Why a record() call stored nothing, when the recorder gives no closer reason.
REASONS = {
    Outcome.SKIPPED: "the event has no action",
    Outcome.CANCELLED: "the scope was cancelled or its deadline passed",
    Outcome.TIMED_OUT: "no buffer space freed up before the timeout",
    Outcome.CLOSED: "the recorder is closed",
    Outcome.DROPPED: "the buffer was full",
}


@final
class InMemoryRecorder(RecorderBase):
    """A :class:`~auditkit.Recorder` that stores events in memory, for tests.

    It keeps every rule of the contract, exactly as :class:`~auditkit.BufferedRecorder`
    does, and stores what a real audit service would receive: each event as it comes
    back from the wire form, with its ``id`` and ``occurred_at`` filled in.
    ``record()`` never blocks unless ``policy=Policy.BLOCK`` and the buffer is full.

    Args:
        capacity: How many events it holds before the policy applies; ``None`` (the
            default) for no limit. :meth:`clear` frees the space, which lets a test
            simulate a full buffer that drains.
        policy: What a full buffer does, as for :class:`~auditkit.BufferedRecorder`.
        max_event_bytes: The largest an event may be, encoded as JSON.
        on_drop: Called as ``on_drop(event, reason)`` for every dropped event.
        on_invalid: Called as ``on_invalid(event, error)`` for every invalid event.

    Example::

        recorder = InMemoryRecorder()
        recorder.record(Event(action="user.login", actor=Actor("user", "42")))
        assert recorder.events[0].action == "user.login"
    """

    def __init__(
        self,
        *,
        capacity: int | None = None,
        policy: Policy = Policy.DROP_NEWEST,
        max_event_bytes: int = 64 * 1024,
        on_drop: Callable[[Event, DropReason], None] | None = None,
        on_invalid: Callable[[Event, InvalidEventError], None] | None = None,
    ) -> None:
        super().__init__(max_event_bytes=max_event_bytes, on_invalid=on_invalid)
        if capacity is not None and (
            isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1
        ):
            raise ConfigurationError(
                f"capacity must be a positive integer or None, got {capacity!r}."
            )
        if not isinstance(policy, Policy):
            raise ConfigurationError(
                f"policy must be an auditkit.Policy, got {policy!r}."
            )
        self._capacity = capacity
        self._policy = policy
        self._on_drop = on_drop
        # Guarded by self._lock: the stored events, oldest first, and every outcome.
        self._events: list[Event] = []
        self._outcomes: list[RecordedOutcome] = []
        self._waiters = SlotQueue(self._lock)
        # Notified, with self._lock held, whenever an event is stored.
        self._stored = threading.Condition(self._lock)
        self._warned_loop = False
        # The reason behind the outcome the current thread is about to return.
        self._reason = threading.local()

    @property
    def events(self) -> list[Event]:
        """The stored events, oldest first: a new list each time."""
        with self._lock:
            return list(self._events)

    @property
    def outcomes(self) -> list[RecordedOutcome]:
        """Every ``record()`` call and its outcome, oldest first: a new list."""
        with self._lock:
            return list(self._outcomes)

    def clear(self) -> None:
        """Forget the stored events and outcomes, and free the buffer's space.

        Callers waiting for space under ``Policy.BLOCK`` are served in arrival order.
        """
        with self._lock:
            self._events.clear()
            self._outcomes.clear()
            self._grant_waiters()

    def wait_for(
        self, condition: Callable[[list[Event]], bool], timeout: float
    ) -> bool:
        """Block until ``condition(events)`` holds for the stored events.

        Blocks the calling thread for at most ``timeout`` seconds, counted from the
        call, waking each time an event is stored (from any thread) rather than
        polling. ``condition`` is called with the recorder's lock held, so it must
        not record. Thread-safe.

        Returns:
            True if the condition held, False if the timeout passed first.
        """
        with self._lock:
            return self._stored.wait_for(
                lambda: condition(list(self._events)), timeout=max(timeout, 0.0)
            )

    def stats(self) -> Stats:
        """Return the counters; every enqueued event counts as delivered at once."""
        with self._lock:
            return self._counts.freeze()

    def record(self, event: Event, *, timeout: float | None = None) -> Outcome:
        """Record ``event`` as :meth:`auditkit.Recorder.record` does; thread-safe."""
        self._reason.value = None
        outcome = super().record(event, timeout=timeout)
        self._note(outcome, event)
        return outcome

    async def arecord(self, event: Event, *, timeout: float | None = None) -> Outcome:
        """Record ``event`` from async code, as :meth:`auditkit.Recorder.arecord`."""
        self._reason.value = None
        outcome = await super().arecord(event, timeout=timeout)
        self._note(outcome, event)
        return outcome

    def flush(self, timeout: float | None = None) -> bool:
        """Return True at once: stored events count as delivered."""
        return True

    def close(self, timeout: float | None = None) -> bool:
        """Stop accepting events; later records return ``CLOSED``. Idempotent.

        Callers waiting for space under ``Policy.BLOCK`` return ``CLOSED`` with
        nothing stored. Stored events stay readable.
        """
        with self._lock:
            self._closed = True
            self._waiters.release_all()
        return True

    def _enqueue_deferred(self, event: Event, stamp: tuple[str, str]) -> Outcome:
        self._reason.value = None
        outcome = super()._enqueue_deferred(event, stamp)
        self._note(outcome, event, deferred=True)
        return outcome

    async def _aenqueue_deferred(self, event: Event, stamp: tuple[str, str]) -> Outcome:
        self._reason.value = None
        outcome = await super()._aenqueue_deferred(event, stamp)
        self._note(outcome, event, deferred=True)
        return outcome

    def _report_invalid(self, event: Any, error: InvalidEventError) -> None:
        self._reason.value = str(error)
        super()._report_invalid(event, error)

    def _put(
        self,
        wire: dict[str, Any],
        event: Event,
        timeout: float | None,
        current: Scope | None,
    ) -> Outcome:
        stored = _round_trip(wire)
        with self._lock:
            if self._has_space():
                return self._store(stored)
            if self._policy is not Policy.BLOCK or _is_loop_running():
                return self._apply_full_policy(stored, event)
            end = self._waiters.wait(_deadline(timeout), current)
            return self._finish_wait(end, stored)

    async def _aput(
        self,
        wire: dict[str, Any],
        event: Event,
        timeout: float | None,
        current: Scope | None,
    ) -> Outcome:
        stored = _round_trip(wire)
        with self._lock:
            if self._has_space():
                return self._store(stored)
            if self._policy is not Policy.BLOCK:
                return self._apply_full_policy(stored, event)
            end = await self._waiters.await_slot(_deadline(timeout), current)
            return self._finish_wait(end, stored)

    def _put_deferred(self, wire: dict[str, Any], event: Event) -> Outcome:
        # Limitation: a deferred event that meets a full buffer under Policy.BLOCK is
        # dropped (and reported) rather than waited for, because nothing drains an
        # in-memory buffer but a call to clear().
        stored = _round_trip(wire)
        with self._lock:
            if self._has_space():
                return self._store(stored)
            return self._apply_full_policy(stored, event, block_as_drop=True)

    # Everything below runs with self._lock held.

    def _has_space(self) -> bool:
        if self._capacity is None:
            return True
        free = self._capacity - len(self._events) - self._waiters.reserved
        return free > 0 and not self._waiters

    def _store(self, stored: Event) -> Outcome:
        self._events.append(stored)
        self._counts.enqueued += 1
        self._counts.delivered += 1
        self._stored.notify_all()
        return Outcome.ENQUEUED

    def _apply_full_policy(
        self, stored: Event, event: Event, *, block_as_drop: bool = False
    ) -> Outcome:
        if self._policy is Policy.DROP_OLDEST:
            evicted = self._events.pop(0)
            self._counts.delivered -= 1
            self._counts.evicted += 1
            self._counts.dropped += 1
            self._call_on_drop(evicted, DropReason.EVICTED)
            return self._store(stored)
        if self._policy is Policy.BLOCK and not block_as_drop and not self._warned_loop:
            self._warned_loop = True
            logger.warning(
                "auditkit: record() under Policy.BLOCK was called on a thread running "
                "an event loop; it dropped the event instead of blocking the loop. "
                "Use 'await recorder.arecord(event)' in async code."
            )
        self._counts.dropped += 1
        self._reason.value = f"the buffer was full ({self._policy.value})"
        self._call_on_drop(event, DropReason.BUFFER_FULL)
        return Outcome.DROPPED

    def _finish_wait(self, end: WaitEnd, stored: Event) -> Outcome:
        if end is WaitEnd.GRANTED:
            return self._store(stored)
        if end is WaitEnd.CANCELLED:
            self._counts.cancelled += 1
            return Outcome.CANCELLED
        if end is WaitEnd.CLOSED:
            return Outcome.CLOSED
        self._counts.timed_out += 1
        return Outcome.TIMED_OUT

    def _grant_waiters(self) -> None:
        if self._capacity is not None:
            free = self._capacity - len(self._events) - self._waiters.reserved
            self._waiters.grant(free)

    def _call_on_drop(self, event: Event, reason: DropReason) -> None:
        if self._on_drop is None:
            return
        try:
            self._on_drop(event, reason)
        except Exception:
            logger.exception("auditkit: the on_drop hook raised")

    def _note(self, outcome: Outcome, event: Event, *, deferred: bool = False) -> None:
        reason = getattr(self._reason, "value", None) or REASONS.get(outcome)
        copy = dataclasses.replace(event) if isinstance(event, Event) else event
        with self._lock:
            self._outcomes.append(RecordedOutcome(outcome, copy, reason, deferred))


def _round_trip(wire: dict[str, Any]) -> Event:
    """What a service would store: the event encoded to JSON text and decoded back."""
    return Event.from_wire(json.loads(json.dumps(wire, ensure_ascii=False)))


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + max(timeout, 0.0)
