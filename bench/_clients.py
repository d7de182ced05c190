"""One adapter per SDK: how to build its comparable event and enqueue it.

Every SDK is set up with its defaults, pointed at the local sink, and given the same
event: an actor, a target and three metadata keys. An adapter offers

- ``make_args()``: the arguments of one call, built fresh (outside the timing, since
  some SDKs change what they are given);
- ``call(args)``: the SDK's enqueue call, the thing the latency rows time;
- ``call_waiting(args)``: the same call, waiting for queue space first, so that
  nothing is dropped (the throughput rows);
- ``flush(timeout)`` and ``close()``.
"""

from __future__ import annotations

import collections
import importlib
import importlib.util
import threading
import time
from typing import Any

__all__ = ["CLIENTS", "PEERS", "available", "open_client"]

#: The peers, in the order the tables show them, with the module each one needs.
PEERS = {
    "segment": "segment.analytics",
    "posthog": "posthog",
    "opentelemetry": "opentelemetry.exporter.otlp.proto.http",
    "sentry": "sentry_sdk",
}
#: Every client the latency table can show.
CLIENTS = ("floor", "auditkit", "auditkit-drop-oldest", *PEERS)

_ACTION = "document.read"
_METADATA = {"ip": "203.0.113.7", "plan": "pro", "attempt": 3}
# How long a producer waiting for space in a peer's queue sleeps between looks.
_SPACE_POLL = 0.0002


def available(name: str) -> bool:
    """Whether the SDK behind ``name`` can be imported here."""
    module = PEERS.get(name)
    if module is None:
        return True
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _import(module: str) -> Any:
    # Imported by name: the peers are optional, and type checking must not need them.
    return importlib.import_module(module)


def open_client(name: str, endpoint: str, **options: Any) -> Any:
    """Build the adapter ``name``, sending to ``endpoint`` (``http://127.0.0.1:P``)."""
    factories = {
        "floor": _Floor,
        "auditkit": _Auditkit,
        "auditkit-drop-oldest": _AuditkitDropOldest,
        "segment": _Segment,
        "posthog": _Posthog,
        "opentelemetry": _OpenTelemetry,
        "sentry": _Sentry,
    }
    return factories[name](endpoint, **options)


class _Floor:
    """The limit: a lock-protected deque append with a notify, drained by a thread
    that does nothing with what it takes."""

    def __init__(self, endpoint: str, **options: Any) -> None:
        self._cond = threading.Condition()
        self._queue: collections.deque[Any] = collections.deque()
        self._stopped = False
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def make_args(self) -> Any:
        return {"action": _ACTION, "actor": "user-42", "metadata": dict(_METADATA)}

    def call(self, args: Any) -> bool:
        with self._cond:
            self._queue.append(args)
            self._cond.notify()
        return True

    call_waiting = call

    def flush(self, timeout: float) -> None:
        return None

    def close(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def _drain(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                self._queue.clear()


class _Auditkit:
    policy_name = "DROP_NEWEST"

    def __init__(
        self,
        endpoint: str,
        *,
        policy: str | None = None,
        capacity: int | None = None,
        batch_size: int | None = None,
        transport: Any = None,
        **options: Any,
    ) -> None:
        import auditkit

        recorder_cls: Any = getattr(auditkit, "BufferedRecorder", None)
        if recorder_cls is None:
            from auditkit._buffered import BufferedRecorder as recorder_cls
        self._auditkit = auditkit
        kwargs: dict[str, Any] = {
            "policy": auditkit.Policy[policy or self.policy_name],
        }
        if capacity is not None:
            kwargs["capacity"] = capacity
        if batch_size is not None:
            kwargs["batch_size"] = batch_size
        if transport is not None:
            kwargs["transport"] = transport
        self.recorder = recorder_cls(endpoint, "bench-key", **kwargs)

    def make_args(self) -> Any:
        auditkit = self._auditkit
        return auditkit.Event(
            action=_ACTION,
            actor=auditkit.Actor("user", "user-42"),
            target=auditkit.Target("document", "doc-1234"),
            metadata=dict(_METADATA),
        )

    def call(self, args: Any) -> bool:
        return self.recorder.record(args) is self._auditkit.Outcome.ENQUEUED

    def call_waiting(self, args: Any) -> bool:
        # Under Policy.BLOCK, record() itself waits for space.
        return self.recorder.record(args) is self._auditkit.Outcome.ENQUEUED

    def flush(self, timeout: float) -> None:
        self.recorder.flush(timeout)

    def close(self) -> None:
        self.recorder.close(0.5)


class _AuditkitDropOldest(_Auditkit):
    policy_name = "DROP_OLDEST"


class _Segment:
    def __init__(self, endpoint: str, **options: Any) -> None:
        analytics = _import("segment.analytics")
        self._client = analytics.Client(write_key="bench-key", host=endpoint)

    def make_args(self) -> Any:
        return {
            "target_type": "document",
            "target_id": "doc-1234",
            **_METADATA,
        }

    def call(self, args: Any) -> bool:
        accepted, _ = self._client.track(
            user_id="user-42", event=_ACTION, properties=args
        )
        return bool(accepted)

    def call_waiting(self, args: Any) -> bool:
        # track() reports a full queue by returning False: wait and try again.
        while not self.call(args):
            time.sleep(_SPACE_POLL)
        return True

    def flush(self, timeout: float) -> None:
        self._client.flush()

    def close(self) -> None:
        return None


class _Posthog:
    def __init__(self, endpoint: str, **options: Any) -> None:
        posthog = _import("posthog")
        self._client = posthog.Posthog("phc_bench", host=endpoint)

    def make_args(self) -> Any:
        return {"target_type": "document", "target_id": "doc-1234", **_METADATA}

    def call(self, args: Any) -> bool:
        return (
            self._client.capture(_ACTION, distinct_id="user-42", properties=args)
            is not None
        )

    def call_waiting(self, args: Any) -> bool:
        # capture() returns None for a dropped event: wait and try again.
        while not self.call(dict(args)):
            time.sleep(_SPACE_POLL)
        return True

    def flush(self, timeout: float) -> None:
        self._client.flush()

    def close(self) -> None:
        return None


class _OpenTelemetry:
    def __init__(self, endpoint: str, **options: Any) -> None:
        exporter = _import("opentelemetry.exporter.otlp.proto.http._log_exporter")
        logs = _import("opentelemetry.sdk._logs")
        export = _import("opentelemetry.sdk._logs.export")
        self._provider = logs.LoggerProvider()
        self._processor = export.BatchLogRecordProcessor(
            exporter.OTLPLogExporter(endpoint=endpoint + "/v1/logs")
        )
        self._provider.add_log_record_processor(self._processor)
        self._logger = self._provider.get_logger("bench")

    def make_args(self) -> Any:
        return {
            "actor.type": "user",
            "actor.id": "user-42",
            "target.type": "document",
            "target.id": "doc-1234",
            **_METADATA,
        }

    def call(self, args: Any) -> bool:
        self._logger.emit(body=_ACTION, attributes=args, event_name=_ACTION)
        return True

    def call_waiting(self, args: Any) -> bool:
        # The processor drops the oldest record of a full queue without telling the
        # caller, so look at the queue first (a private attribute: a benchmark only).
        inner = getattr(self._processor, "_batch_processor", None)
        if inner is not None:
            while len(inner._queue) >= inner._max_queue_size:
                time.sleep(_SPACE_POLL)
        return self.call(args)

    def flush(self, timeout: float) -> None:
        self._provider.force_flush(int(timeout * 1000))

    def close(self) -> None:
        return None


class _Sentry:
    def __init__(self, endpoint: str, **options: Any) -> None:
        sentry_sdk = _import("sentry_sdk")
        host = endpoint.removeprefix("http://")
        sentry_sdk.init(dsn=f"http://benchkey@{host}/1")
        self._sentry = sentry_sdk

    def make_args(self) -> Any:
        return {
            "message": _ACTION,
            "level": "info",
            "user": {"id": "user-42"},
            "tags": {"target_type": "document", "target_id": "doc-1234"},
            "extra": dict(_METADATA),
        }

    def call(self, args: Any) -> bool:
        return self._sentry.capture_event(args) is not None

    def call_waiting(self, args: Any) -> bool:
        # The transport drops an envelope when its worker's queue is full, so look
        # at the queue first (a private attribute: a benchmark only).
        worker = getattr(self._sentry.get_client().transport, "_worker", None)
        if worker is not None:
            while worker.full():
                time.sleep(_SPACE_POLL)
        return self.call(args)

    def flush(self, timeout: float) -> None:
        self._sentry.flush(timeout)

    def close(self) -> None:
        return None
