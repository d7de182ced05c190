"""A smoke run of the benchmark with tiny counts, so that it can't rot.

Nothing here asserts a timing: only that every section runs, reports what it
measured in the expected shape, and loses nothing on a healthy local sink.
"""

from __future__ import annotations

import concurrent.futures
import gzip
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # bench/ sits beside the packages, not inside one
    sys.path.insert(0, str(ROOT))

from bench import _clients, _run, _sink  # noqa: E402 - needs the path above
from bench._child import percentiles  # noqa: E402
from bench._report import render  # noqa: E402

TINY = _run.Plan(
    latency_calls=300,
    latency_warmup=20,
    latency_seconds=0.5,
    throughput_events=400,
    throughput_seconds=5.0,
    growth_depths=(10, 200),
    growth_calls=200,
    batch_sizes=(1, 500),
    batch_events=200,
    batch_seconds=5.0,
    middleware_requests=30,
    middleware_warmup=3,
    slow_delay=1.0,
    cost_calls=200,
)


def test_tiny_run_of_every_section_reports_auditkit_beside_the_floor(
    tmp_path: Path,
) -> None:
    results = _run.run(TINY, clients=("floor", "auditkit"))

    latency = {(row["client"], row["service"]): row for row in results["latency"]}
    assert set(latency) == {
        ("floor", "ok"),
        ("auditkit", "ok"),
        ("auditkit", "unreachable"),
        ("auditkit", "slow"),
    }
    for row in latency.values():
        assert "error" not in row, row
        assert 0 < row["calls"] <= TINY.latency_calls
        assert 0 < row["p50"] <= row["p99"] <= row["max"]

    for row in results["throughput"] + results["batch"]:
        assert "error" not in row, row
        assert row["sent"] > 0
        assert row["lost"] == 0
        assert row["received"] == row["sent"]
    assert [row["batch_size"] for row in results["batch"]] == [1, 500]

    growth = results["growth"]
    assert [row["depth"] for row in growth] == [10, 200]
    for row in growth:
        assert "error" not in row, row
        assert row["buffered"] >= row["depth"]

    for row in results["middleware"]:
        assert "error" not in row, row
        if "skipped" not in row:
            assert row["requests"] == TINY.middleware_requests
            assert row["enqueued"] >= TINY.middleware_requests

    steps = [row["step"] for row in results["costs"]["rows"]]
    assert "id (UUIDv7) and timestamp" in steps

    text = render(results)
    assert "Enqueue latency per call" in text
    assert "| auditkit | unreachable |" in text
    assert "by events already buffered" in text
    path = tmp_path / "latest.json"
    path.write_text(json.dumps(results))
    assert json.loads(path.read_text())["machine"]["cpus"] >= 1


def test_each_installed_peer_delivers_to_the_sink_without_loss() -> None:
    peers = [name for name in _clients.PEERS if _clients.available(name)]
    if not peers:
        pytest.skip("no peer SDK is installed (the bench extra)")
    plan = _run.Plan(throughput_events=20, throughput_seconds=5.0)

    # One run per peer, side by side: each has its own sinks and process.
    with concurrent.futures.ThreadPoolExecutor(len(peers)) as pool:
        runs = {
            peer: pool.submit(_run.run, plan, sections=("throughput",), clients=(peer,))
            for peer in peers
        }
        rows = {
            peer: run.result(timeout=90)["throughput"] for peer, run in runs.items()
        }

    for peer, (row,) in rows.items():
        assert "error" not in row, (peer, row)
        assert row["received"] == row["sent"] == 20, peer


def test_missing_peer_is_skipped_with_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_run, "available", lambda name: name != "segment")

    results = _run.run(TINY, sections=("latency",), clients=("segment",))

    assert results["latency"] == []
    assert "segment" in results["skipped"]
    assert "Skipped segment" in render(results)


def test_sink_counts_events_in_each_protocol() -> None:
    events = json.dumps({"events": [{}, {}, {}]}).encode()
    assert _sink.count_events("/v1/events", events) == 3
    assert _sink.count_events("/v1/batch", b'{"batch": [1, 2]}') == 2
    assert _sink.count_events("/batch/", b'{"api_key": "k", "batch": [1]}') == 1
    envelope = b"\n".join(
        [
            b'{"event_id": "x"}',
            b'{"type": "event", "length": 2}',
            b"{}",
            b'{"type": "client_report"}',
            b'{"discarded_events": []}',
            b'{"type": "event"}',
            b'{"message": "a"}',
        ]
    )
    assert _sink.count_events("/api/1/envelope/", envelope) == 2
    assert _sink._decode(gzip.compress(events), "gzip") == events


def test_percentiles_are_nearest_rank_in_microseconds() -> None:
    samples = [1000 * n for n in range(1, 1001)]

    result = percentiles(samples)

    assert result["p50"] == 501.0
    assert result["p99"] == 991.0
    assert result["max"] == 1000.0
    assert percentiles([]) == {}
