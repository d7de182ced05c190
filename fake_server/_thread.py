"""Running the fake server in a background thread of the current process."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Self, final

import uvicorn

from auditkit import Limits

from ._app import ServerConfig, _FakeServerApp, create_app
from ._client import Client

__all__ = [
    "ServerHandle",
    "bind_socket",
    "make_server",
    "serve_in_thread",
    "uvicorn_config",
]

# How long a graceful stop waits for requests in flight (a pending wait, say).
_GRACEFUL_SECONDS = 1


def serve_in_thread(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    api_keys: Mapping[str, str | None] | None = None,
    db: str | None = None,
    limits: Limits | None = None,
    timeout: float = 10.0,
) -> ServerHandle:
    """Start a fake audit server on a background thread and return once it serves.

    Blocks until the server accepts connections, at most ``timeout`` seconds::

        with fake_server.serve_in_thread() as server:
            recorder = auditkit.BufferedRecorder(server.url, "any-key")
            ...
            server.client().wait(1, timeout=5)

    Args:
        host: The address to listen on.
        port: The port; 0 picks a free one (see :attr:`ServerHandle.url`).
        api_keys: The accepted keys, each mapped to its tenant or ``None``; ``None``
            accepts any non-empty bearer key.
        db: A SQLite file that keeps events across restarts; in memory by default.
        limits: The batch and event limits; the protocol's by default.
        timeout: How long to wait for the server to start, in seconds.

    Returns:
        A handle whose :meth:`~ServerHandle.stop` stops the server; it is also a
        context manager.

    Raises:
        OSError: The address could not be bound.
        RuntimeError: The server failed or did not start within ``timeout``; the
            message says why.
    """
    config = ServerConfig(api_keys=api_keys, db=db, limits=limits or Limits())
    sock = bind_socket(host, port)
    try:
        server = make_server(config, host, log_level="warning")
    except BaseException:
        sock.close()
        raise
    handle = ServerHandle(server, sock)
    handle._start(timeout)
    return handle


def bind_socket(host: str, port: int) -> socket.socket:
    """Return a listening TCP socket on ``host:port`` (0 picks a free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # asyncio turns Nagle's algorithm off only on sockets whose proto says TCP;
    # with it on, each answer written in two parts waits for a delayed ACK (~40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.set_inheritable(True)
    except BaseException:
        sock.close()
        raise
    return sock


def make_server(config: ServerConfig, host: str, *, log_level: str) -> uvicorn.Server:
    """Return a uvicorn server for the fake server; run it on a bound socket."""
    app = create_app(config)
    return _Server(uvicorn_config(app, host, log_level=log_level), app)


def uvicorn_config(app: _FakeServerApp, host: str, *, log_level: str) -> uvicorn.Config:
    """Return uvicorn's configuration for serving ``app``."""
    return uvicorn.Config(
        app,
        host=host,
        log_level=log_level,
        access_log=False,  # the app logs one line per request itself
        lifespan="off",
        timeout_graceful_shutdown=_GRACEFUL_SECONDS,
        # A fake has no proxy in front; never trust forwarded headers.
        proxy_headers=False,
    )


@final
class _Server(uvicorn.Server):
    """uvicorn's server, ending the app's waits and delays before a graceful stop.

    uvicorn gives requests in flight a grace period, then cancels them, which
    answers them with a 500; a pending ``/_fake/wait`` would always get one.
    """

    def __init__(self, config: uvicorn.Config, app: _FakeServerApp) -> None:
        super().__init__(config)
        self._app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await self._app.stop_waiting()
        await super().shutdown(sockets)


@final
class ServerHandle:
    """A fake server running on a background thread; stop it with :meth:`stop`.

    Use it as a context manager to stop it on exit. Thread-safe.
    """

    def __init__(self, server: uvicorn.Server, sock: socket.socket) -> None:
        self._server = server
        self._socket = sock
        self._thread = threading.Thread(
            target=self._run, name="fake-audit-server", daemon=True
        )
        # Set by the server thread if uvicorn fails; read after it ends.
        self._failure: BaseException | None = None
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        self._url = f"http://{shown}:{port}"

    def __repr__(self) -> str:
        return f"<ServerHandle {self._url} running={self.running}>"

    @property
    def url(self) -> str:
        """The server's base URL, like ``http://127.0.0.1:54321``."""
        return self._url

    @property
    def running(self) -> bool:
        """Whether the server thread is still serving."""
        return self._thread.is_alive()

    def client(
        self, *, namespace: str | None = None, api_key: str = "test-key"
    ) -> Client:
        """Return a :class:`~fake_server.Client` for this server; close it after use."""
        return Client(self._url, namespace=namespace, api_key=api_key)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server and wait for its thread, at most ``timeout`` seconds.

        Requests in flight get about a second to finish. Calling it again does
        nothing.

        Raises:
            RuntimeError: The thread did not end within ``timeout``.
        """
        self._server.should_exit = True
        self._thread.join(timeout)
        self._socket.close()
        if self._thread.is_alive():
            raise RuntimeError(f"The fake server did not stop within {timeout} s.")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _start(self, timeout: float) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        # uvicorn offers no callback for "started"; a short join both waits and
        # notices a thread that died.
        while not self._server.started:
            if not self._thread.is_alive():
                self._socket.close()
                raise RuntimeError(
                    f"The fake server failed to start: {self._failure!r}."
                ) from self._failure
            if time.monotonic() > deadline:
                self.stop(timeout=5.0)
                raise RuntimeError(f"The fake server did not start within {timeout} s.")
            self._thread.join(0.005)

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self._socket])
        except BaseException as exc:  # reported by _start, or lost at shutdown
            self._failure = exc
        if not self._server.started and self._failure is None:
            self._failure = RuntimeError("uvicorn exited during start-up")
