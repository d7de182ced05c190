"""Where the fake server keeps events: SQLite, in memory or in a file.

One SQLite database serves both modes: ``":memory:"`` by default, a file with
``--db PATH`` so that events survive a restart. Every event gets an arrival sequence
number from ``AUTOINCREMENT``, which never goes back, not even after a reset; queries
order by it and cursors point into it, so a page boundary stays put while new events
arrive behind it.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, final

from auditkit import InvalidEventError
from auditkit._ids import format_timestamp
from auditkit._wire import RESULT_STATUSES

__all__ = [
    "FILTER_NAMES",
    "BadRequestError",
    "EventStore",
    "Filters",
    "StoreOutcome",
    "decode_cursor",
    "encode_cursor",
]

#: What storing one event did.
StoreOutcome = Literal["accepted", "duplicate", "conflict"]

#: The filters of ``GET /v1/events`` and ``POST /_fake/wait``.
FILTER_NAMES = (
    "action",
    "actor_id",
    "actor_type",
    "target_type",
    "target_id",
    "tenant_id",
    "status",
    "since",
    "until",
)
# Filter name -> the column it compares with equality.
_EQUALITY_COLUMNS = {
    "action": "action",
    "actor_id": "actor_id",
    "actor_type": "actor_type",
    "target_type": "target_type",
    "target_id": "target_id",
    "tenant_id": "tenant_id",
    "status": "status",
}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace TEXT NOT NULL,
    id TEXT NOT NULL,
    action TEXT NOT NULL,
    actor_type TEXT,
    actor_id TEXT,
    target_type TEXT,
    target_id TEXT,
    tenant_id TEXT,
    status TEXT,
    occurred_at TEXT NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (namespace, id)
);
CREATE INDEX IF NOT EXISTS events_by_namespace ON events (namespace, seq);
"""
_CURSOR_PREFIX = "c1."


class BadRequestError(ValueError):
    """A query, filter or control request the fake server can't act on (a 400).

    Args:
        message: What was wrong, as a sentence.
        field: The parameter or field at fault, if there is one.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        self.message = message
        self.field = field
        super().__init__(message)


@final
@dataclasses.dataclass(frozen=True, slots=True)
class Filters:
    """Which events a query or a wait matches; ``None`` matches anything.

    ``since`` is inclusive and ``until`` exclusive, both on ``occurred_at``.
    """

    action: str | None = None
    actor_id: str | None = None
    actor_type: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    tenant_id: str | None = None
    status: str | None = None
    since: str | None = None
    until: str | None = None

    @classmethod
    def parse(cls, values: Mapping[str, Any]) -> Filters:
        """Build filters from query parameters or a JSON object.

        Raises:
            BadRequestError: A value is not a string, a status is unknown or a time
                is not RFC 3339.
        """
        parsed: dict[str, str] = {}
        for name in FILTER_NAMES:
            value = values.get(name)
            if value is None:
                continue
            if not isinstance(value, str) or not value or len(value) > 8192:
                raise BadRequestError(
                    f"{name} must be a non-empty string of at most 8192 characters.",
                    name,
                )
            if not _is_utf8(value):
                raise BadRequestError(f"{name} is not valid UTF-8 text.", name)
            parsed[name] = value
        status = parsed.get("status")
        if status is not None and status not in RESULT_STATUSES:
            raise BadRequestError(
                "status must be one of 'success', 'denied', 'error'.", "status"
            )
        for name in ("since", "until"):
            if name in parsed:
                parsed[name] = _normalise_time(parsed[name], name)
        return cls(**parsed)

    def with_tenant(self, tenant_id: str) -> Filters:
        """Return a copy restricted to ``tenant_id``."""
        return dataclasses.replace(self, tenant_id=tenant_id)


def encode_cursor(seq: int) -> str:
    """Return the opaque cursor for "after arrival number ``seq``"."""
    raw = json.dumps({"after": seq}, separators=(",", ":")).encode()
    return _CURSOR_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """Return the arrival number a cursor points after.

    Raises:
        BadRequestError: The cursor was not made by :func:`encode_cursor`.
    """
    if not cursor.startswith(_CURSOR_PREFIX) or len(cursor) > 200:
        raise BadRequestError("cursor is not one this server gave out.", "cursor")
    text = cursor[len(_CURSOR_PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        after = json.loads(raw)["after"]
    except (ValueError, TypeError, KeyError, binascii.Error):
        after = None
    if type(after) is not int or after < 0:
        raise BadRequestError("cursor is not one this server gave out.", "cursor")
    return after


@final
class EventStore:
    """Events by namespace, de-duplicated on their id. Thread-safe.

    Every method takes one lock around its SQLite work, so calls from the server's
    event loop and from other threads never interleave; each call is short (no
    network), which is why the event loop may make them directly.

    Args:
        path: A SQLite file to keep events in across restarts, or ``None`` to keep
            them in memory.
    """

    def __init__(self, path: str | None = None) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            path or ":memory:", check_same_thread=False, isolation_level=None
        )
        with self._lock:
            self._db.executescript(_SCHEMA)
            if path:
                self._db.execute("PRAGMA journal_mode=WAL")

    def close(self) -> None:
        """Close the database; the store can't be used afterwards."""
        with self._lock:
            self._db.close()

    def insert(
        self, namespace: str, events: Sequence[dict[str, Any]]
    ) -> list[StoreOutcome]:
        """Store ``events`` atomically, de-duplicating on their ids.

        A known id with the same content is a duplicate and one with other content a
        conflict; neither changes what is stored. Ids repeated within ``events``
        count the same way against their first occurrence.

        Returns:
            One outcome per event, in order.
        """
        outcomes: list[StoreOutcome] = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for wire in events:
                    outcomes.append(self._insert_one(namespace, wire))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return outcomes

    def query(
        self, namespace: str, filters: Filters, *, after: int = 0, limit: int = 100
    ) -> tuple[list[tuple[int, dict[str, Any]]], bool]:
        """Return matching events that arrived after ``after``, oldest first.

        Returns:
            Up to ``limit`` pairs of (arrival number, wire dict), and whether more
            matching events follow them.
        """
        where, params = _where(namespace, filters)
        sql = (
            f"SELECT seq, body FROM events WHERE {where} AND seq > ?"
            " ORDER BY seq LIMIT ?"
        )
        with self._lock:
            rows = self._db.execute(sql, [*params, after, limit + 1]).fetchall()
        page = [(seq, json.loads(body)) for seq, body in rows[:limit]]
        return page, len(rows) > limit

    def count(self, namespace: str, filters: Filters | None = None) -> int:
        """Return how many stored events of ``namespace`` match ``filters``."""
        where, params = _where(namespace, filters or Filters())
        with self._lock:
            row = self._db.execute(
                f"SELECT COUNT(*) FROM events WHERE {where}", params
            ).fetchone()
        return int(row[0])

    def clear(self, namespace: str) -> None:
        """Forget every event of ``namespace``."""
        with self._lock:
            self._db.execute("DELETE FROM events WHERE namespace = ?", (namespace,))

    def _insert_one(self, namespace: str, wire: dict[str, Any]) -> StoreOutcome:
        body = json.dumps(wire, sort_keys=True, separators=(",", ":"))
        row = self._db.execute(
            "SELECT body FROM events WHERE namespace = ? AND id = ?",
            (namespace, wire["id"]),
        ).fetchone()
        if row is not None:
            return "duplicate" if row[0] == body else "conflict"

        actor, target, result = (
            wire["actor"] or {},
            wire["target"] or {},
            wire["result"],
        )
        self._db.execute(
            "INSERT INTO events (namespace, id, action, actor_type, actor_id,"
            " target_type, target_id, tenant_id, status, occurred_at, body)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                namespace,
                wire["id"],
                wire["action"],
                actor.get("type"),
                actor.get("id"),
                target.get("type"),
                target.get("id"),
                wire["tenant_id"],
                result["status"] if result else None,
                wire["occurred_at"],
                body,
            ),
        )
        return "accepted"


def _where(namespace: str, filters: Filters) -> tuple[str, list[Any]]:
    clauses = ["namespace = ?"]
    params: list[Any] = [namespace]
    for name, column in _EQUALITY_COLUMNS.items():
        value = getattr(filters, name)
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    # Stored times share one fixed-width UTC format, so text order is time order.
    if filters.since is not None:
        clauses.append("occurred_at >= ?")
        params.append(filters.since)
    if filters.until is not None:
        clauses.append("occurred_at < ?")
        params.append(filters.until)
    return " AND ".join(clauses), params


def _is_utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _normalise_time(value: str, name: str) -> str:
    try:
        moment = datetime.fromisoformat(value) if len(value) <= 40 else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None or "T" not in value.upper():
        raise BadRequestError(
            f"{name} must be an RFC 3339 time with a UTC offset, "
            "like 2024-05-01T12:00:00Z.",
            name,
        )
    try:
        return format_timestamp(moment)
    except (OverflowError, InvalidEventError):
        raise BadRequestError(f"{name} is out of range.", name) from None
