"""The respx stand-in for the ingest endpoint: decoding, answers and faults."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from auditkit import Batch, Event, HttpTransport, SendStatus
from auditkit._encoding import encode_event
from auditkit._wire import snapshot_event
from auditkit_testing import AuditRespx, assert_recorded

_URL = "https://audit.example.test"


def _batch(*events: Event) -> Batch:
    wires = [snapshot_event(event) for event in events]
    return Batch(wires, [encode_event(wire) for wire in wires])


@pytest.fixture
def audit() -> Iterator[AuditRespx]:
    with AuditRespx(_URL) as mock:
        yield mock


@pytest.fixture
def transport() -> Iterator[HttpTransport]:
    with HttpTransport(_URL, "key", gzip_threshold=64) as sender:
        yield sender


def test_a_gzip_batch_is_decoded_into_events(
    audit: AuditRespx, transport: HttpTransport
) -> None:
    batch = _batch(Event(action="a", metadata={"pad": "x" * 200}), Event(action="b"))

    result = transport.send(batch)

    assert result.status is SendStatus.DELIVERED
    assert audit.requests[0].request.headers["content-encoding"] == "gzip"
    assert [event.action for event in audit.events] == ["a", "b"]


def test_a_resent_batch_is_stored_once(
    audit: AuditRespx, transport: HttpTransport
) -> None:
    batch = _batch(Event(action="a"))

    transport.send(batch)
    transport.send(batch)

    assert_recorded(audit, "a", count=1)
    assert len(audit.requests) == 2


def test_an_invalid_event_is_rejected_by_index(audit: AuditRespx) -> None:
    valid = snapshot_event(Event(action="ok"))
    body = {"events": [valid, {**valid, "id": "nope"}]}

    response = httpx.post(
        f"{_URL}/v1/events", json=body, headers={"authorization": "Bearer k"}
    )

    answer = response.json()
    assert (response.status_code, answer["accepted"]) == (200, 1)
    assert answer["rejected"] == [
        {
            "index": 1,
            "id": "nope",
            "code": "bad_format",
            "field": "id",
            "error": answer["rejected"][0]["error"],
        }
    ]


def test_a_request_without_a_key_is_refused(audit: AuditRespx) -> None:
    response = httpx.post(f"{_URL}/v1/events", json={"events": []})

    assert response.status_code == 401


def test_faults_answer_the_next_requests_in_order(
    audit: AuditRespx, transport: HttpTransport
) -> None:
    audit.add_fault(429, retry_after=2)
    audit.add_fault(error=httpx.ConnectError)
    batch = _batch(Event(action="a"))

    first = transport.send(batch)
    second = transport.send(batch)
    third = transport.send(batch)

    assert (first.status, first.retry_after) == (SendStatus.RETRY, 2.0)
    assert second.status is SendStatus.RETRY
    assert third.status is SendStatus.DELIVERED
    assert [r.status for r in audit.requests] == [429, None, 200]
    assert "ConnectError" in (audit.requests[1].error or "")


def test_other_hosts_are_not_captured(audit: AuditRespx) -> None:
    with pytest.raises(httpx.ConnectError):
        httpx.post("http://127.0.0.1:9/v1/events", json={"events": []}, timeout=5)

    assert audit.requests == []


def test_times_must_be_positive(audit: AuditRespx) -> None:
    with pytest.raises(ValueError, match="times must be a positive integer"):
        audit.add_fault(503, times=0)
