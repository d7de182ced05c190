"""ASGI middleware: one audit event per HTTP request, for Starlette, FastAPI and others.

Import it as ``from auditkit.asgi import AuditMiddleware``. It needs no web framework;
it speaks the ASGI 3 interface directly.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any, Final, TypeAlias, final

from ._events import Actor, Event, RequestInfo
from ._exceptions import ConfigurationError
from ._middleware import (
    Deferred,
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

__all__ = [
    "ASGIApp",
    "ASGIMessage",
    "ASGIScope",
    "ActorHook",
    "AuditMiddleware",
    "TenantHook",
]

logger = logging.getLogger(__name__)

#: An ASGI connection scope.
ASGIScope: TypeAlias = MutableMapping[str, Any]
#: An ASGI message.
ASGIMessage: TypeAlias = MutableMapping[str, Any]
#: An ASGI 3 application.
ASGIApp: TypeAlias = Callable[
    [
        ASGIScope,
        Callable[[], Awaitable[ASGIMessage]],
        Callable[[ASGIMessage], Awaitable[None]],
    ],
    Awaitable[None],
]
#: Resolves the actor from the ASGI scope, sync or async.
ActorHook: TypeAlias = Callable[[ASGIScope], Actor | Awaitable[Actor | None] | None]
#: Resolves the tenant id from the ASGI scope, sync or async.
TenantHook: TypeAlias = Callable[[ASGIScope], str | Awaitable[str | None] | None]

_USER_AGENT: Final = b"user-agent"
_FORWARDED: Final = b"forwarded"
_X_FORWARDED_FOR: Final = b"x-forwarded-for"
_LIST_HEADERS: Final = (_FORWARDED, _X_FORWARDED_FOR)


@final
class AuditMiddleware:
    """Give every HTTP request a scope with its own audit event.

    Before the handler runs, the middleware opens an :func:`auditkit.scope` bound to
    a fresh :class:`~auditkit.Event` carrying the request's
    :class:`~auditkit.RequestInfo`, and lets the ``actor`` and ``tenant`` hooks fill
    those fields. The handler reaches the event through
    :func:`auditkit.current_event`, sets what it knows (whatever it sets wins), and
    records it; recording returns ``DEFERRED``. When the last body chunk of the
    response has been sent, the middleware fills ``result`` from the status unless
    the handler set it (below 400 a success, 401 and 403 denied, anything else an
    error; an exception is an error with code 500) and enqueues the event once. An
    event with no action is never sent.

    The response is never altered, and an exception from the application is
    re-raised unchanged after its event is finished. A client that disconnects does
    not cancel the scope, so it can't erase the record of what it did; even if the
    server cancels the request's task, an event already recorded is enqueued. Only
    ``http`` scopes are audited: ``lifespan`` and ``websocket`` pass through.

    Example::

        from starlette.applications import Starlette
        import auditkit
        from auditkit.asgi import AuditMiddleware

        async def delete_document(request):
            event = auditkit.current_event()
            event.action = "document.delete"
            event.target = auditkit.Target("document", request.path_params["id"])
            recorder.record(event)   # DEFERRED: sent when the response is done
            ...

        app = Starlette(routes=[...])
        app.add_middleware(AuditMiddleware, recorder=recorder, actor=actor_from_scope)

    Args:
        app: The ASGI application to wrap.
        recorder: Where the request events go.
        actor: Called with the ASGI scope before the handler; returns the
            :class:`~auditkit.Actor` or None. May be a coroutine function. If it
            raises, the error is logged on the ``auditkit.asgi`` logger and the
            actor is left unset; the request goes on.
        tenant: Like ``actor``, for the tenant id (a ``str``).
        auto_record: Record the request's event when the response is done if it
            has an action and the handler did not record it, so a handler only has
            to set an action.
        trusted_proxies: Addresses and CIDR networks (text or :mod:`ipaddress`
            objects) of proxies whose ``Forwarded`` and ``X-Forwarded-For``
            headers are believed. Empty by default: the client address is the
            socket's peer and those headers, which any client can send, are ignored.
        request_id_header: The header holding the request id; a request without
            one gets a fresh UUIDv7.

    Raises:
        ConfigurationError: An argument has a value the middleware can't use.

    Note:
        The request is audited when its last body chunk is sent, so work the
        application does after that (Starlette background tasks, for example)
        neither changes the event nor can its failure turn the result into an
        error. The event stays the current event until the application returns;
        recording it after the response is done enqueues it at once.
    """

    def __init__(
        self,
        app: ASGIApp,
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
        check_hook("actor", actor)
        check_hook("tenant", tenant)
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
        self._request_id_header = request_id_header.strip().lower().encode("latin-1")

    async def __call__(
        self,
        scope: ASGIScope,
        receive: Callable[[], Awaitable[ASGIMessage]],
        send: Callable[[ASGIMessage], Awaitable[None]],
    ) -> None:
        """Serve one ASGI connection; audit it if it is an HTTP request."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        audit = RequestAudit(
            self.recorder,
            Event(request=self._request_info(scope)),
            auto_record=self._auto_record,
        )
        try:
            await self._serve(audit, scope, receive, send)
        finally:
            audit.restore_context()

    async def _serve(
        self,
        audit: RequestAudit,
        scope: ASGIScope,
        receive: Callable[[], Awaitable[ASGIMessage]],
        send: Callable[[ASGIMessage], Awaitable[None]],
    ) -> None:
        async def send_and_watch(message: ASGIMessage) -> None:
            if message["type"] == "http.response.start":
                audit.status = message["status"]
            await send(message)
            if _is_last_message(message):
                await self._finish(audit, failed=False)

        try:
            await self._apply_hooks(audit.scope.event, scope)
            await self.app(scope, receive, send_and_watch)
        except BaseException:
            await self._finish(audit, failed=True)
            raise
        # An application may return without sending the last chunk, for example
        # when a disconnect stopped its streaming response: the request ends here.
        await self._finish(audit, failed=False)

    async def _apply_hooks(self, event: Event, scope: ASGIScope) -> None:
        actor = await self._call_hook("actor", self._actor, scope)
        if actor is not None:
            event.actor = take_hook_value("actor", actor, Actor, logger)
        tenant = await self._call_hook("tenant", self._tenant, scope)
        if tenant is not None:
            event.tenant_id = take_hook_value("tenant", tenant, str, logger)

    async def _call_hook(
        self, name: str, hook: Callable[[ASGIScope], Any] | None, scope: ASGIScope
    ) -> Any:
        if hook is None:
            return None
        try:
            value = hook(scope)
            if inspect.isawaitable(value):
                value = await value
        except Exception as exc:
            report_hook_error(name, exc, logger)
            return None
        return value

    async def _finish(self, audit: RequestAudit, *, failed: bool) -> None:
        finished = audit.finish(failed=failed)
        if finished is None:
            return
        deferred, extra = finished
        try:
            await self._enqueue(deferred, extra)
        except Exception:
            # Recorders report conditions as outcomes; one that raises anyway must
            # not change the application's response or exception.
            logger.exception(
                "auditkit: the recorder raised while enqueueing a request's event"
            )

    async def _enqueue(self, deferred: Deferred, extra: Event | None) -> None:
        pending = list(deferred)
        while pending:
            recorder, event, stamp = pending.pop(0)
            try:
                await recorder._aenqueue_deferred(event, stamp)
            except BaseException:
                # Cancelled while this event waited for buffer space (the recorder
                # reports it as dropped). The others were accepted as well: enqueue
                # them without waiting, then let the cancellation go on.
                for other, other_event, other_stamp in pending:
                    other._enqueue_deferred(other_event, other_stamp)
                if extra is not None:
                    self.recorder.record(extra)
                raise
        if extra is not None:
            try:
                await self.recorder.arecord(extra)
            except BaseException:
                # arecord() enqueues nothing when cancelled; record() never waits.
                self.recorder.record(extra)
                raise

    def _request_info(self, scope: ASGIScope) -> RequestInfo:
        headers = _collect_headers(
            scope.get("headers") or (),
            (self._request_id_header, _USER_AGENT, _FORWARDED, _X_FORWARDED_FOR),
        )
        client = scope.get("client")
        peer = str(client[0]) if client else None
        ip = peer
        if self._trusted:
            ip = client_ip(
                peer,
                self._trusted,
                headers.get(_FORWARDED),
                headers.get(_X_FORWARDED_FOR),
            )
        return request_info(
            method=str(scope.get("method", "")),
            path=str(scope.get("path", "")),
            request_id=headers.get(self._request_id_header),
            ip=ip,
            user_agent=headers.get(_USER_AGENT),
        )


def _is_last_message(message: ASGIMessage) -> bool:
    kind = message["type"]
    if kind == "http.response.body":
        return not message.get("more_body", False)
    return bool(kind == "http.response.pathsend")


def _collect_headers(
    raw: Iterable[tuple[bytes, bytes]], wanted: tuple[bytes, ...]
) -> dict[bytes, str]:
    """The wanted headers. Repeated forwarding headers are joined with commas, as
    HTTP allows for lists; of any other header the first occurrence is kept."""
    found: dict[bytes, str] = {}
    for name, value in raw:
        name = name.lower()
        if name not in wanted:
            continue
        text = value.decode("latin-1")
        if name not in found:
            found[name] = text
        elif name in _LIST_HEADERS:
            found[name] = f"{found[name]}, {text}"
    return found
