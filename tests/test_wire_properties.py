"""Properties of the wire form: lossless round trips, one set of rules at both ends."""

from __future__ import annotations

import json

from hypothesis import given, strategies as st

from auditkit import Event, InvalidEventError, Outcome
from auditkit._wire import parse_wire_event, snapshot_event
from auditkit_testing import InMemoryRecorder
from auditkit_testing.strategies import InvalidEvent, events, invalid_events


@given(st.from_type(Event))
def test_wire_round_trip_through_json_gives_an_equal_event(event: Event) -> None:
    text = json.dumps(event.to_wire(), ensure_ascii=False)

    assert Event.from_wire(json.loads(text)) == event


@given(events(stamped=False))
def test_recorded_event_is_stored_equal_to_what_was_recorded(event: Event) -> None:
    recorder = InMemoryRecorder()

    assert recorder.record(event) is Outcome.ENQUEUED

    (stored,) = recorder.events
    if not event.id:
        assert stored.id
        stored.id = ""
    if event.occurred_at is None:
        assert stored.occurred_at is not None
        stored.occurred_at = None
    assert stored == event


@given(events())
def test_the_service_accepts_exactly_what_the_sdk_sends(event: Event) -> None:
    wire = snapshot_event(event)

    assert parse_wire_event(json.loads(json.dumps(wire))) == wire


@given(invalid_events())
def test_each_broken_rule_is_invalid_with_its_field_and_code(
    case: InvalidEvent,
) -> None:
    errors: list[InvalidEventError] = []
    recorder = InMemoryRecorder(on_invalid=lambda _, error: errors.append(error))

    assert recorder.record(case.event) is Outcome.INVALID

    assert [(e.field, e.code) for e in errors] == [(case.field, case.code)]
    assert recorder.events == []
