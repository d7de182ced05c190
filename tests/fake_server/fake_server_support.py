"""Helpers for the fake server's tests: a real uvicorn on 127.0.0.1, per test.

This folder has no ``__init__.py`` and no ``conftest.py`` on purpose: as a package it
would be named ``fake_server`` and shadow the package under test, and a second
top-level ``conftest`` module would clash with ``tests/conftest.py`` for mypy. Test
modules import these helpers directly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import socket
import ssl
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx

import fake_server
from auditkit import new_event_id


@dataclasses.dataclass
class Running:
    """A running server with a control client and a raw HTTP client for it."""

    server: fake_server.ServerHandle
    client: fake_server.Client
    http: httpx.Client

    @property
    def url(self) -> str:
        return self.server.url


@contextlib.contextmanager
def attach(
    server: fake_server.ServerHandle,
    *,
    namespace: str | None = None,
    api_key: str = "k",
) -> Iterator[Running]:
    """Yield clients for ``server`` in ``namespace`` (a fresh one by default)."""
    namespace = namespace or unique_namespace()
    headers = {
        "authorization": f"Bearer {api_key}",
        fake_server.NAMESPACE_HEADER: namespace,
    }
    with (
        server.client(namespace=namespace, api_key=api_key) as client,
        fast_client(base_url=server.url, headers=headers) as http,
    ):
        yield Running(server, client, http)


@contextlib.contextmanager
def running(
    *, namespace: str | None = None, api_key: str = "k", **options: Any
) -> Iterator[Running]:
    """Start a server with ``options`` (see ``serve_in_thread``), stop it on exit."""
    headers = {"authorization": f"Bearer {api_key}"}
    if namespace is not None:
        headers[fake_server.NAMESPACE_HEADER] = namespace
    with (
        fake_server.serve_in_thread(**options) as server,
        server.client(namespace=namespace, api_key=api_key) as client,
        httpx.Client(base_url=server.url, headers=headers, timeout=10) as http,
    ):
        yield Running(server, client, http)


def fast_client(**options: Any) -> httpx.Client:
    """Return an httpx client that sends small requests without Nagle's delay."""
    transport = httpx.HTTPTransport(
        verify=_ssl_context(),
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
    )
    return httpx.Client(transport=transport, timeout=10, **options)


def post_events(
    http: httpx.Client, body: bytes, headers: Mapping[str, str] | None = None
) -> httpx.Response:
    """POST ``body`` to ``/v1/events`` as JSON, with extra ``headers``."""
    all_headers = {"content-type": "application/json", **(headers or {})}
    return http.post("/v1/events", content=body, headers=all_headers)


def wire_event(**fields: Any) -> dict[str, Any]:
    """Return a valid wire event, with ``fields`` replacing the defaults."""
    event: dict[str, Any] = {
        "id": new_event_id(),
        "action": "secret.read",
        "occurred_at": "2024-05-01T12:00:00.000000Z",
        "actor": {"type": "user", "id": "u-1", "name": None, "metadata": {}},
        "target": {"type": "secret", "id": "s-1", "name": None, "metadata": {}},
        "result": {"status": "success", "code": 200, "message": None},
        "tenant_id": None,
        "request": None,
        "metadata": {},
    }
    event.update(fields)
    return event


def batch(*events: object) -> bytes:
    """Return the JSON body of an ingest request holding ``events``."""
    return b'{"events": [' + b",".join(_encode(e) for e in events) + b"]}"


#: What a client sees when a fault drops its connection: a close without an answer,
#: or a reset when the kernel still held unread request bytes at the close.
DROPPED = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


def unique_namespace() -> str:
    """Return a namespace no other test uses."""
    return f"ns-{uuid.uuid4().hex[:12]}"


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle for every client would cost tens of milliseconds.
    return httpx.create_ssl_context()


def _encode(event: object) -> bytes:
    import json

    return json.dumps(event).encode()


def serve_app(config: fake_server.ServerConfig) -> tuple[fake_server.ServerHandle, Any]:
    """Serve ``config`` on a free port; return the handle and the ASGI app."""
    from fake_server._thread import bind_socket, make_server

    sock = bind_socket("127.0.0.1", 0)
    server = make_server(config, "127.0.0.1", log_level="warning")
    handle = fake_server.ServerHandle(server, sock)
    handle._start(10.0)
    return handle, server.config.app


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Return once ``predicate()`` holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.005)
