"""Partial matching of events against expectations, with a diff of what differs.

An expectation is a dict from event field names to expected values. A dict or a
model object (``Actor("user", "1")``) matches when each of its given fields
matches; lists match element by element; matchers, regexes and callables decide
for themselves; anything else compares equal, except that a bool never equals a
number.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, final

from ._matchers import Matcher, matches

__all__ = [
    "EVENT_FIELDS",
    "Comparison",
    "Mismatch",
    "build_expectation",
    "compare_event",
    "given_fields",
    "show_expected",
    "show_value",
]

#: The fields an expectation may name, in the order messages show them.
EVENT_FIELDS = (
    "action",
    "actor",
    "target",
    "result",
    "tenant_id",
    "request",
    "metadata",
    "occurred_at",
    "id",
)
_MAX_REPR = 120


@final
@dataclasses.dataclass(frozen=True, slots=True)
class Mismatch:
    """One field that differs: its dotted path, what was asked and what was found."""

    path: str
    expected: Any
    actual: Any
    missing: bool = False

    def describe(self) -> str:
        """Return the difference as one line, with types shown."""
        if self.missing:
            return (
                f"{self.path}: expected {show_value(self.expected)}, but it is absent"
            )
        expected = show_value(self.expected)
        actual = show_value(self.actual)
        if expected == actual:
            # Same text, different value: make the difference visible.
            expected = f"{self.expected!a} ({_type_name(self.expected)})"
            actual = f"{self.actual!a} ({_type_name(self.actual)})"
        return f"{self.path}: expected {expected}, got {actual}"


@final
@dataclasses.dataclass(frozen=True, slots=True)
class Comparison:
    """How well one event matches an expectation."""

    event: Any
    checked: int
    mismatches: tuple[Mismatch, ...]

    @property
    def ok(self) -> bool:
        """True when every asked field matches."""
        return not self.mismatches

    @property
    def matched(self) -> int:
        """How many of the checked values matched."""
        return self.checked - len(self.mismatches)


def build_expectation(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Check the field names and normalise shorthands.

    ``result="denied"`` stands for ``result={"status": "denied"}``.

    Raises:
        TypeError: A name is not a field of :class:`~auditkit.Event`.
    """
    expectation: dict[str, Any] = {}
    for name, value in fields.items():
        if name not in EVENT_FIELDS:
            raise TypeError(
                f"auditkit: {name!r} is not an event field; expected one of "
                f"{', '.join(EVENT_FIELDS)}."
            )
        if name == "result" and isinstance(value, str):
            value = {"status": value}
        expectation[name] = value
    return expectation


def compare_event(expectation: Mapping[str, Any], event: Any) -> Comparison:
    """Compare ``event`` with ``expectation``, field by field."""
    mismatches: list[Mismatch] = []
    checked = 0
    for name, expected in expectation.items():
        actual = getattr(event, name, None)
        checked += _compare(expected, actual, name, mismatches)
    return Comparison(event, checked, tuple(mismatches))


def given_fields(model: Any) -> dict[str, Any]:
    """Return the fields of a model object that differ from their defaults."""
    given: dict[str, Any] = {}
    for field in dataclasses.fields(model):
        value = getattr(model, field.name)
        if field.default is not dataclasses.MISSING:
            if value == field.default and type(value) is type(field.default):
                continue
        elif field.default_factory is not dataclasses.MISSING:
            if value == field.default_factory():
                continue
        given[field.name] = value
    return given


def show_value(value: Any) -> str:
    """Return ``value`` as messages show it: its repr, and its type for scalars."""
    if isinstance(value, Matcher) or value is None:
        return _clip(repr(value))
    if callable(value) and not dataclasses.is_dataclass(value):
        return f"<{getattr(value, '__qualname__', repr(value))}>"
    if dataclasses.is_dataclass(value) or isinstance(value, dict | list):
        return _clip(repr(value))
    return f"{_clip(repr(value))} ({_type_name(value)})"


def show_expected(value: Any) -> str:
    """Return an expected value as messages show it: models with given fields only."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        given = given_fields(value)
        inner = ", ".join(f"{key}={show_expected(item)}" for key, item in given.items())
        return _clip(f"{type(value).__name__}({inner})")
    if isinstance(value, Mapping) and not isinstance(value, Matcher):
        inner = ", ".join(
            f"{key!r}: {show_expected(item)}" for key, item in value.items()
        )
        return _clip("{" + inner + "}")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str | int | float | Matcher) or value is None:
        return _clip(repr(value))
    return show_value(value)


def _compare(expected: Any, actual: Any, path: str, out: list[Mismatch]) -> int:
    """Append the mismatches under ``path`` to ``out``; return the values checked."""
    verdict = matches(expected, actual)
    if verdict is not None:
        if not verdict:
            out.append(Mismatch(path, expected, actual))
        return 1
    if dataclasses.is_dataclass(expected) and not isinstance(expected, type):
        return _compare_model(expected, actual, path, out)
    if isinstance(expected, Mapping):
        return _compare_mapping(expected, actual, path, out)
    if isinstance(expected, list | tuple):
        return _compare_sequence(expected, actual, path, out)
    if not _is_equal(expected, actual):
        out.append(Mismatch(path, expected, actual))
    return 1


def _compare_model(expected: Any, actual: Any, path: str, out: list[Mismatch]) -> int:
    if actual is None or not isinstance(actual, type(expected)):
        out.append(Mismatch(path, expected, actual))
        return 1
    return _compare_mapping(given_fields(expected), actual, path, out)


def _compare_mapping(
    expected: Mapping[Any, Any], actual: Any, path: str, out: list[Mismatch]
) -> int:
    if isinstance(actual, Mapping):
        checked = 0
        for key, value in expected.items():
            where = f"{path}.{key}" if isinstance(key, str) else f"{path}[{key!r}]"
            if key not in actual:
                out.append(Mismatch(where, value, None, missing=True))
                checked += 1
            else:
                checked += _compare(value, actual[key], where, out)
        return checked
    if dataclasses.is_dataclass(actual) and not isinstance(actual, type):
        names = {field.name for field in dataclasses.fields(actual)}
        unknown = [key for key in expected if key not in names]
        if unknown:
            raise TypeError(
                f"auditkit: {path}.{unknown[0]} is not a field of "
                f"{type(actual).__name__}; its fields are {', '.join(sorted(names))}."
            )
        return _compare_mapping(
            expected, {name: getattr(actual, name) for name in names}, path, out
        )
    out.append(Mismatch(path, dict(expected), actual))
    return 1


def _compare_sequence(
    expected: Sequence[Any], actual: Any, path: str, out: list[Mismatch]
) -> int:
    if not isinstance(actual, list | tuple) or len(actual) != len(expected):
        out.append(Mismatch(path, list(expected), actual))
        return 1
    checked = 0
    for index, (want, got) in enumerate(zip(expected, actual, strict=True)):
        checked += _compare(want, got, f"{path}[{index}]", out)
    return checked


def _is_equal(expected: Any, actual: Any) -> bool:
    if isinstance(expected, bool) != isinstance(actual, bool):
        return False
    try:
        return bool(expected == actual)
    except Exception:
        return False


def _type_name(value: Any) -> str:
    return type(value).__name__


def _clip(text: str) -> str:
    if len(text) <= _MAX_REPR:
        return text
    return text[: _MAX_REPR - 3] + "..."
