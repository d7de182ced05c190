"""What happened to a recorded event, and what a full buffer does."""

from __future__ import annotations

import enum

__all__ = ["DropReason", "Outcome", "Policy"]


class Outcome(enum.Enum):
    """What :meth:`Recorder.record` did with an event.

    ``record()`` never raises for a runtime condition; it returns one of these.
    """

    #: Accepted into the buffer; the background worker will deliver it.
    ENQUEUED = "enqueued"
    #: The event is bound to an open scope: it is enqueued once, when the scope closes.
    DEFERRED = "deferred"
    #: The event has no ``action``: nothing is sent. This is how a handler opts out.
    SKIPPED = "skipped"
    #: The buffer was full: the event was dropped (``Policy.DROP_NEWEST`` or a
    #: ``Policy.BLOCK`` call made on a thread that runs an event loop).
    DROPPED = "dropped"
    #: The current scope was cancelled or its deadline passed; nothing was enqueued.
    CANCELLED = "cancelled"
    #: ``Policy.BLOCK`` waited for space until the call's timeout; nothing was enqueued.
    TIMED_OUT = "timed_out"
    #: The content can't be encoded or breaks a limit; the reason goes to the
    #: recorder's ``on_invalid`` hook and the ``auditkit`` logger.
    INVALID = "invalid"
    #: The recorder is closed (or the interpreter is exiting); nothing was enqueued.
    CLOSED = "closed"


class Policy(enum.Enum):
    """What a recorder does when its buffer is full."""

    #: Drop the new event and return :attr:`Outcome.DROPPED`. The default.
    DROP_NEWEST = "drop_newest"
    #: Drop the oldest buffered event to make room; the new one is enqueued.
    DROP_OLDEST = "drop_oldest"
    #: Wait for space until the call's timeout, the scope's deadline or cancellation.
    BLOCK = "block"


class DropReason(enum.StrEnum):
    """Why an event was dropped: the ``reason`` of ``on_drop(event, reason)``."""

    #: The buffer was full and the new event was refused.
    BUFFER_FULL = "buffer_full"
    #: The buffer was full and this, its oldest event, made room for a newer one.
    EVICTED = "evicted"
    #: The event was accepted as deferred, but its recorder was closed by the time
    #: its scope closed.
    RECORDER_CLOSED = "recorder_closed"
