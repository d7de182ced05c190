"""The event model, its wire form and event ids."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from auditkit import (
    Actor,
    Event,
    InvalidEventError,
    RequestInfo,
    Result,
    Target,
    new_event_id,
)
from auditkit._encoding import decode_json, encode_batch, encode_event
from auditkit._ids import next_id_and_timestamp


def _full_event() -> Event:
    return Event(
        action="secret.reveal",
        actor=Actor("user", "u-1", name="Ada", metadata={"role": "admin"}),
        target=Target("secret", "s-9", metadata={"labels": ["prod", "db"]}),
        result=Result("denied", code=403, message="cross-tenant access"),
        tenant_id="t-1",
        request=RequestInfo("req-1", "GET", "/secrets/s-9", "10.0.0.1", "curl/8"),
        metadata={"n": 1, "ratio": 0.5, "ok": True, "none": None, "nested": {"a": []}},
        occurred_at=datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC),
        id="018f3a3c-9d2e-7abc-8def-0123456789ab",
    )


def test_to_wire_has_every_field_of_the_protocol() -> None:
    wire = _full_event().to_wire()

    assert wire == {
        "id": "018f3a3c-9d2e-7abc-8def-0123456789ab",
        "action": "secret.reveal",
        "occurred_at": "2024-05-01T12:00:00.123456Z",
        "actor": {
            "type": "user",
            "id": "u-1",
            "name": "Ada",
            "metadata": {"role": "admin"},
        },
        "target": {
            "type": "secret",
            "id": "s-9",
            "name": None,
            "metadata": {"labels": ["prod", "db"]},
        },
        "result": {"status": "denied", "code": 403, "message": "cross-tenant access"},
        "tenant_id": "t-1",
        "request": {
            "id": "req-1",
            "method": "GET",
            "path": "/secrets/s-9",
            "ip": "10.0.0.1",
            "user_agent": "curl/8",
        },
        "metadata": {
            "n": 1,
            "ratio": 0.5,
            "ok": True,
            "none": None,
            "nested": {"a": []},
        },
    }


def test_absent_optional_parts_are_null_on_the_wire() -> None:
    wire = Event(action="a").to_wire()

    assert wire["actor"] is None
    assert wire["target"] is None
    assert wire["result"] is None
    assert wire["request"] is None
    assert wire["tenant_id"] is None
    assert wire["metadata"] == {}


def test_round_trip_through_json_gives_an_equal_event() -> None:
    event = _full_event()

    text = json.dumps(event.to_wire())

    assert Event.from_wire(json.loads(text)) == event


def test_occurred_at_in_another_timezone_is_sent_in_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    event = Event(action="a", occurred_at=datetime(2024, 5, 1, 14, 0, tzinfo=plus_two))

    wire = event.to_wire()

    assert wire["occurred_at"] == "2024-05-01T12:00:00.000000Z"
    assert (
        Event.from_wire({**wire, "id": new_event_id()}).occurred_at == event.occurred_at
    )


def test_to_wire_is_a_deep_copy() -> None:
    event = Event(
        action="a", metadata={"list": [1]}, actor=Actor("u", "1", metadata={"k": {}})
    )
    wire = event.to_wire()

    event.metadata["list"].append(2)
    event.actor.metadata["k"]["x"] = 1  # type: ignore[union-attr]

    assert wire["metadata"] == {"list": [1]}
    assert wire["actor"]["metadata"] == {"k": {}}


def test_tuples_and_subclasses_of_json_types_become_plain_json() -> None:
    import enum

    class Colour(enum.StrEnum):
        RED = "red"

    event = Event(action="a", metadata={"pair": (1, 2), "colour": Colour.RED})

    wire = event.to_wire()

    assert wire["metadata"] == {"pair": [1, 2], "colour": "red"}
    assert type(wire["metadata"]["colour"]) is str


def test_from_wire_accepts_absent_optional_fields() -> None:
    event = Event.from_wire(
        {"id": new_event_id(), "action": "a", "occurred_at": "2024-05-01T12:00:00Z"}
    )

    assert event.actor is None
    assert event.metadata == {}
    assert event.occurred_at == datetime(2024, 5, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("data", "field", "code"),
    [
        ({"action": "a", "occurred_at": "2024-05-01T12:00:00Z"}, "id", "required"),
        (
            {"id": "x", "action": "a", "occurred_at": "2024-05-01T12:00:00Z"},
            "id",
            "bad_format",
        ),
        ({"action": "a", "occurred_at": "yesterday"}, "occurred_at", "bad_format"),
        ({"action": "a", "occurred_at": "2024-05-01"}, "occurred_at", "bad_format"),
        ({"action": "", "occurred_at": "2024-05-01T12:00:00Z"}, "action", "empty"),
        ({"action": 5, "occurred_at": "2024-05-01T12:00:00Z"}, "action", "wrong_type"),
        (
            {"action": "a", "occurred_at": "2024-05-01T12:00:00Z", "extra": 1},
            "extra",
            "unknown_field",
        ),
        (
            {
                "action": "a",
                "occurred_at": "2024-05-01T12:00:00Z",
                "actor": {"type": "u"},
            },
            "actor.id",
            "wrong_type",
        ),
        (
            {
                "action": "a",
                "occurred_at": "2024-05-01T12:00:00Z",
                "actor": {"type": "u", "id": "1", "x": 1},
            },
            "actor.x",
            "unknown_field",
        ),
        (
            {
                "action": "a",
                "occurred_at": "2024-05-01T12:00:00Z",
                "result": {"status": "ok"},
            },
            "result.status",
            "bad_value",
        ),
        (
            {
                "action": "a",
                "occurred_at": "2024-05-01T12:00:00Z",
                "result": {"status": "error", "code": "500"},
            },
            "result.code",
            "wrong_type",
        ),
        (
            {"action": "a", "occurred_at": "2024-05-01T12:00:00Z", "request": []},
            "request",
            "wrong_type",
        ),
        (
            {
                "action": "a",
                "occurred_at": "2024-05-01T12:00:00Z",
                "metadata": {"s": "\ud800"},
            },
            "metadata.s",
            "not_utf8",
        ),
        (
            {"action": "a", "occurred_at": "2024-05-01T12:00:00Z", "metadata": []},
            "metadata",
            "wrong_type",
        ),
    ],
)
def test_from_wire_names_the_offending_field(data: dict, field: str, code: str) -> None:  # type: ignore[type-arg]
    data = {"id": new_event_id(), **data} if field != "id" else data

    with pytest.raises(InvalidEventError) as info:
        Event.from_wire(data)

    assert (info.value.field, info.value.code) == (field, code)


def test_from_wire_refuses_what_is_not_an_object() -> None:
    with pytest.raises(InvalidEventError, match="must be a JSON object"):
        Event.from_wire(["not", "an", "event"])


def test_event_ids_are_uuid_version_7() -> None:
    parsed = uuid.UUID(new_event_id())

    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122


def test_event_ids_increase_within_the_same_millisecond() -> None:
    ids = [new_event_id() for _ in range(10_000)]

    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_event_ids_are_unique_across_threads() -> None:
    results: list[list[str]] = [[] for _ in range(4)]
    start = threading.Barrier(4)

    def make(bucket: list[str]) -> None:
        start.wait()
        bucket.extend(new_event_id() for _ in range(5_000))

    threads = [threading.Thread(target=make, args=(bucket,)) for bucket in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    every = [event_id for bucket in results for event_id in bucket]
    assert len(set(every)) == len(every)
    for bucket in results:
        assert bucket == sorted(bucket)


def test_id_millisecond_matches_its_timestamp() -> None:
    event_id, stamp = next_id_and_timestamp()

    millis = int(event_id.replace("-", "")[:12], 16)
    moment = datetime.fromisoformat(stamp)
    assert abs(moment.timestamp() * 1000 - millis) < 1
    assert stamp.endswith("Z")
    assert len(stamp.split(".")[1]) == 7


def test_batch_encoding_decodes_to_the_events() -> None:
    wires = [Event(action=f"a{i}", id=new_event_id()).to_wire() for i in range(3)]

    body = encode_batch([encode_event(wire) for wire in wires])

    assert decode_json(body) == {"events": wires}


def test_encoding_keeps_non_ascii_text_as_utf8() -> None:
    wire = Event(action="a", metadata={"name": "Zoë ✓"}).to_wire()

    assert "Zoë ✓".encode() in encode_event(wire)
