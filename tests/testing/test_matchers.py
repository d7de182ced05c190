"""Matchers and the partial matching of events."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from auditkit import Actor, Event, Result
from auditkit_testing import ANY, ANY_STR, approx_time, predicate
from auditkit_testing._matching import (
    EVENT_FIELDS,
    build_expectation,
    compare_event,
    given_fields,
)

_MOMENT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _mismatched_paths(expectation: dict[str, object], event: Event) -> list[str]:
    comparison = compare_event(build_expectation(expectation), event)
    return [mismatch.path for mismatch in comparison.mismatches]


def test_any_matches_every_value_including_none() -> None:
    values: list[object] = [None, 0, "", [], Actor("u", "1")]

    assert all(ANY.matches(value) for value in values)
    assert ANY == "anything"
    assert repr(ANY) == "ANY"


def test_any_str_matches_only_non_empty_strings() -> None:
    assert ANY_STR.matches("x")
    assert not ANY_STR.matches("")
    assert not ANY_STR.matches(1)
    assert not ANY_STR.matches(None)


def test_approx_time_matches_within_the_tolerance_either_side() -> None:
    matcher = approx_time(_MOMENT, tolerance=timedelta(seconds=2))

    assert matcher.matches(_MOMENT + timedelta(seconds=2))
    assert matcher.matches(_MOMENT - timedelta(seconds=1))
    assert not matcher.matches(_MOMENT + timedelta(seconds=3))
    assert not matcher.matches(_MOMENT.replace(tzinfo=None))
    assert not matcher.matches("2024-05-01T12:00:00Z")


@pytest.mark.parametrize(
    ("moment", "tolerance"),
    [(datetime(2024, 1, 1), timedelta(1)), (_MOMENT, timedelta(seconds=-1))],
)
def test_approx_time_refuses_a_naive_moment_or_negative_tolerance(
    moment: datetime, tolerance: timedelta
) -> None:
    with pytest.raises(ValueError, match="must"):
        approx_time(moment, tolerance=tolerance)


def test_a_predicate_that_raises_counts_as_no_match() -> None:
    longer_than_two = predicate(lambda value: len(value) > 2, "longer than two")

    assert longer_than_two.matches("abc")
    assert not longer_than_two.matches(None)
    assert repr(longer_than_two) == "longer than two"


def test_a_regex_is_searched_in_strings_only() -> None:
    event = Event(action="secret.read", tenant_id="t-1")

    assert _mismatched_paths({"action": re.compile(r"^secret\.")}, event) == []
    assert _mismatched_paths({"action": re.compile(r"write")}, event) == ["action"]
    assert _mismatched_paths({"actor": re.compile(".")}, event) == ["actor"]


def test_a_plain_callable_works_as_a_predicate() -> None:
    event = Event(action="a", result=Result("denied", code=404))

    assert _mismatched_paths({"result": {"code": lambda c: c >= 400}}, event) == []
    assert _mismatched_paths({"result": {"code": lambda c: c < 400}}, event) == [
        "result.code"
    ]


def test_a_model_object_matches_on_the_fields_it_gives() -> None:
    event = Event(action="a", actor=Actor("user", "1", name="Ada", metadata={"k": 1}))

    assert _mismatched_paths({"actor": Actor("user", "1")}, event) == []
    assert _mismatched_paths({"actor": Actor("user", "2")}, event) == ["actor.id"]
    assert _mismatched_paths({"actor": Actor("user", "1", name="Bob")}, event) == [
        "actor.name"
    ]


def test_a_dict_matches_nested_fields_and_metadata_keys_partially() -> None:
    event = Event(action="a", metadata={"a": {"b": [1, 2]}, "c": "d"})

    assert _mismatched_paths({"metadata": {"a": {"b": [1, 2]}}}, event) == []
    assert _mismatched_paths({"metadata": {"a": {"b": [1]}}}, event) == ["metadata.a.b"]
    assert _mismatched_paths({"metadata": {"x": ANY}}, event) == ["metadata.x"]


def test_a_bool_never_equals_a_number_and_a_string_never_a_number() -> None:
    event = Event(action="a", metadata={"flag": 1, "id": "1"})

    assert _mismatched_paths({"metadata": {"flag": True}}, event) == ["metadata.flag"]
    assert _mismatched_paths({"metadata": {"id": 1}}, event) == ["metadata.id"]


def test_none_asks_for_an_absent_part() -> None:
    assert _mismatched_paths({"tenant_id": None}, Event(action="a")) == []
    assert _mismatched_paths({"tenant_id": None}, Event(action="a", tenant_id="t")) == [
        "tenant_id"
    ]


def test_a_result_string_is_short_for_its_status() -> None:
    assert build_expectation({"result": "denied"}) == {"result": {"status": "denied"}}


def test_an_unknown_field_name_is_refused() -> None:
    with pytest.raises(TypeError, match="'actr' is not an event field"):
        build_expectation({"actr": "x"})

    with pytest.raises(TypeError, match=r"actor\.idd is not a field of Actor"):
        compare_event({"actor": {"idd": "1"}}, Event(action="a", actor=Actor("u", "1")))


def test_given_fields_leave_out_defaults() -> None:
    assert given_fields(Actor("user", "1")) == {"type": "user", "id": "1"}
    assert given_fields(Event(action="a", tenant_id="t")) == {
        "action": "a",
        "tenant_id": "t",
    }


def test_the_expectation_fields_are_the_event_fields() -> None:
    assert set(EVENT_FIELDS) == set(Event.__dataclass_fields__)
