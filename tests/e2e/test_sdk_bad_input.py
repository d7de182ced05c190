"""Hostile content given to the SDK: each event is refused with a reason, or sent
intact, and the worker goes on delivering the events around it."""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import auditkit
from auditkit_testing import strategies

from ._harness import API_KEY, ServerProcess, control, fetch_stored_events

pytestmark = pytest.mark.e2e

_MAX_DEPTH = 32
_HUGE = 70_000


class _Hooks:
    """Collects what the recorder reports through its hooks, from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.invalid: list[tuple[Any, auditkit.InvalidEventError]] = []
        self.failures: list[tuple[int, str]] = []

    def on_invalid(self, event: Any, error: auditkit.InvalidEventError) -> None:
        with self._lock:
            self.invalid.append((event, error))

    def on_failure(self, events: Any, reason: str) -> None:
        with self._lock:
            self.failures.append((len(events), reason))

    def reason_for(self, event: Any) -> auditkit.InvalidEventError | None:
        with self._lock:
            return next((err for seen, err in self.invalid if seen is event), None)


@dataclasses.dataclass
class _Rig:
    server: ServerProcess
    recorder: auditkit.BufferedRecorder
    hooks: _Hooks


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Rig]:
    """One server and one recorder for every example, so that a worker that died
    on one example fails the next."""
    log_dir: Path = tmp_path_factory.mktemp("sdk-bad-input")
    server = ServerProcess(db=None, log_dir=log_dir)
    server.start()
    hooks = _Hooks()
    recorder = auditkit.BufferedRecorder(
        server.url,
        API_KEY,
        flush_interval=0.05,
        on_invalid=hooks.on_invalid,
        on_failure=hooks.on_failure,
    )
    try:
        yield _Rig(server, recorder, hooks)
    finally:
        recorder.close(timeout=10.0)
        server.stop()


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"a": value}
    return value


def _cyclic_dict() -> dict[str, Any]:
    loop: dict[str, Any] = {"name": "loop"}
    loop["self"] = loop
    return loop


def _cyclic_list() -> dict[str, Any]:
    items: list[Any] = [1]
    items.append(items)
    return {"items": items}


class _Opaque:
    def __repr__(self) -> str:
        return "<opaque>"


# Values that are valid JSON but awkward: edges of the ranges, odd characters.
_NASTY_VALID: st.SearchStrategy[Any] = st.sampled_from(
    [
        2**63 - 1,
        -(2**63),
        1e308,
        -0.0,
        5e-324,
        "",
        "\x00\x01\x1f",
        "\u202e\u200b\ufeff",
        "\U0001f600" * 100,
        "\\\"'</script>",
        "x" * 4_000,
        [],
        {},
        None,
        True,
    ]
)
# Values the SDK must refuse: not JSON, out of range, not UTF-8 text.
_NOT_SENDABLE: st.SearchStrategy[Any] = st.sampled_from(
    [
        math.nan,
        math.inf,
        2**64,
        {1, 2},
        b"bytes",
        bytearray(b"x"),
        datetime(2024, 1, 1, tzinfo=UTC),
        _Opaque(),
        "\ud800",
        "ok\udfffok",
        1 + 2j,
    ]
)


@st.composite
def _hostile_metadata(draw: st.DrawFn) -> Any:
    kind = draw(
        st.sampled_from(
            ["nasty", "not_sendable", "deep", "cyclic", "huge", "bad_key", "wrong"]
        )
    )
    if kind == "nasty":
        return {"value": draw(_NASTY_VALID), "list": [draw(_NASTY_VALID)]}
    if kind == "not_sendable":
        return {"ok": 1, "nested": {"bad": draw(_NOT_SENDABLE)}}
    if kind == "deep":
        return _nested(draw(st.integers(_MAX_DEPTH - 2, _MAX_DEPTH + 50)))
    if kind == "cyclic":
        return draw(st.sampled_from([_cyclic_dict, _cyclic_list]))()
    if kind == "huge":
        return {"blob": "y" * draw(st.integers(1_000, _HUGE * 2))}
    if kind == "bad_key":
        return {draw(st.sampled_from([1, None, ("a",), "\ud800", "k" * 300])): 1}
    return draw(st.sampled_from([[1, 2], "text", 42, None]))


@st.composite
def _hostile_events(draw: st.DrawFn) -> auditkit.Event:
    event = draw(strategies.events(stamped=False))
    event.id = auditkit.new_event_id()
    where = draw(st.sampled_from(["metadata", "actor", "action", "text", "rule"]))
    if where == "metadata":
        event.metadata = draw(_hostile_metadata())
    elif where == "actor":
        event.actor = auditkit.Actor("user", "u1", metadata=draw(_hostile_metadata()))
    elif where == "action":
        event.action = draw(
            st.sampled_from(["a" * 257, "\ud83d", "ok\x00", "a" * 256, "\u00e9" * 200])
        )
    elif where == "text":
        event.tenant_id = draw(st.sampled_from(["t" * _HUGE, "\udc00", "\u2028"]))
    else:
        event = draw(strategies.invalid_events()).event
        event.id = event.id or auditkit.new_event_id()
    return event


def _good_events() -> st.SearchStrategy[auditkit.Event]:
    return strategies.events(stamped=False).map(_with_fresh_id)


def _with_fresh_id(event: auditkit.Event) -> auditkit.Event:
    event.id = auditkit.new_event_id()
    return event


def _expected_wire(event: auditkit.Event) -> dict[str, Any] | None:
    """The wire form the server must store, or None if the event can't be sent."""
    try:
        return event.to_wire()
    except (auditkit.InvalidEventError, RecursionError):
        return None


def _same_content(stored: dict[str, Any], expected: dict[str, Any]) -> bool:
    # The recorder fills occurred_at when it was unset; everything else is ours.
    filled = dict(expected)
    if filled["occurred_at"] is None:
        filled["occurred_at"] = stored["occurred_at"]
    return stored == filled


def _record_all(rig: _Rig, batch: list[auditkit.Event]) -> dict[str, dict[str, Any]]:
    """Record the batch; return the wire form of each event that must arrive, by id."""
    must_arrive: dict[str, dict[str, Any]] = {}
    for event in batch:
        # Taken before record(): what is sent must not depend on the recording.
        expected = _expected_wire(event)
        outcome = rig.recorder.record(event)
        if outcome is auditkit.Outcome.ENQUEUED:
            assert expected is not None, "an event that can't be sent was enqueued"
            must_arrive[expected["id"]] = expected
            continue
        assert outcome is auditkit.Outcome.INVALID, outcome
        reason = rig.hooks.reason_for(event)
        assert reason is not None, "INVALID without a reason on on_invalid"
        assert reason.code, reason
        assert str(reason), reason
    return must_arrive


def test_hostile_events_are_refused_with_a_reason_or_stored_intact(
    rig: _Rig, long_run: bool
) -> None:
    @settings(
        max_examples=200 if long_run else 20,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        batch=st.lists(
            st.one_of(_good_events(), _hostile_events()), min_size=1, max_size=8
        )
    )
    def check(batch: list[auditkit.Event]) -> None:
        control(rig.server.url, "POST", "/_fake/reset").raise_for_status()

        must_arrive = _record_all(rig, batch)

        assert rig.recorder.flush(timeout=30.0)
        stored = {event["id"]: event for event in fetch_stored_events(rig.server.url)}
        assert set(stored) == set(must_arrive)
        for event_id, wire in must_arrive.items():
            assert _same_content(stored[event_id], wire), (stored[event_id], wire)
        assert rig.hooks.failures == []

    check()

    # The worker survived every example: the event after them still goes through.
    control(rig.server.url, "POST", "/_fake/reset").raise_for_status()
    last = _with_fresh_id(auditkit.Event(action="after.the.storm"))
    assert rig.recorder.record(last) is auditkit.Outcome.ENQUEUED
    assert rig.recorder.flush(timeout=30.0)
    assert [e["id"] for e in fetch_stored_events(rig.server.url)] == [last.id]
    stats = rig.recorder.stats()
    assert stats.failed == 0
    assert stats.invalid > 0
