"""Validation at record time: bad content is INVALID with a specific reason."""

from __future__ import annotations

import decimal
import logging
import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest

from auditkit import (
    Actor,
    Event,
    InvalidEventError,
    Outcome,
    RequestInfo,
    Result,
    Target,
)
from auditkit_testing import InMemoryRecorder


class _Capture:
    def __init__(self) -> None:
        self.errors: list[InvalidEventError] = []

    def __call__(self, event: Event, error: InvalidEventError) -> None:
        self.errors.append(error)


def _record(event: Event, **options: Any) -> tuple[Outcome, InvalidEventError | None]:
    capture = _Capture()
    recorder = InMemoryRecorder(on_invalid=capture, **options)
    outcome = recorder.record(event)
    assert len(capture.errors) == (outcome is Outcome.INVALID)
    assert recorder.stats().invalid == (outcome is Outcome.INVALID)
    return outcome, (capture.errors[0] if capture.errors else None)


def _cycle() -> dict[str, Any]:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    return loop


@pytest.mark.parametrize(
    ("metadata", "field", "code", "words"),
    [
        ({"tags": {"a"}}, "metadata.tags", "not_json", "set"),
        ({"when": datetime(2024, 1, 1)}, "metadata.when", "not_json", "isoformat"),
        ({"day": date(2024, 1, 1)}, "metadata.day", "not_json", "isoformat"),
        ({"raw": b"\x00"}, "metadata.raw", "not_json", "bytes"),
        ({"price": decimal.Decimal("1.5")}, "metadata.price", "not_json", "Decimal"),
        ({"ref": uuid.uuid4()}, "metadata.ref", "not_json", "str()"),
        ({"ratio": float("nan")}, "metadata.ratio", "not_json", "nan"),
        ({"ratio": float("inf")}, "metadata.ratio", "not_json", "inf"),
        ({1: "one"}, "metadata[1]", "not_json", "keys are strings"),
        ({"deep": [{"x": {"y": {1, 2}}}]}, "metadata.deep[0].x.y", "not_json", "set"),
        ({"big": 2**70}, "metadata.big", "out_of_range", "64-bit"),
        ({"text": "bad \udc80 text"}, "metadata.text", "not_utf8", "surrogate"),
        ({"loop": _cycle()}, "metadata.loop", "too_deep", "cycle"),
        ({"k" * 300: 1}, "metadata", "too_long", "300 characters"),
    ],
)
def test_metadata_that_is_not_json_is_invalid(
    metadata: dict[Any, Any], field: str, code: str, words: str
) -> None:
    outcome, error = _record(Event(action="a", metadata=metadata))

    assert outcome is Outcome.INVALID
    assert error is not None
    assert error.field.startswith(field)
    assert error.code == code
    assert words in str(error)


@pytest.mark.parametrize(
    ("event", "field", "code"),
    [
        (Event(action="a", result=Result("ok")), "result.status", "bad_value"),
        (
            Event(action="a", result=Result("error", code=True)),
            "result.code",
            "wrong_type",
        ),
        (Event(action="a" * 257), "action", "too_long"),
        (Event(action="a", actor=Actor("user", "")), "actor.id", "empty"),
        (Event(action="a", actor=Actor("user", "x" * 300)), "actor.id", "too_long"),
        (
            Event(action="a", target=Target("t", "1", name="n" * 2000)),
            "target.name",
            "too_long",
        ),
        (Event(action="a", tenant_id="t" * 300), "tenant_id", "too_long"),
        (
            Event(action="a", request=RequestInfo(path="/" * 9000)),
            "request.path",
            "too_long",
        ),
        (Event(action="a", actor={"type": "user", "id": "1"}), "actor", "wrong_type"),  # type: ignore[arg-type]
        (
            Event(action="a", occurred_at=datetime(2024, 1, 1)),
            "occurred_at",
            "naive_datetime",
        ),
        (Event(action="a", id="not-a-uuid"), "id", "bad_format"),
        (Event(action="a\ud800"), "action", "not_utf8"),
        (Event(action="a", metadata=[1]), "metadata", "wrong_type"),  # type: ignore[arg-type]
    ],
)
def test_fields_that_break_a_rule_are_invalid(
    event: Event, field: str, code: str
) -> None:
    outcome, error = _record(event)

    assert outcome is Outcome.INVALID
    assert error is not None
    assert (error.field, error.code) == (field, code)


def test_result_status_message_lists_the_three_values() -> None:
    _, error = _record(Event(action="a", result=Result("ok")))

    assert str(error) == (
        "result.status: 'ok' is not one of 'success', 'denied', 'error'."
    )


def test_event_over_the_size_limit_is_invalid_with_its_size() -> None:
    event = Event(action="a", metadata={"blob": "x" * 70_000})

    outcome, error = _record(event)

    assert outcome is Outcome.INVALID
    assert error is not None
    assert error.code == "too_large"
    assert "over the limit of 65536 bytes" in str(error)


def test_size_limit_is_configurable() -> None:
    event = Event(action="a", metadata={"blob": "x" * 2_000})

    assert _record(event)[0] is Outcome.ENQUEUED
    assert _record(event, max_event_bytes=1_024)[0] is Outcome.INVALID


def test_event_just_under_the_limit_after_escaping_is_measured_exactly() -> None:
    """Control characters take six bytes each in JSON; the check counts them."""
    event = Event(action="a", metadata={"ctl": "\x01" * 11_000})

    outcome, error = _record(event)

    assert outcome is Outcome.INVALID
    assert error is not None
    assert error.code == "too_large"


def test_unicode_text_is_valid() -> None:
    outcome, _ = _record(
        Event(action="ünïcødé.✓", metadata={"emoji": "🔐", "cjk": "秘密"})
    )

    assert outcome is Outcome.ENQUEUED


def test_something_that_is_not_an_event_is_invalid_not_an_exception() -> None:
    outcome, error = _record({"action": "a"})  # type: ignore[arg-type]

    assert outcome is Outcome.INVALID
    assert error is not None
    assert "Expected an auditkit.Event" in str(error)


def test_invalid_event_is_logged_without_its_content(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="auditkit")

    _record(Event(action="a", metadata={"password": {"hunter2"}}))

    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "metadata.password" in caplog.text
    assert "hunter2" not in caplog.text


def test_a_raising_on_invalid_hook_does_not_escape_record(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def hook(event: Event, error: InvalidEventError) -> None:
        raise RuntimeError("hook failed")

    recorder = InMemoryRecorder(on_invalid=hook)

    assert recorder.record(Event(action="a", metadata={"s": {1}})) is Outcome.INVALID
    assert "on_invalid hook raised" in caplog.text


def test_invalid_reason_is_kept_with_the_outcome() -> None:
    recorder = InMemoryRecorder()

    recorder.record(Event(action="a", result=Result("ok")))

    (entry,) = recorder.outcomes
    assert entry.outcome is Outcome.INVALID
    assert entry.reason is not None
    assert entry.reason.startswith("result.status:")


def test_occurred_at_set_by_the_caller_is_kept() -> None:
    moment = datetime(2020, 2, 29, 23, 59, 59, 999999, tzinfo=UTC)
    recorder = InMemoryRecorder()

    recorder.record(Event(action="a", occurred_at=moment))

    assert recorder.events[0].occurred_at == moment
