"""What the subprocess programs share: building the recorder, writing ids down."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import auditkit

__all__ = ["API_KEY", "IdLog", "make_event", "make_recorder", "report_failure"]

API_KEY = "e2e-script-key"


def make_recorder(endpoint: str, **options: Any) -> auditkit.BufferedRecorder:
    """A recorder that reports final failures on stdout, as a program would."""
    # The program is the application here: it decides where log lines go.
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(levelname)s %(name)s %(message)s",
    )
    options.setdefault("on_failure", report_failure)
    return auditkit.BufferedRecorder(endpoint, API_KEY, **options)


def report_failure(events: Sequence[Any], reason: str) -> None:
    """The ``on_failure`` hook: one line per report, with the count."""
    print(f"on_failure: {len(events)} events: {reason}", flush=True)


def make_event(source: str, seq: int) -> auditkit.Event:
    """An event with a known id, so the test can look for it on the server."""
    event = auditkit.Event(
        action="script.record",
        actor=auditkit.Actor("process", source),
        target=auditkit.Target("item", str(seq)),
        result=auditkit.Result("success"),
        metadata={"seq": seq},
    )
    event.id = auditkit.new_event_id()
    return event


class IdLog:
    """Appends the id of each ENQUEUED event to a file, one per line, flushed."""

    def __init__(self, path: Path) -> None:
        self._file: TextIO = path.open("a")

    def record(
        self, recorder: auditkit.BufferedRecorder, event: auditkit.Event
    ) -> bool:
        """Record ``event``; note its id if it was enqueued."""
        outcome = recorder.record(event, timeout=10.0)
        if outcome is not auditkit.Outcome.ENQUEUED:
            print(f"outcome: {outcome.value}", flush=True)
            return False
        self._file.write(event.id + "\n")
        self._file.flush()
        return True
