"""Rate-limited logging for conditions that can repeat thousands of times a second."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["RateLimitedLog"]


class RateLimitedLog:
    """Log a message at most once per interval, counting what it held back.

    The first occurrence is logged at once; later ones within ``interval`` seconds
    are only counted, and the next line logged says how many were held back, so a
    flood of drops becomes one summary line every few seconds. Thread-safe.

    Args:
        logger: Where to log.
        level: The level of every line.
        interval: The shortest time between two lines, in seconds.
        clock: A monotonic clock, replaceable in tests.
    """

    def __init__(
        self,
        logger: logging.Logger,
        level: int = logging.WARNING,
        *,
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._level = level
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        # Guarded by _lock: when the last line was logged, and how many occurrences
        # were counted since without a line.
        self._last: float | None = None
        self._held_back = 0

    def log(self, message: str, *args: object) -> None:
        """Log ``message % args`` now, or count it if a line was logged recently."""
        now = self._clock()
        with self._lock:
            if self._last is not None and now - self._last < self._interval:
                self._held_back += 1
                return
            held_back, self._held_back = self._held_back, 0
            self._last = now
        if held_back:
            message += " (%d more like this since the last report)"
            args = (*args, held_back)
        self._logger.log(self._level, message, *args)

    def reset_after_fork(self) -> None:
        """Give a forked child a fresh lock and counters."""
        self._lock = threading.Lock()
        self._last = None
        self._held_back = 0
