"""Per-namespace state of the fake server: queued faults, the request journal, counts.

A namespace is named by the ``X-Fake-Namespace`` header; requests without it use
``"default"``. Each namespace has its own events (kept by the store), faults, journal
and counts, so that tests sharing one server don't see each other.
"""

from __future__ import annotations

import dataclasses
import math
import re
import threading
from collections import deque
from typing import Any, Final, Literal, final

from ._store import BadRequestError

__all__ = [
    "DEFAULT_NAMESPACE",
    "MAX_JOURNAL_ENTRIES",
    "NAMESPACE_HEADER",
    "DropMode",
    "Fault",
    "Registry",
    "parse_namespace",
]

#: The header that selects a namespace.
NAMESPACE_HEADER: Final = "x-fake-namespace"
#: The namespace of requests without the header.
DEFAULT_NAMESPACE: Final = "default"
#: How many journal entries a namespace keeps; older ones are forgotten.
MAX_JOURNAL_ENTRIES: Final = 10_000
#: How a fault may close the connection instead of answering.
DropMode = Literal["before_body", "after_body"]

_NAMESPACE_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}\Z")
_MAX_DELAY = 60.0
_MAX_TIMES = 1_000_000
_FAULT_FIELDS = frozenset(("status", "times", "retry_after", "delay", "drop"))
_COUNTERS = (
    "requests",
    "accepted",
    "duplicates",
    "rejected",
    "dropped",
    "faults_applied",
)


def parse_namespace(value: str | None) -> str:
    """Return the namespace a header value names.

    Raises:
        BadRequestError: The value is not 1 to 128 letters, digits or ``._:-``.
    """
    if value is None:
        return DEFAULT_NAMESPACE
    if not _NAMESPACE_PATTERN.match(value):
        raise BadRequestError(
            "X-Fake-Namespace must be 1 to 128 characters among letters, digits "
            "and '._:-'.",
            "X-Fake-Namespace",
        )
    return value


@final
@dataclasses.dataclass(frozen=True, slots=True)
class Fault:
    """What the server does to one ingest request instead of handling it normally.

    Attributes:
        status: Answer with this status and store nothing.
        retry_after: The ``Retry-After`` header to send with ``status``, in seconds.
        delay: Seconds to wait before doing anything else.
        drop: Close the connection without answering, before reading the body or
            after handling it (the events are then stored, but the client never
            learns it).
    """

    status: int | None = None
    retry_after: float | None = None
    delay: float | None = None
    drop: DropMode | None = None

    @classmethod
    def parse(cls, data: Any) -> tuple[Fault, int]:
        """Build a fault from the body of ``POST /_fake/faults``.

        Returns:
            The fault and how many ingest requests it applies to.

        Raises:
            BadRequestError: A field is unknown, missing or out of range.
        """
        if not isinstance(data, dict):
            raise BadRequestError("The body must be a JSON object.")
        for key in data:
            if key not in _FAULT_FIELDS:
                raise BadRequestError(f"Unknown field {key[:100]!r}.", key[:100])
        times = data.get("times")
        if type(times) is not int or not 1 <= times <= _MAX_TIMES:
            raise BadRequestError(
                f"times is required: an integer from 1 to {_MAX_TIMES}.", "times"
            )
        status = data.get("status")
        if status is not None and (type(status) is not int or not 200 <= status <= 599):
            raise BadRequestError(
                "status must be an integer from 200 to 599.", "status"
            )
        drop = data.get("drop")
        if drop not in (None, "before_body", "after_body"):
            raise BadRequestError(
                "drop must be null, 'before_body' or 'after_body'.", "drop"
            )
        if drop is not None and status is not None:
            raise BadRequestError("A fault either answers (status) or drops.", "drop")
        fault = cls(
            status=status,
            retry_after=_parse_seconds(data, "retry_after", 86_400.0),
            delay=_parse_seconds(data, "delay", _MAX_DELAY),
            drop=drop,
        )
        if fault.retry_after is not None and status is None:
            raise BadRequestError("retry_after needs a status.", "retry_after")
        return fault, times

    def to_json(self) -> dict[str, Any]:
        """Return the fault as the control API shows it."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(slots=True)
class _QueuedFault:
    fault: Fault
    remaining: int


@dataclasses.dataclass(slots=True)
class _Namespace:
    faults: deque[_QueuedFault] = dataclasses.field(default_factory=deque)
    journal: deque[dict[str, Any]] = dataclasses.field(
        default_factory=lambda: deque(maxlen=MAX_JOURNAL_ENTRIES)
    )
    counters: dict[str, int] = dataclasses.field(
        default_factory=lambda: dict.fromkeys(_COUNTERS, 0)
    )


@final
class Registry:
    """Faults, journal and counts of every namespace. Thread-safe.

    Every method holds one lock for a few dictionary operations and never waits
    on anything else while holding it.
    """

    # Limitation: a namespace's state stays in memory until the server stops, even
    # once reset; a server that sees millions of distinct namespaces grows with them.

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Namespace name -> state; written under _lock only.
        self._namespaces: dict[str, _Namespace] = {}

    def add_fault(
        self, namespace: str, fault: Fault, times: int
    ) -> list[dict[str, Any]]:
        """Queue ``fault`` for the next ``times`` ingest requests of ``namespace``.

        Returns:
            The faults now queued, in the order they will apply.
        """
        with self._lock:
            state = self._get(namespace)
            state.faults.append(_QueuedFault(fault, times))
            return _describe_faults(state)

    def faults(self, namespace: str) -> list[dict[str, Any]]:
        """Return the faults queued in ``namespace``, in the order they will apply."""
        with self._lock:
            return _describe_faults(self._get(namespace))

    def clear_faults(self, namespace: str) -> None:
        """Forget the faults queued in ``namespace``."""
        with self._lock:
            self._get(namespace).faults.clear()

    def take_fault(self, namespace: str) -> Fault | None:
        """Return the fault for the ingest request arriving now, if one is queued."""
        with self._lock:
            state = self._get(namespace)
            if not state.faults:
                return None
            head = state.faults[0]
            head.remaining -= 1
            if head.remaining <= 0:
                state.faults.popleft()
            state.counters["faults_applied"] += 1
            return head.fault

    def record(self, namespace: str, entry: dict[str, Any], **counts: int) -> None:
        """Add ``entry`` to the journal and ``counts`` to the namespace's counters."""
        with self._lock:
            state = self._get(namespace)
            state.journal.append(entry)
            state.counters["requests"] += 1
            for name, value in counts.items():
                state.counters[name] += value

    def journal(self, namespace: str) -> list[dict[str, Any]]:
        """Return the journal of ``namespace``, oldest first."""
        with self._lock:
            return list(self._get(namespace).journal)

    def counters(self, namespace: str) -> dict[str, int]:
        """Return the counters of ``namespace`` and the number of faults queued."""
        with self._lock:
            state = self._get(namespace)
            pending = sum(queued.remaining for queued in state.faults)
            return {**state.counters, "faults_pending": pending}

    def reset(self, namespace: str) -> None:
        """Forget the faults, journal and counters of ``namespace``."""
        with self._lock:
            self._namespaces.pop(namespace, None)

    def _get(self, namespace: str) -> _Namespace:
        state = self._namespaces.get(namespace)
        if state is None:
            state = self._namespaces[namespace] = _Namespace()
        return state


def _describe_faults(state: _Namespace) -> list[dict[str, Any]]:
    return [
        {**queued.fault.to_json(), "times": queued.remaining} for queued in state.faults
    ]


def _parse_seconds(data: dict[str, Any], name: str, limit: float) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if (
        type(value) not in (int, float)
        or not math.isfinite(value)
        or not 0 <= value <= limit
    ):
        raise BadRequestError(
            f"{name} must be a number of seconds from 0 to {limit:g}.", name
        )
    return float(value)
