"""The delivery floor: the least a buffered shipper must do, and nothing more.

A bounded deque behind a condition, one thread that takes up to ``batch_size``
events, encodes them with orjson (the standard library without it) and POSTs them
over one kept-alive ``http.client`` connection. No validation, no snapshot, no
retries, no accounting: the distance between this and an SDK is what its guarantees
cost.
"""

from __future__ import annotations

import collections
import http.client
import json
import threading
from typing import Any

__all__ = ["MinimalPipeline"]

try:
    import orjson

    def _dumps(value: Any) -> bytes:
        return orjson.dumps(value)

except ImportError:

    def _dumps(value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":")).encode()


class MinimalPipeline:
    """A producer-waits pipeline to ``{endpoint}/v1/events``."""

    def __init__(
        self, endpoint: str, *, batch_size: int = 500, capacity: int = 10_000
    ) -> None:
        host, _, port = endpoint.removeprefix("http://").partition(":")
        self._connection = http.client.HTTPConnection(host, int(port), timeout=30)
        self._batch_size = batch_size
        self._capacity = capacity
        self._cond = threading.Condition()
        self._queue: collections.deque[Any] = collections.deque()
        self._closing = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def put(self, event: Any) -> None:
        """Append ``event``, waiting while the buffer is full."""
        with self._cond:
            while len(self._queue) >= self._capacity:
                self._cond.wait()
            self._queue.append(event)
            self._cond.notify_all()

    def close(self) -> None:
        """Deliver what is buffered, then stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(60.0)
        self._connection.close()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                take = min(self._batch_size, len(self._queue))
                batch = [self._queue.popleft() for _ in range(take)]
                self._cond.notify_all()
            body = _dumps({"events": batch})
            self._connection.request(
                "POST",
                "/v1/events",
                body=body,
                headers={"Content-Type": "application/json"},
            )
            self._connection.getresponse().read()
