"""BufferedRecorder and its default HttpTransport against a respx-mocked service.

The service below de-duplicates on event ids, as the real one does, and plays
scripted faults before it answers normally: every event must be stored exactly
once whatever the faults, and a refused key must be reported once, not retried.
"""

from __future__ import annotations

import collections
import email.utils
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import httpx
import pytest
import respx

import auditkit
from auditkit._buffered import BufferedRecorder

from ._helpers import API_KEY, ENDPOINT, EVENTS_URL, sent_events

Fault = httpx.Response | Exception | str


class _FakeIngest:
    """A respx side effect that stores events once each, after scripted faults.

    A fault is a response to give, an exception to raise, or
    ``"store_then_drop"``: store the batch, then lose the answer.
    """

    def __init__(
        self,
        faults: Sequence[Fault] = (),
        too_large: Callable[[list[dict[str, Any]]], bool] = lambda events: False,
    ) -> None:
        self._faults = collections.deque(faults)
        self._too_large = too_large
        self._lock = threading.Lock()
        #: Every stored event by id; guarded by _lock.
        self.stored: dict[str, dict[str, Any]] = {}
        #: How many times each id arrived, duplicates included; guarded by _lock.
        self.arrivals: collections.Counter[str] = collections.Counter()
        #: How many events each request carried, in order; guarded by _lock.
        self.request_sizes: list[int] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == f"Bearer {API_KEY}"
        events = sent_events(request)
        with self._lock:
            self.request_sizes.append(len(events))
            fault = self._faults.popleft() if self._faults else None
        if isinstance(fault, Exception):
            raise fault
        if isinstance(fault, httpx.Response):
            return fault
        if self._too_large(events):
            return httpx.Response(413)
        answer = self._store(events)
        if fault == "store_then_drop":
            raise httpx.RemoteProtocolError("Server disconnected", request=request)
        return answer

    def _store(self, events: list[dict[str, Any]]) -> httpx.Response:
        duplicates = 0
        with self._lock:
            for event in events:
                self.arrivals[event["id"]] += 1
                if event["id"] in self.stored:
                    duplicates += 1
                self.stored[event["id"]] = event
        return httpx.Response(
            200,
            json={
                "accepted": len(events) - duplicates,
                "duplicates": duplicates,
                "rejected": [],
            },
        )

    def numbers(self) -> list[int]:
        with self._lock:
            return sorted(event["metadata"]["n"] for event in self.stored.values())


class _Failures:
    """Collects what ``on_failure`` receives."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: list[tuple[list[Any], str]] = []

    def __call__(self, events: Sequence[Any], reason: str) -> None:
        with self._lock:
            self.calls.append((list(events), reason))

    def count(self) -> int:
        with self._lock:
            return sum(len(events) for events, _ in self.calls)


@pytest.fixture
def service() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router


def _recorder(**options: Any) -> BufferedRecorder:
    settings: dict[str, Any] = {
        "flush_interval": 0.05,
        "backoff_initial": 0.01,
        "backoff_max": 0.05,
        "retry_budget": 60.0,
    }
    return BufferedRecorder(ENDPOINT, API_KEY, **(settings | options))


def _record(recorder: BufferedRecorder, count: int, *, start: int = 0) -> None:
    for number in range(start, start + count):
        outcome = recorder.record(
            auditkit.Event(
                action="invoice.paid",
                actor=auditkit.Actor("user", f"u{number}"),
                metadata={"n": number},
            )
        )
        assert outcome is auditkit.Outcome.ENQUEUED


def test_every_event_arrives_once_through_busy_answers_and_dropped_connections(
    service: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    ingest = _FakeIngest(
        [
            httpx.Response(503),
            httpx.Response(503, headers={"Retry-After": "0"}),
            httpx.Response(429, headers={"Retry-After": "1"}),
            httpx.ConnectError("Connection refused"),
            httpx.ReadTimeout("timed out"),
            "store_then_drop",
            httpx.Response(500),
        ]
    )
    route = service.post(EVENTS_URL).mock(side_effect=ingest)
    failures = _Failures()

    with _recorder(batch_size=10, on_failure=failures) as recorder:
        _record(recorder, 40)
        assert recorder.flush(timeout=60)
        stats = recorder.stats()

    assert ingest.numbers() == list(range(40))
    assert stats.delivered == 40
    assert stats.failed == 0
    assert failures.count() == 0
    assert stats.retried == 7
    assert route.call_count == len(ingest.request_sizes)
    # The batch whose answer was lost arrived twice, and was stored once.
    assert sorted(set(ingest.arrivals.values())) == [1, 2]
    assert API_KEY not in caplog.text


def test_413_splits_the_batch_down_to_the_one_event_that_is_too_large(
    service: respx.MockRouter,
) -> None:
    def holds_the_big_event(events: list[dict[str, Any]]) -> bool:
        return any(event["metadata"].get("big") for event in events)

    ingest = _FakeIngest(too_large=holds_the_big_event)
    service.post(EVENTS_URL).mock(side_effect=ingest)
    failures = _Failures()

    with _recorder(batch_size=8, flush_interval=10.0, on_failure=failures) as recorder:
        _record(recorder, 5)
        recorder.record(
            auditkit.Event(action="invoice.paid", metadata={"n": 5, "big": True})
        )
        _record(recorder, 2, start=6)
        assert recorder.flush(timeout=60)
        stats = recorder.stats()

    assert ingest.numbers() == [0, 1, 2, 3, 4, 6, 7]
    assert max(ingest.arrivals.values()) == 1
    # Halves are sent in order, depth first: 8, then 4 (stored) and 4 (refused),
    # then 2 (refused) and 1 + 1, where the big event is refused alone, then 2.
    assert ingest.request_sizes == [8, 4, 4, 2, 1, 1, 2]
    assert stats.delivered == 7
    assert stats.failed == 1
    [(events, reason)] = failures.calls
    assert [event.metadata["n"] for event in events] == [5]
    assert "too large" in reason


def test_401_is_reported_once_and_not_retried(
    service: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    route = service.post(EVENTS_URL).mock(return_value=httpx.Response(401))
    failures = _Failures()

    with _recorder(batch_size=5, on_failure=failures) as recorder:
        for batch in range(3):
            _record(recorder, 5, start=batch * 5)
            assert recorder.flush(timeout=60)
        stats = recorder.stats()

    # One request per batch: a refused key is never retried.
    assert route.call_count == 3
    assert stats.retried == 0
    assert stats.failed == 15
    assert failures.count() == 15
    serious = [
        record
        for record in caplog.records
        if record.name.startswith("auditkit") and record.levelno >= logging.WARNING
    ]
    assert "refused the API key (401 Unauthorized)" in serious[0].getMessage()
    transport_errors = [r for r in serious if r.name == "auditkit._http"]
    assert len(transport_errors) == 1
    assert API_KEY not in caplog.text


def test_partial_rejections_reach_on_failure_and_are_not_retried(
    service: respx.MockRouter,
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        events = sent_events(request)
        rejected = [
            {
                "index": index,
                "id": event["id"],
                "code": "invalid",
                "field": "metadata.n",
                "error": "Odd numbers are refused.",
            }
            for index, event in enumerate(events)
            if event["metadata"]["n"] % 2
        ]
        return httpx.Response(
            200,
            json={
                "accepted": len(events) - len(rejected),
                "duplicates": 0,
                "rejected": rejected,
            },
        )

    route = service.post(EVENTS_URL).mock(side_effect=answer)
    failures = _Failures()

    with _recorder(batch_size=10, on_failure=failures) as recorder:
        _record(recorder, 10)
        assert recorder.flush(timeout=60)
        stats = recorder.stats()

    assert route.call_count == 1
    assert stats.delivered == 5
    assert stats.failed == 5
    failed = sorted(
        event.metadata["n"] for events, _ in failures.calls for event in events
    )
    assert failed == [1, 3, 5, 7, 9]
    assert all("invalid at metadata.n" in reason for _, reason in failures.calls)


@pytest.mark.parametrize("retry_after", ["0", "past date"])
def test_service_repeating_retry_now_is_not_hammered(
    service: respx.MockRouter, retry_after: str
) -> None:
    """A service that keeps answering "retry now" gets the backoff, not a loop."""
    value = (
        retry_after
        if retry_after == "0"
        else email.utils.formatdate(time.time() - 3600, usegmt=True)
    )
    route = service.post(EVENTS_URL).mock(
        return_value=httpx.Response(503, headers={"Retry-After": value})
    )
    failures = _Failures()

    with _recorder(
        retry_budget=0.5, backoff_initial=0.05, backoff_max=0.1, on_failure=failures
    ) as recorder:
        _record(recorder, 1)
        assert recorder.flush(timeout=60)

    # Backing off, about ten attempts fit in the budget; honouring "0" as given
    # made thousands.
    assert route.call_count < 100
    assert failures.count() == 1
