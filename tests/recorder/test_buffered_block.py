"""Policy.BLOCK: waiting for space in arrival order, and giving up cleanly."""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Callable

import pytest

import auditkit
from auditkit import BufferedRecorder, DropReason, Outcome, Policy

from ._transports import (
    BOUND,
    HangingTransport,
    add_up,
    make_event,
    numbers,
    until,
    watch_waiters,
)

MakeRecorder = Callable[..., BufferedRecorder]


def _full(
    make_recorder: MakeRecorder, **options: object
) -> tuple[BufferedRecorder, HangingTransport]:
    """A BLOCK recorder of capacity 1 whose worker is parked with event 0 and
    whose buffer holds event 1."""
    transport = HangingTransport()
    recorder = make_recorder(
        transport, capacity=1, batch_size=1, policy=Policy.BLOCK, **options
    )
    assert recorder.record(make_event(0)) is Outcome.ENQUEUED
    assert transport.wait_parked()
    assert recorder.record(make_event(1)) is Outcome.ENQUEUED
    return recorder, transport


def _record(recorder: BufferedRecorder, n: int) -> Outcome:
    return recorder.record(make_event(n), timeout=BOUND)


def _untouched(recorder: BufferedRecorder) -> bool:
    """The buffer holds event 1 only, and no waiter or reserved slot is left."""
    return (
        numbers(recorder._buffer) == [1]
        and len(recorder._waiters) == 0
        and recorder._waiters.reserved == 0
        and add_up(recorder.stats())
    )


def _in_thread(target: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(target()))
    thread.start()
    return thread, result


def test_waiters_are_served_in_arrival_order(make_recorder: MakeRecorder) -> None:
    recorder, transport = _full(make_recorder)
    wait_waiters = watch_waiters(recorder)
    threads = []
    for n in (2, 3, 4):
        thread, _ = _in_thread(functools.partial(_record, recorder, n))
        threads.append(thread)
        assert wait_waiters(n - 1)

    transport.open()
    for thread in threads:
        thread.join(BOUND)

    assert recorder.flush(timeout=BOUND)
    assert numbers(transport.wires) == [0, 1, 2, 3, 4]


def test_timeout_gives_timed_out_and_leaves_the_buffer_as_it_was(
    make_recorder: MakeRecorder,
) -> None:
    recorder, _ = _full(make_recorder)

    assert recorder.record(make_event(2), timeout=0.05) is Outcome.TIMED_OUT
    assert recorder.record(make_event(3), timeout=0) is Outcome.TIMED_OUT

    assert _untouched(recorder)
    assert recorder.stats().timed_out == 2


def test_cancelling_the_scope_wakes_a_waiter_with_cancelled(
    make_recorder: MakeRecorder,
) -> None:
    recorder, _ = _full(make_recorder)
    wait_waiters = watch_waiters(recorder)
    scopes: list[auditkit.Scope] = []

    def record_in_scope() -> Outcome:
        with auditkit.scope() as scope:
            scopes.append(scope)
            return recorder.record(make_event(2), timeout=BOUND)

    thread, result = _in_thread(record_in_scope)
    assert wait_waiters(1)
    scopes[0].cancel()
    thread.join(BOUND)

    assert result == [Outcome.CANCELLED]
    assert _untouched(recorder)
    assert recorder.stats().cancelled == 1


def test_scope_deadline_ends_the_wait_as_cancelled(make_recorder: MakeRecorder) -> None:
    recorder, _ = _full(make_recorder)

    with auditkit.scope(timeout=0.05):
        assert recorder.record(make_event(2), timeout=BOUND) is Outcome.CANCELLED

    assert _untouched(recorder)


def test_close_sends_waiters_away_with_closed(make_recorder: MakeRecorder) -> None:
    recorder, _ = _full(make_recorder)
    wait_waiters = watch_waiters(recorder)
    thread, result = _in_thread(lambda: recorder.record(make_event(2), timeout=BOUND))
    assert wait_waiters(1)

    assert recorder.close(timeout=0.1) is False
    thread.join(BOUND)

    assert result == [Outcome.CLOSED]


def test_sync_record_on_an_event_loop_drops_instead_of_blocking_and_warns_once(
    make_recorder: MakeRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    recorder, _ = _full(make_recorder)
    dropped: list[DropReason] = []
    recorder._on_drop = lambda event, reason: dropped.append(reason)

    async def main() -> list[Outcome]:
        return [recorder.record(make_event(n), timeout=BOUND) for n in (2, 3)]

    with caplog.at_level(logging.WARNING, logger="auditkit"):
        assert asyncio.run(main()) == [Outcome.DROPPED, Outcome.DROPPED]

    assert dropped == [DropReason.BUFFER_FULL] * 2
    assert len([r for r in caplog.records if "event loop" in r.message]) == 1
    assert _untouched(recorder)


@pytest.mark.anyio
async def test_arecord_waits_without_blocking_the_loop(
    make_recorder: MakeRecorder,
) -> None:
    recorder, transport = _full(make_recorder)
    wait_waiters = watch_waiters(recorder)
    task = asyncio.create_task(recorder.arecord(make_event(2), timeout=BOUND))

    # The loop keeps running other work while the task waits for space.
    assert await until(lambda: len(recorder._waiters) == 1)
    assert not task.done()
    transport.open()

    assert await asyncio.wait_for(task, BOUND) is Outcome.ENQUEUED
    assert wait_waiters(0)
    assert await asyncio.to_thread(recorder.flush, BOUND)
    assert numbers(transport.wires) == [0, 1, 2]


@pytest.mark.anyio
async def test_cancelled_task_gets_cancelled_error_and_enqueues_nothing(
    make_recorder: MakeRecorder,
) -> None:
    recorder, _ = _full(make_recorder)
    task = asyncio.create_task(recorder.arecord(make_event(2), timeout=BOUND))
    assert await until(lambda: len(recorder._waiters) == 1)

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert _untouched(recorder)
    assert recorder.stats().enqueued == 2


@pytest.mark.anyio
async def test_arecord_timeout_and_scope_cancel_leave_the_buffer_as_it_was(
    make_recorder: MakeRecorder,
) -> None:
    recorder, _ = _full(make_recorder)

    assert await recorder.arecord(make_event(2), timeout=0.05) is Outcome.TIMED_OUT
    async with auditkit.scope() as scope:
        asyncio.get_running_loop().call_later(0.05, scope.cancel)
        outcome = await recorder.arecord(make_event(3), timeout=BOUND)
    assert outcome is Outcome.CANCELLED

    assert _untouched(recorder)


def test_deferred_event_waits_for_space_when_its_scope_closes(
    make_recorder: MakeRecorder,
) -> None:
    recorder, transport = _full(make_recorder)
    wait_waiters = watch_waiters(recorder)

    def handler() -> None:
        with auditkit.scope(make_event(2)) as scope:
            recorder.record(scope.event)

    thread, _ = _in_thread(handler)
    assert wait_waiters(1)
    transport.open()
    thread.join(BOUND)

    assert recorder.flush(timeout=BOUND)
    assert numbers(transport.wires) == [0, 1, 2]


def test_deferred_event_that_finds_no_space_in_time_is_reported_dropped(
    make_recorder: MakeRecorder,
) -> None:
    dropped: list[tuple[int, DropReason]] = []
    recorder, _ = _full(
        make_recorder,
        deferred_timeout=0.05,
        on_drop=lambda event, reason: dropped.append((event.metadata["n"], reason)),
    )

    with auditkit.scope(make_event(2)) as scope:
        assert recorder.record(scope.event) is Outcome.DEFERRED

    assert dropped == [(2, DropReason.BUFFER_FULL)]
    assert recorder.stats().dropped == 1
    assert _untouched(recorder)


@pytest.mark.anyio
async def test_async_scope_exit_awaits_space_for_its_deferred_event(
    make_recorder: MakeRecorder,
) -> None:
    recorder, transport = _full(make_recorder)

    async def handler() -> None:
        async with auditkit.scope(make_event(2)) as scope:
            await recorder.arecord(scope.event)

    task = asyncio.create_task(handler())
    assert await until(lambda: len(recorder._waiters) == 1)
    transport.open()
    await asyncio.wait_for(task, BOUND)

    assert await asyncio.to_thread(recorder.flush, BOUND)
    assert numbers(transport.wires) == [0, 1, 2]
