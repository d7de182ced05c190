"""Fixtures of the buffered recorder's tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from auditkit import BufferedRecorder

from ._transports import BOUND, HangingTransport, recorder


@pytest.fixture
def make_recorder() -> Iterator[Callable[..., BufferedRecorder]]:
    """Build recorders on test transports; each is released and closed after the
    test, so no worker thread outlives it."""
    made: list[tuple[BufferedRecorder, Any]] = []

    def make(transport: Any, **options: Any) -> BufferedRecorder:
        built = recorder(transport, **options)
        made.append((built, transport))
        return built

    yield make
    for built, transport in made:
        if isinstance(transport, HangingTransport):
            transport.open()
        built.close(timeout=BOUND)


@pytest.fixture
def anyio_backend() -> str:
    """arecord() waits on asyncio futures: the async tests run on asyncio."""
    return "asyncio"
