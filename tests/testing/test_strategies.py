"""The hypothesis strategies: valid by construction, invalid by exactly one rule."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, strategies as st

from auditkit import Actor, Event, InvalidEventError, Outcome, RequestInfo, Result
from auditkit._wire import snapshot_event
from auditkit_testing import InMemoryRecorder, strategies


@given(st.from_type(Event))
def test_from_type_builds_events_that_survive_the_wire_round_trip(event: Event) -> None:
    assert Event.from_wire(event.to_wire()) == event


@given(strategies.events(stamped=False))
def test_unstamped_events_are_enqueued_by_a_recorder(event: Event) -> None:
    recorder = InMemoryRecorder()

    assert recorder.record(event) is Outcome.ENQUEUED
    assert recorder.events[0].action == event.action


@given(st.from_type(Actor), st.from_type(Result), st.from_type(RequestInfo))
def test_the_model_types_are_registered(
    actor: Actor, result: Result, request: RequestInfo
) -> None:
    snapshot_event(Event(action="a", actor=actor, result=result, request=request))


@pytest.mark.parametrize("rule", strategies.INVALID_RULES)
@given(data=st.data())
def test_each_invalid_event_breaks_its_rule_with_the_expected_field_and_code(
    rule: str, data: st.DataObject
) -> None:
    case = data.draw(strategies.invalid_events(rule))

    with pytest.raises(InvalidEventError) as info:
        snapshot_event(case.event)

    assert (info.value.field, info.value.code) == (case.field, case.code)
    assert case.code == rule


def test_an_unknown_rule_is_refused() -> None:
    with pytest.raises(ValueError, match="rule must be one of"):
        strategies.invalid_events("nope")


@given(strategies.texts("actor.type"))
def test_texts_respect_the_field_limit(text: str) -> None:
    assert 1 <= len(text) <= 128


def test_from_type_works_without_importing_the_strategies() -> None:
    """Hypothesis loads the distribution's entry point when it is imported."""
    program = (
        "import sys\n"
        "from hypothesis import strategies as st\n"
        "from auditkit import Event\n"
        "assert isinstance(st.from_type(Event).example(), Event)\n"
        "print('auditkit_testing.strategies' in sys.modules)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "True"
