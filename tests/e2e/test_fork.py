"""Pre-fork servers: a parent that records, then forks workers that record."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from ._harness import ServerProcess, control, fetch_stored_events, run_script

pytestmark = pytest.mark.e2e

_WORKERS = 3
_PER_PROCESS = 500


def test_prefork_parent_and_workers_deliver_every_event_exactly_once(
    server_process: ServerProcess, tmp_path: Path
) -> None:
    done = run_script(
        "prefork", server_process.url, tmp_path, _WORKERS, _PER_PROCESS, timeout=90.0
    )

    assert done.returncode == 0, done.stdout + done.stderr
    enqueued = [
        event_id
        for path in sorted(tmp_path.glob("*.ids"))
        for event_id in path.read_text().split()
    ]
    # The parent records twice, before and after the fork; each worker once.
    assert len(enqueued) == (_WORKERS + 2) * _PER_PROCESS
    stored = [event["id"] for event in fetch_stored_events(server_process.url)]
    assert collections.Counter(stored).most_common(1)[0][1] == 1
    assert set(stored) == set(enqueued)
    # No fault was injected, so a duplicate can only mean that a child re-sent the
    # events it inherited in the parent's buffer.
    stats = control(server_process.url, "GET", "/_fake/stats").json()
    assert stats["duplicates"] == 0, stats
