"""The buffered recorder: a bounded buffer drained by one background worker.

``record()`` validates and snapshots the event on the caller's thread, then holds
the recorder's lock just long enough to append the snapshot to a deque. Everything
slow (encoding, batching, the network, backoff) happens on the worker thread, which
takes events from the buffer in order, cuts them into batches and hands each batch to
a :class:`~auditkit.Transport`.

Where every enqueued event is, at every moment (all guarded by the recorder's lock)::

    buffer (depth) --take--> chunk (in flight) --settle--> delivered | failed
           \\--evict (DROP_OLDEST)--> evicted
"""

from __future__ import annotations

import _thread
import atexit
import logging
import math
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final, final

from ._backoff import backoff_delay
from ._config import DEFAULT_MAX_EVENT_BYTES, MAX_BATCH_BYTES, MAX_BATCH_EVENTS
from ._encoding import BATCH_OVERHEAD, BODY_CLOSE, BODY_OPEN, encode_event
from ._events import Event
from ._exceptions import ConfigurationError
from ._logging import RateLimitedLog
from ._outcome import DropReason, Outcome, Policy
from ._recorder import (
    InvalidHook,
    RecorderBase,
    Stats,
    _Counters,
    _is_loop_running,
)
from ._scope import Scope
from ._transport import Batch, SendResult, SendStatus, Transport
from ._waiters import SlotQueue, WaitEnd

__all__ = ["BufferedRecorder", "DropHook", "FailureHook"]

logger = logging.getLogger(__name__)

#: The signature of ``on_drop(event, reason)``.
DropHook = Callable[[Event, DropReason], None]
#: The signature of ``on_failure(events, reason)``.
FailureHook = Callable[[list[Event], str], None]

# The depth at which the hot path wakes the worker when the worker is not waiting.
_NEVER: Final = 1 << 62
# Seconds between two tracebacks of the same kind of unexpected failure.
_EXCEPTION_LOG_INTERVAL = 60.0

_getpid = os.getpid
_monotonic = time.monotonic


@final
class BufferedRecorder(RecorderBase):
    """Records events into a bounded buffer that a background thread delivers.

    ``record()`` never does I/O and never waits for the network: it checks the
    rules of :class:`~auditkit.Recorder`, takes a snapshot and appends it to the
    buffer under a short lock, in microseconds. One daemon worker thread, started
    on the first record, sends the buffer in batches of ``batch_size`` events, or
    whatever is there after ``flush_interval`` seconds, in the order the events
    were enqueued. A batch the service can't take now is resent (the very same
    bytes) with exponential backoff and full jitter until ``retry_budget`` runs
    out; events that finally fail go to ``on_failure`` and :meth:`stats`.

    The recorder is thread-safe, closes itself at interpreter exit (waiting at most
    ``exit_timeout``), and keeps working in a child process after ``os.fork()``:
    the child starts with an empty buffer and its own worker and connections, and
    the events buffered before the fork are delivered by the parent only.

    Example::

        recorder = auditkit.BufferedRecorder("https://audit.example.com", api_key)
        event = auditkit.Event(action="user.login", actor=auditkit.Actor("user", "42"))
        recorder.record(event)  # returns in microseconds
        ...
        recorder.close(timeout=5.0)  # at shutdown; also done at interpreter exit

    Args:
        endpoint: The audit service's base URL; events go to ``{endpoint}/v1/events``.
            Required unless ``transport`` is given.
        api_key: The service's API key. Required unless ``transport`` is given;
            never shown in a ``repr``, log line or exception.
        capacity: How many events may wait in the buffer. A batch the worker took
            no longer counts against it.
        policy: What a full buffer does: :attr:`Policy.DROP_NEWEST` refuses the new
            event, :attr:`Policy.DROP_OLDEST` evicts the oldest waiting one,
            :attr:`Policy.BLOCK` makes the caller wait for space (see Note).
        batch_size: The most events sent in one request (at most 500).
        flush_interval: Seconds the worker waits for a batch to fill before it
            sends what it has.
        transport: What sends batches; an :class:`~auditkit.HttpTransport` built
            from ``endpoint`` and ``api_key`` by default. The recorder closes it.
        on_drop: Called as ``on_drop(event, reason)`` for every event dropped for
            lack of space, on the recording thread.
        on_failure: Called as ``on_failure(events, reason)`` for events that were
            enqueued and finally not delivered, on the worker thread (or the
            thread calling :meth:`close`).
        on_invalid: Called as ``on_invalid(event, error)`` for an event whose
            content can't be sent, on the recording thread.
        max_event_bytes: The largest an event may be, encoded as JSON.
        max_batch_bytes: The largest request body, before compression.
        send_timeout: Seconds one send may take; passed to the transport.
        retry_budget: Seconds after a batch's first attempt during which it may
            be retried; then its events fail. 0 never retries.
        backoff_initial: The ceiling of the first backoff, in seconds.
        backoff_max: The largest backoff ceiling, in seconds.
        deferred_timeout: Under :attr:`Policy.BLOCK`, how long closing a scope may
            wait for space for the event deferred to it, in seconds.
        exit_timeout: How long the exit hook waits for delivery at interpreter
            exit, in seconds.

    Raises:
        ConfigurationError: An argument is invalid; the message names it.

    Note:
        Under :attr:`Policy.BLOCK`, ``record()`` waits for space until its
        ``timeout``, the current scope's deadline or the scope's cancellation,
        and returns ``TIMED_OUT`` or ``CANCELLED`` with nothing enqueued; callers
        are served in arrival order. On a thread running an asyncio event loop,
        ``record()`` never blocks: there a full buffer drops the event (with one
        warning), and ``await arecord()`` is the way to wait.

    Note:
        Hooks run without the recorder's lock; an exception they raise is logged
        and swallowed. A hook must not wait for the recorder's worker (calling
        :meth:`flush` from ``on_failure`` can only time out).
    """

    # The recorder's state, set up by _reset_state() (again in a forked child).
    # Unless noted, each attribute is guarded by self._lock, which both conditions
    # share: the worker waits on _work, flush() and close() wait on _settled.

    #: The process that owns this state; a different getpid() means a fork.
    _pid: int
    #: Serialises close() calls; _close_result is written under it.
    _close_lock: threading.Lock
    _hook_errors: _ExceptionLog
    _transport_errors: _ExceptionLog
    _work: threading.Condition
    _settled: threading.Condition
    #: Callers waiting for space under Policy.BLOCK, oldest first.
    _waiters: SlotQueue
    #: Snapshots waiting to be sent, oldest first; never more than capacity.
    _buffer: deque[dict[str, Any]]
    #: How many events ever left the buffer (taken or evicted). Events leave in
    #: order, so the n-th event enqueued (from 1) has left iff n <= _taken.
    _taken: int
    #: Events the worker took and has not settled; all of them are in _chunk.
    _in_flight: int
    #: What the worker took last, until every event in it is settled.
    _chunk: _Chunk | None
    #: flush() has the worker send partial batches until _taken reaches this.
    _flush_target: int
    #: How many flush() calls wait on _settled; evictions notify only then.
    _flush_waiters: int
    #: The depth at which _append wakes the worker; _NEVER unless it waits.
    _wake_at: int
    #: The worker thread; None until the first event, and again after a fork.
    _worker: _Worker | None
    #: No worker will run again (closed and drained, or abandoned). Never reset
    #: to False but by a fork.
    _stopped: bool
    #: close() gave up on the undelivered events: the worker stops, and what its
    #: last send reports is ignored. _abandon_signal wakes it from a backoff.
    _abandoned: bool
    _abandon_signal: threading.Event
    _transport_closed: bool

    def __init__(
        self,
        endpoint: str | None = None,
        api_key: str | None = None,
        *,
        capacity: int = 10_000,
        policy: Policy = Policy.DROP_NEWEST,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        transport: Transport | None = None,
        on_drop: DropHook | None = None,
        on_failure: FailureHook | None = None,
        on_invalid: InvalidHook | None = None,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        max_batch_bytes: int = MAX_BATCH_BYTES,
        send_timeout: float = 30.0,
        retry_budget: float = 300.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        deferred_timeout: float = 5.0,
        exit_timeout: float = 5.0,
    ) -> None:
        super().__init__(max_event_bytes=max_event_bytes, on_invalid=on_invalid)
        self._capacity = _check_int("capacity", capacity, 1, None)
        if not isinstance(policy, Policy):
            raise ConfigurationError(
                f"policy must be an auditkit.Policy, got {policy!r}."
            )
        self._policy = policy
        self._block = policy is Policy.BLOCK
        self._batch_size = _check_int("batch_size", batch_size, 1, MAX_BATCH_EVENTS)
        self._max_batch_bytes = _check_int(
            "max_batch_bytes", max_batch_bytes, max_event_bytes + BATCH_OVERHEAD, None
        )
        self._flush_interval = _check_seconds(
            "flush_interval", flush_interval, zero=False
        )
        self._send_timeout = _check_seconds("send_timeout", send_timeout, zero=False)
        self._retry_budget = _check_seconds("retry_budget", retry_budget)
        self._backoff_initial = _check_seconds("backoff_initial", backoff_initial)
        self._backoff_max = _check_seconds("backoff_max", backoff_max)
        self._deferred_timeout = _check_seconds("deferred_timeout", deferred_timeout)
        self._exit_timeout = _check_seconds("exit_timeout", exit_timeout)
        self._on_drop = _check_hook("on_drop", on_drop)
        self._on_failure = _check_hook("on_failure", on_failure)
        _check_hook("on_invalid", on_invalid)
        self._transport = _build_transport(transport, endpoint, api_key)

        self._drop_log = RateLimitedLog(logger)
        self._retry_log = RateLimitedLog(logger)
        self._failure_log = RateLimitedLog(logger, logging.ERROR)
        # Written by close() under _close_lock: its result, once closed.
        self._close_result: bool | None = None
        # Set once, on the first drop of a BLOCK record made on an event loop.
        self._warned_loop = False
        self._reset_state()
        self._exit_hook = _ExitHook(self)
        atexit.register(self._exit_hook)
        weakref.finalize(self, atexit.unregister, self._exit_hook).atexit = False
        _LIVE.add(self)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<BufferedRecorder {state} policy={self._policy.value} "
            f"capacity={self._capacity} depth={len(self._buffer)}>"
        )

    def stats(self) -> Stats:
        """Return a consistent snapshot of the counters. Thread-safe; never blocks
        on the worker."""
        self._check_fork()
        with self._lock:
            return self._counts.freeze(
                depth=len(self._buffer), in_flight=self._in_flight
            )

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event enqueued before the call is delivered or failed.

        A barrier: the worker sends what is buffered at once, without waiting for
        a full batch, and the call returns True when each of those events was
        delivered, or definitively failed and reported to ``on_failure``. Events
        enqueued meanwhile are not waited for. Unlike :meth:`close`, the recorder
        keeps accepting events.

        Blocks the calling thread for at most ``timeout`` seconds, counted from the
        call (``None`` waits as long as delivery takes, which ``retry_budget`` and
        ``send_timeout`` bound). At the timeout it returns False and the events
        stay queued; nothing is dropped. Thread-safe.
        """
        self._check_fork()
        deadline = _deadline_after(timeout)
        with self._lock:
            target = self._counts.enqueued
            if self._is_settled_through(target):
                return True
            if self._worker is not None and self._worker.is_current():
                return False
            self._flush_target = max(self._flush_target, target)
            self._ensure_worker()
            if self._worker is None:
                return False  # no worker can run (interpreter exit): nothing moves
            self._wake_worker()
            return self._wait_settled(target, deadline)

    def close(self, timeout: float | None = None) -> bool:
        """Deliver what is buffered, stop the worker and close the transport.

        Later records return :attr:`Outcome.CLOSED` at once, and callers waiting
        for space under :attr:`Policy.BLOCK` get ``CLOSED``. Blocks for at most
        ``timeout`` seconds from the call (``None`` waits as long as delivery
        takes). Events still undelivered at the timeout, whether buffered, in a
        batch in backoff or in a send that hangs, are reported to ``on_failure``
        and logged with their count; the call then returns False. Idempotent: a
        second call returns the first one's result at once. Thread-safe.

        Returns:
            True if every event was delivered or definitively failed in time.

        Note:
            A send that hangs past the timeout keeps the worker thread (a daemon)
            until the transport returns; the transport is closed only then, and
            whatever that send reports is ignored.
        """
        result = self._close_once(timeout)
        atexit.unregister(self._exit_hook)
        return result

    # Recording. RecorderBase has applied every rule but the buffer's policy.

    def _put(
        self,
        wire: dict[str, Any],
        event: Event,
        timeout: float | None,
        current: Scope | None,
    ) -> Outcome:
        # The hot path: one lock hold, an append and two counters.
        if self._pid != _getpid():
            self._check_fork()
        if self._block:
            if _is_loop_running():
                return self._put_no_wait(wire, event)
            return self._put_waiting(wire, _deadline_for(timeout, current), current)
        evicted = None
        with self._lock:
            if self._closed:
                return Outcome.CLOSED
            if len(self._buffer) < self._capacity:
                self._append(wire)
                return Outcome.ENQUEUED
            self._counts.dropped += 1
            if self._policy is Policy.DROP_OLDEST:
                evicted = self._evict_and_append(wire)
        return self._report_full(event, evicted)

    async def _aput(
        self,
        wire: dict[str, Any],
        event: Event,
        timeout: float | None,
        current: Scope | None,
    ) -> Outcome:
        if not self._block:
            return self._put(wire, event, timeout, current)
        self._check_fork()
        with self._lock:
            if self._closed:
                return Outcome.CLOSED
            if self._has_room():
                self._append(wire)
                return Outcome.ENQUEUED
            deadline = _deadline_for(timeout, current)
            if _has_passed(deadline):
                return self._finish_wait(_gave_up(current), wire)
            end = await self._waiters.await_slot(deadline, current)
            return self._finish_wait(end, wire)

    def _refuses_new_events(self) -> bool:
        # Read without the lock, so only a hint; _refuse decides under it. In a
        # forked child the inherited buffer is not this process's: no shortcut.
        return (
            len(self._buffer) >= self._capacity
            and self._policy is Policy.DROP_NEWEST
            and self._pid == _getpid()
        )

    def _refuse(self, event: Event) -> Outcome | None:
        with self._lock:
            if self._closed:
                return Outcome.CLOSED
            if len(self._buffer) < self._capacity:
                return None
            self._counts.dropped += 1
        return self._report_full(event, None)

    def _put_deferred(self, wire: dict[str, Any], event: Event) -> Outcome:
        self._check_fork()
        if not self._block or _is_loop_running():
            return self._put_no_wait(wire, event)
        deadline = _monotonic() + self._deferred_timeout
        with self._lock:
            end = self._waiters.wait(deadline, None) if not self._has_room() else None
            outcome = self._finish_deferred(end, wire)
        return self._report_deferred(outcome, event)

    async def _aput_deferred(self, wire: dict[str, Any], event: Event) -> Outcome:
        self._check_fork()
        if not self._block:
            return self._put_no_wait(wire, event)
        deadline = _monotonic() + self._deferred_timeout
        try:
            with self._lock:
                end = None
                if not self._has_room():
                    end = await self._waiters.await_slot(deadline, None)
                outcome = self._finish_deferred(end, wire)
        except BaseException:
            # The task was cancelled while the scope it deferred to was closing:
            # the event is lost, so it is reported as dropped before re-raising.
            self._count("dropped")
            self._report_drop(event, DropReason.BUFFER_FULL)
            raise
        return self._report_deferred(outcome, event)

    def _report_closed_deferred(self, event: Event) -> None:
        super()._report_closed_deferred(event)
        self._call_on_drop(event, DropReason.RECORDER_CLOSED)

    def _put_no_wait(self, wire: dict[str, Any], event: Event) -> Outcome:
        evicted = None
        with self._lock:
            if self._closed:
                return Outcome.CLOSED
            if self._has_room():
                self._append(wire)
                return Outcome.ENQUEUED
            self._counts.dropped += 1
            if self._policy is Policy.DROP_OLDEST:
                evicted = self._evict_and_append(wire)
        return self._report_full(event, evicted)

    def _put_waiting(
        self, wire: dict[str, Any], deadline: float | None, current: Scope | None
    ) -> Outcome:
        with self._lock:
            if self._closed:
                return Outcome.CLOSED
            if self._has_room():
                self._append(wire)
                return Outcome.ENQUEUED
            if _has_passed(deadline):
                return self._finish_wait(_gave_up(current), wire)
            end = self._waiters.wait(deadline, current)
            return self._finish_wait(end, wire)

    # The helpers below run with self._lock held.

    def _has_room(self) -> bool:
        # Under BLOCK a newcomer never overtakes a waiter, and slots handed to
        # waiters that are still waking up count as taken.
        waiters = self._waiters
        free = self._capacity - len(self._buffer) - waiters.reserved
        return free > 0 and not waiters

    def _append(self, wire: dict[str, Any]) -> None:
        self._buffer.append(wire)
        self._counts.enqueued += 1
        if len(self._buffer) >= self._wake_at:
            self._wake_worker()
        if self._worker is None:
            self._ensure_worker()

    def _evict_and_append(self, wire: dict[str, Any]) -> dict[str, Any]:
        evicted = self._buffer.popleft()
        self._taken += 1
        self._counts.evicted += 1
        self._append(wire)
        if self._flush_waiters:
            self._settled.notify_all()
        return evicted

    def _finish_wait(self, end: WaitEnd, wire: dict[str, Any]) -> Outcome:
        if end is WaitEnd.GRANTED:
            if self._stopped:
                return Outcome.CLOSED
            self._append(wire)
            return Outcome.ENQUEUED
        if end is WaitEnd.CANCELLED:
            self._counts.cancelled += 1
            return Outcome.CANCELLED
        if end is WaitEnd.CLOSED:
            return Outcome.CLOSED
        self._counts.timed_out += 1
        return Outcome.TIMED_OUT

    def _finish_deferred(self, end: WaitEnd | None, wire: dict[str, Any]) -> Outcome:
        if self._closed and end is not WaitEnd.GRANTED:
            return Outcome.CLOSED
        if end is None or (end is WaitEnd.GRANTED and not self._stopped):
            self._append(wire)
            return Outcome.ENQUEUED
        if end is WaitEnd.GRANTED or end is WaitEnd.CLOSED:
            return Outcome.CLOSED
        self._counts.dropped += 1
        return Outcome.DROPPED

    # Reporting, without the lock.

    def _report_full(self, event: Event, evicted: dict[str, Any] | None) -> Outcome:
        """Report what a full buffer did: evicted the oldest event, or dropped
        this one."""
        if evicted is not None:
            self._report_drop(evicted, DropReason.EVICTED)
            return Outcome.ENQUEUED
        if self._block:
            self._warn_loop_once()
        self._report_drop(event, DropReason.BUFFER_FULL)
        return Outcome.DROPPED

    def _report_deferred(self, outcome: Outcome, event: Event) -> Outcome:
        if outcome is Outcome.DROPPED:
            self._report_drop(event, DropReason.BUFFER_FULL)
        elif outcome is Outcome.CLOSED:
            self._report_closed_deferred(event)
        return outcome

    def _report_drop(self, event: Event | dict[str, Any], reason: DropReason) -> None:
        self._drop_log.log(
            "auditkit: dropped an event (%s): the buffer of %d events is full under "
            "policy %s",
            reason.value,
            self._capacity,
            self._policy.value,
        )
        if self._on_drop is not None:
            self._call_on_drop(event, reason)

    def _call_on_drop(self, event: Event | dict[str, Any], reason: DropReason) -> None:
        if self._on_drop is None:
            return
        try:
            if isinstance(event, dict):
                event = Event.from_wire(event)
            self._on_drop(event, reason)
        except Exception:
            if self._hook_errors.is_due():
                logger.exception("auditkit: the on_drop hook raised")

    def _warn_loop_once(self) -> None:
        if self._warned_loop:
            return
        self._warned_loop = True
        logger.warning(
            "auditkit: an event met a full buffer under Policy.BLOCK on a thread "
            "running an event loop; it was dropped rather than block the loop. In "
            "async code use 'await recorder.arecord(event)' and "
            "'async with auditkit.scope()'."
        )

    # The worker.

    def _ensure_worker(self) -> None:
        """Start the worker if it is not running; called with the lock held."""
        if self._worker is not None or self._stopped:
            return
        worker = _Worker()
        try:
            # Not threading.Thread.start(), which waits until the new thread
            # runs: the first record() must not wait on the worker either.
            _thread.start_new_thread(self._run_worker, (worker,))
        except RuntimeError:
            # The interpreter is shutting down and refuses new threads: close()
            # reports what is buffered as undelivered. (No log line here: the
            # lock is held, and a logging handler might record an event.)
            return
        self._worker = worker

    def _wake_worker(self) -> None:
        self._wake_at = _NEVER
        self._work.notify()

    def _run_worker(self, worker: _Worker) -> None:
        # Limitation: the running worker holds the recorder, so a recorder that
        # recorded once stays alive until close() or interpreter exit, even when
        # the application dropped every reference to it.
        worker.started()
        try:
            while True:
                chunk = self._take_chunk()
                if chunk is None:
                    break
                try:
                    self._deliver_chunk(chunk)
                except Exception:
                    if self._hook_errors.is_due():
                        logger.exception("auditkit: the delivery worker failed")
                    self._settle_rest(chunk, "The delivery worker failed unexpectedly.")
        finally:
            with self._lock:
                if self._closed:
                    self._stopped = True
                else:
                    # Only a BaseException gets here: a later record starts anew.
                    self._worker = None
                self._settled.notify_all()
            if self._closed:
                self._close_transport()
            worker.finished()

    def _take_chunk(self) -> _Chunk | None:
        """Wait for events worth sending and take them out of the buffer.

        Returns None when the recorder is closed and drained, or gave up.
        """
        with self._lock:
            fill_deadline: float | None = None
            while not self._abandoned:
                count = len(self._buffer)
                if count >= self._batch_size or (count and self._is_urgent()):
                    return self._take(min(count, self._batch_size))
                if (
                    count
                    and fill_deadline is not None
                    and _monotonic() >= fill_deadline
                ):
                    return self._take(count)
                if self._closed and not count:
                    # Under the same lock hold as the check: a BLOCK waiter that
                    # was granted a slot now gets CLOSED instead of stranding it.
                    self._stopped = True
                    return None
                if count:
                    if fill_deadline is None:
                        fill_deadline = _monotonic() + self._flush_interval
                    self._wake_at = self._batch_size
                    self._work.wait(fill_deadline - _monotonic())
                else:
                    fill_deadline = None
                    self._wake_at = 1
                    self._work.wait()
                self._wake_at = _NEVER
            return None

    def _is_urgent(self) -> bool:
        return self._closed or self._flush_target > self._taken

    def _take(self, count: int) -> _Chunk:
        buffer = self._buffer
        wires = [buffer.popleft() for _ in range(count)]
        chunk = _Chunk(self._taken + 1, wires)
        self._taken += count
        self._in_flight += count
        self._chunk = chunk
        if self._block:
            free = self._capacity - len(buffer) - self._waiters.reserved
            self._waiters.grant(free)
        return chunk

    def _deliver_chunk(self, chunk: _Chunk) -> None:
        for item in self._cut_batches(chunk.wires):
            if self._abandoned:
                return
            if isinstance(item, Batch):
                self._deliver_batch(chunk, item, _monotonic() + self._retry_budget)
            else:
                self._settle(chunk, 1, 0, [item])

    def _cut_batches(
        self, wires: Sequence[dict[str, Any]]
    ) -> Iterator[Batch | tuple[dict[str, Any], str]]:
        """Encode events and group them into batches that respect the byte limit.

        Yields batches and, in their place in the order, events that can't be sent
        as ``(wire, reason)``. Each event goes into its batch's body as soon as it
        is encoded: keeping hundreds of encoded events alive on their own, to join
        them later, costs several times what encoding them does.
        """
        limit = self._max_batch_bytes
        events: list[dict[str, Any]] = []
        starts: list[int] = []
        body = bytearray(BODY_OPEN)
        for wire in wires:
            try:
                payload = encode_event(wire)
            except Exception as exc:  # pragma: no cover - snapshots encode
                yield (
                    wire,
                    f"The event could not be encoded as JSON: {type(exc).__name__}.",
                )
                continue
            # With a comma before it, and the closing bracket after.
            if events and len(body) + 1 + len(payload) + len(BODY_CLOSE) > limit:
                yield _finish_batch(events, body, starts)
                events, starts, body = [], [], bytearray(BODY_OPEN)
            if BATCH_OVERHEAD + len(payload) > limit:
                yield wire, "The event is larger than a batch may be."
                continue
            if events:
                body += b","
            starts.append(len(body))
            body += payload
            events.append(wire)
        if events:
            yield _finish_batch(events, body, starts)

    def _deliver_batch(self, chunk: _Chunk, batch: Batch, deadline: float) -> None:
        """Send ``batch`` until it settles, the retry budget runs out or close()
        gives up; a retry resends the same :class:`Batch`, so the same bytes."""
        attempt = 0
        while not self._abandoned:
            result = self._send_once(batch)
            status = result.status
            if status is SendStatus.DELIVERED:
                self._settle_delivered(chunk, batch, result.rejected)
                return
            if status is SendStatus.TOO_LARGE:
                self._split_and_deliver(chunk, batch, deadline, result.reason)
                return
            if status is not SendStatus.RETRY:
                self._settle_batch_failed(chunk, batch, result.reason or "Refused.")
                return
            delay = self._retry_delay(result, attempt)
            if _monotonic() + delay > deadline:
                reason = (
                    f"Gave up after {attempt + 1} attempts within the retry budget: "
                    f"{result.reason}"
                )
                self._settle_batch_failed(chunk, batch, reason)
                return
            self._note_retry(batch, result, delay)
            if self._abandon_signal.wait(delay):
                return
            attempt += 1

    def _split_and_deliver(
        self, chunk: _Chunk, batch: Batch, deadline: float, reason: str
    ) -> None:
        if len(batch) == 1:
            reason = f"The event is larger than the service accepts: {reason}"
            self._settle_batch_failed(chunk, batch, reason)
            return
        for half in batch.split():
            self._deliver_batch(chunk, half, deadline)

    def _send_once(self, batch: Batch) -> SendResult:
        try:
            result = self._transport.send(batch, timeout=self._send_timeout)
        except Exception:
            if self._transport_errors.is_due():
                logger.exception("auditkit: the transport raised; the batch is retried")
            return SendResult.retry("The transport raised an exception.")
        if not isinstance(result, SendResult):
            return SendResult.retry(
                f"The transport returned {type(result).__name__}, not a SendResult."
            )
        if logger.isEnabledFor(logging.DEBUG) and result.status is SendStatus.DELIVERED:
            logger.debug("auditkit: sent a batch of %d events", len(batch))
        return result

    def _retry_delay(self, result: SendResult, attempt: int) -> float:
        after = result.retry_after
        if after is not None and math.isfinite(after) and after >= 0:
            return after
        return backoff_delay(
            attempt, initial=self._backoff_initial, maximum=self._backoff_max
        )

    def _note_retry(self, batch: Batch, result: SendResult, delay: float) -> None:
        with self._lock:
            self._counts.retried += 1
        self._retry_log.log(
            "auditkit: a batch of %d events was not delivered (%s); retrying in %.2f s",
            len(batch),
            result.reason,
            delay,
        )

    # Settling: moving events from in flight to delivered or failed.

    def _settle_delivered(
        self, chunk: _Chunk, batch: Batch, rejected: Mapping[int, str]
    ) -> None:
        failures = [
            (batch.events[index], f"Rejected by the service: {why}")
            for index, why in sorted(rejected.items())
            if 0 <= index < len(batch)
        ]
        self._settle(chunk, len(batch), len(batch) - len(failures), failures)

    def _settle_batch_failed(self, chunk: _Chunk, batch: Batch, reason: str) -> None:
        self._settle(chunk, len(batch), 0, [(wire, reason) for wire in batch.events])

    def _settle(
        self,
        chunk: _Chunk,
        count: int,
        delivered: int,
        failures: list[tuple[dict[str, Any], str]],
    ) -> None:
        """Settle the next ``count`` events of ``chunk``, in order.

        The events are claimed first, so that close() can't report them too, then
        reported, then counted: flush() returns only after the report.
        """
        with self._lock:
            if chunk.abandoned:
                return
            chunk.claimed += count
        self._report_failures(failures)
        with self._lock:
            chunk.settled += count
            self._counts.delivered += delivered
            self._counts.failed += len(failures)
            self._in_flight -= count
            if chunk.settled == len(chunk.wires) or (
                chunk.abandoned and chunk.settled == chunk.claimed
            ):
                self._chunk = None
            self._settled.notify_all()

    def _settle_rest(self, chunk: _Chunk, reason: str) -> None:
        with self._lock:
            rest = chunk.wires[chunk.claimed :]
        if rest:
            self._settle(chunk, len(rest), 0, [(wire, reason) for wire in rest])

    def _report_failures(self, failures: list[tuple[dict[str, Any], str]]) -> None:
        """Log and hand failed events to ``on_failure``, one call per reason."""
        by_reason: dict[str, list[dict[str, Any]]] = {}
        for wire, reason in failures:
            by_reason.setdefault(reason, []).append(wire)
        for reason, wires in by_reason.items():
            self._failure_log.log(
                "auditkit: %d events could not be delivered: %s", len(wires), reason
            )
            if self._on_failure is None:
                continue
            try:
                self._on_failure([Event.from_wire(wire) for wire in wires], reason)
            except Exception:
                if self._hook_errors.is_due():
                    logger.exception("auditkit: the on_failure hook raised")

    # Closing.

    def _shut_down(self, deadline: float | None) -> bool:
        with self._lock:
            self._closed = True
            self._waiters.release_all()
            if self._buffer:
                self._ensure_worker()
            worker = self._worker
            if worker is None:
                self._stopped = True
            else:
                self._wake_worker()
        if worker is None:
            lost = self._abandon("The delivery worker could not be started.")
            self._close_transport()
            return lost == 0
        if worker.is_current():
            return False  # close() from a hook: the worker stops when it returns
        if worker.done.wait(_remaining(deadline)):
            return True
        # Limitation: a transport that ignores its timeout keeps the worker thread
        # in send() after close() returns, and is closed only when send() returns.
        lost = self._abandon("close() timed out before the events were delivered.")
        return lost == 0

    def _abandon(self, reason: str) -> int:
        """Fail every event not yet settled, and stop the worker's retries.

        A send that is still running keeps its thread until it returns; what it
        then reports is ignored, as its events were already reported here.
        """
        with self._lock:
            self._abandoned = True
            self._stopped = True
            self._abandon_signal.set()
            lost = list(self._buffer)
            self._buffer.clear()
            self._taken += len(lost)
            chunk = self._chunk
            in_flight = 0
            if chunk is not None and not chunk.abandoned:
                unclaimed = chunk.wires[chunk.claimed :]
                chunk.abandoned = True
                in_flight = len(unclaimed)
                lost.extend(unclaimed)
                if chunk.claimed == chunk.settled:
                    self._chunk = None
            self._in_flight -= in_flight
            self._counts.failed += len(lost)
            self._work.notify()
            self._settled.notify_all()
        if lost:
            self._report_failures([(wire, reason) for wire in lost])
        return len(lost)

    def _close_transport(self) -> None:
        with self._lock:
            if self._transport_closed:
                return
            self._transport_closed = True
        try:
            self._transport.close()
        except Exception:
            if self._hook_errors.is_due():
                logger.exception("auditkit: closing the transport raised")

    def _close_once(self, timeout: float | None) -> bool:
        self._check_fork()
        with self._close_lock:
            if self._close_result is None:
                self._close_result = self._shut_down(_deadline_after(timeout))
            return self._close_result

    def _close_at_exit(self) -> None:
        try:
            self._close_once(self._exit_timeout)
        except Exception:  # pragma: no cover - close() reports instead of raising
            logger.exception("auditkit: closing the recorder at exit failed")

    # Flush barrier and fork safety.

    def _is_settled_through(self, seq: int) -> bool:
        """Whether the events enqueued as number 1 to ``seq`` are all settled.

        Events leave the buffer in order (taken by the worker or evicted), and the
        worker settles the events it took in order, one chunk at a time.
        """
        if self._taken < seq:
            return False
        chunk = self._chunk
        return chunk is None or chunk.first_seq + chunk.settled > seq

    def _wait_settled(self, seq: int, deadline: float | None) -> bool:
        self._flush_waiters += 1
        try:
            while not self._is_settled_through(seq):
                remaining = _remaining(deadline)
                if remaining is not None and remaining <= 0:
                    return False
                self._settled.wait(remaining)
            return True
        finally:
            self._flush_waiters -= 1

    def _check_fork(self) -> None:
        """Start afresh in a child process the fork hooks did not reach."""
        if self._pid == _getpid():
            return
        with _fork_lock():
            if self._pid != _getpid():
                self._reset_after_fork()

    def _reset_after_fork(self) -> None:
        """Give a forked child an empty buffer, fresh locks and counters, and its
        own worker and connections; the parent delivers what it buffered."""
        self._lock = threading.Lock()
        self._invalid_log.reset_after_fork()
        self._drop_log.reset_after_fork()
        self._retry_log.reset_after_fork()
        self._failure_log.reset_after_fork()
        self._reset_state(closed=self._closed)
        reset = getattr(self._transport, "reset_after_fork", None)
        if callable(reset):
            try:
                reset()
            except Exception:
                if self._hook_errors.is_due():
                    logger.exception(
                        "auditkit: the transport's reset_after_fork failed"
                    )

    def _reset_state(self, *, closed: bool = False) -> None:
        """Set up the buffer, the worker's state and the counters, all empty."""
        self._pid = _getpid()
        self._counts = _Counters()
        self._close_lock = threading.Lock()
        self._hook_errors = _ExceptionLog()
        self._transport_errors = _ExceptionLog()
        self._work = threading.Condition(self._lock)
        self._settled = threading.Condition(self._lock)
        self._waiters = SlotQueue(self._lock)
        if closed:
            self._waiters.release_all()
        self._buffer = deque()
        self._taken = 0
        self._in_flight = 0
        self._chunk = None
        self._flush_target = 0
        self._flush_waiters = 0
        self._wake_at = _NEVER
        self._worker = None
        self._stopped = closed
        self._abandoned = False
        self._abandon_signal = threading.Event()
        self._transport_closed = closed
        self._closed = closed


@final
class _Chunk:
    """The events the worker took from the buffer in one go, settled in order.

    ``claimed`` and ``settled`` count from the start of :attr:`wires`; both are
    guarded by the recorder's lock and never decrease, and
    ``settled <= claimed <= len(wires)``.
    """

    __slots__ = ("abandoned", "claimed", "first_seq", "settled", "wires")

    def __init__(self, first_seq: int, wires: list[dict[str, Any]]) -> None:
        self.first_seq = first_seq
        self.wires = wires
        self.claimed = 0
        self.settled = 0
        self.abandoned = False


@final
class _Worker:
    """The handle of a worker thread: who it is, and whether it ended."""

    __slots__ = ("done", "ident")

    def __init__(self) -> None:
        #: The worker's thread id, once it runs.
        self.ident: int | None = None
        #: Set when the worker returned, after it closed the transport.
        self.done = threading.Event()

    def started(self) -> None:
        """Called first thing on the worker thread."""
        self.ident = threading.get_ident()
        # threading knows a thread it did not start only as a "dummy" one, made on
        # the first current_thread() call (here, and in every log record).
        threading.current_thread().name = "auditkit-recorder"

    def finished(self) -> None:
        """Called last thing on the worker thread."""
        _forget_dummy_thread()
        self.ident = None  # a later thread may reuse the id
        self.done.set()

    def is_current(self) -> bool:
        """Whether the calling thread is this worker."""
        return self.ident == threading.get_ident()


@final
class _ExitHook:
    """Closes a recorder at interpreter exit, without keeping it alive."""

    __slots__ = ("_ref",)

    def __init__(self, recorder: BufferedRecorder) -> None:
        self._ref = weakref.ref(recorder)

    def __call__(self) -> None:
        recorder = self._ref()
        if recorder is not None:
            recorder._close_at_exit()


@final
class _ExceptionLog:
    """Says when a traceback of one kind of failure may be logged again.

    For user hooks and transports that raise: the same bug would otherwise log a
    traceback per event. Races between threads at worst log one extra line.
    """

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: float | None = None

    def is_due(self) -> bool:
        """True at most once per minute."""
        now = _monotonic()
        if self._last is not None and now - self._last < _EXCEPTION_LOG_INTERVAL:
            return False
        self._last = now
        return True


# Recorders alive in this process, so the fork hook can reset them.
_LIVE: weakref.WeakSet[BufferedRecorder] = weakref.WeakSet()
_FORK_LOCKS = [threading.Lock()]


def _forget_dummy_thread() -> None:
    """Take the calling thread's "dummy" entry out of threading's registry.

    threading never forgets a dummy thread, so without this every worker that
    ended would stay in threading.enumerate(), which thread-leak checks count.
    """
    # Private parts of threading, the same from 3.11 on; if a later Python
    # changes them, this does nothing and only the listing is affected.
    active: Any = getattr(threading, "_active", None)
    guard: Any = getattr(threading, "_active_limbo_lock", None)
    dummy: Any = getattr(threading, "_DummyThread", None)
    if active is None or guard is None or dummy is None:  # pragma: no cover
        return
    ident = threading.get_ident()
    with guard:
        if isinstance(active.get(ident), dummy):
            del active[ident]


def _finish_batch(
    events: list[dict[str, Any]], body: bytearray, starts: list[int]
) -> Batch:
    body += BODY_CLOSE
    return Batch._from_body(events, bytes(body), starts)


def _fork_lock() -> threading.Lock:
    return _FORK_LOCKS[0]


def _after_fork_in_child() -> None:
    _FORK_LOCKS[0] = threading.Lock()
    for recorder in list(_LIVE):
        recorder._reset_after_fork()


if hasattr(os, "register_at_fork"):  # pragma: no branch - POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _build_transport(
    transport: Transport | None, endpoint: str | None, api_key: str | None
) -> Transport:
    if transport is not None:
        if not callable(getattr(transport, "send", None)) or not callable(
            getattr(transport, "close", None)
        ):
            raise ConfigurationError(
                f"transport must have send() and close() methods, got {transport!r}."
            )
        return transport
    if endpoint is None:
        raise ConfigurationError(
            "endpoint is required when no transport is given, got None."
        )
    if not isinstance(api_key, str) or not api_key:
        # The key itself is never shown, only what kind of value it was.
        raise ConfigurationError(
            f"api_key must be a non-empty string when no transport is given, got "
            f"{'an empty string' if api_key == '' else type(api_key).__name__}."
        )
    from ._http import HttpTransport

    return HttpTransport(endpoint, api_key)


def _check_int(name: str, value: object, low: int, high: int | None) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < low
        or (high is not None and value > high)
    ):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ConfigurationError(f"{name} must be an integer {bounds}, got {value!r}.")
    return value


def _check_seconds(name: str, value: object, *, zero: bool = True) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
        or (value == 0 and not zero)
    ):
        kind = "a finite number of seconds, at least 0" if zero else "a positive number"
        raise ConfigurationError(f"{name} must be {kind}, got {value!r}.")
    return float(value)


def _check_hook(name: str, hook: Any) -> Any:
    if hook is not None and not callable(hook):
        raise ConfigurationError(f"{name} must be callable or None, got {hook!r}.")
    return hook


def _deadline_after(timeout: float | None) -> float | None:
    return None if timeout is None else _monotonic() + max(timeout, 0.0)


def _deadline_for(timeout: float | None, current: Scope | None) -> float | None:
    """The earliest of the call's timeout and the scope's deadline."""
    deadline = _deadline_after(timeout)
    scope_deadline = current.deadline if current is not None else None
    if scope_deadline is None:
        return deadline
    return scope_deadline if deadline is None else min(deadline, scope_deadline)


def _has_passed(deadline: float | None) -> bool:
    return deadline is not None and _monotonic() >= deadline


def _gave_up(current: Scope | None) -> WaitEnd:
    """How a wait that never started ends: the scope's deadline, or the call's."""
    if current is not None and current.cancelled:
        return WaitEnd.CANCELLED
    return WaitEnd.TIMED_OUT


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(deadline - _monotonic(), 0.0)
