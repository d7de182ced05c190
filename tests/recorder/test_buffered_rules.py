"""The contract's rules, checked on the buffered recorder."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

import pytest

import auditkit
from auditkit import BufferedRecorder, DropReason, Event, Outcome, Policy

from ._transports import (
    BOUND,
    HangingTransport,
    RecordingTransport,
    add_up,
    make_event,
    numbers,
)

MakeRecorder = Callable[..., BufferedRecorder]


def test_event_without_action_is_skipped_and_counted(
    make_recorder: MakeRecorder,
) -> None:
    transport = RecordingTransport()
    recorder = make_recorder(transport)

    assert recorder.record(Event()) is Outcome.SKIPPED
    assert recorder.flush(timeout=BOUND)

    stats = recorder.stats()
    assert (stats.skipped, stats.enqueued) == (1, 0)
    assert transport.wires == []


@pytest.mark.parametrize("policy", list(Policy))
def test_cancelled_scope_returns_cancelled_and_leaves_event_and_buffer_untouched(
    make_recorder: MakeRecorder, policy: Policy
) -> None:
    transport = HangingTransport()
    recorder = make_recorder(transport, capacity=2, policy=policy)
    event = make_event(1)

    with auditkit.scope() as scope:
        scope.cancel()
        assert recorder.record(event, timeout=BOUND) is Outcome.CANCELLED

    assert event.id == ""
    assert event.occurred_at is None
    stats = recorder.stats()
    assert (stats.cancelled, stats.enqueued, stats.depth) == (1, 0, 0)
    assert recorder._worker is None


def test_passed_scope_deadline_counts_as_cancelled(make_recorder: MakeRecorder) -> None:
    recorder = make_recorder(RecordingTransport())

    with auditkit.scope(timeout=0):
        assert recorder.record(make_event(1)) is Outcome.CANCELLED


def test_scope_event_is_deferred_and_enqueued_once_as_it_is_at_scope_end(
    make_recorder: MakeRecorder,
) -> None:
    transport = RecordingTransport()
    recorder = make_recorder(transport)

    with auditkit.scope() as scope:
        scope.event.action = "doc.update"
        assert recorder.record(scope.event) is Outcome.DEFERRED
        assert recorder.record(auditkit.current_event()) is Outcome.DEFERRED
        scope.event.result = auditkit.Result("success", code=200)
        assert recorder.stats().enqueued == 0

    assert recorder.flush(timeout=BOUND)
    [wire] = transport.wires
    assert wire["action"] == "doc.update"
    assert wire["result"]["code"] == 200
    assert (recorder.stats().deferred, recorder.stats().enqueued) == (2, 1)


def test_deferred_event_keeps_the_id_and_time_of_its_record_call(
    make_recorder: MakeRecorder,
) -> None:
    transport = RecordingTransport()
    recorder = make_recorder(transport)

    with auditkit.scope(make_event(1)) as scope:
        recorder.record(scope.event)
        before_close = make_event(2)
        recorder.record(before_close)

    assert recorder.flush(timeout=BOUND)
    first, second = sorted(transport.wires, key=lambda wire: wire["id"])
    assert numbers([first, second]) == [1, 2]


def test_deferred_event_whose_action_was_cleared_is_skipped(
    make_recorder: MakeRecorder,
) -> None:
    transport = RecordingTransport()
    recorder = make_recorder(transport)

    with auditkit.scope(make_event(1)) as scope:
        recorder.record(scope.event)
        scope.event.action = ""

    assert recorder.flush(timeout=BOUND)
    assert transport.wires == []
    assert recorder.stats().skipped == 1


def test_cancelling_a_scope_does_not_take_back_its_deferred_event(
    make_recorder: MakeRecorder,
) -> None:
    transport = RecordingTransport()
    recorder = make_recorder(transport)

    with auditkit.scope(make_event(1)) as scope:
        recorder.record(scope.event)
        scope.cancel()

    assert recorder.flush(timeout=BOUND)
    assert numbers(transport.wires) == [1]


def test_async_scope_enqueues_its_deferred_event(make_recorder: MakeRecorder) -> None:
    transport = RecordingTransport()
    recorder = make_recorder(transport)

    async def handler() -> Outcome:
        async with auditkit.scope(make_event(7)) as scope:
            return await recorder.arecord(scope.event)

    assert asyncio.run(handler()) is Outcome.DEFERRED
    assert recorder.flush(timeout=BOUND)
    assert numbers(transport.wires) == [7]


def test_enqueue_takes_a_snapshot(make_recorder: MakeRecorder) -> None:
    transport = HangingTransport()
    recorder = make_recorder(transport)
    event = make_event(1, tenant_id="t1")

    assert recorder.record(event) is Outcome.ENQUEUED
    event.metadata["n"] = 99
    event.tenant_id = "changed"
    event.actor.id = "someone else"  # type: ignore[union-attr]
    transport.open()

    assert recorder.flush(timeout=BOUND)
    [wire] = transport.wires
    assert (wire["metadata"], wire["tenant_id"], wire["actor"]["id"]) == (
        {"n": 1},
        "t1",
        "u1",
    )
    assert event.id == ""  # the recorder filled the snapshot, not the event


@pytest.mark.parametrize("policy", [Policy.DROP_NEWEST, Policy.DROP_OLDEST])
def test_record_never_waits_for_a_hanging_transport(
    make_recorder: MakeRecorder, policy: Policy
) -> None:
    """With the worker stuck inside send(), 10,000 records from two threads all
    return, and every one of them is accounted for exactly."""
    transport = HangingTransport()
    dropped: list[DropReason] = []
    recorder = make_recorder(
        transport,
        capacity=500,
        policy=policy,
        batch_size=1,
        on_drop=lambda event, reason: dropped.append(reason),
    )
    assert recorder.record(make_event(0)) is Outcome.ENQUEUED
    assert transport.wait_parked()
    outcomes: list[Outcome] = []

    def record_many() -> None:
        outcomes.extend(recorder.record(make_event(i)) for i in range(5_000))

    started = time.monotonic()
    threads = [threading.Thread(target=record_many) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(BOUND)
    elapsed = time.monotonic() - started

    assert elapsed < BOUND
    stats = recorder.stats()
    assert (stats.depth, stats.in_flight) == (500, 1)
    assert add_up(stats)
    if policy is Policy.DROP_NEWEST:
        assert outcomes.count(Outcome.ENQUEUED) == 500
        assert outcomes.count(Outcome.DROPPED) == 9_500
        assert dropped == [DropReason.BUFFER_FULL] * 9_500
        assert (stats.dropped, stats.evicted) == (9_500, 0)
    else:
        assert outcomes == [Outcome.ENQUEUED] * 10_000
        assert dropped == [DropReason.EVICTED] * 9_500
        assert (stats.dropped, stats.evicted) == (9_500, 9_500)


def test_closed_recorder_returns_closed_at_once(make_recorder: MakeRecorder) -> None:
    transport = RecordingTransport()
    recorder = make_recorder(transport)
    recorder.close(timeout=BOUND)

    assert recorder.record(make_event(1)) is Outcome.CLOSED
    assert asyncio.run(recorder.arecord(make_event(2))) is Outcome.CLOSED
    assert recorder.stats().enqueued == 0


def test_scope_closing_after_its_recorder_closed_reports_the_event_dropped(
    make_recorder: MakeRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    dropped: list[tuple[int, DropReason]] = []
    recorder = make_recorder(
        RecordingTransport(),
        on_drop=lambda event, reason: dropped.append((event.metadata["n"], reason)),
    )

    with auditkit.scope(make_event(5)) as scope:
        recorder.record(scope.event)
        recorder.close(timeout=BOUND)

    assert dropped == [(5, DropReason.RECORDER_CLOSED)]
    assert "closed before its scope ended" in caplog.text


def test_invalid_event_is_reported_and_not_enqueued(
    make_recorder: MakeRecorder,
) -> None:
    errors: list[str] = []
    recorder = make_recorder(
        RecordingTransport(), on_invalid=lambda event, error: errors.append(error.field)
    )

    outcome = recorder.record(Event(action="x", metadata={"when": object()}))

    assert outcome is Outcome.INVALID
    assert errors == ["metadata.when"]
    assert (recorder.stats().invalid, recorder.stats().enqueued) == (1, 0)


def test_a_full_buffer_checks_content_first_and_stamps_no_dropped_event(
    make_recorder: MakeRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under DROP_NEWEST a full buffer still reports bad content as INVALID; an
    event it drops is left as the caller made it and costs no new id."""
    transport = HangingTransport()
    errors: list[str] = []
    dropped: list[tuple[Event, DropReason]] = []
    recorder = make_recorder(
        transport,
        capacity=1,
        batch_size=1,
        on_invalid=lambda event, error: errors.append(error.field),
        on_drop=lambda event, reason: dropped.append((event, reason)),
    )
    assert recorder.record(make_event(0)) is Outcome.ENQUEUED
    assert transport.wait_parked()
    assert recorder.record(make_event(1)) is Outcome.ENQUEUED
    stamped: list[tuple[str, str]] = []
    real_stamp = auditkit._ids.next_id_and_timestamp

    def counting_stamp() -> tuple[str, str]:
        stamped.append(real_stamp())
        return stamped[-1]

    monkeypatch.setattr(auditkit._wire, "next_id_and_timestamp", counting_stamp)

    bad = Event(action="doc.read", metadata={"when": object()})
    late = make_event(2)
    assert recorder.record(bad) is Outcome.INVALID
    assert recorder.record(late) is Outcome.DROPPED

    assert errors == ["metadata.when"]
    assert dropped == [(late, DropReason.BUFFER_FULL)]
    assert (late.id, late.occurred_at) == ("", None)
    assert stamped == []
    stats = recorder.stats()
    assert (stats.invalid, stats.dropped, stats.enqueued) == (1, 1, 2)
    transport.open()
    assert recorder.flush(timeout=BOUND)
    assert numbers(transport.wires) == [0, 1]


def test_space_freed_after_the_full_check_takes_the_event_with_a_real_stamp(
    make_recorder: MakeRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The unlocked hint that the buffer is full can be stale by the time the
    lock is taken: the event is then enqueued, with an id and a time of its own."""
    transport = RecordingTransport()
    recorder = make_recorder(transport)
    monkeypatch.setattr(recorder, "_refuses_new_events", lambda: True)

    before = time.time()
    assert recorder.record(make_event(7)) is Outcome.ENQUEUED
    assert recorder.flush(timeout=BOUND)

    (wire,) = transport.wires
    assert not wire["id"].startswith("00000000")
    occurred_at = auditkit.Event.from_wire(wire).occurred_at
    assert occurred_at is not None
    assert occurred_at.timestamp() >= before - 1
    assert (recorder.stats().enqueued, recorder.stats().dropped) == (1, 0)


def test_hook_exceptions_are_logged_and_never_raised(
    make_recorder: MakeRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("hook bug")

    transport = HangingTransport()
    recorder = make_recorder(transport, capacity=1, batch_size=1, on_drop=broken)
    recorder.record(make_event(0))
    assert transport.wait_parked()
    recorder.record(make_event(1))

    with caplog.at_level(logging.ERROR, logger="auditkit"):
        assert recorder.record(make_event(2)) is Outcome.DROPPED
        assert recorder.record(make_event(3)) is Outcome.DROPPED

    hook_lines = [r for r in caplog.records if "on_drop hook raised" in r.message]
    assert len(hook_lines) == 1  # one traceback, not one per event
    assert hook_lines[0].exc_info is not None


def test_drops_are_logged_as_one_summary_line_without_event_content(
    make_recorder: MakeRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    transport = HangingTransport()
    recorder = make_recorder(transport, capacity=1, batch_size=1)
    recorder.record(make_event(0))
    assert transport.wait_parked()
    recorder.record(make_event(1))

    with caplog.at_level(logging.WARNING, logger="auditkit"):
        outcomes = [recorder.record(make_event(n)) for n in range(2, 1_002)]

    assert outcomes == [Outcome.DROPPED] * 1_000
    assert recorder.stats().dropped == 1_000
    [line] = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert (line.name, line.levelno) == ("auditkit._buffered", logging.WARNING)
    assert "u1" not in caplog.text
    assert "doc.read" not in caplog.text
