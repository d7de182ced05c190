"""assert_recorded and friends: what they accept and what their failures say."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import pytest

import auditkit_testing
from auditkit import Actor, Event, Outcome, Result, Target
from auditkit_testing import (
    AuditAssertionError,
    InMemoryRecorder,
    assert_not_recorded,
    assert_recorded,
    assert_recorded_in_order,
)


def _message(call: Callable[[], object]) -> str:
    with pytest.raises(AuditAssertionError) as info:
        call()
    text = str(info.value)
    assert text.startswith("auditkit:")
    return text


def test_the_public_surface_is_exactly_the_exported_names() -> None:
    # Assertion rewriting, which the plugin asks for on its own modules, adds
    # names such as "@py_builtins" that no import can reach.
    public = {
        name
        for name in vars(auditkit_testing)
        if name.isidentifier() and not name.startswith("_")
    }
    not_api = {"plugin", "strategies", "annotations", "pytest", "TYPE_CHECKING", "Any"}
    lazy = {"AuditRespx", "CapturedRequest"}

    assert set(auditkit_testing.__all__) == (public - not_api) | lazy
    assert all(getattr(auditkit_testing, name) for name in lazy)


def test_assert_recorded_returns_the_first_matching_event() -> None:
    events = [Event(action="a", tenant_id="1"), Event(action="a", tenant_id="2")]

    assert assert_recorded(events, "a") is events[0]
    assert assert_recorded(events, tenant_id="2") is events[1]


def test_count_asks_for_exactly_that_many() -> None:
    events = [Event(action="a"), Event(action="a"), Event(action="b")]

    assert_recorded(events, "a", count=2)
    message = _message(lambda: assert_recorded(events, "a", count=1))

    assert message.startswith("auditkit: expected exactly 1 matching event, found 2.")
    assert "Matching events:" in message


def test_count_must_be_positive() -> None:
    with pytest.raises(ValueError, match="assert_not_recorded"):
        assert_recorded([], "a", count=0)


def test_a_string_against_a_number_is_shown_with_both_types() -> None:
    events = [Event(action="secret.read", actor=Actor("user", "1"))]

    message = _message(lambda: assert_recorded(events, actor={"id": 1}))

    assert "actor.id: expected 1 (int), got '1' (str)" in message


def test_invisible_differences_are_made_visible() -> None:
    events = [Event(action="user.login\u200b")]

    message = _message(lambda: assert_recorded(events, "user.login"))

    assert "got 'user.login\\u200b' (str)" in message


def test_the_closest_events_come_first_and_at_most_three_are_shown() -> None:
    events = [Event(action=f"other.{n}") for n in range(5)]
    events.insert(2, Event(action="secret.read", target=Target("secret", "9")))

    message = _message(
        lambda: assert_recorded(events, "secret.read", target={"id": "1"})
    )

    closest = message.split("Closest events, best first:\n")[1].splitlines()
    assert closest[0].startswith("  event[2] Event(action='secret.read'")
    assert closest[1] == "    1 of 2 fields match; differs in:"
    assert closest[2] == "      target.id: expected '1' (str), got '9' (str)"
    assert message.count("fields match; differs in:") == 3
    assert "Recorded: 6 events in the list." in message


def test_outcomes_that_stored_nothing_are_listed_with_their_reason() -> None:
    recorder = InMemoryRecorder()
    recorder.record(Event(action="bad", metadata={"when": {1}}))
    recorder.close()
    recorder.record(Event(action="late"))

    message = _message(lambda: assert_recorded(recorder, "bad"))

    assert "No events were recorded: the in-memory recorder holds none." in message
    assert "  INVALID: metadata.when: A value of type set is not JSON" in message
    assert "  CLOSED: the recorder is closed" in message
    assert "The recorder was closed before this record() call." in message


def test_assert_not_recorded_lists_what_matched() -> None:
    events = [Event(action="a", result=Result("denied")), Event(action="b")]

    assert_not_recorded(events, "a", result="success")
    message = _message(lambda: assert_not_recorded(events, result="denied"))

    assert message.splitlines() == [
        "auditkit: expected no event matching result={'status': 'denied'}, but the "
        "list holds 1 matching event:",
        "  Event(action='a', result=Result(status='denied'))",
    ]


def test_assert_not_recorded_without_fields_asks_for_nothing_at_all() -> None:
    assert_not_recorded([])

    with pytest.raises(AuditAssertionError, match="any event"):
        assert_not_recorded([Event(action="a")])


def test_in_order_allows_events_in_between_and_returns_the_matches() -> None:
    events = [Event(action=name) for name in ("a", "x", "b", "y", "c")]

    found = assert_recorded_in_order(events, ["a", {"action": "b"}, Event(action="c")])

    assert found == [events[0], events[2], events[4]]


def test_in_order_says_when_the_events_are_out_of_order() -> None:
    events = [Event(action="b"), Event(action="a")]

    message = _message(lambda: assert_recorded_in_order(events, ["a", "b"]))

    assert message.splitlines()[0] == (
        "auditkit: expected 2 events in order; step 2 (action='b') was not found "
        "after event[1]."
    )
    assert "Step 2 matches event[0], which comes too early" in message


def test_timeout_waits_for_an_event_recorded_from_another_thread() -> None:
    recorder = InMemoryRecorder()
    started = threading.Event()

    def record_later() -> None:
        started.wait(10)
        recorder.record(Event(action="late"))

    worker = threading.Thread(target=record_later)
    worker.start()
    started.set()
    try:
        assert assert_recorded(recorder, "late", timeout=30).action == "late"
    finally:
        worker.join(10)


def test_timeout_gives_up_and_says_how_long_it_waited() -> None:
    message = _message(lambda: assert_recorded(InMemoryRecorder(), "x", timeout=0.05))

    assert "after waiting 0.05 s" in message


def test_timeout_on_a_source_that_cannot_wait_is_refused() -> None:
    with pytest.raises(TypeError, match="can't wait for events"):
        assert_recorded([Event(action="a")], "a", timeout=1)


def test_a_custom_source_with_the_protocol_is_accepted() -> None:
    class Capture:
        audit_source_name = "my capture"

        def audit_events(self) -> Sequence[Event]:
            return [Event(action="mine")]

        def audit_diagnostics(self) -> Sequence[str]:
            return ["a note"]

    assert_recorded(Capture(), "mine")
    message = _message(lambda: assert_recorded(Capture(), "theirs"))

    assert "Recorded: 1 event in my capture." in message
    assert message.endswith("Notes from my capture:\n  a note")


@pytest.mark.parametrize("source", [object(), [Event(action="a"), "b"]])
def test_a_source_that_cannot_be_read_is_refused(source: object) -> None:
    with pytest.raises(TypeError, match="auditkit:"):
        assert_recorded(source, "a")


def test_the_error_is_an_assertion_error() -> None:
    assert issubclass(AuditAssertionError, AssertionError)
    assert Outcome.SKIPPED.value == "skipped"
