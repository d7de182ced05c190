"""Batching, order, transport results, retries, flush and close."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from auditkit import (
    Batch,
    BufferedRecorder,
    Event,
    Outcome,
    Policy,
    SendResult,
    Target,
)
from auditkit._encoding import encode_event
from auditkit._http import DEFAULT_MAX_RETRY_AFTER

from ._transports import (
    BOUND,
    FailingTransport,
    HangingTransport,
    RecordingTransport,
    ScriptedTransport,
    add_up,
    make_event,
    numbers,
)

MakeRecorder = Callable[..., BufferedRecorder]


class _Failures:
    """An ``on_failure`` hook that keeps what it was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[int], str]] = []

    def __call__(self, events: list[Event], reason: str) -> None:
        assert all(isinstance(event, Event) for event in events)
        self.calls.append(([event.metadata["n"] for event in events], reason))

    @property
    def numbers(self) -> list[int]:
        return [n for ns, _ in self.calls for n in ns]


class _SpyCondition(threading.Condition):
    """A condition that signals when someone starts waiting on it."""

    def __init__(self, lock: Any, waiting: threading.Event) -> None:
        super().__init__(lock)
        self._waiting = waiting

    def wait(self, timeout: float | None = None) -> bool:
        self._waiting.set()
        return super().wait(timeout)


def test_batches_are_cut_by_batch_size_and_flush_sends_the_rest(
    make_recorder: MakeRecorder,
) -> None:
    transport = RecordingTransport()
    recorder = make_recorder(transport, batch_size=10, flush_interval=BOUND)

    for n in range(25):
        recorder.record(make_event(n))

    assert recorder.flush(timeout=BOUND)
    assert [len(batch) for batch in transport.batches] == [10, 10, 5]
    assert numbers(transport.wires) == list(range(25))


def test_partial_batch_is_sent_after_flush_interval(
    make_recorder: MakeRecorder,
) -> None:
    transport = RecordingTransport()
    recorder = make_recorder(transport, batch_size=100, flush_interval=0.05)

    for n in range(3):
        recorder.record(make_event(n))

    assert transport.wait_events(3)
    assert [len(batch) for batch in transport.batches] == [3]


def test_delivery_follows_enqueue_order_across_many_batches(
    make_recorder: MakeRecorder,
) -> None:
    transport = RecordingTransport()
    recorder = make_recorder(transport, batch_size=7)

    for n in range(1_000):
        recorder.record(make_event(n))

    assert recorder.close(timeout=BOUND)
    assert numbers(transport.wires) == list(range(1_000))
    assert all(len(batch) <= 7 for batch in transport.batches)


def test_batches_respect_the_byte_limit(make_recorder: MakeRecorder) -> None:
    transport = RecordingTransport()
    recorder = make_recorder(
        transport, max_event_bytes=1024, max_batch_bytes=1200, flush_interval=BOUND
    )

    for n in range(10):
        recorder.record(make_event(n, tenant_id="t" * 200))
    assert recorder.flush(timeout=BOUND)

    sizes = [len(batch.body) for batch in transport.batches]
    assert len(sizes) > 1
    assert max(sizes) <= 1200
    # Greedy: each batch but the last would overflow with the next event.
    for batch, following in zip(transport.batches, transport.batches[1:], strict=False):
        assert len(batch.body) + 1 + len(following.payloads[0]) > 1200
    assert numbers(transport.wires) == list(range(10))


def test_events_rejected_by_the_service_fail_and_the_rest_are_delivered(
    make_recorder: MakeRecorder,
) -> None:
    failures = _Failures()
    transport = ScriptedTransport([SendResult.delivered({1: "id_conflict: id"})])
    recorder = make_recorder(transport, flush_interval=BOUND, on_failure=failures)

    for n in range(3):
        recorder.record(make_event(n))
    assert recorder.flush(timeout=BOUND)

    assert failures.calls == [([1], "Rejected by the service: id_conflict: id")]
    stats = recorder.stats()
    assert (stats.delivered, stats.failed) == (2, 1)
    assert add_up(stats)


def test_failed_batch_goes_to_on_failure_and_is_logged_with_its_count(
    make_recorder: MakeRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    failures = _Failures()
    recorder = make_recorder(
        FailingTransport(), flush_interval=BOUND, on_failure=failures
    )

    for n in range(4):
        recorder.record(make_event(n))
    with caplog.at_level(logging.ERROR, logger="auditkit"):
        assert recorder.flush(timeout=BOUND)

    assert failures.calls == [([0, 1, 2, 3], "The service said no.")]
    assert recorder.stats().failed == 4
    [line] = [r for r in caplog.records if "could not be delivered" in r.message]
    assert line.levelno == logging.ERROR
    assert "4 events" in line.getMessage()
    assert "u1" not in caplog.text  # no event content in the log


def test_batch_too_large_is_split_in_halves(make_recorder: MakeRecorder) -> None:
    transport = ScriptedTransport([SendResult.too_large()])
    recorder = make_recorder(transport, flush_interval=BOUND)

    for n in range(5):
        recorder.record(make_event(n))
    assert recorder.flush(timeout=BOUND)

    assert [len(batch) for batch, _ in transport.attempts] == [5, 2, 3]
    assert numbers(transport.wires) == list(range(5))
    assert recorder.stats().delivered == 5


def test_single_event_too_large_fails_with_a_clear_reason(
    make_recorder: MakeRecorder,
) -> None:
    failures = _Failures()
    transport = ScriptedTransport([SendResult.too_large("413 from the service.")] * 3)
    recorder = make_recorder(transport, flush_interval=BOUND, on_failure=failures)

    recorder.record(make_event(0))
    recorder.record(make_event(1))
    assert recorder.flush(timeout=BOUND)

    assert failures.numbers == [0, 1]
    assert all("larger than the service accepts" in why for _, why in failures.calls)


def test_retry_resends_the_very_same_batch(make_recorder: MakeRecorder) -> None:
    transport = ScriptedTransport(
        [SendResult.retry("503", retry_after=0), SendResult.retry("503", retry_after=0)]
    )
    recorder = make_recorder(transport, flush_interval=BOUND)

    for n in range(3):
        recorder.record(make_event(n))
    assert recorder.flush(timeout=BOUND)

    batches = [batch for batch, _ in transport.attempts]
    assert len(batches) == 3
    assert batches[0] is batches[1] is batches[2]
    assert (recorder.stats().retried, recorder.stats().delivered) == (2, 3)


def test_retry_waits_as_long_as_retry_after_says(make_recorder: MakeRecorder) -> None:
    transport = ScriptedTransport([SendResult.retry("429", retry_after=0.2)])
    recorder = make_recorder(transport, flush_interval=BOUND)

    recorder.record(make_event(0))
    assert recorder.flush(timeout=BOUND)

    (_, first), (_, second) = transport.attempts
    assert second - first >= 0.19


def test_default_budget_waits_out_the_longest_retry_after_honoured(
    make_recorder: MakeRecorder,
) -> None:
    """A 429 asking for a minute, the longest wait HttpTransport honours by default,
    puts the batch in backoff instead of failing it: rate limits that long are
    common."""
    transport = ScriptedTransport(
        [SendResult.retry("429", retry_after=DEFAULT_MAX_RETRY_AFTER)]
    )
    recorder = make_recorder(transport, flush_interval=BOUND)

    recorder.record(make_event(0))
    assert recorder.flush(timeout=0.05) is False  # starts the send now
    assert transport.wait_attempts(1)

    deadline = time.monotonic() + BOUND
    while recorder.stats().retried == 0 and time.monotonic() < deadline:
        threading.Event().wait(0.001)
    stats = recorder.stats()
    assert (stats.retried, stats.failed, stats.in_flight) == (1, 0, 1)
    assert recorder.close(timeout=0.05) is False  # gives up on the waiting batch


def test_retries_back_off_until_delivered(
    make_recorder: MakeRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    transport = ScriptedTransport([SendResult.retry("timeout")] * 3)
    recorder = make_recorder(
        transport, flush_interval=BOUND, backoff_initial=0.001, backoff_max=0.002
    )

    recorder.record(make_event(0))
    with caplog.at_level(logging.WARNING, logger="auditkit"):
        assert recorder.flush(timeout=BOUND)

    assert (recorder.stats().retried, recorder.stats().delivered) == (3, 1)
    retry_lines = [r for r in caplog.records if "retrying" in r.message]
    assert len(retry_lines) == 1  # rate-limited
    assert retry_lines[0].levelno == logging.WARNING


def test_retry_budget_bounds_the_retries_of_a_batch(
    make_recorder: MakeRecorder,
) -> None:
    failures = _Failures()
    transport = ScriptedTransport([SendResult.retry("busy", retry_after=3600)])
    recorder = make_recorder(
        transport, flush_interval=BOUND, retry_budget=1.0, on_failure=failures
    )

    recorder.record(make_event(0))
    started = time.monotonic()
    assert recorder.flush(timeout=BOUND)

    assert time.monotonic() - started < BOUND
    [(events, reason)] = failures.calls
    assert events == [0]
    assert "Gave up after 1 attempts" in reason
    assert "busy" in reason
    assert recorder.stats().retried == 0


def test_zero_retry_budget_never_retries(make_recorder: MakeRecorder) -> None:
    transport = ScriptedTransport([SendResult.retry("busy")])
    recorder = make_recorder(transport, flush_interval=BOUND, retry_budget=0)

    recorder.record(make_event(0))
    assert recorder.flush(timeout=BOUND)

    assert len(transport.attempts) == 1
    assert recorder.stats().failed == 1


def test_transport_that_raises_is_retried_and_logged_once(
    make_recorder: MakeRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    transport = ScriptedTransport([RuntimeError("boom"), RuntimeError("boom"), 42])  # type: ignore[list-item]
    recorder = make_recorder(
        transport, flush_interval=BOUND, backoff_initial=0.001, backoff_max=0.001
    )

    recorder.record(make_event(0))
    with caplog.at_level(logging.ERROR, logger="auditkit"):
        assert recorder.flush(timeout=BOUND)

    assert (recorder.stats().retried, recorder.stats().delivered) == (3, 1)
    tracebacks = [r for r in caplog.records if r.exc_info is not None]
    assert len(tracebacks) == 1
    assert "transport raised" in tracebacks[0].message


def test_send_gets_the_configured_timeout(make_recorder: MakeRecorder) -> None:
    transport = RecordingTransport()
    recorder = make_recorder(transport, send_timeout=2.5)

    recorder.record(make_event(0))
    assert recorder.flush(timeout=BOUND)

    assert transport.timeouts == [2.5]


def test_flush_is_a_barrier_for_events_recorded_before_it(
    make_recorder: MakeRecorder,
) -> None:
    """flush() waits for what was recorded before the call, not after."""
    transport = HangingTransport()
    recorder = make_recorder(transport, batch_size=1)
    waiting = threading.Event()
    recorder._settled = _SpyCondition(recorder._lock, waiting)
    recorder.record(make_event(0))
    assert transport.wait_parked()
    result: list[bool] = []
    flusher = threading.Thread(target=lambda: result.append(recorder.flush(BOUND)))
    flusher.start()
    assert waiting.wait(BOUND)

    recorder.record(make_event(1))
    transport.allow(1)
    flusher.join(BOUND)

    assert result == [True]
    assert numbers(transport.wires) == [0]
    assert transport.wait_parked()  # event 1 is still on its way


def test_flush_returns_false_at_its_timeout_when_the_transport_hangs(
    make_recorder: MakeRecorder,
) -> None:
    transport = HangingTransport()
    recorder = make_recorder(transport)
    recorder.record(make_event(0))

    started = time.monotonic()
    assert recorder.flush(timeout=0.1) is False
    assert time.monotonic() - started < BOUND
    assert recorder.stats().in_flight == 1  # nothing dropped

    transport.open()
    assert recorder.flush(timeout=BOUND) is True


def test_close_with_a_hanging_transport_returns_on_time_and_reports_the_rest(
    make_recorder: MakeRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    failures = _Failures()
    transport = HangingTransport()
    recorder = make_recorder(transport, batch_size=2, on_failure=failures)
    for n in range(5):
        recorder.record(make_event(n))
    assert transport.wait_parked()

    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="auditkit"):
        assert recorder.close(timeout=1.0) is False
    elapsed = time.monotonic() - started

    assert elapsed < 3.0
    assert sorted(failures.numbers) == [0, 1, 2, 3, 4]
    assert "5 events could not be delivered" in caplog.text
    assert recorder.record(make_event(9)) is Outcome.CLOSED
    stats = recorder.stats()
    assert (stats.failed, stats.delivered, stats.depth, stats.in_flight) == (5, 0, 0, 0)

    # The send that hung finishes later: its result is ignored, not counted twice.
    worker = recorder._worker
    transport.open()
    assert worker is not None
    assert worker.done.wait(BOUND)
    assert recorder.stats() == stats
    assert transport.closed == 1


def test_close_does_not_wait_for_a_batch_in_backoff(
    make_recorder: MakeRecorder,
) -> None:
    failures = _Failures()
    transport = ScriptedTransport([SendResult.retry("503", retry_after=30)])
    recorder = make_recorder(transport, on_failure=failures)
    recorder.record(make_event(0))
    assert transport.wait_attempts(1)

    started = time.monotonic()
    assert recorder.close(timeout=0.2) is False

    assert time.monotonic() - started < 3.0
    assert failures.numbers == [0]
    assert add_up(recorder.stats())


def test_close_delivers_everything_then_stops(make_recorder: MakeRecorder) -> None:
    transport = RecordingTransport()
    recorder = make_recorder(transport, flush_interval=BOUND)
    for n in range(50):
        recorder.record(make_event(n))

    assert recorder.close() is True

    assert numbers(transport.wires) == list(range(50))
    assert transport.closed == 1
    worker = recorder._worker
    assert worker is not None
    assert worker.done.wait(BOUND)


def test_a_closed_recorder_leaves_no_thread_listed_by_threading(
    make_recorder: MakeRecorder,
) -> None:
    """Thread-leak checks count threading.enumerate(): an ended worker, which
    logged while it ran, must not stay listed there."""
    worker_threads: list[threading.Thread] = []

    def on_failure(events: list[Event], reason: str) -> None:
        worker_threads.append(threading.current_thread())

    for _ in range(3):
        recorder = make_recorder(FailingTransport(), on_failure=on_failure)
        recorder.record(make_event(0))
        assert recorder.close(timeout=BOUND) is True
        worker = recorder._worker
        assert worker is not None
        assert worker.done.wait(BOUND)

    assert [t.name for t in worker_threads] == ["auditkit-recorder"] * 3
    assert not [t for t in threading.enumerate() if t.name == "auditkit-recorder"]


def test_close_is_idempotent_and_the_recorder_is_a_context_manager() -> None:
    transport = RecordingTransport()
    with BufferedRecorder(transport=transport) as recorder:
        recorder.record(make_event(0))

    assert transport.wires != []
    assert recorder.close() is True
    assert recorder.close(timeout=0) is True
    assert transport.closed == 1


def test_stats_add_up_at_every_moment(make_recorder: MakeRecorder) -> None:
    script: list[Any] = []
    for _ in range(40):
        script += [
            SendResult.delivered({0: "bad"}),
            SendResult.retry("busy", retry_after=0),
            SendResult.failed("no"),
            SendResult.too_large(),
            SendResult.delivered(),
        ]
    transport = ScriptedTransport(script)
    recorder = make_recorder(
        transport, capacity=20, batch_size=4, policy=Policy.DROP_OLDEST
    )
    samples: list[bool] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append(add_up(recorder.stats()))

    sampler = threading.Thread(target=sample)
    sampler.start()
    for n in range(2_000):
        recorder.record(make_event(n))
    assert recorder.flush(timeout=BOUND)
    done.set()
    sampler.join(BOUND)

    assert len(samples) > 10
    assert all(samples)
    stats = recorder.stats()
    assert stats.enqueued == 2_000
    assert stats.delivered + stats.failed + stats.evicted == 2_000
    assert stats.failed > 0
    assert stats.retried > 0


def test_batch_objects_carry_encoded_events(make_recorder: MakeRecorder) -> None:
    transport = RecordingTransport()
    recorder = make_recorder(transport)
    recorder.record(make_event(0))
    assert recorder.flush(timeout=BOUND)

    [batch] = transport.batches
    assert isinstance(batch, Batch)
    assert batch.body.startswith(b'{"events":[{')


def test_batches_built_by_the_worker_agree_with_batches_built_by_hand(
    make_recorder: MakeRecorder,
) -> None:
    """The worker writes each event straight into the body; the payloads, the
    body and the halves of a split are the same as those of Batch(events,
    payloads)."""
    transport = RecordingTransport()
    recorder = make_recorder(transport, batch_size=5, flush_interval=BOUND)
    for n in range(5):
        recorder.record(make_event(n, target=Target("doc", "é" * (n + 1))))
    assert recorder.flush(timeout=BOUND)

    [batch] = transport.batches
    by_hand = Batch(batch.events, [encode_event(wire) for wire in batch.events])
    assert batch.payloads == by_hand.payloads
    assert batch.body == by_hand.body
    assert json.loads(batch.body)["events"] == list(batch.events)
    for half, hand_half in zip(batch.split(), by_hand.split(), strict=True):
        assert (half.events, half.payloads, half.body) == (
            hand_half.events,
            hand_half.payloads,
            hand_half.body,
        )


def test_flush_and_close_called_from_a_worker_hook_do_not_deadlock(
    make_recorder: MakeRecorder,
) -> None:
    results: list[bool] = []
    recorder: BufferedRecorder

    def on_failure(events: list[Event], reason: str) -> None:
        results.append(recorder.flush(timeout=BOUND))
        results.append(recorder.close(timeout=BOUND))

    transport = FailingTransport()
    recorder = make_recorder(transport, on_failure=on_failure)
    recorder.record(make_event(0))

    assert recorder.flush(timeout=BOUND)
    assert results == [False, False]
    assert recorder.record(make_event(1)) is Outcome.CLOSED
    worker = recorder._worker
    assert worker is not None
    assert worker.done.wait(BOUND)
    assert transport.closed == 1
