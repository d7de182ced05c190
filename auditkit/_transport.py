"""The transport interface: how the background worker hands a batch to the network.

A transport sends one batch per call and says how it went; the recorder owns
batching, retries, backoff and reporting. :class:`~auditkit.HttpTransport` is the
one auditkit ships; tests and custom back ends can implement :class:`Transport`.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, final, runtime_checkable

from ._encoding import BODY_CLOSE as _BODY_CLOSE, encode_batch

__all__ = ["Batch", "SendResult", "SendStatus", "Transport"]


@final
class Batch:
    """Events the worker sends together, encoded once.

    A retry resends :attr:`body` as it is: the very same bytes, so the service can
    de-duplicate on the event ids.

    Args:
        events: The events' wire dicts, in the order they were enqueued.
        payloads: Each event encoded as JSON, in the same order.
    """

    __slots__ = ("_body", "_payloads", "_starts", "events")

    def __init__(
        self, events: Sequence[dict[str, Any]], payloads: Sequence[bytes]
    ) -> None:
        if len(events) != len(payloads):
            raise ValueError("A batch needs one payload per event.")
        #: The events' wire dicts, oldest first.
        self.events = tuple(events)
        self._payloads: tuple[bytes, ...] | None = tuple(payloads)
        self._body: bytes | None = None
        self._starts: Sequence[int] = ()

    @classmethod
    def _from_body(
        cls, events: Sequence[dict[str, Any]], body: bytes, starts: Sequence[int]
    ) -> Batch:
        """A batch whose body is already encoded; ``starts[i]`` is the offset in
        ``body`` where event ``i`` begins, and a comma or ``]`` ends each one."""
        batch = cls.__new__(cls)
        batch.events = tuple(events)
        batch._payloads = None
        batch._body = body
        batch._starts = starts
        return batch

    def __len__(self) -> int:
        return len(self.events)

    def __repr__(self) -> str:
        return f"<Batch of {len(self.events)} events>"

    @property
    def payloads(self) -> tuple[bytes, ...]:
        """The events encoded as JSON, oldest first."""
        if self._payloads is None:
            body, starts = self.body, self._starts
            ends = [start - 1 for start in starts[1:]]
            ends.append(len(body) - len(_BODY_CLOSE))
            self._payloads = tuple(
                body[start:end] for start, end in zip(starts, ends, strict=True)
            )
        return self._payloads

    @property
    def body(self) -> bytes:
        """The request body ``{"events": [...]}``, encoded once and then reused."""
        if self._body is None:
            assert self._payloads is not None
            self._body = encode_batch(self._payloads)
        return self._body

    def split(self) -> tuple[Batch, Batch]:
        """Return the two halves of a batch of at least two events."""
        if len(self.events) < 2:
            raise ValueError("A batch of one event can't be split.")
        middle = len(self.events) // 2
        return (
            Batch(self.events[:middle], self.payloads[:middle]),
            Batch(self.events[middle:], self.payloads[middle:]),
        )


class SendStatus(enum.Enum):
    """How a send went, as far as the recorder is concerned."""

    #: The service took the batch; some events may still have been rejected.
    DELIVERED = "delivered"
    #: Nothing was stored, and sending again may work (5xx, 429, 408, a timeout,
    #: a reset): the recorder backs off and resends the same bytes.
    RETRY = "retry"
    #: Nothing was stored, and sending again would not help (400, 401, 403, ...).
    FAILED = "failed"
    #: The service refused the batch as too large (413): the recorder splits it and
    #: sends the halves; a single event that is too large fails.
    TOO_LARGE = "too_large"


@final
@dataclasses.dataclass(frozen=True, slots=True)
class SendResult:
    """The result of :meth:`Transport.send`. Build it with the class methods.

    Attributes:
        status: How it went.
        reason: What happened, for logs and ``on_failure``; never contains the
            API key or event content.
        retry_after: For ``RETRY``: the delay the service asked for, in seconds.
        rejected: For ``DELIVERED``: the events the service refused, by index in
            the batch, with the service's reason. They are not retried.
    """

    status: SendStatus
    reason: str = ""
    retry_after: float | None = None
    rejected: Mapping[int, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def delivered(cls, rejected: Mapping[int, str] | None = None) -> SendResult:
        """The batch was taken; ``rejected`` lists the events refused, by index."""
        return cls(SendStatus.DELIVERED, rejected=dict(rejected or {}))

    @classmethod
    def retry(cls, reason: str, *, retry_after: float | None = None) -> SendResult:
        """Nothing was stored; try again later, after ``retry_after`` if given."""
        return cls(SendStatus.RETRY, reason, retry_after=retry_after)

    @classmethod
    def failed(cls, reason: str) -> SendResult:
        """Nothing was stored, and a retry would not help."""
        return cls(SendStatus.FAILED, reason)

    @classmethod
    def too_large(
        cls, reason: str = "The service refused the batch as too large."
    ) -> SendResult:
        """The batch must be split before it is sent again."""
        return cls(SendStatus.TOO_LARGE, reason)


@runtime_checkable
class Transport(Protocol):
    """Sends batches of events to an audit service.

    The recorder calls :meth:`send` from its single background thread, one batch at
    a time, and :meth:`close` once when it stops. A transport must not raise for a
    network problem: it returns a :class:`SendResult`. If it raises anyway, the
    recorder treats the exception as a retryable failure and logs it.
    """

    def send(self, batch: Batch, *, timeout: float | None = None) -> SendResult:
        """Send ``batch`` once. ``timeout`` caps the whole attempt, in seconds."""
        ...

    def close(self) -> None:
        """Release connections. Called once, from the worker, when it stops."""
        ...
