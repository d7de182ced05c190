"""A scripted HTTP/1.1 server on a real socket, for failures respx can't fake.

Each request gets the next scripted action: an answer, a dropped connection, or
silence until the server stops. It binds 127.0.0.1 on a free port, so it is safe
under pytest-xdist.
"""

from __future__ import annotations

import dataclasses
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Action", "ScriptedServer", "scripted_server"]


@dataclasses.dataclass(frozen=True)
class Action:
    """What the server does with one request.

    Attributes:
        kind: ``"answer"``, ``"drop_before_body"``, ``"drop_after_body"``,
            ``"hang"`` (read the request, then say nothing until the server stops)
            or ``"trickle"`` (answer, with the body one byte every 0.1 s).
        status: The status of an answer.
        body: The body of an answer.
    """

    kind: str
    status: int = 200
    body: bytes = b""


class ScriptedServer:
    """The running server: its URL, and what it received."""

    def __init__(
        self, actions: list[Action], tls: ssl.SSLContext | None = None
    ) -> None:
        self._actions = list(actions)
        self._tls = tls
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self._threads: list[threading.Thread] = []
        #: Bodies of the requests read in full, in order; guarded by _lock.
        self.bodies: list[bytes] = []
        #: Connections accepted so far; guarded by _lock.
        self.connections = 0
        host, port = self._listener.getsockname()[:2]
        #: The base URL to give the transport.
        self.url = f"{'https' if tls else 'http'}://{host}:{port}"

    def start(self) -> None:
        thread = threading.Thread(target=self._accept_loop, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        # The accept loop first: once it has ended, no thread joins the list.
        self._threads[0].join(timeout=10)
        for thread in self._threads[1:]:
            thread.join(timeout=10)
        self._listener.close()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            with self._lock:
                self.connections += 1
            thread = threading.Thread(
                target=self._serve, args=(connection,), daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _next_action(self) -> Action:
        with self._lock:
            return self._actions.pop(0) if self._actions else Action("answer")

    def _serve(self, connection: socket.socket) -> None:
        if self._tls is not None:
            connection.settimeout(10)
            try:
                connection = self._tls.wrap_socket(connection, server_side=True)
            except (ssl.SSLError, OSError):
                # The client refused the certificate, or offered none.
                connection.close()
                return
        connection.settimeout(0.05)
        reader = _Reader(connection, self._stop)
        with connection:
            while not self._stop.is_set():
                head = reader.read_until(b"\r\n\r\n")
                if head is None:
                    return
                action = self._next_action()
                if action.kind == "drop_before_body":
                    return
                body = reader.read_exactly(_content_length(head))
                if body is None:
                    return
                with self._lock:
                    self.bodies.append(body)
                if action.kind == "drop_after_body":
                    return
                if action.kind == "hang":
                    self._stop.wait()
                    return
                if action.kind == "trickle":
                    self._trickle(connection, action)
                    return
                connection.sendall(_answer(action))

    def _trickle(self, connection: socket.socket, action: Action) -> None:
        answer = _answer(action)
        head = len(answer) - len(action.body)
        try:
            connection.sendall(answer[:head])
            for offset in range(head, len(answer)):
                if self._stop.wait(0.1):
                    return
                connection.sendall(answer[offset : offset + 1])
        except OSError:
            return


class _Reader:
    def __init__(self, connection: socket.socket, stop: threading.Event) -> None:
        self._connection = connection
        self._stop = stop
        self._buffer = b""

    def read_until(self, marker: bytes) -> bytes | None:
        while marker not in self._buffer:
            if not self._receive():
                return None
        head, _, self._buffer = self._buffer.partition(marker)
        return head

    def read_exactly(self, size: int) -> bytes | None:
        while len(self._buffer) < size:
            if not self._receive():
                return None
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def _receive(self) -> bool:
        while not self._stop.is_set():
            try:
                chunk = self._connection.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return False
            if not chunk:
                return False
            self._buffer += chunk
            return True
        return False


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


def _answer(action: Action) -> bytes:
    return (
        f"HTTP/1.1 {action.status} Scripted\r\n"
        f"Content-Type: application/json\r\n"
        f"Content-Length: {len(action.body)}\r\n\r\n"
    ).encode("ascii") + action.body


@contextmanager
def scripted_server(
    actions: list[Action], tls: ssl.SSLContext | None = None
) -> Iterator[ScriptedServer]:
    """Run a :class:`ScriptedServer` for the ``with`` block, then stop it."""
    server = ScriptedServer(actions, tls)
    server.start()
    try:
        yield server
    finally:
        server.stop()
