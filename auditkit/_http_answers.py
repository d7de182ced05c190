"""Reading the audit service's answers: ingest bodies, ``Retry-After``, refusals.

Pure functions, kept apart from :mod:`auditkit._http` so that the rules of the wire
protocol can be read (and tested) without a client or a network.
"""

from __future__ import annotations

import dataclasses
import datetime
import email.utils
import math
import re
from http import HTTPStatus
from typing import Any, TypeGuard

from ._encoding import decode_json

__all__ = [
    "Refusal",
    "describe_rejection",
    "describe_status",
    "parse_rejections",
    "parse_retry_after",
    "refusal_for",
]

# The longest piece of a server-supplied reason we keep: reasons travel to
# on_failure and into log lines, and a hostile or broken service must not be able
# to make them arbitrarily long.
_MAX_REASON_PART = 200

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
_DELTA_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")


@dataclasses.dataclass(frozen=True, slots=True)
class Refusal:
    """How to report a status that is neither success nor worth retrying.

    Attributes:
        summary: What the service did, as the start of a sentence.
        advice: What the user should check, as a sentence; may be empty.
    """

    summary: str
    advice: str


_REFUSALS = {
    400: Refusal(
        "The audit service refused a batch as malformed",
        "This points to a proxy that alters requests, or to a bug in auditkit.",
    ),
    401: Refusal(
        "The audit service refused the API key",
        "Check the api_key given to auditkit: it is missing, wrong or revoked.",
    ),
    403: Refusal(
        "The audit service refused the API key for this endpoint",
        "Check that the key may write events, and the tenant it is bound to.",
    ),
    404: Refusal(
        "The audit service has no ingest endpoint at the configured URL",
        "Check the endpoint: it is the service's base URL, without /v1/events.",
    ),
    415: Refusal(
        "The audit service refused the content type or encoding of a batch",
        "A proxy may alter requests, or the service can't read gzip: "
        "set gzip_threshold=None to send plain JSON.",
    ),
}


def describe_status(status: int) -> str:
    """Return ``"401 Unauthorized"`` for 401, or just the number if it has no name."""
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def refusal_for(status: int) -> Refusal:
    """Return how to report ``status``, a final answer that is not a success."""
    known = _REFUSALS.get(status)
    if known is not None:
        return known
    if 300 <= status < 400:
        return Refusal(
            "The audit service redirected a batch",
            "auditkit does not follow redirects: set the endpoint to the final URL.",
        )
    return Refusal(
        "The audit service refused a batch",
        "Sending it again would not help.",
    )


def parse_retry_after(value: str | None, *, now: float, cap: float) -> float | None:
    """Return the delay a ``Retry-After`` header asks for, in seconds.

    Both forms of the header are read: delta-seconds (``"120"``) and an HTTP date
    (``"Wed, 21 Oct 2026 07:28:00 GMT"``). A date in the past means no delay.

    Args:
        value: The header's value, or None when it is absent.
        now: The current time, as seconds since the epoch.
        cap: The longest delay honoured; a longer one is cut to it.

    Returns:
        The delay, at most ``cap``; None when the header is absent or unreadable.
    """
    if value is None:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        # Compared before converting: a value of hundreds of digits would overflow.
        whole = int(value.partition(".")[0])
        return cap if whole >= cap else min(float(value), cap)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        # RFC 9110 dates are always GMT; "-0000" parses as naive.
        when = when.replace(tzinfo=datetime.UTC)
    delay = when.timestamp() - now
    if math.isnan(delay):  # pragma: no cover - defensive, timestamps are finite
        return None
    return min(max(delay, 0.0), cap)


def parse_rejections(body: bytes, count: int) -> dict[int, str] | None:
    """Read the ``rejected`` list of an ingest answer, by index in the batch.

    Args:
        body: The answer's body, ``{"accepted", "duplicates", "rejected": [...]}``.
        count: How many events the batch held; other indices are ignored.

    Returns:
        The reason of each rejected event, by index; None when the body is not an
        ingest answer at all.
    """
    try:
        data = decode_json(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    rejected = data.get("rejected", [])
    if not isinstance(rejected, list):
        return None
    reasons: dict[int, str] = {}
    for item in rejected:
        index = item.get("index") if isinstance(item, dict) else None
        if _is_index(index, count):
            reasons[index] = describe_rejection(item)
    return reasons


def describe_rejection(item: dict[str, Any]) -> str:
    """Return ``"<code> at <field>: <error>"`` for one entry of ``rejected``."""
    code = _clean(item.get("code")) or "rejected"
    field = _clean(item.get("field"))
    error = _clean(item.get("error"))
    where = f"{code} at {field}" if field else code
    return f"{where}: {error}" if error else where


def _is_index(value: object, count: int) -> TypeGuard[int]:
    # bool is an int subclass, and True is not an index.
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < count


def _clean(value: object) -> str:
    if not isinstance(value, str):
        return ""
    cleaned = _CONTROL_CHARACTERS.sub(" ", value).strip()
    if len(cleaned) > _MAX_REASON_PART:
        cleaned = cleaned[: _MAX_REASON_PART - 1] + "…"
    return cleaned
