"""Matchers: values that stand for "anything like this" in an expected event.

Any expected value given to the assertions may be one of these, a compiled regular
expression, or a plain callable used as a predicate.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, final

__all__ = [
    "ANY",
    "ANY_STR",
    "Matcher",
    "approx_time",
    "matches",
    "predicate",
]


class Matcher:
    """The base of every matcher: something an expected value can be compared with.

    Subclass it and implement :meth:`matches` and ``__repr__`` to write your own;
    the repr is what failure messages show as the expected value.
    """

    def matches(self, value: Any) -> bool:
        """Return True when ``value`` is acceptable."""
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return self.matches(other)

    def __ne__(self, other: object) -> bool:
        return not self.matches(other)

    # Matchers compare by behaviour, not identity; they are not meant for sets.
    __hash__ = None  # type: ignore[assignment]


@final
class _Any(Matcher):
    """Matches any value at all, ``None`` included."""

    def matches(self, value: Any) -> bool:
        return True

    def __repr__(self) -> str:
        return "ANY"


@final
class _AnyStr(Matcher):
    """Matches any non-empty string."""

    def matches(self, value: Any) -> bool:
        return isinstance(value, str) and value != ""

    def __repr__(self) -> str:
        return "ANY_STR"


#: Matches any value, ``None`` included.
ANY: Matcher = _Any()
#: Matches any non-empty string.
ANY_STR: Matcher = _AnyStr()


@final
class _Predicate(Matcher):
    def __init__(self, check: Callable[[Any], object], description: str) -> None:
        self._check = check
        self._description = description

    def matches(self, value: Any) -> bool:
        try:
            return bool(self._check(value))
        except Exception:
            # A predicate written for one type may not accept another (len() of
            # None); for matching purposes that is simply "does not match".
            return False

    def __repr__(self) -> str:
        return self._description


def predicate(
    check: Callable[[Any], object], description: str | None = None
) -> Matcher:
    """Wrap a callable as a matcher, with a description for failure messages.

    A plain callable works as an expected value too; wrapping it only gives it a
    readable name. An exception raised by ``check`` counts as no match.

    Args:
        check: Called with the recorded value; a truthy return means it matches.
        description: What failure messages show; defaults to the callable's name.

    Returns:
        A :class:`Matcher`.
    """
    name = description or getattr(check, "__qualname__", None) or repr(check)
    return _Predicate(check, f"<{name}>" if description is None else name)


@final
class _ApproxTime(Matcher):
    def __init__(self, moment: datetime, tolerance: timedelta) -> None:
        self._moment = moment
        self._tolerance = tolerance

    def matches(self, value: Any) -> bool:
        if not isinstance(value, datetime) or value.tzinfo is None:
            return False
        return abs(value - self._moment) <= self._tolerance

    def __repr__(self) -> str:
        seconds = self._tolerance.total_seconds()
        return f"approx_time({self._moment.isoformat()} \u00b1 {seconds:g}s)"


def approx_time(
    moment: datetime, *, tolerance: timedelta = timedelta(seconds=1)
) -> Matcher:
    """Match an aware datetime within ``tolerance`` of ``moment``.

    Useful for ``occurred_at``, which the recorder fills with the time of the
    ``record()`` call.

    Args:
        moment: The expected time; it must be timezone-aware.
        tolerance: How far either side of ``moment`` still matches.

    Returns:
        A :class:`Matcher`.

    Raises:
        ValueError: ``moment`` is naive or ``tolerance`` is negative.
    """
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise ValueError(f"moment must be a timezone-aware datetime, got {moment!r}.")
    if tolerance < timedelta(0):
        raise ValueError(f"tolerance must not be negative, got {tolerance!r}.")
    return _ApproxTime(moment, tolerance)


def matches(expected: Any, actual: Any) -> bool | None:
    """Compare a matcher-like ``expected`` with ``actual``.

    Returns:
        True or False when ``expected`` is a matcher, a compiled regex (searched in
        a string value) or a callable; ``None`` when it is a plain value that the
        caller must compare itself.
    """
    if isinstance(expected, Matcher):
        return expected.matches(actual)
    if isinstance(expected, re.Pattern):
        return isinstance(actual, str) and expected.search(actual) is not None
    if callable(expected) and not isinstance(expected, type):
        return _Predicate(expected, "").matches(actual)
    return None
