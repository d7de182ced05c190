"""Rigs, instrumented transports and reference models for the guarantee properties.

A *rig* wraps one recorder under test behind the few operations the properties
need: hold the worker, record, free space, release everything and read what was
delivered. The same property then runs against the in-memory recorder and the
buffered one, and against deliberately broken copies of them (the mutants).
"""

from __future__ import annotations

import collections
import dataclasses
import sys
import threading
import time
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any, Literal, Protocol

from hypothesis import strategies as st

import auditkit
from auditkit import (
    Actor,
    Batch,
    DropReason,
    Event,
    Outcome,
    Policy,
    Result,
    SendResult,
    Stats,
    Target,
)
from auditkit._waiters import SlotQueue
from auditkit_testing import InMemoryRecorder

__all__ = [
    "BOUND",
    "PLUG_SEQ",
    "RETURN_BOUND",
    "UNTAGGED",
    "BufferedRig",
    "DropModel",
    "GateTransport",
    "InMemoryRig",
    "Kind",
    "Rig",
    "RigFactory",
    "Spec",
    "WaitDetector",
    "WaiterWatch",
    "check_stats",
    "check_stats_add_up",
    "drive_without_suspending",
    "expected_stats",
    "make_event",
    "probe_locks",
    "rich_specs",
    "run_in_thread",
    "seq_of",
    "spec_lists",
    "specs",
    "wait_for",
]

#: A generous upper bound, in seconds, for anything that should be quick: only a
#: real blocking bug (a deadlock, an ignored timeout) ever reaches it.
BOUND = 20.0
#: A bound, in seconds, for a call that must return at once or within a timeout of
#: a few hundredths of a second: still generous, yet short enough that shrinking a
#: counterexample in which it never returns stays quick.
RETURN_BOUND = 5.0
#: The sequence number of the event the worker takes first, to hold it in send().
PLUG_SEQ = -1
#: What :func:`seq_of` returns for an event that carries no sequence number.
UNTAGGED = -2
#: Where an event's sequence number travels, so delivered events can be told apart.
SEQ_KEY = "seq"

Kind = Literal["valid", "no_action", "invalid"]


@dataclasses.dataclass(frozen=True)
class Spec:
    """What to record: an event of some kind, as a small content variant or as a
    full event drawn from :mod:`auditkit_testing.strategies`."""

    kind: Kind
    variant: int = 0
    event: Event | None = None


def specs() -> st.SearchStrategy[Spec]:
    """Small hand-made events: mostly valid, some with no action, some invalid.

    They cost little to draw, so lists of them grow long enough to overflow a
    buffer, and they shrink to readable counterexamples.
    """
    kinds: list[Kind] = ["valid", "valid", "valid", "no_action", "invalid"]
    return st.builds(Spec, st.sampled_from(kinds), st.integers(0, 3))


@st.composite
def spec_lists(draw: st.DrawFn, max_size: int = 20) -> list[Spec]:
    """Sequences of records: small events, with a few rich ones mixed in."""
    records = draw(st.lists(specs(), max_size=max_size))
    for spec in draw(st.lists(rich_specs(), max_size=2)):
        records.insert(draw(st.integers(0, len(records))), spec)
    return records


def rich_specs() -> st.SearchStrategy[Spec]:
    """Full events from :mod:`auditkit_testing.strategies`, of every kind."""
    from auditkit_testing import strategies

    valid = strategies.events(stamped=False)
    # Huge and deeply nested events are left to the validation tests: drawing them
    # is slow, and they fail the same check as any other invalid event.
    rules = [r for r in strategies.INVALID_RULES if r not in ("too_large", "too_deep")]
    invalid = st.one_of([strategies.invalid_events(rule) for rule in rules])
    return st.one_of(
        valid.map(lambda e: Spec("valid", event=e)),
        valid.map(lambda e: Spec("no_action", event=dataclasses.replace(e, action=""))),
        invalid.map(lambda bad: Spec("invalid", event=bad.event)),
    )


def make_event(seq: int, spec: Spec) -> Event:
    """Build the event ``spec`` describes, tagged with ``seq``."""
    if spec.event is not None:
        # A fresh copy each time: hypothesis may replay the same spec.
        event = dataclasses.replace(spec.event)
        if isinstance(event.metadata, dict):
            event.metadata = {**event.metadata, SEQ_KEY: seq}
        return event
    event = Event(action=f"prop.{spec.variant}", metadata={SEQ_KEY: seq})
    if spec.variant % 2:
        event.actor = Actor("user", f"u{seq}")
        event.target = Target("doc", "d1")
    if spec.variant >= 2:
        event.result = Result("success")
        event.tenant_id = "t1"
    if spec.kind == "no_action":
        event.action = ""
    elif spec.kind == "invalid":
        _break(event, spec.variant)
    return event


def _break(event: Event, variant: int) -> None:
    if variant == 0:
        event.metadata["bad"] = {1, 2}
    elif variant == 1:
        event.result = Result("maybe")
    elif variant == 2:
        event.action = "x" * 300
    else:
        event.metadata["bad"] = float("nan")


def seq_of(event: Event | dict[str, Any]) -> int:
    """The sequence number an event was tagged with; :data:`UNTAGGED` if none."""
    metadata = event.metadata if isinstance(event, Event) else event.get("metadata")
    value = metadata.get(SEQ_KEY) if isinstance(metadata, dict) else None
    return value if isinstance(value, int) else UNTAGGED


def wait_for(predicate: Callable[[], bool], cond: threading.Condition) -> bool:
    """Wait on ``cond`` until ``predicate`` holds, for at most :data:`BOUND`."""
    with cond:
        return cond.wait_for(predicate, BOUND)


def run_in_thread(fn: Callable[[], Any], bound: float = BOUND) -> tuple[bool, Any]:
    """Run ``fn`` on a daemon thread; return (finished within ``bound``, result)."""
    box: list[Any] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            box.append(fn())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(bound)
    if errors:
        raise errors[0]
    return (not thread.is_alive(), box[0] if box else None)


class GateTransport:
    """A transport that parks every send() until the test lets it through.

    ``permits`` counts the sends allowed through; ``None`` lets every send pass.
    Each send answers with the next scripted result (delivered by default), and a
    probe run inside send() can check what the worker holds while it does I/O.
    """

    def __init__(self) -> None:
        self.cond = threading.Condition()
        # Everything below is guarded by cond.
        self.permits: int | None = 0
        self.entered = 0
        self.parked = 0
        self.attempts: list[Batch] = []
        self.delivered: list[Batch] = []
        #: Sequence numbers the service took (delivered, not rejected), in order.
        self.accepted: list[int] = []
        self.script: collections.deque[SendResult | BaseException] = collections.deque()
        self.violations: list[str] = []
        self.closed = False
        self.probe: Callable[[], str | None] | None = None
        #: The answer when the script is empty.
        self.default: SendResult | BaseException = SendResult.delivered()

    def send(self, batch: Batch, *, timeout: float | None = None) -> SendResult:
        """Park until allowed, then answer with the next scripted result."""
        problem = self.probe() if self.probe is not None else None
        with self.cond:
            if problem is not None:
                self.violations.append(problem)
            self.attempts.append(batch)
            self.entered += 1
            self.parked += 1
            self.cond.notify_all()
            allowed = self.cond.wait_for(self._may_pass, BOUND * 3)
            self.parked -= 1
            if not allowed:
                self.violations.append("send() was never released")
                return SendResult.failed("never released")
            if self.permits is not None:
                self.permits -= 1
            answer = self.script.popleft() if self.script else self.default
            if isinstance(answer, BaseException):
                raise answer
            if answer.status is auditkit.SendStatus.DELIVERED:
                self.delivered.append(batch)
                self.accepted.extend(
                    seq_of(wire)
                    for i, wire in enumerate(batch.events)
                    if i not in answer.rejected
                )
            self.cond.notify_all()
            return answer

    def close(self) -> None:
        """Note that the worker stopped."""
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def allow(self, n: int) -> None:
        """Let ``n`` more sends through."""
        with self.cond:
            if self.permits is not None:
                self.permits += n
            self.cond.notify_all()

    def open(self) -> None:
        """Let every send through from now on."""
        with self.cond:
            self.permits = None
            self.cond.notify_all()

    def delivered_seqs(self) -> list[int]:
        """Sequence numbers of delivered (not rejected) events, in delivery order."""
        with self.cond:
            return list(self.accepted)

    def sent_wires(self) -> list[dict[str, Any]]:
        """Every event that reached send(), in any attempt."""
        with self.cond:
            return [wire for b in self.attempts for wire in b.events]

    def _may_pass(self) -> bool:
        return self.permits is None or self.permits > 0


class Rig(Protocol):
    """One recorder under test, and the means to drive it."""

    recorder: Any
    capacity: int
    #: Events the rig itself enqueued (the plug), not part of any scenario.
    own_enqueued: int
    #: Whether free() makes room for one event (else for all buffered ones).
    frees_one: bool

    @property
    def transport(self) -> GateTransport | None:
        """The transport of a recorder that has one."""

    def hold(self) -> None:
        """Make sure nothing leaves the buffer until :meth:`release`."""

    def free(self) -> None:
        """Make room: take what the worker would take next out of the buffer."""

    def release(self) -> None:
        """Let everything through and wait until it was delivered."""

    def delivered(self) -> list[int]:
        """Sequence numbers delivered so far (or stored), oldest first."""

    def sent(self) -> list[dict[str, Any]]:
        """Wire forms of every event that reached the transport."""

    def stats(self) -> Stats:
        """The recorder's counters."""

    def dispose(self) -> None:
        """Release and close everything, whatever state the rig is in."""


RigFactory = Callable[..., Rig]


class InMemoryRig:
    """The in-memory recorder: what is stored counts as delivered at once."""

    frees_one = False
    own_enqueued = 0
    transport: GateTransport | None = None

    def __init__(
        self,
        *,
        capacity: int,
        policy: Policy,
        on_drop: Callable[[Event, DropReason], None] | None = None,
        batch_size: int = 1,
    ) -> None:
        self.capacity = capacity
        self.recorder = InMemoryRecorder(
            capacity=capacity, policy=policy, on_drop=on_drop
        )
        # Events cleared out of the recorder by free(), oldest first.
        self._taken: list[Event] = []

    def hold(self) -> None:
        """Nothing drains an in-memory recorder but :meth:`free`."""

    def free(self) -> None:
        with self.recorder._lock:
            self._taken.extend(self.recorder._events)
        self.recorder.clear()

    def release(self) -> None:
        assert self.recorder.flush(timeout=BOUND)

    def delivered(self) -> list[int]:
        return [seq_of(e) for e in [*self._taken, *self.recorder.events]]

    def sent(self) -> list[dict[str, Any]]:
        return [e.to_wire() for e in [*self._taken, *self.recorder.events]]

    def stats(self) -> Stats:
        stats: Stats = self.recorder.stats()
        return stats

    def dispose(self) -> None:
        self.recorder.close()


class BufferedRig:
    """The buffered recorder, delivering through a :class:`GateTransport`."""

    frees_one = True
    own_enqueued = 1

    def __init__(
        self,
        *,
        capacity: int,
        policy: Policy,
        on_drop: Callable[[Event, DropReason], None] | None = None,
        batch_size: int = 1,
        **options: Any,
    ) -> None:
        self.capacity = capacity
        self.transport = GateTransport()
        self.recorder = _new_buffered(
            capacity=capacity,
            policy=policy,
            on_drop=on_drop,
            batch_size=batch_size,
            transport=self.transport,
            **options,
        )
        self._held = False

    def hold(self) -> None:
        """Have the worker take a plug event and park in send() with it."""
        assert self.recorder.record(make_event(PLUG_SEQ, Spec("valid"))) is (
            Outcome.ENQUEUED
        )
        parked = wait_for(lambda: self.transport.parked == 1, self.transport.cond)
        assert parked, "the worker never took the plug event"
        self._held = True

    def free(self) -> None:
        """Finish the batch in flight; the worker takes the next and parks again."""
        with self.transport.cond:
            entered = self.transport.entered
        self.transport.allow(1)
        taken = wait_for(lambda: self.transport.entered > entered, self.transport.cond)
        assert taken, "the worker did not take the next batch"

    def release(self) -> None:
        self.transport.open()
        assert self.recorder.flush(timeout=BOUND), "flush() timed out"

    def delivered(self) -> list[int]:
        return [s for s in self.transport.delivered_seqs() if s != PLUG_SEQ]

    def sent(self) -> list[dict[str, Any]]:
        return [w for w in self.transport.sent_wires() if seq_of(w) != PLUG_SEQ]

    def stats(self) -> Stats:
        stats: Stats = self.recorder.stats()
        return stats

    def dispose(self) -> None:
        with self.transport.cond:
            self.transport.probe = None
            self.transport.script.clear()
            self.transport.default = SendResult.delivered()
        self.transport.open()
        self.recorder.close(timeout=BOUND)


def _new_buffered(**kwargs: Any) -> Any:
    from auditkit import BufferedRecorder

    # Quick batching and short retries: a scenario never waits on a clock.
    options: dict[str, Any] = {
        "flush_interval": 0.005,
        "retry_budget": 0.05,
        "backoff_initial": 0.001,
        "backoff_max": 0.005,
        "exit_timeout": 0.5,
    }
    options.update(kwargs)
    return BufferedRecorder(**options)


class DropModel:
    """The reference for a recorder whose worker is held: a bounded FIFO.

    It says what each record must return, which events stay buffered, and which
    were dropped and why.
    """

    def __init__(self, capacity: int, policy: Policy) -> None:
        self.capacity = capacity
        self.policy = policy
        self.buffer: collections.deque[int] = collections.deque()
        self.dropped: dict[int, DropReason] = {}
        self.counts: collections.Counter[str] = collections.Counter()

    def record(self, seq: int, spec: Spec) -> Outcome:
        """Apply one record of a sync caller that does not wait (timeout 0)."""
        if spec.kind == "no_action":
            self.counts["skipped"] += 1
            return Outcome.SKIPPED
        if spec.kind == "invalid":
            self.counts["invalid"] += 1
            return Outcome.INVALID
        if len(self.buffer) < self.capacity:
            return self._enqueue(seq)
        if self.policy is Policy.DROP_OLDEST:
            self.dropped[self.buffer.popleft()] = DropReason.EVICTED
            self.counts["evicted"] += 1
            self.counts["dropped"] += 1
            return self._enqueue(seq)
        if self.policy is Policy.BLOCK:
            self.counts["timed_out"] += 1
            return Outcome.TIMED_OUT
        self.dropped[seq] = DropReason.BUFFER_FULL
        self.counts["dropped"] += 1
        return Outcome.DROPPED

    def _enqueue(self, seq: int) -> Outcome:
        self.buffer.append(seq)
        self.counts["enqueued"] += 1
        return Outcome.ENQUEUED


_THREAD_START = threading.Thread.start.__code__


class WaitDetector:
    """Notes every wait the current thread starts, via a profile hook.

    Lock-free and clock-free: it flags calls into the waiting primitives of
    ``threading`` and ``time``, and into the recorder's waiter queue, whether or
    not they would have returned quickly.
    """

    def __init__(self) -> None:
        self.waits: list[str] = []
        self._starting = 0
        self._codes: dict[CodeType, str] = {
            threading.Condition.wait.__code__: "Condition.wait",
            threading.Condition.wait_for.__code__: "Condition.wait_for",
            threading.Event.wait.__code__: "Event.wait",
            threading.Semaphore.acquire.__code__: "Semaphore.acquire",
            threading.Thread.join.__code__: "Thread.join",
            SlotQueue.wait.__code__: "SlotQueue.wait",
            SlotQueue.await_slot.__code__: "SlotQueue.await_slot",
        }

    def __enter__(self) -> WaitDetector:
        sys.setprofile(self._profile)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.setprofile(None)

    def _profile(self, frame: FrameType, event: str, arg: Any) -> None:
        if frame.f_code is _THREAD_START:
            # Starting the worker waits for the OS to run the new thread, never for
            # the transport; the waits inside Thread.start() are not the recorder's.
            self._starting += {"call": 1, "return": -1}.get(event, 0)
            return
        if self._starting:
            return
        if event == "call":
            name = self._codes.get(frame.f_code)
            if name is not None:
                self.waits.append(name)
        elif event == "c_call" and arg is time.sleep:
            self.waits.append("time.sleep")


class WaiterWatch:
    """Lets a test wait until a recorder's BLOCK waiter queue reaches a length.

    It swaps the queue's deque for one that notifies a condition when it changes.
    """

    def __init__(self, slots: SlotQueue) -> None:
        self.cond = threading.Condition()
        self.slots = slots
        watched = _NotifyingDeque(self.cond)
        watched.extend(slots._queue)
        slots._queue = watched

    def wait_len(self, predicate: Callable[[int], bool]) -> bool:
        """Wait until ``predicate(len(queue))`` holds, for at most :data:`BOUND`."""
        return wait_for(lambda: predicate(len(self.slots._queue)), self.cond)


class _NotifyingDeque(collections.deque[Any]):
    def __init__(self, cond: threading.Condition) -> None:
        super().__init__()
        self._cond = cond

    def append(self, item: Any) -> None:
        super().append(item)
        self._ping()

    def popleft(self) -> Any:
        item = super().popleft()
        self._ping()
        return item

    def remove(self, item: Any) -> None:
        super().remove(item)
        self._ping()

    def _ping(self) -> None:
        # Called with the recorder's lock held; the watch's condition is only ever
        # taken briefly, never while waiting on the recorder, so no lock cycle.
        with self._cond:
            self._cond.notify_all()


def expected_stats(model: DropModel, rig: Rig, *, settled: bool) -> dict[str, int]:
    """The counters a rig's recorder must show for ``model``'s history.

    With ``settled`` the worker was released and flushed: everything kept was
    delivered.
    """
    enqueued = model.counts["enqueued"] + rig.own_enqueued
    expected = {
        "enqueued": enqueued,
        "dropped": model.counts["dropped"],
        "evicted": model.counts["evicted"],
        "skipped": model.counts["skipped"],
        "invalid": model.counts["invalid"],
        "timed_out": model.counts["timed_out"],
        "failed": 0,
    }
    if settled:
        expected.update(
            delivered=enqueued - model.counts["evicted"], depth=0, in_flight=0
        )
    return expected


def check_stats(stats: Stats, expected: dict[str, int]) -> None:
    """Assert the counters match and add up."""
    actual = {name: getattr(stats, name) for name in expected}
    assert actual == expected, f"stats {actual} != expected {expected}"
    check_stats_add_up(stats)


def check_stats_add_up(stats: Stats) -> None:
    """Every enqueued event is in exactly one place."""
    places = (
        stats.delivered + stats.failed + stats.evicted + stats.depth + stats.in_flight
    )
    assert stats.enqueued == places, f"stats don't add up: {stats}"


def probe_locks(recorder: Any) -> str | None:
    """Report whether the calling thread (the worker, inside send()) holds the lock
    that ``record()`` takes.

    Another thread may hold it for a moment; only a lock held by the worker
    itself, which would make every record wait for the network, is never freed.
    """
    lock = recorder._lock
    if hasattr(lock, "_is_owned"):
        return (
            "the worker held the recorder's lock in send()"
            if lock._is_owned()
            else None
        )
    if not lock.acquire(timeout=RETURN_BOUND):
        return "the worker held the recorder's lock in send()"
    lock.release()
    return None


def drive_without_suspending(coro: Any) -> Any:
    """Run a coroutine that must finish without ever suspending; return its value.

    Raises:
        AssertionError: The coroutine suspended, i.e. it waited on something.
    """
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise AssertionError("arecord() suspended: it waited on something")
