"""Cancellation guarantees: a cancelled record is as if it had never been called.

Under ``Policy.BLOCK`` with a full buffer, callers queue for space: threads in sync
scopes and tasks on a real event loop. For any interleaving of arrivals,
cancellations (``scope.cancel()``, ``task.cancel()``), deadlines (a scope's
``timeout``, a record's ``timeout``) and freed space, the recorder must serve the
waiters still waiting in arrival order, never one that gave up, leave no waiter or
reserved slot behind, and count exactly what the reference model counts.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import threading
from collections.abc import Callable
from typing import Any, Literal

import pytest
from hypothesis import given, strategies as st

import auditkit
from auditkit import Outcome, Policy

from ._guarantee_harness import (
    BufferedRig,
    InMemoryRig,
    Rig,
    RigFactory,
    Spec,
    WaiterWatch,
    check_stats_add_up,
    make_event,
)

RIGS = [
    pytest.param(InMemoryRig, id="in_memory"),
    pytest.param(BufferedRig, id="buffered"),
]

Fate = Literal["serve", "cancel", "task_cancel", "deadline", "timeout", "pre_cancelled"]
#: What a task got when it was cancelled: the error, not an outcome.
RAISED = "CancelledError"
#: A deadline short enough to pass while the caller waits.
SHORT = 0.02
#: How long a caller may take to return once it should: generous, yet short
#: enough that shrinking a counterexample where it never does stays quick.
WAKE_BOUND = 5.0
#: Sequence numbers of the events that fill the buffer, clear of the waiters'.
FILL_BASE = 1000


@dataclasses.dataclass(frozen=True)
class Caller:
    """One caller that records while the buffer may be full, as generated."""

    seq: int
    on_thread: bool
    fate: Fate


class Waiter:
    """A caller being played: its scope, task and what its record returned."""

    def __init__(self, caller: Caller) -> None:
        self.seq = caller.seq
        self.on_thread = caller.on_thread
        self.fate = caller.fate
        self.scope: auditkit.Scope | None = None
        self.result: Outcome | str | None = None
        self.done = threading.Event()
        self.task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        where = "thread" if self.on_thread else "task"
        return f"Waiter({self.seq}, {where}, {self.fate})"


def _caller(seq: int, on_thread: bool, fate: Fate) -> Caller:
    # A thread can't be cancelled like a task: it is cancelled through its scope.
    if on_thread and fate == "task_cancel":
        fate = "cancel"
    return Caller(seq, on_thread, fate)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[int, list[Caller], list[tuple[str, int]]]:
    """A capacity, the waiters in arrival order, and the steps to interleave."""
    capacity = draw(st.integers(1, 3))
    fates: st.SearchStrategy[Fate] = st.sampled_from(
        [
            "serve",
            "serve",
            "cancel",
            "task_cancel",
            "deadline",
            "timeout",
            "pre_cancelled",
        ]
    )
    waiters = [
        _caller(seq, draw(st.booleans()), draw(fates))
        for seq in range(draw(st.integers(0, 6)))
    ]
    steps = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["arrive", "cancel", "free", "cancel_as_served"]),
                st.integers(0, 5),
            ),
            max_size=16,
        )
    )
    return capacity, waiters, steps


@dataclasses.dataclass
class _Model:
    """The reference: a bounded buffer and a FIFO of live waiters."""

    capacity: int
    depth: int
    queue: collections.deque[Waiter] = dataclasses.field(
        default_factory=collections.deque
    )
    #: What reached the buffer, in order: each entry a set of sequence numbers
    #: whose order among themselves is free (waiters woken together).
    chunks: list[set[int]] = dataclasses.field(default_factory=list)
    counts: collections.Counter[str] = dataclasses.field(
        default_factory=collections.Counter
    )

    def has_space(self) -> bool:
        return self.depth < self.capacity and not self.queue


class _Run:
    """Plays one scenario against a rig, checking it against the model at each step."""

    def __init__(self, rig: Rig, callers: list[Caller]) -> None:
        self.rig = rig
        self.waiters = [Waiter(caller) for caller in callers]
        self.recorder: Any = rig.recorder
        self.model = _Model(rig.capacity, 0)
        self.watch = WaiterWatch(self.recorder._waiters)
        self.arrived = 0

    async def play(self, steps: list[tuple[str, int]]) -> None:
        self._fill()
        for step, k in steps:
            await self._step(step, k)
        while self.arrived < len(self.waiters):
            await self._arrive()
        for waiter in list(self.model.queue):
            if waiter.fate == "cancel" and waiter.on_thread:
                await self._cancel(waiter)
        # Tasks still waiting to be cancelled are cancelled just as they are
        # served, the moment where a slot is easiest to lose or to misdeliver.
        while self.model.queue:
            await self._cancel_as_served(0)
        self.rig.release()
        self._check_end()

    async def _step(self, step: str, k: int) -> None:
        if step == "arrive" and self.arrived < len(self.waiters):
            await self._arrive()
        elif step == "cancel":
            cancellable = [
                w for w in self.model.queue if w.fate in ("cancel", "task_cancel")
            ]
            if cancellable:
                await self._cancel(cancellable[k % len(cancellable)])
        elif step == "free":
            await self._free()
        elif step == "cancel_as_served":
            await self._cancel_as_served(k)

    def _fill(self) -> None:
        self.rig.hold()
        for i in range(self.model.capacity):
            event = make_event(FILL_BASE + i, Spec("valid"))
            assert self.recorder.record(event) is Outcome.ENQUEUED
            self._enqueued({FILL_BASE + i})

    def _enqueued(self, seqs: set[int]) -> None:
        self.model.depth += len(seqs)
        self.model.counts["enqueued"] += len(seqs)
        self.model.chunks.append(seqs)

    async def _arrive(self) -> None:
        waiter = self.waiters[self.arrived]
        self.arrived += 1
        will_queue = not self.model.has_space() and waiter.fate != "pre_cancelled"
        self._start(waiter)
        if not will_queue or waiter.fate in ("deadline", "timeout"):
            # It returns by itself: at once, or when its deadline passes.
            await self._finish(waiter, self._solo_outcome(waiter, will_queue))
        else:
            self.model.queue.append(waiter)
            expected = len(self.model.queue)
            queued = await asyncio.to_thread(
                self.watch.wait_len, lambda n: n >= expected or waiter.done.is_set()
            )
            assert queued, f"{waiter} never queued for space"
            assert not waiter.done.is_set(), (
                f"{waiter} should wait for space, but returned {waiter.result}"
            )
        self._check_waiters()

    def _solo_outcome(self, waiter: Waiter, will_queue: bool) -> Outcome:
        if waiter.fate == "pre_cancelled" or (will_queue and waiter.fate == "deadline"):
            self.model.counts["cancelled"] += 1
            return Outcome.CANCELLED
        if will_queue:
            self.model.counts["timed_out"] += 1
            return Outcome.TIMED_OUT
        self._enqueued({waiter.seq})
        return Outcome.ENQUEUED

    async def _cancel(self, waiter: Waiter) -> None:
        self.model.queue.remove(waiter)
        if waiter.fate == "task_cancel":
            assert waiter.task is not None
            waiter.task.cancel()
        else:
            assert waiter.scope is not None
            waiter.scope.cancel()
        await self._finish_cancelled(waiter)
        self._check_waiters()

    async def _free(self) -> None:
        model = self.model
        if model.depth == 0:
            return
        self.rig.free()
        model.depth -= 1 if self.rig.frees_one else model.depth
        await self._serve(model.capacity - model.depth)

    async def _cancel_as_served(self, k: int) -> None:
        """Free space and cancel a task it is handed to, before the task runs again.

        The task was granted a slot and then gave up, both while the event loop was
        busy here: it must pass the slot on to the next in line, and return as any
        cancelled caller does. Nothing waits on a race, so this is deterministic.
        """
        model = self.model
        if model.depth == 0:
            return
        left = model.depth - 1 if self.rig.frees_one else 0
        served = list(model.queue)[: model.capacity - left]
        candidates = [
            w for w in served if not w.on_thread and w.fate in ("cancel", "task_cancel")
        ]
        if not candidates:
            await self._free()
            return
        waiter = candidates[k % len(candidates)]
        self.rig.free()  # the grant is made; the task's wake-up waits for the loop
        if waiter.fate == "task_cancel":
            assert waiter.task is not None
            waiter.task.cancel()
        else:
            assert waiter.scope is not None
            waiter.scope.cancel()
        model.depth = left
        model.queue.remove(waiter)
        await self._finish_cancelled(waiter)
        await self._serve(model.capacity - model.depth)

    async def _finish_cancelled(self, waiter: Waiter) -> None:
        if waiter.fate == "task_cancel":
            await self._finish(waiter, RAISED)
        else:
            self.model.counts["cancelled"] += 1
            await self._finish(waiter, Outcome.CANCELLED)

    async def _serve(self, free: int) -> None:
        """Expect the oldest ``free`` waiters of the model to be served."""
        model = self.model
        served = [model.queue.popleft() for _ in range(min(free, len(model.queue)))]
        for waiter in served:
            await self._finish(waiter, Outcome.ENQUEUED)
        if served:
            self._enqueued({w.seq for w in served})
        self._check_waiters()

    async def _finish(self, waiter: Waiter, want: Outcome | str) -> None:
        ended = await asyncio.to_thread(waiter.done.wait, WAKE_BOUND)
        assert ended, f"{waiter} still waiting; expected {want}"
        assert waiter.result == want, f"{waiter} got {waiter.result}, expected {want}"

    def _start(self, waiter: Waiter) -> None:
        if waiter.on_thread:
            threading.Thread(
                target=self._in_thread, args=(waiter,), daemon=True
            ).start()
        else:
            waiter.task = asyncio.create_task(self._in_task(waiter))

    def _in_thread(self, waiter: Waiter) -> None:
        try:
            with self._open_scope(waiter):
                waiter.result = self.recorder.record(
                    make_event(waiter.seq, Spec("valid")), timeout=_timeout(waiter)
                )
        finally:
            self._note_done(waiter)

    async def _in_task(self, waiter: Waiter) -> None:
        try:
            async with self._open_scope(waiter):
                waiter.result = await self.recorder.arecord(
                    make_event(waiter.seq, Spec("valid")), timeout=_timeout(waiter)
                )
        except asyncio.CancelledError:
            waiter.result = RAISED
            raise
        finally:
            self._note_done(waiter)

    def _note_done(self, waiter: Waiter) -> None:
        waiter.done.set()
        with self.watch.cond:
            self.watch.cond.notify_all()

    def _open_scope(self, waiter: Waiter) -> Any:
        context = auditkit.scope(timeout=SHORT if waiter.fate == "deadline" else None)
        return _Bind(context, waiter)

    def _check_waiters(self) -> None:
        with self.recorder._lock:
            queued = len(self.recorder._waiters)
            reserved = self.recorder._waiters.reserved
        assert queued == len(self.model.queue), (
            f"{queued} waiters queued, expected {list(self.model.queue)}"
        )
        assert reserved == 0, f"{reserved} slots left reserved"
        self._check_counts(settled=False)

    def _check_counts(self, *, settled: bool) -> None:
        stats = self.rig.stats()
        want = {
            "enqueued": self.model.counts["enqueued"] + self.rig.own_enqueued,
            "cancelled": self.model.counts["cancelled"],
            "timed_out": self.model.counts["timed_out"],
            "dropped": 0,
        }
        if settled:
            want["delivered"] = want["enqueued"]
            want["depth"] = 0
        actual = {name: getattr(stats, name) for name in want}
        assert actual == want, f"stats {actual} != expected {want}"
        check_stats_add_up(stats)

    def _check_end(self) -> None:
        delivered = self.rig.delivered()
        gave_up = {w.seq for w in self.waiters if w.result != Outcome.ENQUEUED}
        assert not gave_up & set(delivered), "a waiter that gave up was delivered"
        position = 0
        for chunk in self.model.chunks:
            got = set(delivered[position : position + len(chunk)])
            assert got == chunk, f"delivered {delivered}, expected {self.model.chunks}"
            position += len(chunk)
        assert position == len(delivered), f"extra events delivered: {delivered}"
        self._check_counts(settled=True)

    def cancel_everything(self) -> None:
        for waiter in self.waiters:
            if waiter.scope is not None:
                waiter.scope.cancel()
            if waiter.task is not None:
                waiter.task.cancel()


class _Bind:
    """Opens a scope for a waiter and stores it on the waiter, sync or async."""

    def __init__(self, context: Any, waiter: Waiter) -> None:
        self._context = context
        self._waiter = waiter

    def __enter__(self) -> auditkit.Scope:
        return self._bound(self._context.__enter__())

    def __exit__(self, *exc: Any) -> None:
        self._context.__exit__(*exc)

    async def __aenter__(self) -> auditkit.Scope:
        return self._bound(await self._context.__aenter__())

    async def __aexit__(self, *exc: Any) -> None:
        await self._context.__aexit__(*exc)

    def _bound(self, scope: auditkit.Scope) -> auditkit.Scope:
        self._waiter.scope = scope
        if self._waiter.fate == "pre_cancelled":
            scope.cancel()
        return scope


def _timeout(waiter: Waiter) -> float | None:
    return SHORT if waiter.fate == "timeout" else None


def cancel_property(make_rig: RigFactory) -> Callable[[], None]:
    """The cancellation property against recorders that ``make_rig`` builds."""

    @given(scenario=scenarios())
    def prop(scenario: tuple[int, list[Caller], list[tuple[str, int]]]) -> None:
        capacity, callers, steps = scenario
        rig = make_rig(capacity=capacity, policy=Policy.BLOCK, batch_size=1)
        run = _Run(rig, callers)

        async def main() -> None:
            try:
                await run.play(steps)
            finally:
                run.cancel_everything()
                await asyncio.sleep(0)

        try:
            asyncio.run(main())
        finally:
            rig.dispose()

    return prop


@pytest.mark.parametrize("make_rig", RIGS)
def test_a_cancelled_record_is_as_if_it_had_never_been_called(
    make_rig: RigFactory,
) -> None:
    cancel_property(make_rig)()
