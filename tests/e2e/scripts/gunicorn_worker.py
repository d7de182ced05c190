"""A worker process shaped like a gunicorn worker, recording until SIGTERM.

Usage: ``python -m e2e.scripts.gunicorn_worker ENDPOINT IDS_FILE HANDLER``.

Like gunicorn, the program installs its own SIGTERM handler (auditkit installs
none). ``HANDLER`` picks its shape:

- ``exit``: the graceful sync worker. The handler only ends the request loop, and
  the program leaves through ``sys.exit(0)``; the recorder's exit hook flushes.
- ``quit``: the quick exit. The handler raises ``SystemExit`` at once, wherever the
  main thread is (possibly inside ``record()``); the exit hook flushes.
- ``close``: the threaded worker. Request threads record while the main thread
  waits; the handler closes the recorder itself, then calls ``sys.exit(0)``.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import auditkit

from ._common import IdLog, make_event, make_recorder

# A bound, so that a worker the test forgot can't run forever.
_MAX_EVENTS = 60_000
_READY_AFTER = 200


def main(argv: list[str]) -> None:
    endpoint, ids_file, handler = argv
    recorder = make_recorder(endpoint, flush_interval=0.2, exit_timeout=20.0)
    ids = IdLog(Path(ids_file))
    stopping = threading.Event()

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        if handler == "exit":
            stopping.set()
            return
        if handler == "close":
            stopping.set()
            print(f"closed: {recorder.close(timeout=20.0)}", flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_sigterm)
    if handler == "close":
        _serve_threaded(recorder, ids, stopping)
    else:
        _serve(recorder, ids, stopping)
    sys.exit(0)


def _serve(
    recorder: auditkit.BufferedRecorder, ids: IdLog, stopping: threading.Event
) -> None:
    """Record until asked to stop, as a sync worker handles requests."""
    seq = 0
    pace = threading.Event()
    while not stopping.is_set() and seq < _MAX_EVENTS:
        ids.record(recorder, make_event("worker", seq))
        seq += 1
        if seq == _READY_AFTER:
            print("ready", flush=True)
        if seq % 20 == 0:
            pace.wait(0.01)  # a request handler's worth of work between records
    print(f"stopping after {seq}", flush=True)


def _serve_threaded(
    recorder: auditkit.BufferedRecorder, ids: IdLog, stopping: threading.Event
) -> None:
    """Record on a request thread while the main thread waits for a signal."""
    thread = threading.Thread(
        target=_serve, args=(recorder, ids, stopping), daemon=True
    )
    thread.start()
    # The main thread holds no lock while it waits here, so the handler may close
    # the recorder; a timed wait keeps the bound.
    stopping.wait(60.0)
    thread.join(10.0)


if __name__ == "__main__":
    main(sys.argv[1:])
