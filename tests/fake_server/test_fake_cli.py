"""The command line: URL line, options, logging, SQLite persistence and signals."""

# This folder is not a package, so mypy's override for tests.* misses it:
# mypy: allow-untyped-defs, allow-incomplete-defs
# mypy: allow-untyped-calls, check-untyped-defs

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_server_support import wire_event

import fake_server

_REPO_ROOT = Path(__file__).resolve().parents[2]
_START_TIMEOUT = 30.0


@contextlib.contextmanager
def cli(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Run ``python -m fake_server --port 0 ARGS``; yield it and its URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "fake_server", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=_REPO_ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        yield proc, _read_url(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def _read_url(proc: subprocess.Popen[str]) -> str:
    # Read on a thread so that a server that never prints fails the test, not hangs it.
    lines: list[str] = []
    done = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        lines.append(proc.stdout.readline())
        done.set()

    threading.Thread(target=read, daemon=True).start()
    assert done.wait(_START_TIMEOUT), "the server printed no URL line"
    prefix = "fake_server listening on "
    assert lines[0].startswith(prefix), lines[0]
    return lines[0].removeprefix(prefix).strip()


def _stop(proc: subprocess.Popen[str], signum: int) -> tuple[int, str]:
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=30)
    return proc.returncode, stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_port_zero_prints_the_url_and_a_signal_stops_it_cleanly(signum):
    with cli() as (proc, url):
        assert url.startswith("http://127.0.0.1:")
        with fake_server.Client(url) as client:
            assert client.health()
            assert client.ingest([wire_event()])["accepted"] == 1

        status, stderr = _stop(proc, signum)

    assert status == 0
    assert "POST '/v1/events' 200" in stderr
    assert "Traceback" not in stderr


def test_each_request_logs_one_line_without_the_key_or_query_values():
    with cli() as (proc, url):
        with fake_server.Client(url, api_key="secret-key-123") as client:
            client.events(actor_id="actor-secret")
            client.stats()

        _, stderr = _stop(proc, signal.SIGTERM)

    request_lines = [line for line in stderr.splitlines() if " ms" in line]
    assert len(request_lines) == 2
    assert "secret-key-123" not in stderr
    assert "actor-secret" not in stderr


def test_api_keys_and_tenants_come_from_the_command_line():
    with cli("--api-key", "k1=tenant-1", "--api-key", "k2") as (proc, url):
        with fake_server.Client(url, api_key="k1") as as_k1:
            answer = as_k1.ingest([wire_event()])
            assert answer["accepted"] == 1
            assert [e.tenant_id for e in as_k1.events()] == ["tenant-1"]
        with fake_server.Client(url, api_key="nope") as stranger:
            assert stranger.ingest([wire_event()])["status"] == 401
        _stop(proc, signal.SIGTERM)


def test_a_malformed_api_key_option_exits_2_without_echoing_it():
    result = subprocess.run(
        [sys.executable, "-m", "fake_server", "--api-key", "hidden-value="],
        capture_output=True,
        text=True,
        cwd=_REPO_ROOT,
        timeout=60,
    )

    assert result.returncode == 2
    assert "KEY=TENANT" in result.stderr
    assert "hidden-value" not in result.stderr


def test_limits_come_from_the_command_line():
    with cli("--max-batch-events", "3") as (proc, url):
        with fake_server.Client(url) as client:
            assert client.limits()["max_batch_events"] == 3
            assert client.ingest([wire_event() for _ in range(4)])["status"] == 413
        _stop(proc, signal.SIGTERM)


def test_events_in_a_db_file_survive_a_restart(tmp_path):
    db = str(tmp_path / "events.sqlite")
    event = wire_event(action="kept")
    with cli("--db", db) as (proc, url):
        with fake_server.Client(url) as client:
            assert client.ingest([event])["accepted"] == 1
        assert _stop(proc, signal.SIGTERM)[0] == 0

    with cli("--db", db) as (proc, url):
        with fake_server.Client(url) as client:
            assert [e.id for e in client.events()] == [event["id"]]
            assert client.ingest([event])["duplicates"] == 1
        _stop(proc, signal.SIGTERM)


def test_serve_in_thread_with_a_db_keeps_events_across_servers(tmp_path):
    db = str(tmp_path / "events.sqlite")
    with fake_server.serve_in_thread(db=db) as server, server.client() as client:
        client.ingest([wire_event(action="kept")])

    with fake_server.serve_in_thread(db=db) as server, server.client() as client:
        assert [e.action for e in client.events()] == ["kept"]
