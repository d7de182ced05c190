"""A worker process shaped like a gunicorn sync worker, recording until SIGTERM.

Usage: ``python -m e2e.scripts.gunicorn_worker ENDPOINT IDS_FILE HANDLER``.

Like gunicorn, the program installs its own SIGTERM handler (auditkit installs
none). With ``HANDLER=exit`` the handler only ends the work loop and the program
leaves through ``sys.exit(0)``, so the recorder's exit hook must flush; with
``HANDLER=close`` the handler closes the recorder itself, then calls ``sys.exit``.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from ._common import IdLog, make_event, make_recorder

# A bound, so that a worker the test forgot can't run forever.
_MAX_SECONDS = 60.0
_READY_AFTER = 200


def main(argv: list[str]) -> None:
    endpoint, ids_file, handler = argv
    recorder = make_recorder(endpoint, flush_interval=0.2)
    ids = IdLog(Path(ids_file))
    stopping = threading.Event()

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        if handler == "close":
            delivered = recorder.close(timeout=20.0)
            print(f"closed: {delivered}", flush=True)
            sys.exit(0)
        stopping.set()

    signal.signal(signal.SIGTERM, on_sigterm)
    seq = 0
    pace = threading.Event()
    while not stopping.is_set() and seq < _MAX_SECONDS * 1000:
        ids.record(recorder, make_event("worker", seq))
        seq += 1
        if seq == _READY_AFTER:
            print("ready", flush=True)
        if seq % 20 == 0:
            pace.wait(0.01)  # a request handler's worth of work between records
    print(f"stopping after {seq}", flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
