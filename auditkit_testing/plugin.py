"""The pytest plugin of auditkit_testing, registered through the ``pytest11`` entry
point. It imports only pytest and auditkit at load time."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._memory import InMemoryRecorder

__all__ = ["audit_recorder"]


@pytest.fixture
def audit_recorder() -> Iterator[InMemoryRecorder]:
    """A fresh :class:`auditkit_testing.InMemoryRecorder` for each test, closed after it.

    Pass it wherever your code takes a recorder, then assert on ``.events``.
    """
    recorder = InMemoryRecorder()
    try:
        yield recorder
    finally:
        recorder.close()
