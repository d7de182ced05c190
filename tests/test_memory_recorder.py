"""The in-memory recorder keeps every rule of the recorder contract."""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import UTC, datetime

import pytest

from auditkit import (
    Actor,
    ConfigurationError,
    DropReason,
    Event,
    Outcome,
    Policy,
    Recorder,
    Result,
    Target,
    current_event,
    scope,
)
from auditkit_testing import InMemoryRecorder

WAIT = 10.0  # seconds; a generous bound that only a real hang reaches


def _event(action: str = "doc.read", **fields: object) -> Event:
    return Event(action=action, actor=Actor("user", "u-1"), **fields)  # type: ignore[arg-type]


def _signal_waits(recorder: InMemoryRecorder) -> threading.Semaphore:
    """Release the returned semaphore each time a caller starts waiting for space.

    The waiter holds the recorder's lock when it signals and releases it only once
    it is queued, so whoever takes the lock next sees it in the queue.
    """
    entered = threading.Semaphore(0)
    queue = recorder._waiters
    original_wait = queue.wait

    def wait(*args: object) -> object:
        entered.release()
        return original_wait(*args)  # type: ignore[arg-type]

    queue.wait = wait  # type: ignore[method-assign, assignment]
    return entered


def _signal_async_waits(recorder: InMemoryRecorder) -> asyncio.Event:
    """Like _signal_waits, for tasks: call it inside the running loop."""
    entered = asyncio.Event()
    queue = recorder._waiters
    original = queue.await_slot

    async def await_slot(*args: object) -> object:
        entered.set()
        return await original(*args)  # type: ignore[arg-type]

    queue.await_slot = await_slot  # type: ignore[method-assign, assignment]
    return entered


def _stored_actions(recorder: InMemoryRecorder) -> list[str]:
    return [e.action for e in recorder.events]


def test_it_is_a_recorder() -> None:
    assert isinstance(InMemoryRecorder(), Recorder)


def test_recorded_event_is_stored_with_id_and_time_filled() -> None:
    recorder = InMemoryRecorder()
    event = _event()

    assert recorder.record(event) is Outcome.ENQUEUED

    (stored,) = recorder.events
    assert stored.action == "doc.read"
    assert stored.actor == Actor("user", "u-1")
    assert len(stored.id) == 36
    assert stored.occurred_at is not None
    assert stored.occurred_at.tzinfo is not None
    assert event.id == ""
    assert event.occurred_at is None


def test_stored_event_is_what_the_wire_would_carry() -> None:
    recorder = InMemoryRecorder()

    recorder.record(_event(metadata={"pair": (1, 2)}))

    assert recorder.events[0].metadata == {"pair": [1, 2]}


def test_event_with_no_action_is_skipped_and_counted() -> None:
    recorder = InMemoryRecorder()

    assert recorder.record(Event(actor=Actor("user", "1"))) is Outcome.SKIPPED

    assert recorder.events == []
    assert recorder.stats().skipped == 1
    assert recorder.outcomes[0].reason == "the event has no action"


def test_cancelled_scope_cancels_before_anything_else() -> None:
    recorder = InMemoryRecorder()
    event = Event(metadata={"bad": {1}})  # no action and invalid: cancellation wins

    with scope() as s:
        s.cancel()
        outcome = recorder.record(event)

    assert outcome is Outcome.CANCELLED
    assert recorder.stats().cancelled == 1
    assert recorder.stats().skipped == 0
    assert recorder.events == []


def test_passed_deadline_cancels() -> None:
    recorder = InMemoryRecorder()

    with scope(timeout=0):
        assert recorder.record(_event()) is Outcome.CANCELLED


def test_closed_recorder_returns_closed_before_anything_else() -> None:
    recorder = InMemoryRecorder()
    recorder.close()

    with scope() as s:
        s.cancel()
        assert recorder.record(_event()) is Outcome.CLOSED
    assert recorder.close() is True  # idempotent


def test_recording_the_scope_event_is_deferred_until_the_scope_closes() -> None:
    recorder = InMemoryRecorder()

    with scope() as s:
        event = current_event()
        event.action = "job.run"
        assert recorder.record(event) is Outcome.DEFERRED
        assert recorder.events == []
        event.result = Result("success")  # the owner finishes the event afterwards

    (stored,) = recorder.events
    assert stored.action == "job.run"
    assert stored.result == Result("success")
    assert s.event is event


def test_deferred_event_recorded_twice_is_enqueued_once() -> None:
    recorder = InMemoryRecorder()

    with scope() as s:
        s.event.action = "job.run"
        recorder.record(s.event)
        recorder.record(s.event)

    assert len(recorder.events) == 1


def test_deferred_event_is_enqueued_even_if_the_scope_is_cancelled_later() -> None:
    recorder = InMemoryRecorder()

    with scope() as s:
        s.event.action = "secret.reveal"
        assert recorder.record(s.event) is Outcome.DEFERRED
        s.cancel()

    assert [e.action for e in recorder.events] == ["secret.reveal"]


def test_deferred_event_whose_action_was_cleared_is_skipped() -> None:
    recorder = InMemoryRecorder()

    with scope() as s:
        s.event.action = "maybe"
        recorder.record(s.event)
        s.event.action = ""

    assert recorder.events == []
    assert recorder.stats().skipped == 1


def test_deferred_event_keeps_the_time_it_was_recorded() -> None:
    recorder = InMemoryRecorder()

    with scope() as s:
        s.event.action = "job.run"
        before = datetime.now(UTC)
        recorder.record(s.event)
        after = datetime.now(UTC)

    stored_at = recorder.events[0].occurred_at
    assert stored_at is not None
    assert before.replace(microsecond=0) <= stored_at <= after


def test_other_events_inside_a_scope_are_enqueued_at_once() -> None:
    recorder = InMemoryRecorder()

    with scope():
        assert recorder.record(_event()) is Outcome.ENQUEUED
        assert len(recorder.events) == 1


def test_event_of_an_outer_scope_is_deferred_to_that_scope() -> None:
    recorder = InMemoryRecorder()

    with scope() as outer:
        outer.event.action = "outer"
        with scope():
            assert recorder.record(outer.event) is Outcome.DEFERRED
        assert recorder.events == []

    assert [e.action for e in recorder.events] == ["outer"]


def test_event_bound_to_nested_scopes_waits_for_the_outermost() -> None:
    """A handler that rebinds the request's event to an inner scope, to give part
    of its work a deadline, still leaves the event to the request's scope."""
    recorder = InMemoryRecorder()

    with scope() as outer:
        outer.event.action = "secret.reveal"
        with scope(outer.event, timeout=5):
            assert recorder.record(outer.event) is Outcome.DEFERRED
        assert recorder.events == []
        outer.event.result = Result("success")

    [stored] = recorder.events
    assert stored.result == Result("success")


def test_event_of_a_closed_scope_is_enqueued_at_once() -> None:
    recorder = InMemoryRecorder()
    with scope() as s:
        pass

    s.event.action = "late"

    assert recorder.record(s.event) is Outcome.ENQUEUED


def test_async_scope_enqueues_deferred_events_at_exit() -> None:
    recorder = InMemoryRecorder()

    async def handler() -> None:
        async with scope() as s:
            s.event.action = "async.job"
            assert await recorder.arecord(s.event) is Outcome.DEFERRED

    asyncio.run(handler())

    assert [e.action for e in recorder.events] == ["async.job"]


def test_enqueue_takes_a_snapshot() -> None:
    recorder = InMemoryRecorder()
    event = _event(metadata={"tags": ["a"]}, target=Target("doc", "1"))

    recorder.record(event)
    event.action = "changed"
    event.metadata["tags"].append("b")
    event.target.id = "2"  # type: ignore[union-attr]

    (stored,) = recorder.events
    assert stored.action == "doc.read"
    assert stored.metadata == {"tags": ["a"]}
    assert stored.target == Target("doc", "1")


def test_drop_newest_refuses_new_events_when_full() -> None:
    dropped: list[tuple[str, DropReason]] = []
    recorder = InMemoryRecorder(
        capacity=2, on_drop=lambda e, reason: dropped.append((e.action, reason))
    )

    outcomes = [recorder.record(_event(f"a{i}")) for i in range(4)]

    assert outcomes == [Outcome.ENQUEUED] * 2 + [Outcome.DROPPED] * 2
    assert [e.action for e in recorder.events] == ["a0", "a1"]
    assert dropped == [("a2", DropReason.BUFFER_FULL), ("a3", DropReason.BUFFER_FULL)]
    stats = recorder.stats()
    assert (stats.enqueued, stats.dropped, stats.evicted) == (2, 2, 0)


def test_drop_oldest_evicts_to_make_room() -> None:
    dropped: list[tuple[str, DropReason]] = []
    recorder = InMemoryRecorder(
        capacity=2,
        policy=Policy.DROP_OLDEST,
        on_drop=lambda e, reason: dropped.append((e.action, reason)),
    )

    outcomes = [recorder.record(_event(f"a{i}")) for i in range(4)]

    assert outcomes == [Outcome.ENQUEUED] * 4
    assert [e.action for e in recorder.events] == ["a2", "a3"]
    assert dropped == [("a0", DropReason.EVICTED), ("a1", DropReason.EVICTED)]
    stats = recorder.stats()
    assert (
        stats.enqueued == stats.delivered + stats.evicted + stats.failed + stats.depth
    )


def test_clear_frees_the_space() -> None:
    recorder = InMemoryRecorder(capacity=1)
    recorder.record(_event())

    recorder.clear()

    assert recorder.record(_event()) is Outcome.ENQUEUED


def test_block_times_out_with_nothing_enqueued() -> None:
    recorder = InMemoryRecorder(capacity=1, policy=Policy.BLOCK)
    recorder.record(_event("first"))

    assert recorder.record(_event("second"), timeout=0.01) is Outcome.TIMED_OUT

    assert [e.action for e in recorder.events] == ["first"]
    assert recorder.stats().timed_out == 1
    assert len(recorder._waiters) == 0
    assert recorder._waiters.reserved == 0


def test_block_waits_for_space_and_serves_waiters_in_arrival_order() -> None:
    recorder = InMemoryRecorder(capacity=1, policy=Policy.BLOCK)
    recorder.record(_event("first"))
    entered = _signal_waits(recorder)
    threads = []
    for name in ("w1", "w2", "w3"):
        thread = threading.Thread(
            target=recorder.record, args=(_event(name),), kwargs={"timeout": WAIT}
        )
        thread.start()
        threads.append(thread)
        assert entered.acquire(timeout=WAIT)

    served = []
    for thread in threads:
        recorder.clear()
        thread.join(WAIT)  # only the oldest waiter can have been served
        served.append(_stored_actions(recorder))

    assert served == [["w1"], ["w2"], ["w3"]]


def test_block_gives_up_when_the_scope_is_cancelled_from_another_thread() -> None:
    recorder = InMemoryRecorder(capacity=1, policy=Policy.BLOCK)
    recorder.record(_event("first"))
    holder: dict[str, object] = {}

    def waiter() -> None:
        with scope() as s:
            holder["scope"] = s
            holder["outcome"] = recorder.record(_event("second"))

    entered = _signal_waits(recorder)
    thread = threading.Thread(target=waiter)
    thread.start()
    assert entered.acquire(timeout=WAIT)
    holder["scope"].cancel()  # type: ignore[attr-defined]
    thread.join(WAIT)

    assert holder["outcome"] is Outcome.CANCELLED
    assert _stored_actions(recorder) == ["first"]
    assert len(recorder._waiters) == 0
    assert recorder._waiters.reserved == 0
    stats = recorder.stats()
    assert (stats.cancelled, stats.enqueued) == (1, 1)


def test_block_in_a_thread_running_an_event_loop_drops_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="auditkit")
    recorder = InMemoryRecorder(capacity=1, policy=Policy.BLOCK)
    recorder.record(_event("first"))

    async def sync_call_inside_loop() -> list[Outcome]:
        return [recorder.record(_event("x")), recorder.record(_event("y"))]

    outcomes = asyncio.run(sync_call_inside_loop())

    assert outcomes == [Outcome.DROPPED, Outcome.DROPPED]
    assert caplog.text.count("arecord") == 1


def test_arecord_waits_for_space_without_blocking_the_loop() -> None:
    recorder = InMemoryRecorder(capacity=1, policy=Policy.BLOCK)
    recorder.record(_event("first"))

    async def main() -> Outcome:
        entered = _signal_async_waits(recorder)
        task = asyncio.create_task(recorder.arecord(_event("second")))
        await entered.wait()  # the loop keeps running while the task waits
        recorder.clear()
        return await asyncio.wait_for(task, WAIT)

    assert asyncio.run(main()) is Outcome.ENQUEUED
    assert [e.action for e in recorder.events] == ["second"]


def test_cancelled_task_gets_cancelled_error_and_nothing_is_enqueued() -> None:
    recorder = InMemoryRecorder(capacity=1, policy=Policy.BLOCK)
    recorder.record(_event("first"))

    async def main() -> None:
        entered = _signal_async_waits(recorder)
        task = asyncio.create_task(recorder.arecord(_event("second")))
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())

    assert [e.action for e in recorder.events] == ["first"]
    assert len(recorder._waiters) == 0
    assert recorder._waiters.reserved == 0
    recorder.clear()
    assert recorder.record(_event("third")) is Outcome.ENQUEUED


def test_close_sends_blocked_callers_away_with_closed() -> None:
    recorder = InMemoryRecorder(capacity=1, policy=Policy.BLOCK)
    recorder.record(_event("first"))
    entered = _signal_waits(recorder)
    outcomes: list[Outcome] = []
    thread = threading.Thread(
        target=lambda: outcomes.append(recorder.record(_event("second")))
    )
    thread.start()
    assert entered.acquire(timeout=WAIT)

    recorder.close()
    thread.join(WAIT)

    assert outcomes == [Outcome.CLOSED]
    assert _stored_actions(recorder) == ["first"]


def test_arecord_times_out() -> None:
    recorder = InMemoryRecorder(capacity=1, policy=Policy.BLOCK)
    recorder.record(_event("first"))

    outcome = asyncio.run(recorder.arecord(_event("second"), timeout=0.01))

    assert outcome is Outcome.TIMED_OUT
    assert len(recorder._waiters) == 0


def test_recorder_is_a_context_manager_that_closes() -> None:
    with InMemoryRecorder() as recorder:
        recorder.record(_event())

    assert recorder.record(_event()) is Outcome.CLOSED
    assert recorder.flush() is True
    assert len(recorder.events) == 1


def test_outcomes_keep_a_copy_of_what_was_passed() -> None:
    recorder = InMemoryRecorder()
    event = Event()

    recorder.record(event)
    event.action = "later"

    assert recorder.outcomes[0].event.action == ""


@pytest.mark.parametrize("capacity", [0, -1, 1.5, True])
def test_bad_capacity_is_refused(capacity: object) -> None:
    with pytest.raises(ConfigurationError, match="capacity"):
        InMemoryRecorder(capacity=capacity)  # type: ignore[arg-type]


def test_audit_recorder_fixture_gives_a_fresh_recorder(
    audit_recorder: InMemoryRecorder,
) -> None:
    assert audit_recorder.events == []
    audit_recorder.record(_event())
    assert len(audit_recorder.events) == 1
