"""Process exit: what a program recorded is delivered, or reported, when it ends."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import pytest

from ._harness import (
    ServerProcess,
    fetch_stored_events,
    free_port,
    run_script,
    start_script,
)

pytestmark = pytest.mark.e2e

# Generous: only a stuck process takes this long.
_EXIT_BOUND = 45.0
# The program below exits with a 2 s exit timeout; interpreter start-up on a busy
# machine takes a few seconds more. A recorder that ignored its exit timeout would
# keep retrying for its whole retry budget (60 s) and overrun this.
_DOWN_EXIT_BOUND = 25.0


def _read_ids(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def _stored_ids(server: ServerProcess) -> set[str]:
    return {event["id"] for event in fetch_stored_events(server.url)}


def test_program_that_exits_normally_delivers_every_event_through_the_exit_hook(
    server_process: ServerProcess, tmp_path: Path
) -> None:
    ids_file = tmp_path / "ids"

    done = run_script(
        "record_and_exit",
        server_process.url,
        2_000,
        ids_file,
        20.0,
        timeout=_EXIT_BOUND,
    )

    assert done.returncode == 0, done.stderr
    enqueued = _read_ids(ids_file)
    assert len(enqueued) == 2_000, done.stdout
    assert set(enqueued) <= _stored_ids(server_process)
    assert "on_failure" not in done.stdout


def test_program_that_exits_while_the_service_is_down_reports_the_undelivered_count(
    tmp_path: Path,
) -> None:
    """Nothing listens on the port: the exit hook gives up at its timeout and says
    how many events it could not deliver, on the logger and through on_failure."""
    ids_file = tmp_path / "ids"
    dead_endpoint = f"http://127.0.0.1:{free_port()}"

    done = run_script(
        "record_and_exit", dead_endpoint, 300, ids_file, 2.0, timeout=_DOWN_EXIT_BOUND
    )

    assert done.returncode == 0, done.stderr
    enqueued = len(_read_ids(ids_file))
    assert enqueued == 300
    reported = sum(
        int(count)
        for count in re.findall(r"^on_failure: (\d+) events", done.stdout, re.M)
    )
    assert reported == enqueued, done.stdout
    log_lines = [
        line
        for line in done.stderr.splitlines()
        if line.startswith(("WARNING auditkit", "ERROR auditkit"))
    ]
    assert any(str(enqueued) in line for line in log_lines), done.stderr


@pytest.mark.parametrize("handler", ["exit", "quit", "close"])
def test_gunicorn_style_worker_flushes_on_sigterm(
    server_process: ServerProcess, tmp_path: Path, handler: str
) -> None:
    """The worker's own SIGTERM handler ends the loop (then ``sys.exit``), raises
    ``SystemExit`` at once, or closes the recorder (threaded worker); every event
    the worker enqueued reaches the service."""
    ids_file = tmp_path / "ids"
    worker = start_script("gunicorn_worker", server_process.url, ids_file, handler)
    try:
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "ready"
        worker.send_signal(signal.SIGTERM)
        stdout, stderr = worker.communicate(timeout=_EXIT_BOUND)
    except (subprocess.TimeoutExpired, AssertionError):
        worker.kill()
        worker.communicate()
        raise

    assert worker.returncode == 0, stderr
    enqueued = _read_ids(ids_file)
    assert len(enqueued) >= 200
    missing = set(enqueued) - _stored_ids(server_process)
    assert not missing, f"{len(missing)} of {len(enqueued)} events lost\n{stderr}"
    assert "on_failure" not in stdout
