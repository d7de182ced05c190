"""What the ASGI and WSGI middleware share: request info, client IP, results, hooks.

Nothing here knows a server interface; :mod:`auditkit.asgi` and :mod:`auditkit.wsgi`
turn their request into plain values and call these helpers.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Iterable, Sequence
from typing import Any, Final, TypeAlias, final

from ._events import Event, RequestInfo, Result
from ._exceptions import ConfigurationError
from ._ids import new_event_id
from ._recorder import Recorder
from ._scope import Scope, _DeferTarget, _ScopeContext, scope
from ._wire import FIELD_LIMITS

__all__ = [
    "Deferred",
    "ProxyNetwork",
    "RequestAudit",
    "TrustedProxies",
    "check_hook",
    "client_ip",
    "is_header_name",
    "parse_trusted_proxies",
    "report_hook_error",
    "request_info",
    "result_from_status",
    "take_hook_value",
]

#: An address or network of a proxy whose forwarding headers are believed.
ProxyNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
#: What ``trusted_proxies`` accepts: addresses and CIDR networks, as text or objects.
TrustedProxies: TypeAlias = Iterable[
    str
    | ipaddress.IPv4Address
    | ipaddress.IPv6Address
    | ipaddress.IPv4Network
    | ipaddress.IPv6Network
]

#: Events deferred to a scope, with the recorder that deferred each and its stamp.
Deferred: TypeAlias = list[tuple[_DeferTarget, Event, tuple[str, str]]]

# A `for=` parameter inside one element of a Forwarded header (RFC 7239 section 4):
# a token or a quoted string, which may hold an escaped quote.
_FORWARDED_FOR: Final = re.compile(
    r'(?:^|;)\s*for\s*=\s*("(?:[^"\\]|\\.)*"|[^;,\s]*)', re.IGNORECASE
)


def parse_trusted_proxies(value: TrustedProxies) -> tuple[ProxyNetwork, ...]:
    """Turn the ``trusted_proxies`` option into networks, checking every entry.

    Raises:
        ConfigurationError: ``value`` is a single string, or an entry is not an IP
            address or network.
    """
    if isinstance(value, str | bytes):
        raise ConfigurationError(
            f"trusted_proxies must be a list of addresses or networks, got the "
            f"string {value!r}; wrap it in a list: [{value!r}]."
        )
    networks = []
    for entry in value:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except (TypeError, ValueError):
            raise ConfigurationError(
                f"trusted_proxies entries must be IP addresses or CIDR networks, "
                f"got {entry!r}."
            ) from None
    return tuple(networks)


def is_header_name(value: object) -> bool:
    """Whether ``value`` can name an HTTP header: non-blank printable ASCII."""
    return (
        isinstance(value, str)
        and value.strip() != ""
        and value.isascii()
        and value.strip().isprintable()
        and ":" not in value
    )


def check_hook(name: str, hook: object) -> None:
    """Refuse a hook that is neither ``None`` nor callable.

    Raises:
        ConfigurationError: ``hook`` can't be called.
    """
    if hook is not None and not callable(hook):
        raise ConfigurationError(
            f"{name} must be a callable or None, got {hook!r:.60}."
        )


def take_hook_value(
    name: str, value: object, expected: type, logger: logging.Logger
) -> Any:
    """Return what a hook returned if it has the type its field needs, else None.

    A hook returning the wrong type would make the whole event invalid when it is
    recorded; leaving the field unset keeps the rest of the audit trail.
    """
    if value is None or isinstance(value, expected):
        return value
    logger.warning(
        "auditkit: the %s hook returned a %s instead of %s or None; the event's "
        "field was left unset",
        name,
        type(value).__name__,
        expected.__name__,
    )
    return None


def request_info(
    *,
    method: str,
    path: str,
    request_id: str | None,
    ip: str | None,
    user_agent: str | None,
) -> RequestInfo:
    """Build the event's :class:`RequestInfo` from values the client controls.

    Each value is cut to its field's limit and made valid UTF-8, so that no header
    a client sends can make the event invalid and keep it out of the audit log. An
    absent or blank request id is replaced by a fresh UUIDv7.
    """
    request_id = (request_id or "").strip()
    return RequestInfo(
        id=_clip(request_id, "request.id") if request_id else new_event_id(),
        method=_clip(method, "request.method"),
        path=_clip(path, "request.path"),
        ip=None if ip is None else _clip(ip, "request.ip"),
        user_agent=None
        if user_agent is None
        else _clip(user_agent, "request.user_agent"),
    )


def client_ip(
    peer: str | None,
    trusted: Sequence[ProxyNetwork],
    forwarded: str | None,
    x_forwarded_for: str | None,
) -> str | None:
    """Return the client's address, believing forwarding headers only from proxies.

    The socket's peer is the answer unless it is a trusted proxy. Then the chain of
    addresses in the forwarding header is walked from the right, the hop nearest to
    us, skipping trusted proxies: the first address that is not one is the client.
    Everything left of it may have been written by the client, so it is never read.
    When both headers are present and name different clients, one of them was
    written by the client and there is no telling which: the peer's address is
    returned, which is never forged.

    Args:
        peer: The address of the socket's peer, if the server knows it.
        trusted: The networks of trusted proxies.
        forwarded: The ``Forwarded`` headers, joined with commas.
        x_forwarded_for: The ``X-Forwarded-For`` headers, joined with commas.
    """
    peer_address = _parse_address(peer) if peer is not None else None
    if peer_address is None or not _is_trusted(peer_address, trusted):
        return peer
    chains = []
    if forwarded is not None:
        chains.append(
            [_forwarded_node(element) for element in _split_forwarded(forwarded)]
        )
    if x_forwarded_for is not None:
        chains.append([_parse_address(item) for item in x_forwarded_for.split(",")])
    answers = {_walk_chain(chain, peer_address, trusted) for chain in chains}
    if len(answers) != 1:
        return str(peer_address)
    return answers.pop()


def result_from_status(status: int | None, *, failed: bool) -> Result:
    """The result the middleware gives an event whose handler set none.

    An exception, or a response that never started, is an error with code 500;
    otherwise below 400 is a success, 401 and 403 are denials, anything else an
    error, and the code is the status.
    """
    if failed or status is None:
        return Result("error", 500)
    if status < 400:
        return Result("success", status)
    if status in (401, 403):
        return Result("denied", status)
    return Result("error", status)


def report_hook_error(name: str, exc: Exception, logger: logging.Logger) -> None:
    """Log the exception a hook raised.

    The request goes on: a broken hook costs one field of the event, never the
    response.
    """
    logger.warning(
        "auditkit: the %s hook raised; the event's %s was left unset",
        name,
        "tenant_id" if name == "tenant" else name,
        exc_info=exc,
    )


@final
class RequestAudit:
    """One request's event and scope, from before the handler to the enqueue.

    The owner calls :meth:`finish` when the response is over, from whichever
    context that happens in; it fills the result and hands back the events to
    enqueue, once. :meth:`restore_context` then puts back the enclosing scope in
    the context the scope was opened in.
    """

    __slots__ = (
        "_auto_record",
        "_context",
        "_finished",
        "_recorder",
        "scope",
        "status",
    )

    def __init__(self, recorder: Recorder, event: Event, *, auto_record: bool) -> None:
        self._recorder = recorder
        self._auto_record = auto_record
        self._context: _ScopeContext = scope(event)
        #: The request's scope, open until :meth:`finish`.
        self.scope: Scope = self._context.__enter__()
        #: The response's status, once the response started.
        self.status: int | None = None
        self._finished = False

    def finish(self, *, failed: bool) -> tuple[Deferred, Event | None] | None:
        """Fill the result and close the scope to new deferrals.

        Returns the deferred events to enqueue and the event to record for
        ``auto_record`` (or None), or None when the request was already finished.
        """
        if self._finished:
            return None
        self._finished = True
        event = self.scope.event
        if event.result is None:
            event.result = result_from_status(self.status, failed=failed)
        deferred = self.scope._take_deferred()
        return deferred, self._auto_record_event(event, deferred)

    def restore_context(self) -> None:
        """Put back the scope that enclosed this one; call it where it was opened."""
        self._context._close()

    def _auto_record_event(self, event: Event, deferred: Deferred) -> Event | None:
        if not self._auto_record or not event.action:
            return None
        # Limitation: a recorder that does not defer scope-bound events (one that is
        # not built on auditkit's RecorderBase) can't be seen to have recorded the
        # event, so with auto_record=True it receives it a second time.
        recorder: object = self._recorder
        if any(known is recorder and ev is event for known, ev, _ in deferred):
            return None
        return event


def _clip(value: str, field: str) -> str:
    value = value[: FIELD_LIMITS[field]]
    if not value.isascii():
        # A lone surrogate would make the event invalid; replace it instead.
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def _parse_address(
    text: str | None,
) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Parse an address as proxies write it: bare, with a port, or in brackets."""
    if text is None:
        return None
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _split_forwarded(header: str) -> list[str]:
    """Split a Forwarded header into elements at commas outside quoted strings.

    One pass over the text: a client controls most of this header, so the work
    must stay linear in its length.
    """
    if '"' not in header:
        return header.split(",")
    elements: list[str] = []
    start, quoted, escaped = 0, False, False
    for index, char in enumerate(header):
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            elements.append(header[start:index])
            start = index + 1
    elements.append(header[start:])
    return elements


def _forwarded_node(
    element: str,
) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    match = _FORWARDED_FOR.search(element.strip())
    if match is None:
        return None
    value = match.group(1)
    if value.startswith('"'):
        value = re.sub(r"\\(.)", r"\1", value[1:-1])
    return _parse_address(value)


def _walk_chain(
    chain: list[ipaddress.IPv4Address | ipaddress.IPv6Address | None],
    peer: ipaddress.IPv4Address | ipaddress.IPv6Address,
    trusted: Sequence[ProxyNetwork],
) -> str:
    """The rightmost untrusted address; if a hop is unreadable or every hop is
    trusted, the furthest trusted address, which is the last one we can vouch for."""
    last_trusted = peer
    for address in reversed(chain):
        if address is None:
            break
        if not _is_trusted(address, trusted):
            return str(address)
        last_trusted = address
    return str(last_trusted)


def _is_trusted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
    trusted: Sequence[ProxyNetwork],
) -> bool:
    return any(address in network for network in trusted)
