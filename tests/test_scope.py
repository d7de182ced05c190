"""Scopes: the current event, nesting, tasks, threads, deadlines and cancellation."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import pytest

import auditkit
from auditkit import ConfigurationError, Event, current_event, current_scope, scope


def test_current_event_outside_a_scope_is_a_new_unbound_event() -> None:
    first = current_event()
    second = current_event()

    assert first == Event()
    assert first is not second
    assert current_scope() is None


def test_scope_binds_its_event_as_the_current_one() -> None:
    event = Event(action="job.run")

    with scope(event) as s:
        assert s.event is event
        assert current_event() is event
        assert current_scope() is s

    assert current_scope() is None


def test_nested_scopes_have_their_own_events_and_restore_the_outer() -> None:
    with scope() as outer:
        with scope() as inner:
            assert current_event() is inner.event
            assert inner.event is not outer.event
        assert current_event() is outer.event


def test_cancelling_an_outer_scope_cancels_the_inner_one() -> None:
    with scope() as outer, scope() as inner:
        outer.cancel()

        assert inner.cancelled
        assert outer.cancelled


def test_cancelling_an_inner_scope_leaves_the_outer_alone() -> None:
    with scope() as outer:
        with scope() as inner:
            inner.cancel()
            assert inner.cancelled
        assert not outer.cancelled


def test_cancel_is_idempotent() -> None:
    with scope() as s:
        s.cancel()
        s.cancel()

        assert s.cancelled


def test_timeout_sets_a_deadline_that_cancels_when_it_passes() -> None:
    before = time.monotonic()
    with scope(timeout=30) as s:
        assert s.deadline is not None
        assert before + 30 <= s.deadline <= time.monotonic() + 30
        assert not s.cancelled

    with scope(timeout=0) as expired:
        assert expired.cancelled


def test_inner_scope_inherits_the_earlier_outer_deadline() -> None:
    with scope(timeout=5) as outer, scope(timeout=60) as inner:
        assert inner.deadline == outer.deadline


@pytest.mark.parametrize("timeout", [-1, float("nan"), "5", True])
def test_bad_timeout_is_a_configuration_error(timeout: object) -> None:
    with pytest.raises(ConfigurationError, match="timeout must be"):
        scope(timeout=timeout)  # type: ignore[arg-type]


def test_a_scope_context_can_be_entered_only_once() -> None:
    context = scope()
    with context:
        pass

    with pytest.raises(RuntimeError, match="only once"), context:
        pass  # pragma: no cover


def test_an_async_task_sees_the_scope_of_its_creator() -> None:
    async def main() -> tuple[Event, Event]:
        async with scope() as s:
            seen = await asyncio.create_task(_read_current_event())
            return s.event, seen

    expected, seen = asyncio.run(main())

    assert seen is expected


async def _read_current_event() -> Event:
    return current_event()


def test_a_new_thread_sees_no_scope_unless_the_context_is_copied() -> None:
    seen: dict[str, auditkit.Scope | None] = {}

    with scope() as s:
        plain = threading.Thread(target=lambda: seen.update(plain=current_scope()))
        context = contextvars.copy_context()
        copied = threading.Thread(
            target=lambda: context.run(lambda: seen.update(copied=current_scope()))
        )
        for thread in (plain, copied):
            thread.start()
            thread.join()

    assert seen == {"plain": None, "copied": s}


def test_cancel_from_another_thread_is_seen_by_the_owner() -> None:
    with scope() as s:
        thread = threading.Thread(target=s.cancel)
        thread.start()
        thread.join()

        assert s.cancelled


def test_cancel_callbacks_run_once_and_can_be_unregistered() -> None:
    calls: list[str] = []
    with scope() as outer, scope() as inner:
        inner._on_cancel(lambda: calls.append("kept"))
        unregister = inner._on_cancel(lambda: calls.append("removed"))
        unregister()

        outer.cancel()
        outer.cancel()

    assert calls == ["kept"]


def test_callback_registered_on_a_cancelled_scope_runs_at_once() -> None:
    calls: list[str] = []
    with scope() as s:
        s.cancel()
        s._on_cancel(lambda: calls.append("now"))

    assert calls == ["now"]


def test_scope_repr_shows_its_state_without_payload() -> None:
    with scope(Event(action="a", metadata={"secret": "x"})) as s:
        assert repr(s) == "<Scope open action='a'>"
        s.cancel()
        assert repr(s) == "<Scope cancelled action='a'>"
