"""Reading the service's answers: Retry-After, rejections, refusal messages."""

from __future__ import annotations

import json

import pytest

from auditkit._http_answers import (
    describe_rejection,
    describe_status,
    parse_rejections,
    parse_retry_after,
    refusal_for,
)

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("0", 0.0),
        ("30", 30.0),
        (" 30 ", 30.0),
        ("1.5", 1.5),
        ("120", 60.0),
        ("9" * 400, 60.0),
        ("-5", None),
        ("²", None),
        ("", None),
        ("soon", None),
        ("Fri, 15 Jan 2027 08:00:10 GMT", 10.0),
        ("Fri, 15 Jan 2027 08:00:10 -0000", 10.0),
        ("Fri, 15 Jan 2027 07:00:00 GMT", 0.0),
        ("Sat, 16 Jan 2027 08:00:00 GMT", 60.0),
        ("Fri, 99 Jan 2027 08:00:10 GMT", None),
    ],
)
def test_retry_after_is_read_in_both_forms_and_capped(
    value: str | None, expected: float | None
) -> None:
    assert parse_retry_after(value, now=NOW, cap=60.0) == expected


def test_rejections_are_read_by_index() -> None:
    body = json.dumps(
        {
            "accepted": 1,
            "duplicates": 0,
            "rejected": [
                {"index": 2, "code": "too_long", "field": "action", "error": "Long."},
                {"index": 9, "code": "ignored", "error": "out of range"},
                {"index": True, "code": "ignored"},
                "not an object",
            ],
        }
    ).encode()

    assert parse_rejections(body, 3) == {2: "too_long at action: Long."}


@pytest.mark.parametrize("body", [b"", b"[]", b"nope", b'{"rejected": 3}', b"\xff"])
def test_a_body_that_is_no_ingest_answer_gives_none(body: bytes) -> None:
    assert parse_rejections(body, 3) is None


def test_a_body_without_rejected_means_none_rejected() -> None:
    assert parse_rejections(b'{"accepted": 3, "duplicates": 0}', 3) == {}


def test_rejection_reasons_are_cleaned_and_bounded() -> None:
    reason = describe_rejection({"code": "bad\nvalue", "field": 7, "error": "e" * 1000})

    assert reason.startswith("bad value: eee")
    assert "\n" not in reason
    assert len(reason) < 300


def test_rejection_without_details_has_a_generic_reason() -> None:
    assert describe_rejection({}) == "rejected"


def test_statuses_are_described_with_their_phrase() -> None:
    assert describe_status(401) == "401 Unauthorized"
    assert describe_status(599) == "599"


def test_every_refusal_has_a_summary_and_advice() -> None:
    for status in (400, 401, 403, 404, 409, 415, 301, 418):
        refusal = refusal_for(status)
        assert refusal.summary
        assert refusal.advice.endswith(".")
