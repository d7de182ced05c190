"""The benchmark run: start the sinks, run each measurement in a fresh process, report.

``python -m bench`` runs everything and takes a few minutes; ``python -m bench
--quick`` runs the same with tiny counts in well under a minute, to check that the
benchmark still works. The table goes to standard output and the whole result, with
the machine it ran on, to ``bench/results/latest.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import json
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._clients import CLIENTS, PEERS, available
from bench._report import render

__all__ = ["Plan", "main", "run"]

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON = ROOT / "bench" / "results" / "latest.json"
SECTIONS = ("costs", "latency", "throughput", "growth", "batch", "middleware")
#: The service conditions of the latency rows: a healthy local sink, a closed port,
#: and a sink that takes a second to answer each request.
SERVICES = ("ok", "unreachable", "slow")
_DISTRIBUTIONS = (
    "auditkit",
    "orjson",
    "segment-analytics-python",
    "posthog",
    "opentelemetry-sdk",
    "opentelemetry-exporter-otlp-proto-http",
    "sentry-sdk",
    "starlette",
    "flask",
)


@dataclass(frozen=True)
class Plan:
    """The counts and time bounds of one run."""

    latency_calls: int = 300_000
    latency_warmup: int = 20_000
    latency_seconds: float = 6.0
    throughput_events: int = 300_000
    throughput_seconds: float = 8.0
    growth_depths: tuple[int, ...] = (10, 10_000, 1_000_000)
    growth_calls: int = 100_000
    batch_sizes: tuple[int, ...] = (1, 10, 50, 100, 250, 500)
    batch_events: int = 100_000
    batch_seconds: float = 4.0
    middleware_requests: int = 20_000
    middleware_warmup: int = 2_000
    slow_delay: float = 1.0
    cost_calls: int = 50_000


QUICK = Plan(
    latency_calls=1_500,
    latency_warmup=100,
    latency_seconds=1.0,
    throughput_events=1_500,
    throughput_seconds=2.0,
    growth_depths=(10, 1_000, 10_000),
    growth_calls=1_000,
    batch_sizes=(1, 100, 500),
    batch_events=1_000,
    batch_seconds=1.0,
    middleware_requests=200,
    middleware_warmup=20,
    slow_delay=1.0,
    cost_calls=500,
)


def run(
    plan: Plan,
    *,
    sections: tuple[str, ...] = SECTIONS,
    clients: tuple[str, ...] = CLIENTS,
    progress: Any = None,
) -> dict[str, Any]:
    """Run the benchmark and return its results as a JSON-ready dict."""

    def note(text: str) -> None:
        if progress is not None:
            progress(text)

    results: dict[str, Any] = {
        "machine": machine_info(),
        "plan": plan.__dict__ | {"growth_depths": list(plan.growth_depths)},
        "skipped": {
            name: f"{PEERS[name]} is not importable"
            for name in clients
            if not available(name)
        },
    }
    clients = tuple(name for name in clients if available(name))
    started = time.perf_counter()
    with _sink(0.0) as ok, _sink(plan.slow_delay) as slow:
        endpoints = {"ok": ok, "unreachable": _closed_port(), "slow": slow}
        if "costs" in sections:
            results["costs"] = _child({"kind": "costs", "count": plan.cost_calls})
            note("costs measured")
        if "latency" in sections:
            results["latency"] = _run_latency(plan, clients, endpoints, note)
        if "throughput" in sections:
            results["throughput"] = _run_throughput(plan, clients, ok, note)
        if "growth" in sections:
            results["growth"] = _run_growth(plan, note)
        if "batch" in sections:
            results["batch"] = _run_batches(plan, ok, note)
        if "middleware" in sections:
            results["middleware"] = _run_middleware(plan, ok, note)
    results["seconds"] = round(time.perf_counter() - started, 1)
    return results


def _run_latency(
    plan: Plan, clients: tuple[str, ...], endpoints: dict[str, str], note: Any
) -> list[dict[str, Any]]:
    rows = []
    for service in SERVICES:
        for client in clients:
            if client == "floor" and service != "ok":
                continue  # the floor talks to no service
            spec = {
                "kind": "latency",
                "client": client,
                "endpoint": endpoints[service],
                "count": plan.latency_calls,
                "warmup": plan.latency_warmup,
                "seconds": plan.latency_seconds,
            }
            row = {"client": client, "service": service, **_child(spec)}
            note(f"latency {client} / {service}: p50 {row.get('p50')} us")
            rows.append(row)
    return rows


def _run_throughput(
    plan: Plan, clients: tuple[str, ...], endpoint: str, note: Any
) -> list[dict[str, Any]]:
    rows = []
    for client in clients:
        if client == "auditkit-drop-oldest":
            continue  # the throughput rows wait for space: auditkit uses BLOCK
        spec: dict[str, Any] = {
            "kind": "floor-throughput" if client == "floor" else "throughput",
            "client": client,
            "endpoint": endpoint,
            "count": plan.throughput_events,
            "seconds": plan.throughput_seconds,
        }
        row = {"client": client, **_child(spec)}
        note(f"throughput {client}: {row.get('events_per_second')} events/s")
        rows.append(row)
    return rows


def _run_growth(plan: Plan, note: Any) -> list[dict[str, Any]]:
    rows = []
    for depth in plan.growth_depths:
        spec = {
            "kind": "growth",
            "depth": depth,
            "count": plan.growth_calls,
            "warmup": plan.latency_warmup,
            "seconds": plan.latency_seconds,
        }
        row = _child(spec, timeout=240.0)
        note(f"growth {depth} buffered: p50 {row.get('p50')} us")
        rows.append({"depth": depth, **row})
    return rows


def _run_batches(plan: Plan, endpoint: str, note: Any) -> list[dict[str, Any]]:
    rows = []
    for size in plan.batch_sizes:
        spec = {
            "kind": "throughput",
            "client": "auditkit",
            "endpoint": endpoint,
            "batch_size": size,
            "count": plan.batch_events,
            "seconds": plan.batch_seconds,
        }
        row = {"batch_size": size, **_child(spec)}
        note(f"batch size {size}: {row.get('events_per_second')} events/s")
        rows.append(row)
    return rows


def _run_middleware(plan: Plan, endpoint: str, note: Any) -> list[dict[str, Any]]:
    rows = []
    for framework in ("starlette", "flask"):
        spec = {
            "kind": "middleware",
            "framework": framework,
            "endpoint": endpoint,
            "count": plan.middleware_requests,
            "warmup": plan.middleware_warmup,
        }
        row = {"framework": framework, **_child(spec)}
        note(f"middleware {framework}: +{row.get('added_p50_us')} us at p50")
        rows.append(row)
    return rows


def _child(spec: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter and return its result."""
    if timeout is None:
        timeout = 60.0 + 4 * float(spec.get("seconds", 30.0))
    try:
        completed = subprocess.run(
            [sys.executable, "-m", "bench._child", json.dumps(spec)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or not lines:
        tail = completed.stderr.strip().splitlines()[-1:] or ["no output"]
        return {"error": f"exit {completed.returncode}: {tail[0][:300]}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


@contextlib.contextmanager
def _sink(delay: float) -> Iterator[str]:
    """Run a sink in its own process, so it does not share the sender's GIL."""
    with subprocess.Popen(
        [sys.executable, "-m", "bench._sink", "--port", "0", "--delay", str(delay)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            port = int(process.stdout.readline())
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            try:
                process.wait(10.0)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _closed_port() -> str:
    """A port on 127.0.0.1 that nothing listens on: connections are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def machine_info() -> dict[str, Any]:
    """The machine, interpreter and package versions a result was measured with."""
    model = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    versions = {}
    for name in _DISTRIBUTIONS:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[name] = importlib.metadata.version(name)
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        # Other work on the machine skews every row alike: the load shows how much.
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "cpu_model": model,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "versions": versions,
    }


def main(argv: list[str] | None = None) -> int:
    """The ``python -m bench`` command."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark auditkit against the SDKs a team would otherwise use.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny counts: checks that it runs"
    )
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections to run, of: {', '.join(SECTIONS)}",
    )
    parser.add_argument(
        "--clients",
        default=",".join(CLIENTS),
        help=f"comma-separated clients, of: {', '.join(CLIENTS)}",
    )
    parser.add_argument(
        "--json", default=str(DEFAULT_JSON), help="where to write the JSON result"
    )
    args = parser.parse_args(argv)
    sections = tuple(s for s in args.only.split(",") if s)
    clients = tuple(c for c in args.clients.split(",") if c)
    unknown = set(sections) - set(SECTIONS) | set(clients) - set(CLIENTS)
    if unknown:
        parser.error(f"unknown section or client: {', '.join(sorted(unknown))}")

    def progress(text: str) -> None:
        print(f"  {text}", file=sys.stderr, flush=True)

    results = run(
        QUICK if args.quick else Plan(),
        sections=sections,
        clients=clients,
        progress=progress,
    )
    results["mode"] = "quick" if args.quick else "full"
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(render(results))
    print(f"\nJSON written to {path}")
    return 0
