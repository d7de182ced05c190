"""The event model: who did what, to which target, with what result."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, Literal

__all__ = ["Actor", "Event", "RequestInfo", "Result", "ResultStatus"]

#: The three values :attr:`Result.status` may take.
ResultStatus = Literal["success", "denied", "error"]


@dataclasses.dataclass(slots=True)
class Actor:
    """Who did it: a user, a service account, an API key, a scheduled job.

    Args:
        type: The kind of actor, for example ``"user"`` or ``"service"``.
        id: The actor's stable identifier within its type.
        name: A display name, if one helps a person reading the audit log.
        metadata: Extra JSON values about the actor.
    """

    type: str
    id: str
    name: str | None = None
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(slots=True)
class Target:
    """What it was done to: a document, a secret, an account.

    Args:
        type: The kind of target, for example ``"secret"``.
        id: The target's stable identifier within its type.
        name: A display name, if one helps a person reading the audit log.
        metadata: Extra JSON values about the target.
    """

    type: str
    id: str
    name: str | None = None
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(slots=True)
class Result:
    """How it ended.

    Args:
        status: ``"success"``, ``"denied"`` or ``"error"``; any other value makes the
            event invalid when it is recorded.
        code: A status code, usually the HTTP status the action produced.
        message: A short explanation, for example ``"cross-tenant access"``.
    """

    status: str
    code: int | None = None
    message: str | None = None


@dataclasses.dataclass(slots=True)
class RequestInfo:
    """The HTTP request an event came from; the middleware fills it in.

    Args:
        id: The request id, taken from a header or generated.
        method: The HTTP method.
        path: The request path, without the query string.
        ip: The client's address.
        user_agent: The client's ``User-Agent`` header.
    """

    id: str | None = None
    method: str | None = None
    path: str | None = None
    ip: str | None = None
    user_agent: str | None = None


@dataclasses.dataclass(slots=True)
class Event:
    """One audit event. Mutable: handlers fill it in as they learn what happened.

    An event with an empty ``action`` is a no-op: recording it sends nothing, so a
    handler can opt in only when something audit-worthy happened.

    Args:
        action: What was done, for example ``"secret.read"``.
        actor: Who did it.
        target: What it was done to.
        result: How it ended.
        tenant_id: The tenant the event belongs to, in a multi-tenant service.
        request: The HTTP request it came from.
        metadata: Extra JSON values (``dict``, ``list``, ``str``, ``int``, ``float``,
            ``bool``, ``None``; string keys only).
        occurred_at: When it happened, timezone-aware. Left as ``None``, the time
            of the ``record()`` call is sent.
        id: A UUID string; the audit service de-duplicates on it. Left empty, a
            fresh UUIDv7 is sent. The recorder fills these two in its own copy of
            the event: the object you pass is never modified.
    """

    action: str = ""
    actor: Actor | None = None
    target: Target | None = None
    result: Result | None = None
    tenant_id: str | None = None
    request: RequestInfo | None = None
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    occurred_at: datetime | None = None
    id: str = ""

    def to_wire(self) -> dict[str, Any]:
        """Return the event as the JSON-ready dict of the wire protocol.

        The dict is a deep copy: changing the event afterwards doesn't change it.
        ``occurred_at`` becomes an RFC 3339 string in UTC with microseconds, and
        absent optional parts become ``None``. An empty ``id`` or an unset
        ``occurred_at`` stay empty here; the recorders fill them when recording.

        Raises:
            InvalidEventError: The content can't be encoded or breaks a limit; the
                error names the field.
        """
        from ._wire import event_to_wire

        return event_to_wire(self)

    @classmethod
    def from_wire(cls, data: Any) -> Event:
        """Build an event from a dict in the wire form, as :meth:`to_wire` gives.

        The input is checked as strictly as the audit service checks it: unknown
        fields, wrong types and broken limits are refused.

        Raises:
            InvalidEventError: ``data`` is not a valid event; the error names the field.
        """
        from ._wire import event_from_wire

        return event_from_wire(data)
