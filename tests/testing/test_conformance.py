"""The recorder contract, checked at every place events can land.

Each test records through a recorder and reads what the sink stored: the in-memory
recorder itself, the in-process fake server (through a BufferedRecorder), and an
external fake server such as the container, when ``--audit-server-url`` or
``AUDITKIT_SERVER_URL`` names one. The same assertions hold for all three, so they
can't drift apart.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import auditkit
from auditkit import Actor, Event, Outcome, RequestInfo, Result, Target
from auditkit_testing import (
    ANY_STR,
    InMemoryRecorder,
    approx_time,
    assert_not_recorded,
    assert_recorded,
    assert_recorded_in_order,
)
from auditkit_testing._server import FakeAuditServer, namespace_for

_FLUSH = 10.0


@dataclasses.dataclass
class Sink:
    """A recorder and the place its events land."""

    recorder: Any
    source: Any

    def landed(self) -> list[Event]:
        """Return the events that landed, oldest first."""
        if isinstance(self.source, InMemoryRecorder):
            return self.source.events
        return list(self.source.events())

    def settle(self) -> None:
        """Wait until everything recorded so far has landed."""
        assert self.recorder.flush(timeout=_FLUSH)


def _external_url(config: pytest.Config) -> str | None:
    url = config.getoption("audit_server_url") or os.environ.get("AUDITKIT_SERVER_URL")
    return url or None


@pytest.fixture(params=["memory", "in_process", "external"])
def sink(request: pytest.FixtureRequest, running_server: Any) -> Iterator[Sink]:
    """Each place events land, behind the same interface."""
    if request.param == "memory":
        memory = InMemoryRecorder()
        yield Sink(memory, memory)
        memory.close()
        return

    if request.param == "in_process":
        url = running_server.url
    else:
        url = _external_url(request.config)
        if url is None:
            pytest.skip("no external server: pass --audit-server-url URL to run these")
    server = FakeAuditServer(url, "conformance-key", namespace_for(request.node.nodeid))
    server.reset()
    recorder = server.recorder()
    try:
        yield Sink(recorder, server)
    finally:
        server.close()


def _rich_event() -> Event:
    return Event(
        action="secret.read",
        actor=Actor("user", "u-1", name="Ada", metadata={"roles": ["admin"]}),
        target=Target("secret", "s-9", metadata={"path": "/db/pass"}),
        result=Result("denied", code=404, message="cross-tenant access"),
        tenant_id="tenant-a",
        request=RequestInfo("r-1", "GET", "/secrets/s-9", "10.0.0.1", "curl/8"),
        metadata={"n": 2**63 - 1, "f": 0.5, "ok": True, "none": None, "text": "é ✓"},
    )


def test_a_recorded_event_lands_with_every_field_intact(sink: Sink) -> None:
    event = _rich_event()

    assert sink.recorder.record(event) is Outcome.ENQUEUED
    sink.settle()

    stored = assert_recorded(sink.source, "secret.read", timeout=_FLUSH)
    expected = dataclasses.replace(event, id=stored.id, occurred_at=stored.occurred_at)
    assert stored == expected


def test_an_event_without_action_is_skipped_and_never_lands(sink: Sink) -> None:
    assert sink.recorder.record(Event(actor=Actor("user", "1"))) is Outcome.SKIPPED
    sink.recorder.record(Event(action="marker"))
    sink.settle()

    assert_recorded(sink.source, "marker", timeout=_FLUSH)
    assert_recorded(sink.source, count=1)


def test_id_and_time_are_filled_when_empty_and_kept_when_set(sink: Sink) -> None:
    given_id = str(uuid.uuid4())
    given_time = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    before = datetime.now(UTC)

    sink.recorder.record(Event(action="filled"))
    sink.recorder.record(Event(action="kept", id=given_id, occurred_at=given_time))
    sink.settle()

    assert_recorded(
        sink.source,
        "filled",
        id=ANY_STR,
        occurred_at=approx_time(before, tolerance=timedelta(seconds=30)),
        timeout=_FLUSH,
    )
    assert_recorded(sink.source, "kept", id=given_id, occurred_at=given_time)


def test_changes_after_record_do_not_change_what_lands(sink: Sink) -> None:
    event = Event(action="snapshot", metadata={"v": 1}, actor=Actor("user", "1"))

    sink.recorder.record(event)
    event.metadata["v"] = 2
    event.actor.id = "changed"  # type: ignore[union-attr]
    event.action = "changed"
    sink.settle()

    assert_recorded(
        sink.source, "snapshot", metadata={"v": 1}, actor={"id": "1"}, timeout=_FLUSH
    )
    assert_not_recorded(sink.source, "changed")


def test_invalid_content_is_refused_and_never_lands(sink: Sink) -> None:
    invalid = Event(action="invalid", metadata={"when": {1, 2}})

    assert sink.recorder.record(invalid) is Outcome.INVALID
    sink.recorder.record(Event(action="marker"))
    sink.settle()

    assert_recorded(sink.source, "marker", timeout=_FLUSH)
    assert_not_recorded(sink.source, "invalid")


def test_events_land_in_the_order_they_were_recorded(sink: Sink) -> None:
    actions = [f"step.{n}" for n in range(5)]

    for action in actions:
        sink.recorder.record(Event(action=action))
    sink.settle()

    assert_recorded_in_order(sink.source, actions, timeout=_FLUSH)


def test_the_scope_event_is_deferred_and_lands_once_when_the_scope_closes(
    sink: Sink,
) -> None:
    with auditkit.scope() as scope:
        scope.event.action = "deferred"
        assert sink.recorder.record(scope.event) is Outcome.DEFERRED
        scope.event.result = Result("success", code=200)
    sink.settle()

    assert_recorded(
        sink.source, "deferred", result={"code": 200}, count=1, timeout=_FLUSH
    )


def test_a_cancelled_scope_records_nothing(sink: Sink) -> None:
    with auditkit.scope() as scope:
        scope.cancel()
        outcome = sink.recorder.record(Event(action="cancelled"))
    sink.recorder.record(Event(action="marker"))
    sink.settle()

    assert outcome is Outcome.CANCELLED
    assert_recorded(sink.source, "marker", timeout=_FLUSH)
    assert_not_recorded(sink.source, "cancelled")


def test_recording_one_object_twice_lands_two_events_with_their_own_ids(
    sink: Sink,
) -> None:
    event = Event(action="twice")

    sink.recorder.record(event)
    sink.recorder.record(event)
    sink.settle()

    assert_recorded(sink.source, "twice", count=2, timeout=_FLUSH)
    first, second = sink.landed()
    assert first.id != second.id


def test_a_closed_recorder_records_nothing(sink: Sink) -> None:
    sink.recorder.record(Event(action="before"))
    assert sink.recorder.close(timeout=_FLUSH)

    assert sink.recorder.record(Event(action="after")) is Outcome.CLOSED
    assert_recorded(sink.source, "before", timeout=_FLUSH)
    assert_not_recorded(sink.source, "after")
