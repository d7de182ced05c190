"""Limits of the wire protocol and of a single event."""

from __future__ import annotations

import dataclasses

from ._exceptions import ConfigurationError

__all__ = [
    "DEFAULT_MAX_EVENT_BYTES",
    "MAX_BATCH_BYTES",
    "MAX_BATCH_EVENTS",
    "Limits",
]

#: The largest an event may be once encoded as JSON, by default (64 KiB).
DEFAULT_MAX_EVENT_BYTES = 64 * 1024
#: The most events one ingest request may carry (wire protocol v1).
MAX_BATCH_EVENTS = 500
#: The largest an ingest request body may be once decompressed (wire protocol v1).
MAX_BATCH_BYTES = 1024 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class Limits:
    """Size limits for events and batches.

    Args:
        max_event_bytes: The largest an event may be once encoded as JSON; a larger
            one is recorded as :attr:`Outcome.INVALID`.
        max_batch_events: The most events sent in one request.
        max_batch_bytes: The largest request body, before compression.

    Raises:
        ConfigurationError: A limit is not a positive integer, or an event could not
            fit in a batch.
    """

    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    max_batch_events: int = MAX_BATCH_EVENTS
    max_batch_bytes: int = MAX_BATCH_BYTES

    def __post_init__(self) -> None:
        for name in ("max_event_bytes", "max_batch_events", "max_batch_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(
                    f"{name} must be a positive integer, got {value!r}."
                )
        if self.max_event_bytes + 16 > self.max_batch_bytes:
            raise ConfigurationError(
                f"max_event_bytes ({self.max_event_bytes!r}) must leave room for the "
                f"batch envelope within max_batch_bytes ({self.max_batch_bytes!r})."
            )
