"""The wire form of events (protocol v1), and the validation both ends share.

Two entry points do the same checks from different starting points:

- :func:`snapshot_event` turns an :class:`~auditkit.Event` into its wire dict on the
  recording thread: it validates and deep-copies in one walk, so that later changes to
  the event can't change what is sent.
- :func:`parse_wire_event` checks a decoded JSON object strictly, as the audit service
  does, and returns it normalised.

Both raise :class:`~auditkit.InvalidEventError` naming the field, with the same codes,
so that the SDK and the fake server give the same reasons.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from typing import Any

from ._config import DEFAULT_MAX_EVENT_BYTES
from ._events import Actor, Event, RequestInfo, Result, Target
from ._exceptions import InvalidEventError
from ._ids import format_timestamp, next_id_and_timestamp

__all__ = [
    "FIELD_LIMITS",
    "RESULT_STATUSES",
    "encoded_size",
    "event_from_wire",
    "event_to_wire",
    "parse_wire_event",
    "snapshot_event",
]

#: The values ``result.status`` may take.
RESULT_STATUSES = ("success", "denied", "error")

#: The longest each text field may be, in characters.
FIELD_LIMITS: dict[str, int] = {
    "action": 256,
    "tenant_id": 256,
    "party.type": 128,
    "party.id": 256,
    "party.name": 1024,
    "result.message": 4096,
    "request.id": 256,
    "request.method": 32,
    "request.path": 8192,
    "request.ip": 64,
    "request.user_agent": 1024,
    "metadata.key": 256,
}
#: How deep metadata may nest (a dict in a list in a dict is three levels).
MAX_DEPTH = 32
_INT_MIN = -(2**63)
_INT_MAX = 2**63 - 1
_CODE_MIN = -(2**31)
_CODE_MAX = 2**31 - 1
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
_WIRE_FIELDS = frozenset(
    (
        "id",
        "action",
        "occurred_at",
        "actor",
        "target",
        "result",
        "tenant_id",
        "request",
        "metadata",
    )
)
_PARTY_FIELDS = frozenset(("type", "id", "name", "metadata"))
_RESULT_FIELDS = frozenset(("status", "code", "message"))
_REQUEST_FIELDS = ("id", "method", "path", "ip", "user_agent")
# The limit of every text field by its full name, so that a check costs one lookup.
_TEXT_LIMITS: dict[str, int] = {
    "action": FIELD_LIMITS["action"],
    "tenant_id": FIELD_LIMITS["tenant_id"],
    "result.message": FIELD_LIMITS["result.message"],
    **{
        f"{party}.{name}": FIELD_LIMITS[f"party.{name}"]
        for party in ("actor", "target")
        for name in ("type", "id", "name")
    },
    **{f"request.{name}": FIELD_LIMITS[f"request.{name}"] for name in _REQUEST_FIELDS},
}
_ACTION_LIMIT = FIELD_LIMITS["action"]
_TENANT_LIMIT = FIELD_LIMITS["tenant_id"]
_TYPE_LIMIT = FIELD_LIMITS["party.type"]
_ID_LIMIT = FIELD_LIMITS["party.id"]
_NAME_LIMIT = FIELD_LIMITS["party.name"]
_KEY_LIMIT = FIELD_LIMITS["metadata.key"]
# The dotted names of a party's fields, built once rather than on every check.
_PARTY_NAMES = {
    party: tuple(f"{party}.{name}" for name in ("type", "id", "name", "metadata"))
    for party in ("actor", "target")
}
_REQUEST_CHECKS = tuple(
    (name, f"request.{name}", FIELD_LIMITS[f"request.{name}"])
    for name in _REQUEST_FIELDS
)
# Per-node allowance used to bound an event's encoded size without encoding it: JSON
# needs at most 6 bytes per character (a control character as \u00XX) and a few bytes
# of punctuation per value.
_BYTES_PER_CHAR = 6
_BYTES_PER_NODE = 24
_ENVELOPE_BYTES = 512


def snapshot_event(
    event: Event,
    *,
    max_event_bytes: int | None = DEFAULT_MAX_EVENT_BYTES,
    fill: bool = True,
    stamp: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """Validate ``event`` and return a deep copy of it in wire form.

    Args:
        event: The event to copy. It is never modified.
        max_event_bytes: The largest the encoded event may be; ``None`` for no limit.
        fill: Fill an empty ``id`` and an unset ``occurred_at``.
        stamp: The ``(id, timestamp)`` to fill with, when the event was accepted
            earlier than now (a deferred event); a fresh pair otherwise.

    Raises:
        InvalidEventError: The content can't be encoded or breaks a limit.
    """
    if type(event) is not Event and not isinstance(event, Event):
        raise InvalidEventError(
            "", "wrong_type", f"Expected an auditkit.Event, got {_kind(event)}."
        )
    sizes = [0, 0]  # characters of text, and values, seen so far
    # Each field takes a fast path for the common shape (exact types, short ASCII
    # text); anything else goes through the full check, which gives the same result
    # or raises the error naming the field. Fields are checked in wire order, so the
    # first error is the same whichever path each field took.
    event_id = event.id
    if type(event_id) is not str or event_id:
        event_id = _check_event_id(event_id, sizes)
    action = event.action
    if type(action) is str and len(action) <= _ACTION_LIMIT and action.isascii():
        sizes[0] += len(action)
        sizes[1] += 1
    else:
        action = _check_text(action, "action", sizes, allow_empty=True)
    # Absent optional parts are tested here, not in the helpers: a call per part
    # would cost more than the check.
    occurred_at, actor, target = event.occurred_at, event.actor, event.target
    result, tenant_id, request = event.result, event.tenant_id, event.request
    wire = {
        "id": event_id,
        "action": action,
        "occurred_at": None
        if occurred_at is None
        else _format_occurred_at(occurred_at),
        "actor": None
        if actor is None
        else _snapshot_party(actor, "actor", Actor, sizes),
        "target": None
        if target is None
        else _snapshot_party(target, "target", Target, sizes),
        "result": None if result is None else _snapshot_result(result, sizes),
        "tenant_id": None
        if tenant_id is None
        else _check_optional_text(tenant_id, "tenant_id", sizes),
        "request": None if request is None else _snapshot_request(request, sizes),
        "metadata": _copy_metadata(event.metadata, "metadata", sizes),
    }
    if fill and (not event_id or occurred_at is None):
        new_id, now = stamp if stamp is not None else next_id_and_timestamp()
        if not event_id:
            wire["id"] = new_id
        if occurred_at is None:
            wire["occurred_at"] = now
    if max_event_bytes is not None:
        bound = (
            _ENVELOPE_BYTES + _BYTES_PER_CHAR * sizes[0] + _BYTES_PER_NODE * sizes[1]
        )
        if bound > max_event_bytes:
            _check_size(wire, sizes, max_event_bytes)
    return wire


def event_to_wire(event: Event) -> dict[str, Any]:
    """Return ``event`` in wire form without filling ids or checking its size."""
    return snapshot_event(event, max_event_bytes=None, fill=False)


def parse_wire_event(
    data: Any, *, max_event_bytes: int | None = DEFAULT_MAX_EVENT_BYTES
) -> dict[str, Any]:
    """Check a decoded JSON event strictly and return it normalised.

    Optional parts may be absent or ``null``; ``id``, ``action`` and ``occurred_at``
    are required. Unknown fields and wrong types are refused.

    Raises:
        InvalidEventError: ``data`` is not a valid event; the error names the field.
    """
    if not isinstance(data, dict):
        raise InvalidEventError(
            "", "wrong_type", f"An event must be a JSON object, got {_kind(data)}."
        )
    _reject_unknown(data, _WIRE_FIELDS, "")
    sizes = [0, 0]
    for name in ("id", "action", "occurred_at"):
        if data.get(name) is None:
            raise InvalidEventError(name, "required", "This field is required.")
    wire = {
        "id": _check_event_id(data["id"], sizes, allow_empty=False),
        "action": _check_text(data["action"], "action", sizes),
        "occurred_at": _parse_occurred_at(data["occurred_at"]),
        "actor": _parse_party(data.get("actor"), "actor", sizes),
        "target": _parse_party(data.get("target"), "target", sizes),
        "result": _parse_result(data.get("result"), sizes),
        "tenant_id": _check_optional_text(data.get("tenant_id"), "tenant_id", sizes),
        "request": _parse_request(data.get("request"), sizes),
        "metadata": _copy_metadata(data.get("metadata", {}), "metadata", sizes),
    }
    if max_event_bytes is not None:
        _check_size(wire, sizes, max_event_bytes)
    return wire


def event_from_wire(data: Any) -> Event:
    """Build an :class:`~auditkit.Event` from its wire form, checked strictly."""
    wire = parse_wire_event(data, max_event_bytes=None)
    actor, target, result, request = (
        wire["actor"],
        wire["target"],
        wire["result"],
        wire["request"],
    )
    return Event(
        action=wire["action"],
        actor=Actor(**actor) if actor is not None else None,
        target=Target(**target) if target is not None else None,
        result=Result(**result) if result is not None else None,
        tenant_id=wire["tenant_id"],
        request=RequestInfo(**request) if request is not None else None,
        metadata=wire["metadata"],
        occurred_at=datetime.fromisoformat(wire["occurred_at"]),
        id=wire["id"],
    )


def encoded_size(wire: dict[str, Any]) -> int:
    """Return the size in bytes of ``wire`` encoded as compact UTF-8 JSON."""
    text = json.dumps(wire, ensure_ascii=False, separators=(",", ":"))
    return len(text.encode("utf-8"))


def _check_size(wire: dict[str, Any], sizes: list[int], limit: int) -> None:
    bound = _ENVELOPE_BYTES + _BYTES_PER_CHAR * sizes[0] + _BYTES_PER_NODE * sizes[1]
    if bound <= limit:
        return  # the common case: provably small, no need to encode

    size = encoded_size(wire)
    if size > limit:
        raise InvalidEventError(
            "",
            "too_large",
            f"The event encodes to {size} bytes, over the limit of {limit} bytes; "
            "move bulky data out of metadata.",
        )


def _check_text(
    value: Any, field: str, sizes: list[int], *, allow_empty: bool = False
) -> str:
    if type(value) is not str:
        if not isinstance(value, str):
            raise InvalidEventError(
                field, "wrong_type", f"Expected a string, got {_kind(value)}."
            )
        value = str.__str__(value)  # a str subclass (an enum member) as plain text
    if not value and not allow_empty:
        raise InvalidEventError(field, "empty", "Must not be empty.")
    limit = _TEXT_LIMITS.get(field) or FIELD_LIMITS[_limit_key(field)]
    if len(value) > limit:
        raise InvalidEventError(
            field,
            "too_long",
            f"{len(value)} characters, over the limit of {limit}.",
        )
    _check_utf8(value, field)
    sizes[0] += len(value)
    sizes[1] += 1
    text: str = value
    return text


def _check_optional_text(value: Any, field: str, sizes: list[int]) -> str | None:
    if value is None:
        return None
    if (
        type(value) is str
        and 0 < len(value) <= _TEXT_LIMITS.get(field, 0)
        and value.isascii()
    ):
        sizes[0] += len(value)
        sizes[1] += 1
        return value
    return _check_text(value, field, sizes)


def _limit_key(field: str) -> str:
    if field.startswith(("actor.", "target.")):
        return "party." + field.partition(".")[2]
    return field


def _check_utf8(value: str, field: str) -> None:
    if value.isascii():
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidEventError(
            field,
            "not_utf8",
            f"Contains a lone surrogate ({value[exc.start]!r} at position "
            f"{exc.start}), which is not valid UTF-8 text.",
        ) from None


def _check_event_id(value: Any, sizes: list[int], *, allow_empty: bool = True) -> str:
    if type(value) is not str:
        raise InvalidEventError(
            "id", "wrong_type", f"Expected a UUID string, got {_kind(value)}."
        )
    if not value:
        if allow_empty:
            return value
        raise InvalidEventError("id", "empty", "Must not be empty.")
    if not _UUID.match(value):
        raise InvalidEventError(
            "id",
            "bad_format",
            "Expected a UUID in its canonical lower-case form, like str(uuid.uuid4()).",
        )
    sizes[0] += 36
    return value


def _format_occurred_at(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise InvalidEventError(
            "occurred_at", "wrong_type", f"Expected a datetime, got {_kind(value)}."
        )
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidEventError(
            "occurred_at",
            "naive_datetime",
            "Has no timezone; use an aware datetime such as datetime.now(UTC).",
        )
    try:
        return format_timestamp(value)
    except OverflowError:
        # Year 1 or 9999 with an offset that moves it out of datetime's range in UTC.
        raise InvalidEventError(
            "occurred_at",
            "out_of_range",
            "Falls outside the years 1 to 9999 once converted to UTC.",
        ) from None


def _parse_occurred_at(value: Any) -> str:
    if type(value) is not str:
        raise InvalidEventError(
            "occurred_at",
            "wrong_type",
            f"Expected an RFC 3339 string, got {_kind(value)}.",
        )
    try:
        moment = datetime.fromisoformat(value) if len(value) <= 40 else None
    except ValueError:
        moment = None
    if moment is None or "T" not in value.upper():
        raise InvalidEventError(
            "occurred_at",
            "bad_format",
            "Expected an RFC 3339 timestamp like 2024-05-01T12:00:00.000000Z.",
        )
    return _format_occurred_at(moment) or ""


def _snapshot_party(
    value: Any, field: str, cls: type[Actor] | type[Target], sizes: list[int]
) -> dict[str, Any] | None:
    if value is None:
        return None
    if type(value) is not cls and not isinstance(value, cls):
        raise InvalidEventError(
            field,
            "wrong_type",
            f"Expected an auditkit.{cls.__name__}, got {_kind(value)}.",
        )
    names = _PARTY_NAMES[field]
    kind, ident, name = value.type, value.id, value.name
    if (
        type(kind) is str
        and type(ident) is str
        and 0 < len(kind) <= _TYPE_LIMIT
        and 0 < len(ident) <= _ID_LIMIT
        and kind.isascii()
        and ident.isascii()
    ):
        sizes[0] += len(kind) + len(ident)
        sizes[1] += 2
    else:
        kind = _check_text(kind, names[0], sizes)
        ident = _check_text(ident, names[1], sizes)
    if name is not None:
        name = _check_optional_text(name, names[2], sizes)
    metadata = value.metadata
    if type(metadata) is dict and not metadata:
        sizes[1] += 1  # the usual empty dict, counted as _copy_metadata would
        metadata = {}
    else:
        metadata = _copy_metadata(metadata, names[3], sizes)
    return {"type": kind, "id": ident, "name": name, "metadata": metadata}


def _parse_party(value: Any, field: str, sizes: list[int]) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidEventError(
            field, "wrong_type", f"Expected an object or null, got {_kind(value)}."
        )
    _reject_unknown(value, _PARTY_FIELDS, field)
    return {
        "type": _check_text(value.get("type"), f"{field}.type", sizes),
        "id": _check_text(value.get("id"), f"{field}.id", sizes),
        "name": _check_optional_text(value.get("name"), f"{field}.name", sizes),
        "metadata": _copy_metadata(
            value.get("metadata", {}), f"{field}.metadata", sizes
        ),
    }


def _snapshot_result(value: Any, sizes: list[int]) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Result):
        raise InvalidEventError(
            "result", "wrong_type", f"Expected an auditkit.Result, got {_kind(value)}."
        )
    return _check_result_fields(value.status, value.code, value.message, sizes)


def _parse_result(value: Any, sizes: list[int]) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidEventError(
            "result", "wrong_type", f"Expected an object or null, got {_kind(value)}."
        )
    _reject_unknown(value, _RESULT_FIELDS, "result")
    return _check_result_fields(
        value.get("status"), value.get("code"), value.get("message"), sizes
    )


def _check_result_fields(
    status: Any, code: Any, message: Any, sizes: list[int]
) -> dict[str, Any]:
    if status not in RESULT_STATUSES or type(status) is not str:
        shown = repr(status) if isinstance(status, str) else _kind(status)
        raise InvalidEventError(
            "result.status",
            "bad_value",
            f"{shown[:80]} is not one of 'success', 'denied', 'error'.",
        )
    if code is not None:
        if type(code) is not int:
            raise InvalidEventError(
                "result.code", "wrong_type", f"Expected an integer, got {_kind(code)}."
            )
        if not _CODE_MIN <= code <= _CODE_MAX:
            raise InvalidEventError(
                "result.code", "out_of_range", "Must fit in a signed 32-bit integer."
            )
    sizes[1] += 3
    return {
        "status": status,
        "code": code,
        "message": _check_optional_text(message, "result.message", sizes),
    }


def _snapshot_request(value: Any, sizes: list[int]) -> dict[str, Any] | None:
    if value is None:
        return None
    if type(value) is not RequestInfo and not isinstance(value, RequestInfo):
        raise InvalidEventError(
            "request",
            "wrong_type",
            f"Expected an auditkit.RequestInfo, got {_kind(value)}.",
        )
    copied: dict[str, Any] = {}
    for name, field, limit in _REQUEST_CHECKS:
        text = getattr(value, name)
        if text is None:
            copied[name] = None
        elif type(text) is str and 0 < len(text) <= limit and text.isascii():
            sizes[0] += len(text)
            sizes[1] += 1
            copied[name] = text
        else:
            copied[name] = _check_text(text, field, sizes)
    return copied


def _parse_request(value: Any, sizes: list[int]) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidEventError(
            "request", "wrong_type", f"Expected an object or null, got {_kind(value)}."
        )
    _reject_unknown(value, frozenset(_REQUEST_FIELDS), "request")
    return {
        name: _check_optional_text(value.get(name), f"request.{name}", sizes)
        for name in _REQUEST_FIELDS
    }


def _copy_metadata(value: Any, field: str, sizes: list[int]) -> dict[str, Any]:
    if type(value) is dict:
        if not value:
            sizes[1] += 1
            return {}
        copied = _copy_flat_object(value, sizes)
        if copied is not None:
            return copied
    elif not isinstance(value, dict):
        raise InvalidEventError(
            field, "wrong_type", f"Expected a dict, got {_kind(value)}."
        )
    try:
        copied = _copy_json(value, 1, sizes)
    except InvalidEventError as exc:
        path = f"{field}{exc.field}"
        raise InvalidEventError(path, exc.code, exc.message) from None
    return copied  # type: ignore[no-any-return]


def _copy_flat_object(value: dict[Any, Any], sizes: list[int]) -> dict[str, Any] | None:
    """Copy a dict of short ASCII keys and scalar values, the common metadata shape.

    Returns None, having counted nothing, for anything else (a nested value, a long
    or non-ASCII key or text, a subclass, a value out of range): the caller then
    copies it with the full checks, which accept it or name what is wrong.
    """
    chars = 0
    for key, item in value.items():
        if type(key) is not str or len(key) > _KEY_LIMIT or not key.isascii():
            return None
        kind = type(item)
        if kind is str:
            if not item.isascii():
                return None
            chars += len(item)
        elif kind is int:
            if not _INT_MIN <= item <= _INT_MAX:
                return None
        elif kind is float:
            if item - item != 0.0:  # inf or nan
                return None
        elif item is not None and kind is not bool:
            return None
        chars += len(key)
    sizes[0] += chars
    sizes[1] += len(value) + 1
    return dict(value)


def _copy_json(value: Any, depth: int, sizes: list[int]) -> Any:
    """Deep-copy a JSON value, refusing anything that JSON can't carry faithfully.

    On failure the error's ``field`` holds the path below ``value`` (``".a[2].b"``),
    built while unwinding so that the success path never formats a path.
    """
    kind = type(value)
    sizes[1] += 1
    if kind is str:
        _check_utf8(value, "")
        sizes[0] += len(value)
        return value
    if value is None or kind is bool:
        return value
    if kind is int:
        if not _INT_MIN <= value <= _INT_MAX:
            raise InvalidEventError(
                "", "out_of_range", "Integer outside the signed 64-bit range."
            )
        return value
    if kind is float:
        if not math.isfinite(value):
            raise InvalidEventError(
                "", "not_json", f"{value!r} is not a JSON number; use null or a string."
            )
        return value
    if kind is dict or kind is list or kind is tuple:
        if depth > MAX_DEPTH:
            raise InvalidEventError(
                "",
                "too_deep",
                f"Nested deeper than {MAX_DEPTH} levels (or a reference cycle).",
            )
        if kind is dict:
            return _copy_json_object(value, depth, sizes)
        return _copy_json_array(value, depth, sizes)
    return _copy_json_subclass(value, depth, sizes)


def _copy_json_object(value: dict[Any, Any], depth: int, sizes: list[int]) -> Any:
    copied = {}
    for key, item in value.items():
        if type(key) is not str:
            raise InvalidEventError(
                f"[{key!r:.40}]",
                "not_json",
                f"Key of type {type(key).__name__}; JSON object keys are strings.",
            )
        if len(key) > FIELD_LIMITS["metadata.key"]:
            raise InvalidEventError(
                f".{key[:40]}...",
                "too_long",
                f"Key of {len(key)} characters, over the limit of "
                f"{FIELD_LIMITS['metadata.key']}.",
            )
        try:
            _check_utf8(key, "")
            copied[key] = _copy_json(item, depth + 1, sizes)
        except InvalidEventError as exc:
            raise InvalidEventError(
                f".{key}{exc.field}" if key.isascii() else f"[{key!a}]{exc.field}",
                exc.code,
                exc.message,
            ) from None
        sizes[0] += len(key)
    return copied


def _copy_json_array(
    value: list[Any] | tuple[Any, ...], depth: int, sizes: list[int]
) -> Any:
    copied = []
    for index, item in enumerate(value):
        try:
            copied.append(_copy_json(item, depth + 1, sizes))
        except InvalidEventError as exc:
            raise InvalidEventError(
                f"[{index}]{exc.field}", exc.code, exc.message
            ) from None
    return copied


def _copy_json_subclass(value: Any, depth: int, sizes: list[int]) -> Any:
    # Subclasses of JSON types (a str enum, an int enum, an OrderedDict) become the
    # plain type, as json.dumps would send them.
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        return _copy_json(str.__str__(value), depth, sizes)
    if isinstance(value, int):
        return _copy_json(int(value), depth, sizes)
    if isinstance(value, float):
        return _copy_json(float(value), depth, sizes)
    if isinstance(value, dict):
        return _copy_json(dict(value), depth, sizes)
    if isinstance(value, list | tuple):
        return _copy_json(list(value), depth, sizes)
    raise InvalidEventError("", "not_json", _not_json_reason(value))


def _not_json_reason(value: Any) -> str:
    name = type(value).__name__
    hints = {
        "datetime": "convert it with .isoformat()",
        "date": "convert it with .isoformat()",
        "bytes": "decode it, or encode it as base64 text",
        "bytearray": "decode it, or encode it as base64 text",
        "set": "convert it to a sorted list",
        "frozenset": "convert it to a sorted list",
        "UUID": "convert it with str()",
        "Decimal": "convert it to a string or a float",
    }
    hint = hints.get(name, "convert it to a str, number, bool, None, list or dict")
    return f"A value of type {name} is not JSON; {hint}."


def _reject_unknown(data: dict[str, Any], allowed: frozenset[str], field: str) -> None:
    for key in data:
        if key not in allowed:
            where = f"{field}.{key}" if field else str(key)
            raise InvalidEventError(where[:300], "unknown_field", "Unknown field.")


def _kind(value: Any) -> str:
    if value is None:
        return "None"
    return type(value).__name__
