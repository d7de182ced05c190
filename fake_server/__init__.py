"""fake_server: a fake audit service for tests, in-process or as a container.

It speaks the audit service's wire protocol v1 (``POST /v1/events``, ``GET
/v1/events``, ``GET /v1/limits``, ``GET /healthz``) strictly, so that client bugs
surface in tests, and adds a control API under ``/_fake/`` to inject faults, read the
request journal and wait for events. Start it in-process with
:func:`serve_in_thread`, from a shell with ``python -m fake_server``, or as a
container built from ``fake_server/Dockerfile``; drive it with :class:`Client`.
"""

from __future__ import annotations

from ._app import ServerConfig as ServerConfig, create_app as create_app
from ._client import (
    Client as Client,
    FakeServerError as FakeServerError,
    JournalEntry as JournalEntry,
    ServerLimits as ServerLimits,
    ServerStats as ServerStats,
    WaitTimeoutError as WaitTimeoutError,
)
from ._openapi import openapi_document as openapi_document
from ._state import NAMESPACE_HEADER as NAMESPACE_HEADER
from ._thread import ServerHandle as ServerHandle, serve_in_thread as serve_in_thread

__all__ = [
    "NAMESPACE_HEADER",
    "Client",
    "FakeServerError",
    "JournalEntry",
    "ServerConfig",
    "ServerHandle",
    "ServerLimits",
    "ServerStats",
    "WaitTimeoutError",
    "create_app",
    "openapi_document",
    "serve_in_thread",
]
