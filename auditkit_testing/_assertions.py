"""Assertions on recorded events, with failure messages a person can act on."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from auditkit import Event, Outcome

from ._matching import (
    Comparison,
    build_expectation,
    compare_event,
    given_fields,
    show_expected,
)
from ._memory import RecordedOutcome
from ._sources import SourceView, view_source

__all__ = [
    "AuditAssertionError",
    "assert_not_recorded",
    "assert_recorded",
    "assert_recorded_in_order",
]


class _Unset:
    def __repr__(self) -> str:
        return "<not asked>"


_UNSET: Any = _Unset()
# How many candidates and outcomes a failure message lists.
_CLOSEST = 3
_LISTED = 10
_STORED = (Outcome.ENQUEUED, Outcome.DEFERRED)
_HINTS = {
    Outcome.SKIPPED: "An event with an empty action is a no-op: set event.action "
    "before recording it.",
    Outcome.INVALID: "The recorder refused the content; fix the field named above.",
    Outcome.CANCELLED: "The scope was cancelled, so nothing was enqueued.",
    Outcome.CLOSED: "The recorder was closed before this record() call.",
}


class AuditAssertionError(AssertionError):
    """An audit assertion failed; the message starts with ``auditkit:``.

    The message says what was asked, how many events the source held, the closest
    events with a field-by-field diff, and the record calls that stored nothing.
    """

    # Shown in tracebacks under the name users import it by.
    __module__ = "auditkit_testing"


def assert_recorded(
    source: Any,
    action: Any = _UNSET,
    *,
    actor: Any = _UNSET,
    target: Any = _UNSET,
    result: Any = _UNSET,
    tenant_id: Any = _UNSET,
    metadata: Any = _UNSET,
    request: Any = _UNSET,
    occurred_at: Any = _UNSET,
    id: Any = _UNSET,
    count: int | None = None,
    timeout: float | None = None,
) -> Event:
    """Assert that ``source`` holds an event matching the given fields.

    Only the fields you pass are compared. A dict or a model object
    (``Actor("user", "1")``) matches when the fields it gives match (defaults such
    as ``name=None`` are not compared); metadata dicts match when the keys given
    match. Any value may be a matcher (``ANY``, ``ANY_STR``, ``approx_time(...)``),
    a compiled regex (searched in the string) or a predicate. ``result="denied"``
    is short for ``result={"status": "denied"}``; ``None`` means the field must be
    ``None``.

    Args:
        source: The ``audit_recorder``, ``fake_audit_server`` or ``audit_respx``
            fixture, an ``InMemoryRecorder``, a list of events, or any object with
            an ``audit_events()`` method (see :class:`AuditSource`).
        action: The expected action.
        actor: The expected actor.
        target: The expected target.
        result: The expected result, or its status as a string.
        tenant_id: The expected tenant.
        metadata: The expected metadata keys.
        request: The expected request information.
        occurred_at: The expected time; usually ``approx_time(...)``.
        id: The expected event id.
        count: How many events must match exactly; ``None`` for at least one.
        timeout: Wait up to this many seconds for the events to arrive, for sources
            that deliver later (a server, a background recorder). Blocks the
            calling thread, waking as events arrive, and returns as soon as enough
            match; the source must have a wait hook.

    Returns:
        The first matching event, as the source holds it.

    Raises:
        AuditAssertionError: No event matches, or not exactly ``count`` do.
        TypeError: ``source`` can't be read, a field name is unknown, or
            ``timeout`` was given for a source that can't wait.
    """
    __tracebackhide__ = True
    expectation = _expectation_from(locals())
    if count is not None and (isinstance(count, bool) or count < 1):
        raise ValueError(
            f"count must be a positive integer or None, got {count!r}; use "
            "assert_not_recorded() to assert that nothing matches."
        )
    view = view_source(source)
    wanted = count or 1

    def has_enough(events: Sequence[Event]) -> bool:
        return sum(compare_event(expectation, e).ok for e in events) >= wanted

    waited = _wait(view, has_enough, timeout)
    comparisons = [compare_event(expectation, event) for event in view.events()]
    found = [c.event for c in comparisons if c.ok]
    if found and (count is None or len(found) == count):
        return found[0]  # type: ignore[no-any-return]

    raise AuditAssertionError(
        _describe_missing(view, expectation, comparisons, count, waited)
    )


def assert_not_recorded(
    source: Any,
    action: Any = _UNSET,
    *,
    actor: Any = _UNSET,
    target: Any = _UNSET,
    result: Any = _UNSET,
    tenant_id: Any = _UNSET,
    metadata: Any = _UNSET,
    request: Any = _UNSET,
    occurred_at: Any = _UNSET,
    id: Any = _UNSET,
) -> None:
    """Assert that no event in ``source`` matches the given fields.

    Fields match as for :func:`assert_recorded`; with no fields at all, it asserts
    that nothing was recorded. It checks what the source holds now and never
    waits: flush a background recorder first (``recorder.flush()``), so that a
    late delivery can't make it pass by accident.

    Raises:
        AuditAssertionError: At least one event matches; the message lists them.
        TypeError: ``source`` can't be read, or a field name is unknown.
    """
    __tracebackhide__ = True
    expectation = _expectation_from(locals())
    view = view_source(source)
    found = [e for e in view.events() if compare_event(expectation, e).ok]
    if not found:
        return

    lines = [
        f"auditkit: expected no event matching {_show_fields(expectation)}, "
        f"but {view.name} holds {_count(len(found), 'matching event')}:"
    ]
    lines += [f"  {_summarize(event)}" for event in found[:_LISTED]]
    if len(found) > _LISTED:
        lines.append(f"  ... and {len(found) - _LISTED} more")
    raise AuditAssertionError("\n".join(lines))


def assert_recorded_in_order(
    source: Any,
    expected: Sequence[Mapping[str, Any] | Event | str],
    *,
    timeout: float | None = None,
) -> list[Event]:
    """Assert that events matching ``expected`` were recorded in that order.

    Other events may come before, between and after them. Each item is a dict of
    the keywords of :func:`assert_recorded` (``{"action": "a", "result":
    "denied"}``), an :class:`~auditkit.Event` whose set fields are compared, or a
    string, short for the action.

    Args:
        source: Anything :func:`assert_recorded` accepts.
        expected: The expectations, oldest first.
        timeout: Wait up to this many seconds for the events to arrive, as for
            :func:`assert_recorded`.

    Returns:
        The matching events, one per expectation.

    Raises:
        AuditAssertionError: The events are missing or out of order.
        TypeError: As for :func:`assert_recorded`.
    """
    __tracebackhide__ = True
    steps = [_step_expectation(item) for item in expected]
    view = view_source(source)
    waited = _wait(
        view, lambda events: _find_in_order(steps, events)[1] is None, timeout
    )
    events = list(view.events())
    found, failed = _find_in_order(steps, events)
    if failed is None:
        return [events[index] for index in found]

    raise AuditAssertionError(
        _describe_out_of_order(view, steps, events, found, failed, waited)
    )


# Private helpers: expectations.


def _expectation_from(arguments: Mapping[str, Any]) -> dict[str, Any]:
    asked = {
        name: value
        for name, value in arguments.items()
        if name not in ("source", "count", "timeout", "__tracebackhide__")
        and value is not _UNSET
    }
    return build_expectation(asked)


def _step_expectation(item: Any) -> dict[str, Any]:
    if isinstance(item, str):
        return build_expectation({"action": item})
    if isinstance(item, Event):
        return build_expectation(given_fields(item))
    if isinstance(item, Mapping):
        return build_expectation(item)
    raise TypeError(
        "auditkit: each expected item must be a dict of event fields, an "
        f"auditkit.Event or an action string, got {type(item).__name__}."
    )


def _find_in_order(
    steps: Sequence[Mapping[str, Any]], events: Sequence[Event]
) -> tuple[list[int], int | None]:
    """Match the steps greedily; return the indexes found and the first step missed."""
    found: list[int] = []
    position = 0
    for number, step in enumerate(steps):
        index = next(
            (
                i
                for i in range(position, len(events))
                if compare_event(step, events[i]).ok
            ),
            None,
        )
        if index is None:
            return found, number
        found.append(index)
        position = index + 1
    return found, None


def _wait(
    view: SourceView,
    condition: Callable[[Sequence[Event]], bool],
    timeout: float | None,
) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0:
        raise ValueError(f"timeout must be a non-negative number, got {timeout!r}.")
    if view.wait is None:
        raise TypeError(
            f"auditkit: {view.name} can't wait for events, so timeout= can't be used "
            "with it; assert on a source that receives events later instead."
        )
    view.wait(condition, float(timeout))
    return float(timeout)


# Private helpers: messages.


def _describe_missing(
    view: SourceView,
    expectation: Mapping[str, Any],
    comparisons: Sequence[Comparison],
    count: int | None,
    waited: float | None,
) -> str:
    found = sum(c.ok for c in comparisons)
    if count is None:
        head = "auditkit: no recorded event matches."
    else:
        head = (
            f"auditkit: expected exactly {_count(count, 'matching event')}, "
            f"found {found}."
        )
    lines = [head, f"Asked for: {_show_fields(expectation)}"]
    lines.append(_describe_held(view, len(comparisons), waited))
    if count is not None and found:
        lines.append("Matching events:")
        lines += [f"  {_summarize(c.event)}" for c in comparisons if c.ok][:_LISTED]
    else:
        lines += _describe_closest(comparisons)
    lines += _describe_outcomes(view, expectation)
    lines += _describe_diagnostics(view)
    return "\n".join(lines)


def _describe_out_of_order(
    view: SourceView,
    steps: Sequence[Mapping[str, Any]],
    events: Sequence[Event],
    found: Sequence[int],
    failed: int,
    waited: float | None,
) -> str:
    step = steps[failed]
    after = found[-1] + 1 if found else 0
    lines = [
        f"auditkit: expected {len(steps)} events in order; step {failed + 1} "
        f"({_show_fields(step)}) was not found"
        + (f" after event[{after - 1}]." if found else "."),
        _describe_held(view, len(events), waited),
    ]
    for number, index in enumerate(found):
        lines.append(f"  step {number + 1} matched event[{index}]")
    earlier = [i for i in range(after) if compare_event(step, events[i]).ok]
    if earlier:
        lines.append(
            f"Step {failed + 1} matches event[{earlier[-1]}], which comes too early: "
            "the events are out of order."
        )
    comparisons = [compare_event(step, event) for event in events[after:]]
    lines += _describe_closest(comparisons, offset=after)
    lines += _describe_outcomes(view, step)
    lines += _describe_diagnostics(view)
    return "\n".join(lines)


def _describe_held(view: SourceView, held: int, waited: float | None) -> str:
    wait = f" after waiting {waited:g} s" if waited is not None else ""
    if held == 0:
        return f"No events were recorded: {view.name} holds none{wait}."
    return f"Recorded: {_count(held, 'event')} in {view.name}{wait}."


def _describe_closest(
    comparisons: Sequence[Comparison], *, offset: int = 0
) -> list[str]:
    if not comparisons:
        return []
    ranked = sorted(
        enumerate(comparisons),
        key=lambda pair: (-pair[1].matched, len(pair[1].mismatches), -pair[0]),
    )
    lines = ["Closest events, best first:"]
    for index, comparison in ranked[:_CLOSEST]:
        lines.append(
            f"  event[{index + offset}] {_summarize(comparison.event)}\n"
            f"    {comparison.matched} of {comparison.checked} fields match; "
            "differs in:"
        )
        lines += [f"      {m.describe()}" for m in comparison.mismatches]
    return lines


def _describe_outcomes(view: SourceView, expectation: Mapping[str, Any]) -> list[str]:
    refused = [o for o in view.outcomes() if o.outcome not in _STORED]
    if not refused:
        return []
    lines = ["Record calls that stored nothing:"]
    for outcome in refused[-_LISTED:]:
        lines += _describe_outcome(outcome, expectation)
    if len(refused) > _LISTED:
        lines.append(f"  ... and {len(refused) - _LISTED} earlier ones")
    return lines


def _describe_outcome(
    outcome: RecordedOutcome, expectation: Mapping[str, Any]
) -> list[str]:
    name = outcome.outcome.name
    lines = [f"  {name}: {outcome.reason or name.lower()}"]
    lines.append(f"    {_summarize(outcome.event)}")
    others = {key: value for key, value in expectation.items() if key != "action"}
    if outcome.outcome is Outcome.SKIPPED and compare_event(others, outcome.event).ok:
        lines.append("    It matches the other fields asked for.")
    hint = _HINTS.get(outcome.outcome)
    if hint:
        lines.append(f"    {hint}")
    return lines


def _describe_diagnostics(view: SourceView) -> list[str]:
    notes = list(view.diagnostics())
    if not notes:
        return []
    return [f"Notes from {view.name}:"] + [f"  {note}" for note in notes]


def _show_fields(expectation: Mapping[str, Any]) -> str:
    if not expectation:
        return "any event"
    return ", ".join(
        f"{key}={show_expected(value)}" for key, value in expectation.items()
    )


def _summarize(event: Any) -> str:
    if not isinstance(event, Event):
        return repr(event)[:200]
    fields = given_fields(event)
    shown = ", ".join(
        f"{key}={show_expected(value)}"
        for key, value in fields.items()
        if key not in ("id", "occurred_at")
    )
    text = f"Event({shown})"
    if len(text) > 240:
        text = text[:237] + "..."
    return f"{text} id={event.id!r}" if event.id else text


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
