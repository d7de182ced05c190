"""Callers waiting for buffer space under ``Policy.BLOCK``, served in arrival order.

A recorder that runs out of space puts the caller in a :class:`SlotQueue`. When space
frees up, the recorder calls :meth:`SlotQueue.grant` and the oldest waiters are each
handed one slot: the slot is *reserved* for them, so a newcomer can't take it while the
waiter's thread or task is waking up. A waiter that gives up (timeout, cancellation)
before it is served simply leaves the queue; one that gives up after being served
passes its slot on to the next, so no slot is ever lost and no waiter is left behind.
"""

from __future__ import annotations

import asyncio
import enum
import threading
import time
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._scope import Scope

__all__ = ["SlotQueue", "WaitEnd"]


class WaitEnd(enum.Enum):
    """How a wait for space ended."""

    GRANTED = "granted"  # the caller holds a slot and must fill it now
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    CLOSED = "closed"  # the owner stopped taking events: see SlotQueue.release_all


class _Waiter:
    __slots__ = ("granted", "loop", "signal")

    def __init__(
        self,
        signal: threading.Event | asyncio.Future[None],
        loop: asyncio.AbstractEventLoop | None,
    ) -> None:
        self.granted = False
        self.signal = signal
        self.loop = loop

    def wake(self) -> None:
        if self.loop is None:
            assert isinstance(self.signal, threading.Event)
            self.signal.set()
            return
        try:
            self.loop.call_soon_threadsafe(self._resolve)
        except RuntimeError:  # pragma: no cover - the waiter's loop already closed
            pass

    def _resolve(self) -> None:
        assert isinstance(self.signal, asyncio.Future)
        if not self.signal.done():
            self.signal.set_result(None)


class SlotQueue:
    """A FIFO of callers waiting for a free slot in a bounded buffer.

    Args:
        lock: The owner's lock, which guards the buffer, this queue and
            :attr:`reserved`. :meth:`wait` and :meth:`await_slot` must be called
            with it held and return with it held; every other method expects it held.
    """

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        # Waiters not yet served, oldest first. Guarded by the owner's lock.
        self._queue: deque[_Waiter] = deque()
        #: Slots handed to waiters that have not filled them yet. The owner counts
        #: them as taken: free space is ``capacity - len(buffer) - reserved``.
        self.reserved = 0
        # Set once, under the owner's lock, by release_all().
        self._released = False

    def __len__(self) -> int:
        return len(self._queue)

    def grant(self, free: int) -> None:
        """Serve up to ``free`` of the oldest waiters, one slot each."""
        while free > 0 and self._queue:
            waiter = self._queue.popleft()
            waiter.granted = True
            self.reserved += 1
            free -= 1
            waiter.wake()

    def clear(self) -> None:
        """Forget every waiter and reservation (a forked child's fresh start)."""
        self._queue.clear()
        self.reserved = 0
        self._released = False

    def release_all(self) -> None:
        """Send every waiter not yet served away with :attr:`WaitEnd.CLOSED`.

        For an owner that is closing: waiters already served keep their slot, and
        later calls to :meth:`wait` or :meth:`await_slot` return ``CLOSED`` at once.
        """
        self._released = True
        waiters = list(self._queue)
        self._queue.clear()
        for waiter in waiters:
            waiter.wake()

    def wait(self, deadline: float | None, scope: Scope | None) -> WaitEnd:
        """Block the calling thread until it is served a slot, ``deadline`` passes
        (``time.monotonic()``) or ``scope`` is cancelled.

        On :attr:`WaitEnd.GRANTED` the caller's reservation is already released from
        :attr:`reserved`: it must fill the slot before it releases the lock.
        """
        if self._released:
            return WaitEnd.CLOSED
        deadline = _earliest(deadline, scope.deadline if scope is not None else None)
        signal = threading.Event()
        waiter = _Waiter(signal, None)
        self._queue.append(waiter)
        unregister = scope._on_cancel(signal.set) if scope is not None else None
        try:
            self._lock.release()
            try:
                self._wait_signal(signal, deadline, scope)
            finally:
                self._lock.acquire()
        except BaseException:
            # KeyboardInterrupt and the like: leave no waiter or slot behind.
            self._give_up(waiter)
            raise
        finally:
            if unregister is not None:
                unregister()
        return self._settle(waiter, scope)

    async def await_slot(self, deadline: float | None, scope: Scope | None) -> WaitEnd:
        """Like :meth:`wait`, without blocking the event loop.

        If the task is cancelled, :class:`asyncio.CancelledError` propagates, with the
        lock held, after the waiter left the queue or passed its slot on.
        """
        if self._released:
            return WaitEnd.CLOSED
        deadline = _earliest(deadline, scope.deadline if scope is not None else None)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        waiter = _Waiter(future, loop)
        self._queue.append(waiter)
        unregister = scope._on_cancel(waiter.wake) if scope is not None else None
        self._lock.release()
        try:
            await self._await_signal(future, deadline, scope)
        except BaseException:
            self._lock.acquire()
            self._give_up(waiter)
            raise
        finally:
            if unregister is not None:
                unregister()
        self._lock.acquire()
        return self._settle(waiter, scope)

    @staticmethod
    def _wait_signal(
        signal: threading.Event, deadline: float | None, scope: Scope | None
    ) -> None:
        while not signal.is_set():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return
            signal.wait(remaining)
            if scope is not None and scope.cancelled:
                return

    @staticmethod
    async def _await_signal(
        future: asyncio.Future[None], deadline: float | None, scope: Scope | None
    ) -> None:
        while not future.done():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return
            try:
                await asyncio.wait_for(asyncio.shield(future), remaining)
            except TimeoutError:
                return
            if scope is not None and scope.cancelled:
                return

    def _settle(self, waiter: _Waiter, scope: Scope | None) -> WaitEnd:
        cancelled = scope is not None and scope.cancelled
        if waiter.granted and not cancelled:
            self.reserved -= 1
            return WaitEnd.GRANTED
        self._give_up(waiter)
        if cancelled:
            return WaitEnd.CANCELLED
        return WaitEnd.CLOSED if self._released else WaitEnd.TIMED_OUT

    def _give_up(self, waiter: _Waiter) -> None:
        if waiter.granted:
            # Served just as it gave up: pass the slot on to the next in line.
            self.reserved -= 1
            if not self._released:
                self.grant(1)
        else:
            try:
                self._queue.remove(waiter)
            except ValueError:  # sent away by release_all()
                pass


def _earliest(a: float | None, b: float | None) -> float | None:
    # A scope's deadline ends a wait even when the call set no timeout of its own.
    if a is None or b is None:
        return b if a is None else a
    return min(a, b)
