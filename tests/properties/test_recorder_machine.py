"""A state machine that drives a BufferedRecorder against a plain reference model.

Hypothesis picks a sequence of steps (record, fill the buffer, record in a
cancelled scope, let the worker take a batch and park in send(), flush with a
hanging transport, drain with deliveries, failures, retries or rejections, close
cleanly or at a timeout) and after every step the recorder must agree with the
model: the stats add up and match, every event delivered is delivered once and in
the order it was enqueued, and no event is both dropped and delivered.

The worker only moves when a step makes it (``flush_interval`` is an hour and a
batch never fills by size), so every step has one right answer.

Forking is not driven here: a forked child is a separate process whose buffer
starts empty, which a single-process model can't observe; the fork guarantees
are covered by the end-to-end fork tests.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

import auditkit
from auditkit import DropReason, Event, Outcome, Policy, SendResult

from ._guarantee_harness import (
    BOUND,
    RETURN_BOUND,
    GateTransport,
    Spec,
    check_stats_add_up,
    make_event,
    rich_specs,
    run_in_thread,
    seq_of,
    specs,
    wait_for,
)

#: How a drain answers each batch.
#: "raise" is a send that raises (a reset connection), then succeeds on the retry.
ANSWERS = ["ok", "fail", "retry", "raise", "reject_first"]


class BufferedRecorderMachine(RuleBasedStateMachine):
    """Steps on a BufferedRecorder with a :class:`GateTransport`, and its model."""

    #: Applied to the recorder once it is built: how the mutants break it.
    mutate: Callable[[Any], None] | None = None

    def __init__(self) -> None:
        super().__init__()
        self.transport = GateTransport()
        self.recorder: Any = None
        self.guard = threading.Lock()
        # What the hooks saw; guarded by self.guard.
        self.drops: list[tuple[int, DropReason]] = []
        self.failures: list[int] = []
        # The model.
        self.capacity = 0
        self.policy = Policy.DROP_NEWEST
        self.next_seq = 0
        self.buffer: list[int] = []
        self.in_flight: list[int] = []
        self.delivered: list[int] = []
        self.failed: list[int] = []
        self.dropped: dict[int, DropReason] = {}
        self.counts: collections.Counter[str] = collections.Counter()
        self.closed = False

    @initialize(capacity=st.integers(1, 4), policy=st.sampled_from(list(Policy)))
    def start(self, capacity: int, policy: Policy) -> None:
        self.capacity = capacity
        self.policy = policy
        self.recorder = auditkit.BufferedRecorder(
            transport=self.transport,
            capacity=capacity,
            policy=policy,
            batch_size=capacity + 1,
            flush_interval=3600.0,
            retry_budget=BOUND,
            backoff_initial=0.001,
            backoff_max=0.002,
            exit_timeout=0.5,
            on_drop=self._on_drop,
            on_failure=self._on_failure,
        )
        if self.mutate is not None:
            self.mutate(self.recorder)

    def _on_drop(self, event: Event, reason: DropReason) -> None:
        with self.guard:
            self.drops.append((seq_of(event), reason))

    def _on_failure(self, events: list[Event], reason: str) -> None:
        with self.guard:
            self.failures.extend(seq_of(event) for event in events)

    # Recording.

    @rule(spec=specs())
    def record(self, spec: Spec) -> None:
        seq = self._new_seq()
        got = self.recorder.record(make_event(seq, spec), timeout=0)
        want = self._model_record(seq, spec)
        assert got is want, f"record #{seq} ({spec.kind}): {got} != {want}"

    @rule(spec=rich_specs())
    def record_rich(self, spec: Spec) -> None:
        self.record(spec)

    @precondition(lambda self: not self.closed)
    @rule()
    def fill(self) -> None:
        while len(self.buffer) < self.capacity:
            self.record(Spec("valid"))

    @rule(by_deadline=st.booleans())
    def record_cancelled(self, by_deadline: bool) -> None:
        seq = self._new_seq()
        with auditkit.scope(timeout=0 if by_deadline else None) as scope:
            if not by_deadline:
                scope.cancel()
            got = self.recorder.record(make_event(seq, Spec("valid")), timeout=0)
        if self.closed:
            assert got is Outcome.CLOSED
            return
        assert got is Outcome.CANCELLED
        self.counts["cancelled"] += 1

    # The worker.

    @precondition(lambda self: not self.closed and not self.in_flight and self.buffer)
    @rule()
    def take(self) -> None:
        """Have the worker take the buffer and park in send() with it."""
        finished, flushed = run_in_thread(
            lambda: self.recorder.flush(timeout=0), RETURN_BOUND
        )
        assert finished, "flush(timeout=0) did not return at once"
        assert flushed is False
        parked = wait_for(lambda: self.transport.parked == 1, self.transport.cond)
        assert parked, "the worker did not take the buffered events"
        self.in_flight, self.buffer = self.buffer, []

    @precondition(lambda self: not self.closed and self.in_flight)
    @rule(timeout=st.floats(0, 0.02))
    def flush_while_send_hangs(self, timeout: float) -> None:
        finished, flushed = run_in_thread(
            lambda: self.recorder.flush(timeout=timeout), RETURN_BOUND
        )
        assert finished, "flush() did not honour its timeout"
        assert flushed is False, "flush() claimed success while a send hung"

    @precondition(lambda self: not self.closed)
    @rule(answer=st.sampled_from(ANSWERS))
    def drain(self, answer: str) -> None:
        """Let every send through, answering each batch the same way."""
        batches = [batch for batch in (self.in_flight, self.buffer) if batch]
        with self.transport.cond:
            for _ in batches:
                self.transport.script.extend(_script(answer))
        self.transport.open()
        assert self.recorder.flush(timeout=BOUND), "flush() timed out"
        with self.transport.cond:
            assert not self.transport.script, "fewer sends than batches"
            # The worker is idle now: park the next send again.
            self.transport.permits = 0
        for batch in batches:
            self._settle(batch, answer)
        self.in_flight, self.buffer = [], []

    # Closing ends what a run can explore, so it waits for something to close on.
    @precondition(lambda self: not self.closed and self.counts["enqueued"] > 0)
    @rule(hang=st.booleans())
    def close(self, hang: bool) -> None:
        pending = self.in_flight + self.buffer
        if hang and pending:
            finished, closed = run_in_thread(
                lambda: self.recorder.close(timeout=0.02), RETURN_BOUND
            )
            assert finished, "close() did not honour its timeout"
            assert closed is False, "close() claimed success while a send hung"
            self.failed += pending
        else:
            self.transport.open()
            assert self.recorder.close(timeout=BOUND) is True
            self.delivered += pending
        self.in_flight, self.buffer = [], []
        self.closed = True

    # Invariants.

    @invariant()
    def stats_match_the_model(self) -> None:
        if self.recorder is None:
            return
        stats = self.recorder.stats()
        check_stats_add_up(stats)
        want = {
            "enqueued": self.counts["enqueued"],
            "delivered": len(self.delivered),
            "failed": len(self.failed),
            "dropped": self.counts["dropped"],
            "evicted": self.counts["evicted"],
            "skipped": self.counts["skipped"],
            "cancelled": self.counts["cancelled"],
            "invalid": self.counts["invalid"],
            "timed_out": self.counts["timed_out"],
            "retried": self.counts["retried"],
            "depth": len(self.buffer),
            "in_flight": len(self.in_flight),
        }
        actual = {name: getattr(stats, name) for name in want}
        assert actual == want, f"stats {actual} != model {want}"

    @invariant()
    def delivered_once_in_order_and_never_dropped(self) -> None:
        delivered = self.transport.delivered_seqs()
        assert len(set(delivered)) == len(delivered), f"delivered twice: {delivered}"
        if not self.closed:
            # After a close at its timeout the abandoned send may still finish;
            # what it reports no longer counts.
            assert delivered == self.delivered, (
                f"delivered {delivered}, model {self.delivered}"
            )
        with self.guard:
            dropped = {seq for seq, _ in self.drops}
            assert not dropped & set(delivered), "an event dropped and delivered"
            assert self.drops == list(self.dropped.items()), "wrong drops reported"
            assert sorted(self.failures) == sorted(self.failed), "wrong failures"

    def teardown(self) -> None:
        if self.recorder is not None:
            with self.transport.cond:
                self.transport.script.clear()
            self.transport.open()
            self.recorder.close(timeout=BOUND)

    # The model.

    def _new_seq(self) -> int:
        self.next_seq += 1
        return self.next_seq

    def _model_record(self, seq: int, spec: Spec) -> Outcome:
        if self.closed:
            return Outcome.CLOSED
        if spec.kind != "valid":
            key = "skipped" if spec.kind == "no_action" else "invalid"
            self.counts[key] += 1
            return Outcome.SKIPPED if spec.kind == "no_action" else Outcome.INVALID
        if len(self.buffer) < self.capacity:
            return self._enqueue(seq)
        if self.policy is Policy.BLOCK:
            self.counts["timed_out"] += 1
            return Outcome.TIMED_OUT
        self.counts["dropped"] += 1
        if self.policy is Policy.DROP_OLDEST:
            self.dropped[self.buffer.pop(0)] = DropReason.EVICTED
            self.counts["evicted"] += 1
            return self._enqueue(seq)
        self.dropped[seq] = DropReason.BUFFER_FULL
        return Outcome.DROPPED

    def _enqueue(self, seq: int) -> Outcome:
        self.buffer.append(seq)
        self.counts["enqueued"] += 1
        return Outcome.ENQUEUED

    def _settle(self, batch: list[int], answer: str) -> None:
        if answer == "fail":
            self.failed += batch
            return
        if answer == "reject_first":
            self.failed.append(batch[0])
            self.delivered += batch[1:]
            return
        if answer in ("retry", "raise"):
            self.counts["retried"] += 1
        self.delivered += batch


def _script(answer: str) -> list[SendResult | BaseException]:
    """The answers one batch gets, attempt by attempt."""
    if answer == "raise":
        return [
            ConnectionResetError("connection reset by peer"),
            SendResult.delivered(),
        ]
    if answer == "fail":
        return [SendResult.failed("refused")]
    if answer == "retry":
        return [SendResult.retry("busy", retry_after=0.001), SendResult.delivered()]
    if answer == "reject_first":
        return [SendResult.delivered({0: "invalid_field"})]
    return [SendResult.delivered()]


TestBufferedRecorderMachine = BufferedRecorderMachine.TestCase
