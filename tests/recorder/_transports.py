"""Transports and helpers for the buffered recorder's tests.

Every transport here records what it was asked to send under one condition, so a
test can wait for the worker to reach a point (a send entered, N events sent) with
a deadline instead of sleeping.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from auditkit import Actor, Batch, BufferedRecorder, Event, SendResult, Stats

__all__ = [
    "BOUND",
    "FailingTransport",
    "HangingTransport",
    "RecordingTransport",
    "ScriptedTransport",
    "add_up",
    "make_event",
    "numbers",
    "recorder",
    "until",
    "wait_for",
    "watch_waiters",
]

#: The generous bound on any wait in these tests, in seconds: only a real
#: blocking bug gets near it.
BOUND = 10.0


def make_event(n: int, action: str = "doc.read", **fields: Any) -> Event:
    """An event numbered ``n`` through its metadata, so order can be checked."""
    return Event(action=action, actor=Actor("user", "u1"), metadata={"n": n}, **fields)


def numbers(wires: Iterable[dict[str, Any]]) -> list[int]:
    """The numbers of the events, in order."""
    return [wire["metadata"]["n"] for wire in wires]


def add_up(stats: Stats) -> bool:
    """Whether the counters account for every enqueued event exactly once."""
    return stats.enqueued == (
        stats.delivered + stats.failed + stats.evicted + stats.depth + stats.in_flight
    )


def wait_for(
    predicate: Callable[[], bool], cond: threading.Condition, timeout: float = BOUND
) -> bool:
    """Wait on ``cond`` until ``predicate()`` holds or ``timeout`` passes."""
    with cond:
        return cond.wait_for(predicate, timeout)


class RecordingTransport:
    """Delivers every batch at once and keeps it."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        # Guarded by cond.
        self.batches: list[Batch] = []
        self.timeouts: list[float | None] = []
        self.closed = 0

    def send(self, batch: Batch, *, timeout: float | None = None) -> SendResult:
        with self.cond:
            self.batches.append(batch)
            self.timeouts.append(timeout)
            self.cond.notify_all()
        return SendResult.delivered()

    def close(self) -> None:
        with self.cond:
            self.closed += 1
            self.cond.notify_all()

    @property
    def wires(self) -> list[dict[str, Any]]:
        """Every event sent, in order."""
        with self.cond:
            return [wire for batch in self.batches for wire in batch.events]

    def wait_events(self, count: int) -> bool:
        """Wait until ``count`` events were sent."""
        return wait_for(lambda: len(self.wires) >= count, self.cond)


class FailingTransport(RecordingTransport):
    """Refuses every batch for good."""

    def send(self, batch: Batch, *, timeout: float | None = None) -> SendResult:
        super().send(batch, timeout=timeout)
        return SendResult.failed("The service said no.")


class HangingTransport(RecordingTransport):
    """Parks every send until :attr:`release` is set (then delivers everything),
    or until :meth:`allow` lets one through."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        # Guarded by cond: sends that started, sends still parked, and sends
        # allowed through before release.
        self.entered = 0
        self.parked = 0
        self.permits = 0

    def send(self, batch: Batch, *, timeout: float | None = None) -> SendResult:
        with self.cond:
            self.entered += 1
            self.parked += 1
            self.cond.notify_all()
            self.cond.wait_for(self._may_pass, BOUND * 3)
            self.parked -= 1
            if not self.release.is_set():
                self.permits -= 1
        return super().send(batch, timeout=timeout)

    def allow(self, count: int = 1) -> None:
        """Let ``count`` more sends through."""
        with self.cond:
            self.permits += count
            self.cond.notify_all()

    def open(self) -> None:
        """Let every send through, now and later."""
        with self.cond:
            self.release.set()
            self.cond.notify_all()

    def wait_parked(self, count: int = 1) -> bool:
        """Wait until ``count`` sends are parked."""
        return wait_for(lambda: self.parked >= count, self.cond)

    def _may_pass(self) -> bool:
        return self.release.is_set() or self.permits > 0


class ScriptedTransport(RecordingTransport):
    """Answers each send with the next scripted result, or raises it; delivers
    when the script runs out."""

    def __init__(self, script: Iterable[SendResult | BaseException]) -> None:
        super().__init__()
        self.script: collections.deque[SendResult | BaseException] = collections.deque(
            script
        )
        # Guarded by cond: every batch handed to send(), with its time.
        self.attempts: list[tuple[Batch, float]] = []

    def send(self, batch: Batch, *, timeout: float | None = None) -> SendResult:
        with self.cond:
            self.attempts.append((batch, time.monotonic()))
            answer = self.script.popleft() if self.script else None
            self.cond.notify_all()
        if isinstance(answer, BaseException):
            raise answer
        if answer is None or answer.status.value == "delivered":
            super().send(batch, timeout=timeout)
        return answer if answer is not None else SendResult.delivered()

    def wait_attempts(self, count: int) -> bool:
        return wait_for(lambda: len(self.attempts) >= count, self.cond)


def recorder(transport: Any, **options: Any) -> BufferedRecorder:
    """A recorder on ``transport`` that sends quickly, for tests."""
    options.setdefault("flush_interval", 0.01)
    return BufferedRecorder(transport=transport, **options)


class _NotifyingDeque(collections.deque[Any]):
    """A deque that notifies a condition whenever it changes."""

    def __init__(self, cond: threading.Condition, items: Iterable[Any]) -> None:
        super().__init__(items)
        self._cond = cond

    def _changed(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def append(self, item: Any) -> None:
        super().append(item)
        self._changed()

    def popleft(self) -> Any:
        item = super().popleft()
        self._changed()
        return item

    def remove(self, item: Any) -> None:
        super().remove(item)
        self._changed()

    def clear(self) -> None:
        super().clear()
        self._changed()


def watch_waiters(recorder: BufferedRecorder) -> Callable[[int], bool]:
    """Return ``wait_waiters(n)``: waits until ``n`` callers wait for space."""
    cond = threading.Condition()
    slots = recorder._waiters
    slots._queue = _NotifyingDeque(cond, slots._queue)

    def wait_waiters(count: int) -> bool:
        return wait_for(lambda: len(slots) == count, cond)

    return wait_waiters


async def until(predicate: Callable[[], bool]) -> bool:
    """Yield to the event loop until ``predicate()`` holds, for at most
    :data:`BOUND`; for conditions that other tasks of the same loop bring about."""
    deadline = time.monotonic() + BOUND
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0)
    return True
