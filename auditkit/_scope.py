"""Scopes: the request's event and its cancellation, carried by ``contextvars``."""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Protocol, final

from ._events import Event
from ._exceptions import ConfigurationError

if TYPE_CHECKING:
    from ._outcome import Outcome

__all__ = ["Scope", "current_event", "current_scope", "scope"]

_current: Final[contextvars.ContextVar[Scope | None]] = contextvars.ContextVar(
    "auditkit_scope", default=None
)


class _DeferTarget(Protocol):
    """A recorder that can take back an event it deferred to a scope."""

    def _enqueue_deferred(self, event: Event, stamp: tuple[str, str]) -> Outcome: ...

    async def _aenqueue_deferred(
        self, event: Event, stamp: tuple[str, str]
    ) -> Outcome: ...


@final
class Scope:
    """An open scope: the event it is bound to, its deadline and its cancellation.

    Made by :func:`scope`; code inside it reaches it through :func:`current_scope`
    and its event through :func:`current_event`. A scope is cancelled when
    :meth:`cancel` is called on it or on an enclosing scope, or when its deadline (or
    an enclosing one) passes. Recording inside a cancelled scope returns
    :attr:`Outcome.CANCELLED` and enqueues nothing.

    Thread-safe: another thread may cancel a scope while its owner is recording.
    """

    __slots__ = (
        "_callbacks",
        "_cancelled",
        "_deadline",
        "_deferred",
        "_lock",
        "_open",
        "_parent",
        "event",
    )

    def __init__(
        self, event: Event, *, deadline: float | None, parent: Scope | None
    ) -> None:
        #: The event bound to this scope; recording it is deferred to the scope's end.
        self.event = event
        # Fixed at creation: the earliest of our own and every enclosing deadline,
        # on the time.monotonic() clock.
        self._deadline = _earliest(deadline, parent.deadline if parent else None)
        self._parent = parent
        # Written once, to True, by cancel(); read without the lock.
        self._cancelled = False
        # True from creation to exit; written by the owner only.
        self._open = True
        # Guards _callbacks and _deferred, which other threads may touch.
        self._lock = threading.Lock()
        # Called once, with no arguments, when this scope or an ancestor is cancelled.
        self._callbacks: list[Callable[[], None]] = []
        # (recorder, event, stamp) deferred to this scope, enqueued once at exit.
        self._deferred: list[tuple[_DeferTarget, Event, tuple[str, str]]] = []

    @property
    def deadline(self) -> float | None:
        """The ``time.monotonic()`` value at which the scope is cancelled, if any."""
        return self._deadline

    @property
    def cancelled(self) -> bool:
        """Whether the scope, or one enclosing it, was cancelled or ran out of time."""
        node: Scope | None = self
        while node is not None:
            if node._cancelled:
                return True
            node = node._parent
        return self._deadline is not None and time.monotonic() >= self._deadline

    def cancel(self) -> None:
        """Cancel this scope and every scope opened inside it.

        Later records in the scope return :attr:`Outcome.CANCELLED`, and a record
        waiting for buffer space gives up at once. An event already accepted as
        :attr:`Outcome.DEFERRED` is still enqueued when the scope closes: a recorded
        action is not taken back. Idempotent and thread-safe.
        """
        with self._lock:
            if self._cancelled:
                return
            self._cancelled = True
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def __repr__(self) -> str:
        state = "cancelled" if self._cancelled else "open" if self._open else "closed"
        return f"<Scope {state} action={self.event.action!r}>"

    def _on_cancel(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` when this scope or an enclosing one is cancelled.

        Returns a function that unregisters it. If a scope is already cancelled the
        callback runs at once. Used by waiters that must wake on cancellation.
        """
        registered: list[Scope] = []
        node: Scope | None = self
        while node is not None:
            with node._lock:
                fired = node._cancelled
                if not fired:
                    node._callbacks.append(callback)
                    registered.append(node)
            if fired:
                _remove_callback(registered, callback)
                callback()
                return _noop
            node = node._parent

        def unregister() -> None:
            _remove_callback(registered, callback)

        return unregister

    def _find_binding(self, event: Event) -> Scope | None:
        """Return the outermost open scope, this one or an enclosing one, bound to
        ``event``.

        The outermost one owns the event: when a handler binds the request's event
        to an inner scope too (to give part of its work a deadline), the event must
        still wait for the request's scope, where the result is filled in.
        """
        owner = None
        node: Scope | None = self
        while node is not None:
            if node.event is event and node._open:
                owner = node
            node = node._parent
        return owner

    def _defer(
        self, recorder: _DeferTarget, event: Event, stamp: tuple[str, str]
    ) -> None:
        with self._lock:
            for known, deferred_event, _ in self._deferred:
                if known is recorder and deferred_event is event:
                    return  # recorded twice: still enqueued once
            self._deferred.append((recorder, event, stamp))

    def _take_deferred(self) -> list[tuple[_DeferTarget, Event, tuple[str, str]]]:
        with self._lock:
            self._open = False
            deferred, self._deferred = self._deferred, []
        return deferred


def scope(event: Event | None = None, *, timeout: float | None = None) -> _ScopeContext:
    """Open a scope: bind an event to the current context, with optional deadline.

    Use it as ``with auditkit.scope() as s:`` or ``async with auditkit.scope() as s:``.
    Inside, :func:`current_event` returns the scope's event; recording that event
    returns :attr:`Outcome.DEFERRED` and the event is enqueued, once, when the scope
    closes, as it is then. The middleware opens one scope per request; a background
    job can open its own.

    Scopes nest: an inner scope gets its own event (a fresh one unless given), and it
    is cancelled with its enclosing scope. An event bound to several open scopes is
    deferred to the outermost of them. Async tasks created inside a scope see it;
    a new thread sees none unless it runs in a copy of the context
    (``contextvars.copy_context().run``), as with any context variable.

    Args:
        event: The event to bind; a new empty :class:`Event` by default.
        timeout: Seconds from now after which the scope counts as cancelled.

    Raises:
        ConfigurationError: ``timeout`` is negative or not a number.
    """
    if timeout is not None and (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not timeout >= 0
    ):
        raise ConfigurationError(
            f"timeout must be a non-negative number of seconds, got {timeout!r}."
        )
    return _ScopeContext(event, timeout)


def current_scope() -> Scope | None:
    """Return the innermost open scope of the current context, or ``None``."""
    return _current.get()


def current_event() -> Event:
    """Return the event of the innermost open scope.

    Outside any scope this returns a new, unbound :class:`Event`: recording it
    enqueues it at once rather than deferring it.
    """
    current = _current.get()
    return current.event if current is not None else Event()


@final
class _ScopeContext:
    """The context manager :func:`scope` returns; usable once."""

    __slots__ = ("_event", "_scope", "_timeout", "_token")

    def __init__(self, event: Event | None, timeout: float | None) -> None:
        self._event = event
        self._timeout = timeout
        self._scope: Scope | None = None
        self._token: contextvars.Token[Scope | None] | None = None

    def __enter__(self) -> Scope:
        return self._open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for recorder, event, stamp in self._close():
            recorder._enqueue_deferred(event, stamp)

    async def __aenter__(self) -> Scope:
        return self._open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for recorder, event, stamp in self._close():
            await recorder._aenqueue_deferred(event, stamp)

    def _open(self) -> Scope:
        if self._scope is not None:
            raise RuntimeError("A scope can be entered only once; call scope() again.")
        parent = _current.get()
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        self._scope = Scope(
            self._event if self._event is not None else Event(),
            deadline=deadline,
            parent=parent,
        )
        self._token = _current.set(self._scope)
        return self._scope

    def _close(self) -> list[tuple[_DeferTarget, Event, tuple[str, str]]]:
        assert self._scope is not None
        assert self._token is not None
        try:
            _current.reset(self._token)
        except ValueError:
            # Exited in another context than it was entered in (an async generator
            # finalised elsewhere): restore the enclosing scope by hand.
            _current.set(self._scope._parent)
        return self._scope._take_deferred()


def _earliest(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def _remove_callback(scopes: list[Scope], callback: Callable[[], None]) -> None:
    for node in scopes:
        with node._lock:
            try:
                node._callbacks.remove(callback)
            except ValueError:
                pass


def _noop(*_: Any) -> None:
    return None
