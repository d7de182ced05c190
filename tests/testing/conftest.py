"""Fixtures shared by the tests of auditkit_testing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import fake_server

pytest_plugins = ["pytester"]


@pytest.fixture(scope="module")
def running_server() -> Iterator[fake_server.ServerHandle]:
    """A fake audit server on a free port of 127.0.0.1, stopped after the module."""
    handle = fake_server.serve_in_thread(host="127.0.0.1", port=0)
    try:
        yield handle
    finally:
        handle.stop()
