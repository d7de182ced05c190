"""Hypothesis strategies for audit events, valid by construction.

Every event these strategies build passes the SDK's validation and the fake
server's, survives the wire round trip (``Event.from_wire(e.to_wire()) == e``) and
fits the default event size. They shrink towards the smallest event: absent
optional parts, short ASCII text, zero.

The strategies for the model types are registered with Hypothesis, so that
``st.from_type(Event)`` and ``st.builds(...)`` with annotated arguments work. The
distribution declares a Hypothesis entry point, so this happens as soon as
Hypothesis is imported; importing this module does it too::

    from hypothesis import given
    from auditkit_testing import strategies

    @given(strategies.events())
    def test_any_event_is_stored(event):
        ...

:func:`invalid_events` builds events that break one validation rule each, with
the field and code the validator must report.

This module needs Hypothesis: ``pip install 'auditkit[testing]'``.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, final

try:
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - only without the testing extra
    raise ImportError(
        "auditkit_testing.strategies needs Hypothesis; install it with "
        "pip install 'auditkit[testing]'."
    ) from None

from auditkit import Actor, Event, RequestInfo, Result, Target
from auditkit._config import DEFAULT_MAX_EVENT_BYTES
from auditkit._wire import FIELD_LIMITS, MAX_DEPTH, RESULT_STATUSES, encoded_size

__all__ = [
    "INVALID_RULES",
    "InvalidEvent",
    "actors",
    "events",
    "invalid_events",
    "metadata",
    "request_infos",
    "results",
    "targets",
    "texts",
]

_INT64 = (-(2**63), 2**63 - 1)
_INT32 = (-(2**31), 2**31 - 1)
# Lone surrogates are not valid UTF-8 and the validator refuses them.
_CHARACTERS = st.characters(codec="utf-8")
_EARLIEST = datetime(1970, 1, 1)
_LATEST = datetime(2200, 1, 1)


def texts(field: str, *, max_size: int | None = None) -> st.SearchStrategy[str]:
    """Non-empty valid text for the wire field ``field`` (``"action"``,
    ``"actor.id"``, ``"request.path"``...), within its length limit.

    Args:
        field: The field's dotted name, as in ``auditkit._wire.FIELD_LIMITS``;
            ``actor.`` and ``target.`` share the limits of ``party.``.
        max_size: A smaller cap than the field's limit, to keep examples short.
    """
    key = field
    if field.startswith(("actor.", "target.")):
        key = "party." + field.partition(".")[2]
    limit = FIELD_LIMITS[key]
    size = limit if max_size is None else min(max_size, limit)
    return st.text(_CHARACTERS, min_size=1, max_size=size)


def metadata(*, max_leaves: int = 8) -> st.SearchStrategy[dict[str, Any]]:
    """JSON metadata: string keys, finite floats, 64-bit integers, nested a little.

    Args:
        max_leaves: Roughly how many scalar values one dict holds at most.
    """
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(*_INT64)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(_CHARACTERS, max_size=64)
    )
    keys = texts("metadata.key", max_size=32)
    # max_leaves bounds the nesting well below MAX_DEPTH.
    values = st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4)
        ),
        max_leaves=min(max_leaves, MAX_DEPTH - 2),
    )
    return st.dictionaries(keys, values, max_size=4)


def actors() -> st.SearchStrategy[Actor]:
    """Valid :class:`~auditkit.Actor` objects."""
    return _parties(Actor, "actor")


def targets() -> st.SearchStrategy[Target]:
    """Valid :class:`~auditkit.Target` objects."""
    return _parties(Target, "target")


def results() -> st.SearchStrategy[Result]:
    """Valid :class:`~auditkit.Result` objects: a known status, a 32-bit code."""
    return st.builds(
        Result,
        status=st.sampled_from(RESULT_STATUSES),
        code=st.none() | st.integers(*_INT32),
        message=st.none() | texts("result.message", max_size=200),
    )


def request_infos() -> st.SearchStrategy[RequestInfo]:
    """Valid :class:`~auditkit.RequestInfo` objects."""
    return st.builds(
        RequestInfo,
        **{
            name: st.none() | texts(f"request.{name}", max_size=200)
            for name in ("id", "method", "path", "ip", "user_agent")
        },
    )


def events(*, stamped: bool = True) -> st.SearchStrategy[Event]:
    """Valid :class:`~auditkit.Event` objects with an action.

    Args:
        stamped: Give every event an ``id`` and an ``occurred_at``, as stored
            events have (needed for ``Event.from_wire``). With False, either may
            be left for the recorder to fill.
    """
    ids = st.uuids().map(str)
    times = st.datetimes(_EARLIEST, _LATEST, timezones=_timezones())
    built = st.builds(
        Event,
        action=texts("action", max_size=64),
        actor=st.none() | actors(),
        target=st.none() | targets(),
        result=st.none() | results(),
        tenant_id=st.none() | texts("tenant_id", max_size=64),
        request=st.none() | request_infos(),
        metadata=metadata(),
        occurred_at=times if stamped else st.none() | times,
        id=ids if stamped else st.just("") | ids,
    )
    # Rarely needed: the caps above keep nearly every event far below the limit.
    return built.filter(_fits)


@final
@dataclasses.dataclass(frozen=True, slots=True)
class InvalidEvent:
    """An event that breaks exactly one validation rule.

    Attributes:
        event: The event; recording it returns ``Outcome.INVALID``.
        field: The dotted field the validator names, ``""`` for the whole event.
        code: The code the validator (and the fake server) reports.
    """

    event: Event
    field: str
    code: str


#: The rules :func:`invalid_events` can break, by the code the validator reports.
INVALID_RULES = (
    "wrong_type",
    "empty",
    "too_long",
    "not_utf8",
    "bad_format",
    "naive_datetime",
    "bad_value",
    "out_of_range",
    "not_json",
    "too_deep",
    "too_large",
)


def invalid_events(rule: str | None = None) -> st.SearchStrategy[InvalidEvent]:
    """Events that break one validation rule each, with the expected field and code.

    Args:
        rule: One of :data:`INVALID_RULES`; ``None`` for any of them.

    Raises:
        ValueError: ``rule`` is not a known rule.
    """
    if rule is not None and rule not in _BREAKERS:
        raise ValueError(
            f"rule must be one of {', '.join(INVALID_RULES)}, got {rule!r}."
        )
    chosen = [rule] if rule is not None else list(INVALID_RULES)
    return st.one_of([_BREAKERS[name]() for name in chosen])


# Private helpers.


def _parties(cls: type[Actor] | type[Target], field: str) -> st.SearchStrategy[Any]:
    return st.builds(
        cls,
        type=texts(f"{field}.type", max_size=32),
        id=texts(f"{field}.id", max_size=64),
        name=st.none() | texts(f"{field}.name", max_size=64),
        metadata=metadata(max_leaves=4),
    )


def _timezones() -> st.SearchStrategy[timezone]:
    minutes = st.integers(-(23 * 60 + 59), 23 * 60 + 59)
    return st.just(UTC) | minutes.map(lambda m: timezone(timedelta(minutes=m)))


def _fits(event: Event) -> bool:
    return encoded_size(event.to_wire()) <= DEFAULT_MAX_EVENT_BYTES


def _valid_base() -> st.SearchStrategy[Event]:
    # A small valid event: the broken rule, not the rest, is what these test.
    return st.builds(
        Event,
        action=texts("action", max_size=16),
        actor=st.none() | actors(),
        tenant_id=st.none() | texts("tenant_id", max_size=16),
    )


def _breaking(field: str, code: str, change: Any) -> st.SearchStrategy[InvalidEvent]:
    """Take a valid event and apply ``change(event, draw)`` to break one rule."""

    @st.composite
    def build(draw: st.DrawFn) -> InvalidEvent:
        event = draw(_valid_base())
        where = change(event, draw)
        return InvalidEvent(event, where or field, code)

    return build()


def _set(path: str, value: Any) -> Any:
    def change(event: Event, draw: st.DrawFn) -> None:
        *parents, name = path.split(".")
        owner: Any = event
        for parent in parents:
            owner = getattr(owner, parent)
        setattr(owner, name, value)

    return change


def _wrong_type() -> st.SearchStrategy[InvalidEvent]:
    return st.sampled_from(
        [
            ("action", 42),
            ("tenant_id", 7),
            ("actor", {"type": "user", "id": "1"}),
            ("metadata", ["not", "a", "dict"]),
            ("occurred_at", "2024-01-01T00:00:00Z"),
        ]
    ).flatmap(lambda pair: _breaking(pair[0], "wrong_type", _set(*pair)))


def _empty() -> st.SearchStrategy[InvalidEvent]:
    def change(event: Event, draw: st.DrawFn) -> str:
        party = draw(st.sampled_from(["actor", "target"]))
        name = draw(st.sampled_from(["type", "id"]))
        values = {"type": "thing", "id": "1", name: ""}
        cls = Actor if party == "actor" else Target
        setattr(event, party, cls(values["type"], values["id"]))
        return f"{party}.{name}"

    return _breaking("", "empty", change)


def _too_long() -> st.SearchStrategy[InvalidEvent]:
    def change(event: Event, draw: st.DrawFn) -> str:
        field = draw(st.sampled_from(["action", "tenant_id"]))
        extra = draw(st.integers(1, 8))
        setattr(event, field, "a" * (FIELD_LIMITS[field] + extra))
        return field

    return _breaking("", "too_long", change)


def _not_utf8() -> st.SearchStrategy[InvalidEvent]:
    def change(event: Event, draw: st.DrawFn) -> str:
        surrogate = chr(draw(st.integers(0xD800, 0xDFFF)))
        event.action = "user." + surrogate
        return "action"

    return _breaking("", "not_utf8", change)


def _bad_format() -> st.SearchStrategy[InvalidEvent]:
    ids = st.sampled_from(["not-a-uuid", "1234", "A" * 36])
    return ids.flatmap(lambda value: _breaking("id", "bad_format", _set("id", value)))


def _naive_datetime() -> st.SearchStrategy[InvalidEvent]:
    times = st.datetimes(_EARLIEST, _LATEST)
    return times.flatmap(
        lambda moment: _breaking(
            "occurred_at", "naive_datetime", _set("occurred_at", moment)
        )
    )


def _bad_value() -> st.SearchStrategy[InvalidEvent]:
    statuses = st.sampled_from(["ok", "allowed", "SUCCESS", "fail"])
    return statuses.flatmap(
        lambda status: _breaking(
            "result.status", "bad_value", _set("result", Result(status))
        )
    )


def _out_of_range() -> st.SearchStrategy[InvalidEvent]:
    def change(event: Event, draw: st.DrawFn) -> str:
        if draw(st.booleans()):
            event.result = Result("error", code=draw(st.integers(min_value=2**31)))
            return "result.code"
        event.metadata = {"count": draw(st.integers(min_value=2**63))}
        return "metadata.count"

    return _breaking("", "out_of_range", change)


def _not_json() -> st.SearchStrategy[InvalidEvent]:
    values = st.sampled_from(
        [float("nan"), float("inf"), {1, 2}, b"bytes", datetime(2024, 1, 1)]
    )
    return values.flatmap(
        lambda value: _breaking(
            "metadata.value", "not_json", _set("metadata", {"value": value})
        )
    )


def _too_deep() -> st.SearchStrategy[InvalidEvent]:
    def change(event: Event, draw: st.DrawFn) -> str:
        depth = draw(st.integers(MAX_DEPTH + 1, MAX_DEPTH + 4))
        nested: Any = "leaf"
        for _ in range(depth):
            nested = {"a": nested}
        event.metadata = nested
        # The first container past the limit is reported, by its path.
        return "metadata" + ".a" * MAX_DEPTH

    return _breaking("", "too_deep", change)


def _too_large() -> st.SearchStrategy[InvalidEvent]:
    def change(event: Event, draw: st.DrawFn) -> str:
        size = draw(st.integers(DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_EVENT_BYTES * 2))
        event.metadata = {"blob": "x" * size}
        return ""

    return _breaking("", "too_large", change)


_BREAKERS = {
    "wrong_type": _wrong_type,
    "empty": _empty,
    "too_long": _too_long,
    "not_utf8": _not_utf8,
    "bad_format": _bad_format,
    "naive_datetime": _naive_datetime,
    "bad_value": _bad_value,
    "out_of_range": _out_of_range,
    "not_json": _not_json,
    "too_deep": _too_deep,
    "too_large": _too_large,
}

st.register_type_strategy(Event, events())
st.register_type_strategy(Actor, actors())
st.register_type_strategy(Target, targets())
st.register_type_strategy(Result, results())
st.register_type_strategy(RequestInfo, request_infos())


def _hypothesis_setup_hook() -> None:
    """Called by Hypothesis through the distribution's ``hypothesis`` entry point.

    Importing this module was the work: the strategies above are registered.
    """
