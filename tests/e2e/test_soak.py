"""The fault soak: nothing the SDK accepted is lost through faults and a restart."""

from __future__ import annotations

from typing import Any

import pytest

import auditkit

from ._harness import (
    API_KEY,
    FaultStep,
    ServerProcess,
    SoakSettings,
    check_delivery,
    plan_faults,
    run_soak,
)

pytestmark = pytest.mark.e2e


def _make_recorder(
    endpoint: str, transport: auditkit.Transport | None = None
) -> auditkit.BufferedRecorder:
    # BLOCK with room for a few seconds of outage: the soak checks loss, not drops.
    # A short backoff ceiling keeps the run quick; the retry budget outlasts the
    # restart and any run of faults the schedule can produce.
    return auditkit.BufferedRecorder(
        endpoint,
        API_KEY,
        capacity=20_000,
        policy=auditkit.Policy.BLOCK,
        batch_size=250,
        flush_interval=0.05,
        transport=transport or auditkit.HttpTransport(endpoint, API_KEY, timeout=5.0),
        send_timeout=5.0,
        retry_budget=120.0,
        backoff_initial=0.05,
        backoff_max=0.5,
    )


def test_soak_delivers_each_enqueued_event_once_through_faults_and_a_restart(
    server_process: ServerProcess,
    soak_settings: SoakSettings,
    soak_plan: list[FaultStep] | None,
) -> None:
    plan = plan_faults(soak_settings) if soak_plan is None else soak_plan

    result = run_soak(soak_settings, server_process, _make_recorder, plan=plan)

    assert not result.problems, result.report()
    # A soak that met no fault would prove nothing.
    assert result.faults, result.report()
    assert result.restarts == sum(step.fault is None for step in plan)
    assert result.restarts >= 1, result.report()
    assert result.stats.retried > 0, result.report()
    # Every kind of fault planned before the restart reached the server (later
    # steps are delayed by the restart and may come after the producers ended).
    restart_at = min((step.at for step in plan if step.fault is None), default=1e9)
    planned = {
        _kind(step.fault)
        for step in plan
        if step.fault is not None and step.at < restart_at
    }
    assert planned <= {_kind(fault) for fault in result.faults}, result.report()


def _kind(fault: dict[str, Any]) -> str:
    if fault.get("drop"):
        return f"drop {fault['drop']}"
    if fault.get("status") is not None:
        return str(fault["status"])
    return "delay"


class _LosesBatchAfterReset:
    """A planted bug: after a failed attempt, the batch is reported as delivered."""

    def __init__(self, inner: auditkit.Transport) -> None:
        self._inner = inner
        self.lost = 0

    def send(self, batch: auditkit.Batch, *, timeout: float | None = None) -> Any:
        result = self._inner.send(batch, timeout=timeout)
        if result.status is auditkit.SendStatus.RETRY:
            self.lost += len(batch)
            return auditkit.SendResult.delivered()
        return result

    def close(self) -> None:
        self._inner.close()


def test_soak_checker_reports_a_batch_the_sdk_dropped_after_a_connection_reset(
    server_process: ServerProcess,
) -> None:
    """The check can fail: a transport that forgets a batch after a dropped
    connection makes the soak report the missing events."""
    settings = SoakSettings(
        seed=1, threads=2, per_thread=500, duration=1.0, fault_gap=1.0, restart=False
    )
    plan = [FaultStep(0.0, fault={"drop": "before_body", "times": 3})]
    lossy: list[_LosesBatchAfterReset] = []

    def make_lossy(endpoint: str) -> auditkit.BufferedRecorder:
        lossy.append(_LosesBatchAfterReset(auditkit.HttpTransport(endpoint, API_KEY)))
        return _make_recorder(endpoint, transport=lossy[0])

    result = run_soak(settings, server_process, make_lossy, plan=plan)

    assert lossy[0].lost > 0, "the planted fault never triggered"
    assert any("missing on the server" in problem for problem in result.problems), (
        result.report()
    )


def test_checker_flags_loss_duplicates_strays_and_stats_that_do_not_add_up() -> None:
    stats = auditkit.Stats(enqueued=3, delivered=2, failed=0, depth=0, in_flight=0)

    problems = check_delivery(["a", "b", "c"], ["a", "a", "x"], stats)

    text = "\n".join(problems)
    assert "2 enqueued events are missing" in text
    assert "1 stored events were never enqueued" in text
    assert "stored more than once" in text
    assert "stats don't add up" in text
    assert check_delivery(["a"], ["a"], auditkit.Stats(enqueued=1, delivered=1)) == []
