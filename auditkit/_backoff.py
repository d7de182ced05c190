"""How long the background worker waits before it resends a batch."""

from __future__ import annotations

import random
from collections.abc import Callable

__all__ = ["backoff_delay"]


def backoff_delay(
    attempt: int,
    *,
    initial: float,
    maximum: float,
    rand: Callable[[], float] = random.random,
) -> float:
    """Return the wait before retry number ``attempt + 1``, with full jitter.

    The ceiling doubles with each attempt, from ``initial`` up to ``maximum``, and
    the wait is drawn uniformly below it. Spreading retries over the whole range
    keeps many clients that failed together from retrying together.

    Args:
        attempt: How many retries were already made for this batch (0 for the first).
        initial: The ceiling of the first wait, in seconds.
        maximum: The largest ceiling, in seconds.
        rand: A source of floats in ``[0, 1)``, replaceable in tests.
    """
    # Cap the exponent so that a long outage can't overflow the float.
    ceiling = min(maximum, initial * 2.0 ** min(attempt, 64))
    return ceiling * rand()
