"""The properties have teeth: each catches a deliberately broken recorder.

Each mutant patches one recorder instance the way a plausible regression would
break it, and the property that guards the behaviour must fail on it. If a
refactoring of the properties ever stops them from catching these, this file
fails instead of the properties silently passing.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from auditkit import Batch, Event, Outcome, SendResult
from auditkit._waiters import WaitEnd

from ._guarantee_harness import BufferedRig, InMemoryRig, Rig, RigFactory
from .test_cancel_properties import cancel_property
from .test_drop_properties import drop_property
from .test_nonblocking_properties import nonblocking_property, timeouts_property
from .test_recorder_machine import BufferedRecorderMachine

# Older hypothesis releases leave this function unannotated and newer ones annotate
# it; going through Any keeps mypy quiet on both without an ignore that one of them
# would call unused.
_run_machine: Any = run_state_machine_as_test

IN_MEMORY = pytest.param(InMemoryRig, id="in_memory")
BUFFERED = pytest.param(BufferedRig, id="buffered")

#: Stop at the first counterexample, without shrinking it: only the verdict counts.
#: Derandomized, so that whether a mutant is caught never depends on luck.
HUNT = settings(
    max_examples=300,
    derandomize=True,
    phases=[Phase.generate],
    database=None,
    report_multiple_bugs=False,
    deadline=None,
)

Mutant = Callable[[Any], None]


def forget_drop_count(recorder: Any) -> None:
    """A drop that forgets to count itself."""
    record = recorder.record

    def mutant(event: Event, *, timeout: float | None = None) -> Outcome:
        outcome: Outcome = record(event, timeout=timeout)
        if outcome is Outcome.DROPPED:
            with recorder._lock:
                recorder._counts.dropped -= 1
        return outcome

    recorder.record = mutant


def enqueue_cancelled(recorder: Any) -> None:
    """A cancelled record that enqueues its event anyway."""
    record, arecord = recorder.record, recorder.arecord

    def enqueue_anyway(event: Event) -> None:
        # Outside any scope, as if the cancellation had been overlooked.
        contextvars.Context().run(record, event, timeout=0)

    def mutant(event: Event, *, timeout: float | None = None) -> Outcome:
        outcome: Outcome = record(event, timeout=timeout)
        if outcome is Outcome.CANCELLED:
            enqueue_anyway(event)
        return outcome

    async def amutant(event: Event, *, timeout: float | None = None) -> Outcome:
        try:
            outcome: Outcome = await arecord(event, timeout=timeout)
        except asyncio.CancelledError:
            enqueue_anyway(event)
            raise
        if outcome is Outcome.CANCELLED:
            enqueue_anyway(event)
        return outcome

    recorder.record, recorder.arecord = mutant, amutant


def ignore_flush_timeout(recorder: Any) -> None:
    """A flush that waits as long as delivery takes, whatever its timeout."""
    flush = recorder.flush
    recorder.flush = lambda timeout=None: flush(None)


def wait_for_worker(recorder: Any) -> None:
    """A record that waits a moment for the worker to deliver."""
    record = recorder.record

    def mutant(event: Event, *, timeout: float | None = None) -> Outcome:
        outcome: Outcome = record(event, timeout=timeout)
        recorder.flush(timeout=0.001)
        return outcome

    recorder.record = mutant


def keep_slot_when_cancelled(recorder: Any) -> None:
    """A waiter served a slot just as it was cancelled takes the slot anyway."""
    slots = recorder._waiters
    settle = slots._settle

    def mutant(waiter: Any, scope: Any) -> WaitEnd:
        if waiter.granted:
            slots.reserved -= 1
            return WaitEnd.GRANTED
        end: WaitEnd = settle(waiter, scope)
        return end

    slots._settle = mutant


def forget_batch_after_reset(recorder: Any) -> None:
    """A worker that counts a batch as delivered when the connection was reset."""
    transport = recorder._transport
    send = transport.send

    def mutant(batch: Batch, *, timeout: float | None = None) -> SendResult:
        try:
            result: SendResult = send(batch, timeout=timeout)
        except OSError:
            return SendResult.delivered()
        return result

    transport.send = mutant


def _mutated(make_rig: RigFactory, mutate: Mutant) -> RigFactory:
    def factory(**options: Any) -> Rig:
        rig = make_rig(**options)
        mutate(rig.recorder)
        return rig

    return factory


def _assert_caught(prop: Callable[[], None]) -> None:
    with pytest.raises(AssertionError):
        HUNT(prop)()


@pytest.mark.parametrize("make_rig", [IN_MEMORY, BUFFERED])
def test_drop_property_catches_a_drop_that_forgets_the_counter(
    make_rig: RigFactory,
) -> None:
    _assert_caught(drop_property(_mutated(make_rig, forget_drop_count)))


@pytest.mark.parametrize("make_rig", [IN_MEMORY, BUFFERED])
def test_cancel_property_catches_a_cancel_that_enqueues_anyway(
    make_rig: RigFactory,
) -> None:
    _assert_caught(cancel_property(_mutated(make_rig, enqueue_cancelled)))


@pytest.mark.parametrize("make_rig", [IN_MEMORY, BUFFERED])
def test_cancel_property_catches_a_waiter_that_keeps_a_slot_once_cancelled(
    make_rig: RigFactory,
) -> None:
    _assert_caught(cancel_property(_mutated(make_rig, keep_slot_when_cancelled)))


def test_timeout_property_catches_a_flush_that_ignores_its_timeout() -> None:
    prop = timeouts_property(_mutated(BufferedRig, ignore_flush_timeout), bound=1.0)
    _assert_caught(prop)


def test_nonblocking_property_catches_a_record_that_waits_for_the_worker() -> None:
    _assert_caught(nonblocking_property(_mutated(BufferedRig, wait_for_worker)))


def test_state_machine_catches_a_drop_that_forgets_the_counter() -> None:
    class Mutated(BufferedRecorderMachine):
        mutate = staticmethod(forget_drop_count)

    with pytest.raises(AssertionError):
        _run_machine(Mutated, settings=HUNT)


def test_state_machine_catches_a_batch_forgotten_after_a_connection_reset() -> None:
    class Mutated(BufferedRecorderMachine):
        mutate = staticmethod(forget_batch_after_reset)

    with pytest.raises(AssertionError):
        _run_machine(Mutated, settings=HUNT)
