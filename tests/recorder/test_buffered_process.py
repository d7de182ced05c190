"""Fork, interpreter exit and garbage collection, in subprocesses where needed."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import pytest

from auditkit import BufferedRecorder, Outcome

from ._transports import BOUND, RecordingTransport, make_event

# A transport that appends one JSON line per delivered event (and one per reset)
# to a file, with the pid of the process that sent it.
_FILE_TRANSPORT = """
import json, os, sys, threading
from auditkit import BufferedRecorder, Event, Actor, SendResult

class FileTransport:
    def __init__(self, path, hang=False):
        self.path = path
        self.hang = hang

    def _write(self, line):
        with open(self.path, "a") as out:
            out.write(json.dumps(line) + "\\n")

    def send(self, batch, *, timeout=None):
        if self.hang:
            threading.Event().wait()
        for wire in batch.events:
            self._write({"pid": os.getpid(), "n": wire["metadata"]["n"]})
        return SendResult.delivered()

    def close(self):
        self._write({"pid": os.getpid(), "closed": True})

    def reset_after_fork(self):
        self._write({"pid": os.getpid(), "reset": True})

def event(n):
    return Event(action="job.run", actor=Actor("job", "j1"), metadata={"n": n})
"""

_FORK_SCRIPT = """
import auditkit._buffered

path, mode = sys.argv[1], sys.argv[2]
recorder = BufferedRecorder(transport=FileTransport(path), flush_interval=60)
for n in range(5):
    assert recorder.record(event(n)) is auditkit.Outcome.ENQUEUED
if mode == "no-hooks":
    # As if a server forked without running the interpreter's fork hooks: only
    # the process-id check in record() can notice the fork.
    auditkit._buffered._LIVE.clear()
pid = os.fork()
if pid == 0:
    ok = recorder.record(event(100)) is auditkit.Outcome.ENQUEUED
    stats = recorder.stats()
    ok = ok and (stats.enqueued, stats.depth) == (1, 1)
    ok = ok and recorder.record(event(101)) is auditkit.Outcome.ENQUEUED
    ok = ok and recorder.close(timeout=10)
    os._exit(0 if ok else 1)
assert recorder.record(event(5)) is auditkit.Outcome.ENQUEUED
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
assert recorder.close(timeout=10)
print(json.dumps({"parent": os.getpid(), "child": pid}))
"""

_EXIT_SCRIPT = """
import atexit
import auditkit

late = []
# atexit runs handlers last-registered first: this one runs after the
# recorder's own exit hook.
atexit.register(lambda: print("late:", recorder.record(event(99)).name))
recorder = BufferedRecorder(
    transport=FileTransport(sys.argv[1], hang=sys.argv[2] == "hang"),
    flush_interval=60,
    exit_timeout=0.5,
    on_failure=lambda events, reason: print("failed:", len(events)),
)
for n in range(3):
    recorder.record(event(n))
"""


def _run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    source = textwrap.dedent(_FILE_TRANSPORT) + textwrap.dedent(script)
    return subprocess.run(
        [sys.executable, "-c", source, *args],
        capture_output=True,
        text=True,
        timeout=BOUND * 3,
        check=False,
    )


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.skipif(sys.platform == "win32", reason="os.fork is POSIX only")
@pytest.mark.parametrize("mode", ["hooks", "no-hooks"])
def test_forked_child_delivers_only_its_own_events(tmp_path: Path, mode: str) -> None:
    out = tmp_path / "sent.jsonl"

    done = _run(_FORK_SCRIPT, str(out), mode)

    assert done.returncode == 0, done.stderr
    pids = json.loads(done.stdout)
    lines = _lines(out)
    sent = {
        who: sorted(
            line["n"] for line in lines if line["pid"] == pids[who] and "n" in line
        )
        for who in ("parent", "child")
    }
    assert sent == {"parent": [0, 1, 2, 3, 4, 5], "child": [100, 101]}
    assert {"pid": pids["child"], "reset": True} in lines
    assert {"pid": pids["child"], "closed": True} in lines
    assert {"pid": pids["parent"], "closed": True} in lines


def test_exit_hook_delivers_what_a_script_recorded(tmp_path: Path) -> None:
    out = tmp_path / "sent.jsonl"

    done = _run(_EXIT_SCRIPT, str(out), "deliver")

    assert done.returncode == 0, done.stderr
    assert [line["n"] for line in _lines(out) if "n" in line] == [0, 1, 2]
    assert "late: CLOSED" in done.stdout


def test_exit_hook_gives_up_at_its_timeout_and_reports_the_loss(
    tmp_path: Path,
) -> None:
    out = tmp_path / "sent.jsonl"

    done = _run(_EXIT_SCRIPT, str(out), "hang")

    assert done.returncode == 0, done.stderr
    assert "failed: 3" in done.stdout
    assert "3 events could not be delivered" in done.stderr
    assert "late: CLOSED" in done.stdout


def test_pid_check_resets_a_recorder_whose_process_changed() -> None:
    """The reset a fork triggers gives an empty buffer and fresh counters."""
    transport = RecordingTransport()
    recorder = BufferedRecorder(transport=transport, flush_interval=BOUND)
    old_lock = recorder._lock
    recorder._pid = -1  # as seen from a child the fork hooks missed

    assert recorder.record(make_event(1)) is Outcome.ENQUEUED

    assert recorder._lock is not old_lock
    assert recorder.stats().enqueued == 1
    assert recorder.close(timeout=BOUND)
    assert [wire["metadata"]["n"] for wire in transport.wires] == [1]


def test_unused_and_closed_recorders_can_be_garbage_collected() -> None:
    unused = weakref.ref(BufferedRecorder(transport=RecordingTransport()))
    used = BufferedRecorder(transport=RecordingTransport())
    used.record(make_event(0))
    assert used.close(timeout=BOUND)
    worker = used._worker
    assert worker is not None
    assert worker.done.wait(BOUND)
    collected = threading.Event()
    weakref.finalize(used, collected.set)
    del used, worker

    # The worker's thread lets go of the recorder just after it signals done.
    deadline = time.monotonic() + BOUND
    while not collected.is_set() and time.monotonic() < deadline:
        gc.collect()
        collected.wait(0.01)

    assert unused() is None
    assert collected.is_set()
