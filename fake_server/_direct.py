"""An httpx transport on the standard library's ``http.client``.

respx and pytest-httpx mock httpx by patching its own transports, so while a test
mocks httpx for the code under test, every httpx request in the process is theirs to
answer, including the test harness's own traffic to the fake server. The harness's
clients (:class:`~fake_server.Client`, and the recorders the pytest fixtures point
at the server) send through this transport instead, which neither library
intercepts, so that mocking httpx in a test never cuts the test off from the fake
server.
"""

from __future__ import annotations

import http.client
import select
import socket
import ssl
import threading
from typing import Any, final

import httpx

__all__ = ["DirectTransport"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
# Connections kept open per host, for reuse by the next request.
_MAX_IDLE = 4


@final
class DirectTransport(httpx.BaseTransport):
    """Sends each request over a kept-alive ``http.client`` connection.

    HTTP/1.1 only, with no proxy; meant for a fake server, usually on loopback.
    Thread-safe: each request uses a connection of its own for as long as it runs.

    Args:
        ssl_context: Used for ``https`` URLs; the system's default context if None.
    """

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl_context = ssl_context
        # Guards _idle: connections not in use, by (scheme, host, port).
        self._lock = threading.Lock()
        self._idle: dict[tuple[str, str, int], list[http.client.HTTPConnection]] = {}
        self._closed = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` and read the whole answer."""
        url = request.url
        if url.scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(
                f"The direct transport speaks http and https, not {url.scheme!r}.",
                request=request,
            )
        key = (url.scheme, url.host, url.port or _DEFAULT_PORTS[url.scheme])
        timeouts = request.extensions.get("timeout", {})
        connection = self._checkout(key, timeouts.get("connect"))
        try:
            status, headers, content, reusable = _exchange(
                connection, request, timeouts.get("read")
            )
        except TimeoutError as exc:
            connection.close()
            raise httpx.ReadTimeout(str(exc) or "Timed out.", request=request) from exc
        except ConnectionRefusedError as exc:
            connection.close()
            raise httpx.ConnectError(str(exc), request=request) from exc
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise httpx.RemoteProtocolError(
                str(exc) or type(exc).__name__, request=request
            ) from exc
        if reusable:
            self._checkin(key, connection)
        else:
            connection.close()
        return httpx.Response(
            status,
            headers=headers,
            content=content,
            extensions={"http_version": b"HTTP/1.1"},
        )

    def close(self) -> None:
        """Close the idle connections; later requests open new ones."""
        with self._lock:
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()

    def _checkout(
        self, key: tuple[str, str, int], connect_timeout: float | None
    ) -> http.client.HTTPConnection:
        with self._lock:
            connections = self._idle.get(key, [])
            while connections:
                connection = connections.pop()
                if _is_usable(connection):
                    return connection
                connection.close()
        scheme, host, port = key
        if scheme == "https":
            context = self._ssl_context or ssl.create_default_context()
            return http.client.HTTPSConnection(
                host, port, timeout=connect_timeout, context=context
            )
        return http.client.HTTPConnection(host, port, timeout=connect_timeout)

    def _checkin(
        self, key: tuple[str, str, int], connection: http.client.HTTPConnection
    ) -> None:
        with self._lock:
            connections = self._idle.setdefault(key, [])
            if len(connections) < _MAX_IDLE:
                connections.append(connection)
                return
        connection.close()


def _exchange(
    connection: http.client.HTTPConnection,
    request: httpx.Request,
    read_timeout: float | None,
) -> tuple[int, list[tuple[str, str]], bytes, bool]:
    if connection.sock is None:
        connection.connect()
        sock: Any = connection.sock
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    connection.sock.settimeout(read_timeout)
    headers = {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in request.headers.raw
    }
    # A bytes body goes out in the same send as the headers.
    connection.request(
        request.method,
        request.url.raw_path.decode("ascii"),
        request.read() or None,
        headers,
    )
    response = connection.getresponse()
    content = response.read()
    return response.status, response.getheaders(), content, not response.will_close


def _is_usable(connection: http.client.HTTPConnection) -> bool:
    # An idle connection that has something to read was closed by the server (or
    # holds a stray answer): either way it can't carry the next request.
    sock = connection.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable
