"""auditkit_testing: make audit behaviour as easy to test as anything else.

The pytest plugin in this package is registered when auditkit is installed; it
imports only pytest and auditkit when it loads. Hypothesis, respx and the fake
server are imported when a fixture or helper first needs them.
"""

from __future__ import annotations

from ._memory import InMemoryRecorder as InMemoryRecorder, RecordedOutcome as RecordedOutcome

__all__ = ["InMemoryRecorder", "RecordedOutcome"]
