"""Record some events, then leave the interpreter without closing the recorder.

Usage: ``python -m e2e.scripts.record_and_exit ENDPOINT COUNT IDS_FILE EXIT_TIMEOUT``.
The recorder's exit hook must deliver the events, or, when the service is down,
give up within ``EXIT_TIMEOUT`` seconds and report what it could not deliver.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ._common import IdLog, make_event, make_recorder


def main(argv: list[str]) -> int:
    endpoint, count, ids_file, exit_timeout = argv
    recorder = make_recorder(
        endpoint, flush_interval=0.05, exit_timeout=float(exit_timeout)
    )
    ids = IdLog(Path(ids_file))
    for seq in range(int(count)):
        ids.record(recorder, make_event("exit", seq))
    print("recorded", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
