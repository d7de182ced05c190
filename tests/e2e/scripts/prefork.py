"""A pre-fork server: the parent records, forks workers that record, records again.

Usage: ``python -m e2e.scripts.prefork ENDPOINT IDS_DIR WORKERS PER_PROCESS``.

The parent's buffer holds undelivered events when it forks (the flush interval is
long), so a child that re-sent what it inherited would deliver them twice. Each
process writes the ids it enqueued to its own file in ``IDS_DIR``; every process
leaves through ``sys.exit``, as gunicorn's workers do, so exit hooks run.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import auditkit

from ._common import IdLog, make_event, make_recorder


def main(argv: list[str]) -> int:
    endpoint, ids_dir, workers, per_process = argv
    count = int(per_process)
    recorder = make_recorder(endpoint, flush_interval=30.0)
    parent_ids = IdLog(Path(ids_dir) / "parent.ids")
    for seq in range(count):
        parent_ids.record(recorder, make_event("parent", seq))

    children = [_spawn(recorder, Path(ids_dir), n, count) for n in range(int(workers))]
    failures = 0
    for pid in children:
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            failures += 1
    for seq in range(count, 2 * count):
        parent_ids.record(recorder, make_event("parent", seq))
    print(f"children failed: {failures}", flush=True)
    return 1 if failures else 0


def _spawn(
    recorder: auditkit.BufferedRecorder, ids_dir: Path, number: int, count: int
) -> int:
    with warnings.catch_warnings():
        # Python 3.12+ warns about forking a threaded process; forking with a live
        # worker thread is exactly what this program is here to test.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid:
        return pid
    ids = IdLog(ids_dir / f"worker-{number}.ids")
    for seq in range(count):
        ids.record(recorder, make_event(f"worker-{number}", seq))
    sys.exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
