"""WSGI middleware: one audit event per HTTP request, for Flask, Django and others.

Import it as ``from auditkit.wsgi import AuditMiddleware``. It needs no web framework;
it speaks the WSGI interface (PEP 3333) directly.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeAlias, final

from ._events import Actor, Event, RequestInfo
from ._exceptions import ConfigurationError
from ._middleware import (
    RequestAudit,
    TrustedProxies,
    check_hook,
    client_ip,
    is_header_name,
    parse_trusted_proxies,
    report_hook_error,
    request_info,
    take_hook_value,
)
from ._recorder import Recorder

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["ActorHook", "AuditMiddleware", "TenantHook"]

logger = logging.getLogger(__name__)

#: Resolves the actor from the WSGI environ.
ActorHook: TypeAlias = "Callable[[WSGIEnvironment], Actor | None]"
#: Resolves the tenant id from the WSGI environ.
TenantHook: TypeAlias = "Callable[[WSGIEnvironment], str | None]"

_ExcInfo: TypeAlias = (
    "tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None]"
)


@final
class AuditMiddleware:
    """Give every HTTP request a scope with its own audit event.

    Before the application runs, the middleware opens an :func:`auditkit.scope`
    bound to a fresh :class:`~auditkit.Event` carrying the request's
    :class:`~auditkit.RequestInfo`, and lets the ``actor`` and ``tenant`` hooks fill
    those fields. The view reaches the event through :func:`auditkit.current_event`,
    sets what it knows (whatever it sets wins), and records it; recording returns
    ``DEFERRED``. When the response body has been iterated to its end or closed,
    the middleware fills ``result`` from the status unless the view set it (below
    400 a success, 401 and 403 denied, anything else an error; an exception is an
    error with code 500) and enqueues the event once. An event with no action is
    never sent.

    The response is never altered: the body is passed through chunk by chunk, and
    an exception from the application is re-raised unchanged after its event is
    finished. A client that disconnects does not cancel the scope, so it can't
    erase the record of what it did.

    The application and the body's iteration run in a copy of the caller's
    context, so a streaming body sees the request's scope too, and nothing of the
    request is left in the worker thread's context afterwards.

    Example::

        from flask import Flask
        import auditkit
        from auditkit.wsgi import AuditMiddleware

        app = Flask(__name__)

        @app.delete("/documents/<doc_id>")
        def delete_document(doc_id):
            event = auditkit.current_event()
            event.action = "document.delete"
            event.target = auditkit.Target("document", doc_id)
            recorder.record(event)   # DEFERRED: sent when the response is done
            ...

        app.wsgi_app = AuditMiddleware(app.wsgi_app, recorder, actor=actor_from_environ)

    For Django, wrap the application in ``wsgi.py``:
    ``application = AuditMiddleware(get_wsgi_application(), recorder)``.

    Args:
        app: The WSGI application to wrap.
        recorder: Where the request events go.
        actor: Called with the WSGI environ before the application; returns the
            :class:`~auditkit.Actor` or None. If it raises, the error is logged on
            the ``auditkit.wsgi`` logger and the actor is left unset; the request
            goes on.
        tenant: Like ``actor``, for the tenant id (a ``str``).
        auto_record: Record the request's event when the response is done if it
            has an action and the view did not record it, so a view only has to
            set an action.
        trusted_proxies: Addresses and CIDR networks (text or :mod:`ipaddress`
            objects) of proxies whose ``Forwarded`` and ``X-Forwarded-For``
            headers are believed. Empty by default: the client address is
            ``REMOTE_ADDR`` and those headers, which any client can send, are
            ignored.
        request_id_header: The header holding the request id; a request without
            one gets a fresh UUIDv7.

    Raises:
        ConfigurationError: An argument has a value the middleware can't use,
            including a coroutine function as a hook.

    Note:
        The event is finished when the server has iterated the body to its end
        or closed it, as PEP 3333 requires every server to do. The body is
        wrapped for that, which hides ``wsgi.file_wrapper`` objects from the
        server: files are then sent by iteration rather than by ``sendfile``.
    """

    def __init__(
        self,
        app: WSGIApplication,
        recorder: Recorder,
        *,
        actor: ActorHook | None = None,
        tenant: TenantHook | None = None,
        auto_record: bool = False,
        trusted_proxies: TrustedProxies = (),
        request_id_header: str = "x-request-id",
    ) -> None:
        if not isinstance(recorder, Recorder):
            raise ConfigurationError(
                f"recorder must be an auditkit.Recorder, got {recorder!r:.60}."
            )
        for name, hook in (("actor", actor), ("tenant", tenant)):
            check_hook(name, hook)
            if inspect.iscoroutinefunction(hook):
                raise ConfigurationError(
                    f"{name} must be a plain function under WSGI, got the coroutine "
                    f"function {hook!r:.60}; use auditkit.asgi for async hooks."
                )
        if not is_header_name(request_id_header):
            raise ConfigurationError(
                f"request_id_header must be a header name, got {request_id_header!r}."
            )
        self.app = app
        self.recorder = recorder
        self._actor = actor
        self._tenant = tenant
        self._auto_record = bool(auto_record)
        self._trusted = parse_trusted_proxies(trusted_proxies)
        header = request_id_header.strip().upper().replace("-", "_")
        self._request_id_key = "HTTP_" + header

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        """Serve one request; audit it until its body is done."""
        context = contextvars.copy_context()
        return context.run(self._serve, context, environ, start_response)

    def _serve(
        self,
        context: contextvars.Context,
        environ: WSGIEnvironment,
        start_response: StartResponse,
    ) -> Iterable[bytes]:
        event = Event(request=self._request_info(environ))
        audit = RequestAudit(self.recorder, event, auto_record=self._auto_record)
        watched = _WatchedBody(
            audit,
            context,
            start_response,
            lambda failed: self._finish(audit, failed=failed),
        )
        try:
            self._apply_hooks(event, environ)
            body = self.app(environ, watched.start_response)
        except BaseException:
            self._finish(audit, failed=True)
            raise
        # Limitation: wrapping the body hides a wsgi.file_wrapper object from the
        # server, so files are sent by iteration rather than by sendfile.
        watched.body = body
        return watched

    def _apply_hooks(self, event: Event, environ: WSGIEnvironment) -> None:
        actor = self._call_hook("actor", self._actor, environ)
        if actor is not None:
            event.actor = take_hook_value("actor", actor, Actor, logger)
        tenant = self._call_hook("tenant", self._tenant, environ)
        if tenant is not None:
            event.tenant_id = take_hook_value("tenant", tenant, str, logger)

    def _call_hook(
        self,
        name: str,
        hook: Callable[[WSGIEnvironment], Any] | None,
        environ: WSGIEnvironment,
    ) -> Any:
        if hook is None:
            return None
        try:
            value = hook(environ)
        except Exception as exc:
            report_hook_error(name, exc, logger)
            return None
        if inspect.isawaitable(value):
            # A plain function that returned a coroutine: it can't be awaited here.
            if inspect.iscoroutine(value):
                value.close()
            logger.warning(
                "auditkit: the %s hook returned an awaitable, which WSGI can't wait "
                "for; the event's field was left unset",
                name,
            )
            return None
        return value

    def _finish(self, audit: RequestAudit, *, failed: bool) -> None:
        finished = audit.finish(failed=failed)
        if finished is None:
            return
        deferred, extra = finished
        try:
            for recorder, event, stamp in deferred:
                recorder._enqueue_deferred(event, stamp)
            if extra is not None:
                self.recorder.record(extra)
        except Exception:
            # Recorders report conditions as outcomes; one that raises anyway must
            # not change the application's response or exception.
            logger.exception(
                "auditkit: the recorder raised while enqueueing a request's event"
            )

    def _request_info(self, environ: WSGIEnvironment) -> RequestInfo:
        peer = environ.get("REMOTE_ADDR") or None
        ip = peer
        if self._trusted:
            ip = client_ip(
                peer,
                self._trusted,
                environ.get("HTTP_FORWARDED"),
                environ.get("HTTP_X_FORWARDED_FOR"),
            )
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        return request_info(
            method=environ.get("REQUEST_METHOD", ""),
            path=_decode_native(path),
            request_id=environ.get(self._request_id_key),
            ip=ip,
            user_agent=environ.get("HTTP_USER_AGENT"),
        )


@final
class _WatchedBody:
    """The application's response, passed through; finishes the event when it ends.

    It ends when iteration is exhausted or fails, when the server closes it, or
    when as many bytes as ``Content-Length`` announced have been produced,
    whichever comes first. The last rule finishes a complete response even when
    a client (a test client, typically) stops reading after the status and never
    closes it. Every step runs in the request's context.
    """

    __slots__ = (
        "_audit",
        "_context",
        "_expected",
        "_iterator",
        "_on_end",
        "_produced",
        "_start_response",
        "body",
    )

    def __init__(
        self,
        audit: RequestAudit,
        context: contextvars.Context,
        start_response: StartResponse,
        on_end: Callable[[bool], None],
    ) -> None:
        self._audit = audit
        self._context = context
        self._start_response = start_response
        self._on_end = on_end
        #: The application's body, set once the application returned it.
        self.body: Iterable[bytes] = ()
        self._iterator: Iterator[bytes] | None = None
        # The announced Content-Length, and the body bytes produced so far.
        self._expected: int | None = None
        self._produced = 0

    def start_response(
        self,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: _ExcInfo | None = None,
    ) -> Callable[[bytes], object]:
        """The ``start_response`` the application gets: notes status and length."""
        self._audit.status = _status_code(status)
        # Limitation: bytes sent through the legacy write() callable are not
        # counted, so such a response is finished only when its body ends or closes.
        self._expected = _content_length(headers)
        return self._start_response(status, headers, exc_info)

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        try:
            chunk = self._context.run(self._next_chunk)
        except StopIteration:
            self._end(failed=False)
            raise
        except BaseException:
            self._end(failed=True)
            raise
        self._produced += len(chunk)
        if self._expected is not None and self._produced >= self._expected:
            self._end(failed=False)
        return chunk

    def close(self) -> None:
        """Close the application's body, then finish the event if not done yet."""
        close = getattr(self.body, "close", None)
        try:
            if close is not None:
                self._context.run(close)
        except BaseException:
            self._end(failed=True)
            raise
        self._end(failed=False)

    def _next_chunk(self) -> bytes:
        if self._iterator is None:
            self._iterator = iter(self.body)
        return next(self._iterator)

    def _end(self, *, failed: bool) -> None:
        self._context.run(self._on_end, failed)


def _status_code(status: str) -> int | None:
    try:
        return int(status.split(None, 1)[0])
    except (IndexError, ValueError):
        return None


def _content_length(headers: list[tuple[str, str]]) -> int | None:
    for name, value in headers:
        if name.lower() == "content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _decode_native(text: str) -> str:
    """Turn a WSGI native string (bytes as Latin-1) back into the UTF-8 text sent."""
    try:
        return text.encode("latin-1").decode("utf-8", "replace")
    except UnicodeEncodeError:
        # Some servers already decode the path; keep it as it is.
        return text
