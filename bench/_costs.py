"""What each step of recording and delivery costs, one at a time.

Each row times one step with :func:`timeit`-style loops in the child process, for
the benchmark's typical event (an actor, a target, three metadata keys) unless the
row says otherwise. They add up, roughly, to what ``record()`` and the worker cost,
and say what each guarantee is paying for.
"""

from __future__ import annotations

import contextvars
import gzip
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["measure"]


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Time each step ``spec["count"]`` times; microseconds per call."""
    import auditkit
    from auditkit._encoding import encode_event
    from auditkit._ids import next_id_and_timestamp
    from auditkit._wire import snapshot_event

    count = spec["count"]
    event = _typical_event(auditkit)
    nested = _typical_event(auditkit)
    nested.metadata = {
        "changes": {"role": {"before": "viewer", "after": "editor"}},
        "tags": ["a", "b"],
    }
    wire = snapshot_event(event)
    # Distinct events (ids and timestamps differ), as a real batch holds.
    batch = [encode_event(snapshot_event(_typical_event(auditkit))) for _ in range(100)]
    body = b'{"events":[' + b",".join(batch) + b"]}"
    lock = threading.Lock()
    queue: deque[Any] = deque(maxlen=1000)
    context_var: contextvars.ContextVar[Any] = contextvars.ContextVar("x", default=None)
    steps: list[tuple[str, Callable[[], Any], int]] = [
        ("build the Event (caller's side)", lambda: _typical_event(auditkit), 1),
        ("look up the current scope (contextvar)", context_var.get, 1),
        ("id (UUIDv7) and timestamp", next_id_and_timestamp, 1),
        ("snapshot and validate (includes id)", lambda: snapshot_event(event), 1),
        ("snapshot and validate, nested metadata", lambda: snapshot_event(nested), 1),
        ("lock + deque append (the buffer)", lambda: _append(lock, queue, wire), 1),
        ("encode one event, orjson if installed", lambda: encode_event(wire), 1),
        ("encode one event, stdlib json", lambda: _stdlib_encode(wire), 1),
        ("gzip a batch of 100 events, level 1", lambda: _gzip(body, 1), 100),
        ("gzip a batch of 100 events, level 6", lambda: _gzip(body, 6), 100),
    ]
    rows = []
    for name, step, per in steps:
        loops = max(1, count // per)
        rows.append(
            {
                "step": name,
                "us": round(_time(step, loops) / per, 3),
                "per": "event" if per == 1 else f"event (batch of {per})",
            }
        )
    rows.append(
        {
            "step": "gzip: body size level 1 / level 6 / raw (bytes)",
            "us": None,
            "per": f"{len(_gzip(body, 1))} / {len(_gzip(body, 6))} / {len(body)}",
        }
    )
    return {"rows": rows}


def _typical_event(auditkit: Any) -> Any:
    return auditkit.Event(
        action="document.read",
        actor=auditkit.Actor("user", "user-42"),
        target=auditkit.Target("document", "doc-1234"),
        metadata={"ip": "203.0.113.7", "plan": "pro", "attempt": 3},
    )


def _append(lock: threading.Lock, queue: deque[Any], item: Any) -> None:
    with lock:
        queue.append(item)


def _stdlib_encode(wire: dict[str, Any]) -> bytes:
    return json.dumps(wire, ensure_ascii=False, separators=(",", ":")).encode()


def _gzip(body: bytes, level: int) -> bytes:
    return gzip.compress(body, compresslevel=level, mtime=0)


def _time(step: Callable[[], Any], loops: int) -> float:
    """The best of three runs of ``loops`` calls, in microseconds per call."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter_ns()
        for _ in range(loops):
            step()
        best = min(best, (time.perf_counter_ns() - start) / loops / 1000.0)
    return best
