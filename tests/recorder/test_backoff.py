"""The backoff between retries: exponential ceiling, full jitter, capped."""

from __future__ import annotations

import pytest

from auditkit._backoff import backoff_delay


@pytest.mark.parametrize(
    ("attempt", "ceiling"), [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (6, 30.0)]
)
def test_ceiling_doubles_per_attempt_up_to_the_maximum(
    attempt: int, ceiling: float
) -> None:
    top = backoff_delay(attempt, initial=0.5, maximum=30.0, rand=lambda: 1.0)
    assert top == pytest.approx(ceiling)


def test_delay_is_drawn_uniformly_below_the_ceiling() -> None:
    draws = iter([0.0, 0.25, 0.999])
    delays = [
        backoff_delay(2, initial=1.0, maximum=60.0, rand=lambda: next(draws))
        for _ in range(3)
    ]
    assert delays == pytest.approx([0.0, 1.0, 3.996])


def test_a_very_long_outage_does_not_overflow() -> None:
    assert backoff_delay(10_000, initial=1.0, maximum=30.0, rand=lambda: 0.5) == 15.0


def test_default_jitter_stays_within_the_ceiling() -> None:
    delays = [backoff_delay(3, initial=0.1, maximum=10.0) for _ in range(200)]
    assert all(0.0 <= delay <= 0.8 for delay in delays)
    assert len(set(delays)) > 1
