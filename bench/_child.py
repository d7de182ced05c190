"""One measurement, run in a fresh process: ``python -m bench._child '<json spec>'``.

The spec names the kind of measurement and its bounds; the result is printed as one
JSON line, the last line of output, and the process ends with ``os._exit`` so that
no SDK's exit hook (which may try to flush to an unreachable service) adds to the
run's time.
"""

from __future__ import annotations

import array
import gc
import json
import logging
import os
import resource
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["main", "percentiles"]

#: The quantiles the latency rows show.
QUANTILES = (("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("p99.9", 0.999))


def percentiles(samples: Any) -> dict[str, float]:
    """Return p50..p99.9, max and mean of ``samples`` (nanoseconds) in microseconds."""
    ordered = sorted(samples)
    n = len(ordered)
    if n == 0:
        return {}
    result = {name: ordered[min(n - 1, int(q * n))] / 1000.0 for name, q in QUANTILES}
    result["max"] = ordered[-1] / 1000.0
    result["mean"] = sum(ordered) / n / 1000.0
    return result


def _peak_rss_mib() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _time_calls(
    make_args: Callable[[], Any],
    call: Callable[[Any], Any],
    count: int,
    seconds: float,
) -> tuple[array.array[int], int]:
    """Time ``call`` around each call, at most ``count`` calls or ``seconds``."""
    samples = array.array("q", bytes(8 * count))
    clock = time.perf_counter_ns
    stop_at = clock() + int(seconds * 1e9)
    accepted = 0
    done = 0
    while done < count:
        args = make_args()
        start = clock()
        ok = call(args)
        end = clock()
        samples[done] = end - start
        accepted += ok
        done += 1
        if not done & 1023 and end > stop_at:
            break
    return samples[:done], accepted


def run_latency(spec: dict[str, Any]) -> dict[str, Any]:
    """Per-call latency of one SDK's enqueue call."""
    from bench._clients import open_client

    client = open_client(spec["client"], spec["endpoint"])
    _time_calls(client.make_args, client.call, spec["warmup"], 5.0)
    samples, accepted = _time_calls(
        client.make_args, client.call, spec["count"], spec["seconds"]
    )
    result = {
        "calls": len(samples),
        "accepted": accepted,
        **percentiles(samples),
        "peak_rss_mib": round(_peak_rss_mib(), 1),
    }
    return result


def run_throughput(spec: dict[str, Any]) -> dict[str, Any]:
    """Events per second delivered to the sink from one thread, without loss."""
    from bench._clients import open_client

    options = {}
    if spec["client"].startswith("auditkit"):
        options = {"policy": "BLOCK", "batch_size": spec.get("batch_size")}
    client = open_client(spec["client"], spec["endpoint"], **options)
    _reset_sink(spec["endpoint"])
    baseline_rss = _peak_rss_mib()
    count, seconds = spec["count"], spec["seconds"]
    stop_at = time.perf_counter() + seconds
    start = time.perf_counter()
    sent = 0
    while sent < count:
        client.call_waiting(client.make_args())
        sent += 1
        if not sent & 255 and time.perf_counter() > stop_at:
            break
    produced = time.perf_counter()
    client.flush(spec.get("flush_timeout", 60.0))
    received = _wait_for_count(spec["endpoint"], sent, spec.get("flush_timeout", 60.0))
    elapsed = time.perf_counter() - start
    client.close()
    return {
        "sent": sent,
        "received": received,
        "lost": sent - received,
        "seconds": round(elapsed, 3),
        "produce_seconds": round(produced - start, 3),
        "events_per_second": round(received / elapsed) if elapsed else 0,
        "peak_rss_mib": round(_peak_rss_mib(), 1),
        "rss_growth_mib": round(_peak_rss_mib() - baseline_rss, 1),
    }


def run_floor_throughput(spec: dict[str, Any]) -> dict[str, Any]:
    """The delivery floor: a deque, a thread, orjson, one kept-alive connection."""
    from bench._pipeline import MinimalPipeline

    _reset_sink(spec["endpoint"])
    pipeline = MinimalPipeline(spec["endpoint"], batch_size=spec.get("batch_size", 500))
    count, seconds = spec["count"], spec["seconds"]
    stop_at = time.perf_counter() + seconds
    start = time.perf_counter()
    sent = 0
    while sent < count:
        pipeline.put(
            {
                "action": "document.read",
                "actor": {"type": "user", "id": "user-42"},
                "target": {"type": "document", "id": "doc-1234"},
                "metadata": {"ip": "203.0.113.7", "plan": "pro", "attempt": 3},
            }
        )
        sent += 1
        if not sent & 255 and time.perf_counter() > stop_at:
            break
    pipeline.close()
    received = _wait_for_count(spec["endpoint"], sent, 30.0)
    elapsed = time.perf_counter() - start
    return {
        "sent": sent,
        "received": received,
        "lost": sent - received,
        "seconds": round(elapsed, 3),
        "events_per_second": round(received / elapsed) if elapsed else 0,
        "peak_rss_mib": round(_peak_rss_mib(), 1),
    }


def run_growth(spec: dict[str, Any]) -> dict[str, Any]:
    """record() latency with ``depth`` events already buffered.

    The worker is held by a transport that blocks until the measurement is over,
    so the buffer only grows. The same warm-up as the latency rows runs first, on
    a recorder of its own, so that the smallest depth is not the one that pays
    for a cold process.
    """
    import auditkit
    from bench._clients import open_client

    release = threading.Event()

    class _HeldTransport:
        def send(self, batch: Any, *, timeout: float | None = None) -> Any:
            release.wait(120.0)
            return auditkit.SendResult.delivered()

        def close(self) -> None:
            return None

    depth, count = spec["depth"], spec["count"]
    warm = open_client("auditkit", "http://127.0.0.1:9", transport=_HeldTransport())
    _time_calls(warm.make_args, warm.call, spec.get("warmup", 0), 5.0)
    client = open_client(
        "auditkit",
        "http://127.0.0.1:9",
        capacity=depth + count + 1000,
        transport=_HeldTransport(),
    )
    fill_start = time.perf_counter()
    event = client.make_args()
    for _ in range(depth):
        client.recorder.record(event)
    fill_seconds = time.perf_counter() - fill_start
    samples, accepted = _time_calls(
        client.make_args, client.call, count, spec["seconds"]
    )
    stats = client.recorder.stats()
    release.set()
    return {
        "depth": depth,
        "buffered": stats.depth + stats.in_flight,
        "calls": len(samples),
        "accepted": accepted,
        "fill_seconds": round(fill_seconds, 2),
        **percentiles(samples),
        "peak_rss_mib": round(_peak_rss_mib(), 1),
    }


def run_middleware(spec: dict[str, Any]) -> dict[str, Any]:
    """Time per request of a bare app and of the same app behind the middleware."""
    from bench import _middleware

    return _middleware.measure(spec)


def _reset_sink(endpoint: str) -> None:
    _sink_request(endpoint, "POST", "/_reset")


def _sink_count(endpoint: str) -> int:
    return int(json.loads(_sink_request(endpoint, "GET", "/_count"))["events"])


def _wait_for_count(endpoint: str, expected: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    received = _sink_count(endpoint)
    while received < expected and time.monotonic() < deadline:
        time.sleep(0.005)
        received = _sink_count(endpoint)
    return received


def _sink_request(endpoint: str, method: str, path: str) -> bytes:
    import http.client

    host, _, port = endpoint.removeprefix("http://").partition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request(method, path, body=b"" if method == "POST" else None)
        return connection.getresponse().read()
    finally:
        connection.close()


def run_costs(spec: dict[str, Any]) -> dict[str, Any]:
    """What each step of recording and delivery costs."""
    from bench import _costs

    return _costs.measure(spec)


_KINDS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "costs": run_costs,
    "latency": run_latency,
    "throughput": run_throughput,
    "floor-throughput": run_floor_throughput,
    "growth": run_growth,
    "middleware": run_middleware,
}


def main(argv: list[str] | None = None) -> None:
    """Run the measurement given as a JSON spec and print its result."""
    spec = json.loads((argv or sys.argv[1:])[0])
    # Apps configure logging; give the SDKs' warnings (dropped events and the like)
    # a handler that discards them, so that no SDK pays for writing to stderr.
    logging.getLogger().addHandler(logging.NullHandler())
    gc.collect()
    try:
        result = _KINDS[spec["kind"]](spec)
    except Exception as exc:  # reported as the row's error, not a crash of the run
        result = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
