"""Event ids (UUIDv7) and timestamps, made cheaply on the recording thread."""

from __future__ import annotations

import os
import random
import threading
import time
from datetime import UTC, datetime

__all__ = ["format_timestamp", "new_event_id", "next_id_and_timestamp"]

# Bits of the counter that keeps ids increasing within one millisecond: the 12 bits
# of rand_a and the top 30 bits of rand_b (RFC 9562, "fixed-length dedicated counter").
_COUNTER_BITS = 42
_COUNTER_LIMIT = 1 << _COUNTER_BITS
# A fresh millisecond seeds the counter below half its range, so that it has room to
# grow without running into the next millisecond.
_SEED_BITS = _COUNTER_BITS - 1

# Generator state, guarded by _lock. (_last_ms, _counter) only ever increases, which
# is what makes ids unique and ordered within the process.
_lock = threading.Lock()
_last_ms = 0
_counter = 0
# A private generator: a test that seeds the global `random` must not make ids repeat.
_rng = random.Random()

# The last second formatted, so that most timestamps cost one string operation. One
# tuple, replaced whole, so that a reader never pairs a second with another's text.
_last_second: tuple[int, str] = (-1, "")
# Likewise the id's first groups (the 48-bit millisecond), for the last one seen.
_last_id_prefix: tuple[int, str] = (-1, "")
# The variant bits of rand_b, placed above the top 14 bits of the counter's low part.
_VARIANT = 0b10 << 14


def new_event_id() -> str:
    """Return a new UUIDv7 string, greater than every id made before in this process.

    Ids are unique across threads and within the same millisecond, and a forked child
    continues with a fresh random counter so it never repeats its parent's ids.
    Thread-safe; does no I/O.
    """
    return next_id_and_timestamp()[0]


def next_id_and_timestamp() -> tuple[str, str]:
    """Return a new event id and the current time as an RFC 3339 UTC string.

    Both come from one reading of the clock, so the id's embedded millisecond and the
    timestamp agree.
    """
    global _last_ms, _counter

    now_ns = time.time_ns()
    now_ms = now_ns // 1_000_000
    with _lock:
        if now_ms > _last_ms:
            _last_ms = now_ms
            _counter = _rng.getrandbits(_SEED_BITS)
        else:
            # Same millisecond, or the clock went back: keep counting on the last one.
            _counter += 1
            if _counter >= _COUNTER_LIMIT:  # pragma: no cover - needs 2**41 ids in 1 ms
                _last_ms += 1
                _counter = _rng.getrandbits(_SEED_BITS)
        ms = _last_ms
        counter = _counter

    # Both strings are formatted here rather than in helpers: this runs on every
    # record() call, and the calls would cost a tenth of it.
    cached_ms, id_prefix = _last_id_prefix
    if ms != cached_ms:
        id_prefix = _format_id_prefix(ms)
    second = now_ns // 1_000_000_000
    cached_second, time_prefix = _last_second
    if second != cached_second:
        time_prefix = _format_second(second)
    low = counter & 0x3FFFFFFF
    # The rest of the RFC 9562 layout after the millisecond and the version: rand_a
    # is the counter's top 12 bits, then the variant 0b10 and rand_b, which is the
    # counter's low 30 bits and 32 random bits. %-formatting is measurably cheaper
    # here than an f-string with the same format specs.
    event_id = "%s%03x-%04x-%04x%08x" % (  # noqa: UP031
        id_prefix,
        counter >> 30,
        _VARIANT | (low >> 16),
        low & 0xFFFF,
        _rng.getrandbits(32),
    )
    return event_id, "%s.%06dZ" % (time_prefix, now_ns // 1000 % 1_000_000)  # noqa: UP031


def format_timestamp(moment: datetime) -> str:
    """Format an aware datetime as RFC 3339 in UTC with microseconds, ``...Z``."""
    utc = moment.astimezone(UTC)
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T"
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}.{utc.microsecond:06d}Z"
    )


def _format_id_prefix(ms: int) -> str:
    """The id's first groups for ``ms``: the 48-bit millisecond and the version 7."""
    global _last_id_prefix

    text = f"{ms:012x}"
    prefix = f"{text[:8]}-{text[8:]}-7"
    _last_id_prefix = (ms, prefix)
    return prefix


def _format_second(second: int) -> str:
    """The timestamp up to the seconds, ``2024-05-01T12:00:00``, for ``second``."""
    global _last_second

    t = time.gmtime(second)
    prefix = (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    )
    _last_second = (second, prefix)
    return prefix


def _reset_after_fork() -> None:
    global _lock, _last_ms

    _lock = threading.Lock()
    _last_ms = 0
    _rng.seed()


os.register_at_fork(after_in_child=_reset_after_fork)
