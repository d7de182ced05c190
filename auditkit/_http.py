"""The HTTP transport: one ingest request per batch, over one kept-alive httpx client.

:class:`HttpTransport` turns one HTTP exchange into a :class:`~auditkit.SendResult`;
the recorder decides what to do with it (back off, split, report). Nothing here
raises for a network condition, and the API key never leaves the ``Authorization``
header: it is kept out of every log line, reason, exception and ``repr``.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import math
import os
import re
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Self, TypeAlias, final

import httpx

from ._config import MAX_BATCH_BYTES, MAX_BATCH_EVENTS, Limits
from ._encoding import decode_json
from ._exceptions import ConfigurationError, TransportError
from ._http_answers import (
    describe_status,
    parse_rejections,
    parse_retry_after,
    refusal_for,
)
from ._logging import RateLimitedLog
from ._transport import Batch, SendResult
from ._version import __version__

__all__ = [
    "DEFAULT_GZIP_THRESHOLD",
    "DEFAULT_MAX_RETRY_AFTER",
    "DEFAULT_TIMEOUT",
    "HttpTransport",
]

logger = logging.getLogger(__name__)

#: Timeouts of each phase of a request, in seconds. Every phase is bounded, so a
#: service that stops answering can't hold the worker (and the buffer) forever.
DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=30.0, write=30.0, pool=5.0)
#: Bodies larger than this many bytes are sent gzip-encoded.
DEFAULT_GZIP_THRESHOLD = 1024
#: The longest ``Retry-After`` honoured, in seconds. Well below the recorder's
#: default ``retry_budget``, so that the longest honoured wait still leaves room
#: for the retry it announces.
DEFAULT_MAX_RETRY_AFTER = 60.0

#: A path or file name, as ``verify`` and ``cert`` take them.
_Path: TypeAlias = str | os.PathLike[str]
#: A client certificate: a file holding certificate and key, or ``(cert, key)``, or
#: ``(cert, key, password)``.
_CertTypes: TypeAlias = _Path | tuple[_Path, _Path] | tuple[_Path, _Path, str]

# Seconds between two log lines about the same refusal: a wrong key is reported on
# the first batch, then at most once a minute with a count, not once per batch.
_REPORT_INTERVAL = 60.0
# A Retry-After below this many seconds is left to the recorder's backoff. Both
# forms of the header count in whole seconds, so a shorter wait only says "soon".
_MIN_RETRY_AFTER = 1.0
# The most bytes of an answer's body read; the rest is left unread.
_MAX_ANSWER_BYTES = 4 * 1024 * 1024
# Headers the transport owns; ``headers`` may not replace them.
_RESERVED_HEADERS = frozenset(
    {
        "accept",
        "authorization",
        "content-encoding",
        "content-length",
        "content-type",
        "host",
        "transfer-encoding",
        "user-agent",
    }
)
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_PRINTABLE_ASCII = re.compile(r"[\x21-\x7e]+")
_PROXY_SCHEMES = frozenset({"http", "https", "socks5", "socks5h"})


@final
class HttpTransport:
    """Sends batches to ``POST {endpoint}/v1/events`` of an audit service.

    :class:`~auditkit.BufferedRecorder` builds one from its ``endpoint`` and
    ``api_key``; build it yourself to pass TLS, proxy or timeout options, and hand
    it over as ``transport=``. Each :meth:`send` makes one request and maps the
    answer: 2xx delivers (events the service rejected are listed, not retried);
    408, 429, 5xx, timeouts and dropped connections ask for a retry, honouring
    ``Retry-After``; 413 asks for a split; any other status fails, and is logged
    once on the ``auditkit._http`` logger (then at most once a minute, with a count).

    Example::

        transport = auditkit.HttpTransport(
            "https://audit.internal",
            api_key,
            verify="/etc/ssl/internal-ca.pem",
            timeout=httpx.Timeout(connect=2.0, read=10.0, write=10.0, pool=2.0),
        )
        recorder = auditkit.BufferedRecorder(transport=transport)

    Args:
        endpoint: The service's base URL, ``http://`` or ``https://``.
        api_key: Sent as ``Authorization: Bearer <api_key>``; never shown anywhere.
        client: Your own ``httpx.Client``, for options not listed here. auditkit
            uses it as it is and does not close it; ``verify``, ``cert`` and
            ``proxy`` can't be combined with it.
        timeout: Connect, read, write and pool timeouts of each request, as an
            ``httpx.Timeout`` or one number of seconds for all four. Applies to
            your own ``client`` too.
        verify: TLS verification: True (the default, against certifi's CAs),
            False (no verification), a CA bundle file or directory, or an
            ``ssl.SSLContext``.
        cert: A client certificate for mutual TLS: a file with certificate and
            key, ``(cert_file, key_file)`` or ``(cert_file, key_file, password)``.
        proxy: A proxy URL (``http://``, ``https://``, ``socks5://``) or an
            ``httpx.Proxy``. By default the environment's proxy variables apply.
        headers: Extra headers sent with every request. They can't replace the
            headers the transport sets itself.
        gzip_threshold: Bodies larger than this many bytes are gzip-encoded;
            None never compresses.
        gzip_level: The gzip compression level, 1 (fastest) to 9 (smallest).
        max_retry_after: The longest ``Retry-After`` honoured, in seconds. A
            shorter wait than one second (or than this cap, when it is smaller),
            such as ``Retry-After: 0``, is left to the recorder's backoff.
        user_agent: A product token put before ``auditkit/<version>`` in the
            ``User-Agent``, for example ``"billing/2.1"``.

    Raises:
        ConfigurationError: An argument is invalid; the message names it.

    Note:
        The transport is meant for one worker thread: :meth:`send` may be called
        from several threads, but each batch should be sent by one at a time.

        A ``Retry-After`` longer than what is left of the recorder's
        ``retry_budget`` fails the batch without waiting, since the retry it
        announces would come too late. The defaults (60 s here, 300 s for the
        budget) leave room for several of the longest waits.
    """

    def __init__(
        self,
        endpoint: str,
        api_key: str,
        *,
        client: httpx.Client | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        verify: bool | _Path | ssl.SSLContext = True,
        cert: _CertTypes | None = None,
        proxy: str | httpx.URL | httpx.Proxy | None = None,
        headers: Mapping[str, str] | None = None,
        gzip_threshold: int | None = DEFAULT_GZIP_THRESHOLD,
        gzip_level: int = 1,
        max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
        user_agent: str | None = None,
    ) -> None:
        self._endpoint = _check_endpoint(endpoint)
        self._api_key = _check_api_key(api_key)
        self._timeout = _check_timeout(timeout)
        self._gzip_threshold = _check_gzip_threshold(gzip_threshold)
        self._gzip_level = _check_gzip_level(gzip_level)
        self._max_retry_after = _check_max_retry_after(max_retry_after)
        self._headers = _build_headers(api_key, headers, user_agent)
        self._gzip_headers = {**self._headers, "Content-Encoding": "gzip"}

        _check_client(client, verify=verify, cert=cert, proxy=proxy)
        own = client is None
        self._ssl_context = _build_ssl_context(verify, cert) if own else None
        self._proxy = _check_proxy(proxy) if own else None
        self._owns_client = own
        self._client = self._build_client() if client is None else client

        # Written under _lock by close(). send() reads it without the lock: the
        # recorder calls both from its one worker thread, never at the same time.
        self._closed = False
        self._lock = threading.Lock()
        # The batch last compressed and its gzip body, so that a retry of the same
        # Batch object resends the very same bytes without compressing again.
        # Replaced as one tuple, so readers always see a matching pair.
        self._gzip_cache: tuple[Batch, bytes] | None = None
        # One rate-limited line per kind of refusal; created under _lock.
        self._reports: dict[str, RateLimitedLog] = {}

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<HttpTransport {_display_url(self._endpoint)!r}{state}>"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def endpoint(self) -> str:
        """The service's base URL, without a trailing slash."""
        return self._endpoint

    def send(self, batch: Batch, *, timeout: float | None = None) -> SendResult:
        """Send ``batch`` in one ``POST /v1/events`` and say how it went.

        Blocks the calling thread for the request: each timeout (connect, write,
        read, pool) is cut to ``timeout`` seconds when it is given, and the
        answer's body must arrive within one read timeout in all. Never raises
        for a network condition or an answer of the service; those become the
        :class:`~auditkit.SendResult`. A retry of the same ``Batch`` object sends
        the same bytes.

        Args:
            batch: The events to send.
            timeout: The longest any timeout of the request may be, in seconds.

        Returns:
            ``DELIVERED`` (with the events rejected by the service), ``RETRY``
            (with the service's ``Retry-After``, capped), ``TOO_LARGE`` or
            ``FAILED``.
        """
        unsendable = self._refuse_before_sending(batch, timeout)
        if unsendable is not None:
            return unsendable

        content, headers = self._encode(batch)
        started = time.monotonic()
        try:
            with _map_httpx_errors(self._api_key):
                response, answer = self._post(content, headers, timeout)
        except _SendError as exc:
            return self._on_send_error(exc, batch)
        except RuntimeError:
            # httpx refuses to send on a closed client with a RuntimeError; a
            # client passed in can be closed by its owner at any moment.
            if not self._client.is_closed:
                raise
            return self._on_client_closed(batch)

        result = self._read_answer(response, answer, batch)
        logger.debug(
            "Sent %d events (%d bytes, %d on the wire): %s in %.1f ms.",
            len(batch),
            len(batch.body),
            len(content),
            describe_status(response.status_code),
            (time.monotonic() - started) * 1000,
        )
        return result

    def fetch_limits(self, *, timeout: float | None = None) -> Limits:
        """Ask the service for its limits with ``GET /v1/limits``.

        Blocks the calling thread for one request, each phase bounded by the
        configured timeouts (cut to ``timeout`` seconds when given). Thread-safe.
        Limits the answer leaves out keep the protocol's defaults.

        Args:
            timeout: The longest any phase of the request may take, in seconds.

        Returns:
            The service's limits.

        Raises:
            TransportError: The service could not be reached, refused the request,
                or answered with something that is not a set of limits.
        """
        with _map_httpx_errors(self._api_key):
            response = self._client.get(
                self._endpoint + "/v1/limits",
                headers=self._headers,
                timeout=self._request_timeout(timeout),
            )
        if not response.is_success:
            refusal = refusal_for(response.status_code)
            raise TransportError(
                f"{refusal.summary} ({describe_status(response.status_code)}) "
                f"when asked for its limits. {refusal.advice}"
            )
        return _parse_limits(response.content)

    def close(self) -> None:
        """Close the connections of the client this transport built.

        A client passed in as ``client=`` stays open: it is yours to close.
        Returns at once; idempotent and thread-safe. Later sends fail.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._owns_client:
            self._client.close()

    def reset_after_fork(self) -> None:
        """Give a forked child its own client, connections and counters.

        The parent's client is abandoned, not closed: closing it would shut down
        TLS sessions the parent is still using on the shared sockets.

        Note:
            A client passed in as ``client=`` is kept, so the child shares its
            pooled connections with the parent; pass no client to a recorder that
            is used across ``fork()``.
        """
        self._lock = threading.Lock()
        self._gzip_cache = None
        self._reports = {}
        # Limitation: a client passed in as client= is kept after fork, and its
        # pooled connections are shared with the parent process.
        if self._owns_client and not self._closed:
            self._client = self._build_client()

    def _refuse_before_sending(
        self, batch: Batch, timeout: float | None
    ) -> SendResult | None:
        if self._closed:
            return SendResult.failed("The transport is closed.")
        if self._client.is_closed:
            return self._on_client_closed(batch)
        if timeout is not None and timeout <= 0:
            return SendResult.retry("No time was left to send the batch.")
        if len(batch) > MAX_BATCH_EVENTS or len(batch.body) > MAX_BATCH_BYTES:
            # A well-behaved client never provokes a 413 on purpose.
            return SendResult.too_large(
                f"The batch ({len(batch)} events, {len(batch.body)} bytes) is over "
                f"the protocol's limits of {MAX_BATCH_EVENTS} events and "
                f"{MAX_BATCH_BYTES} bytes per request."
            )
        return None

    def _build_client(self) -> httpx.Client:
        return httpx.Client(
            verify=self._ssl_context if self._ssl_context is not None else True,
            proxy=self._proxy,
            timeout=self._timeout,
            follow_redirects=False,
        )

    def _encode(self, batch: Batch) -> tuple[bytes, dict[str, str]]:
        body = batch.body
        if self._gzip_threshold is None or len(body) <= self._gzip_threshold:
            return body, self._headers

        cached = self._gzip_cache
        if cached is not None and cached[0] is batch:
            return cached[1], self._gzip_headers
        # mtime=0 keeps the bytes a function of the body alone.
        compressed = gzip.compress(body, compresslevel=self._gzip_level, mtime=0)
        self._gzip_cache = (batch, compressed)
        return compressed, self._gzip_headers

    def _request_timeout(self, timeout: float | None) -> httpx.Timeout:
        # Limitation: httpx bounds each socket operation, not a whole phase, so a
        # service that reads the request or sends its answer's headers a few bytes
        # at a time can make an attempt last far longer than timeout. The answer's
        # body is bounded as a whole by _read_bounded.
        if timeout is None:
            return self._timeout
        return httpx.Timeout(
            connect=_at_most(self._timeout.connect, timeout),
            read=_at_most(self._timeout.read, timeout),
            write=_at_most(self._timeout.write, timeout),
            pool=_at_most(self._timeout.pool, timeout),
        )

    def _post(
        self, content: bytes, headers: dict[str, str], timeout: float | None
    ) -> tuple[httpx.Response, bytes]:
        request_timeout = self._request_timeout(timeout)
        with self._client.stream(
            "POST",
            self._endpoint + "/v1/events",
            content=content,
            headers=headers,
            timeout=request_timeout,
        ) as response:
            answer = _read_bounded(response, request_timeout.read)

        return response, answer

    def _read_answer(
        self, response: httpx.Response, answer: bytes, batch: Batch
    ) -> SendResult:
        status = response.status_code
        if 200 <= status < 300:
            return self._on_accepted(response, answer, batch)
        if status == 422:
            return self._on_all_rejected(answer, batch)
        if status == 413:
            return SendResult.too_large(
                f"The audit service refused a batch of {len(batch)} events "
                f"({len(batch.body)} bytes) as too large (413)."
            )
        if status in (408, 429) or status >= 500:
            return self._on_busy(response)
        return self._on_refused(response, batch)

    def _on_accepted(
        self, response: httpx.Response, answer: bytes, batch: Batch
    ) -> SendResult:
        rejected = parse_rejections(answer, len(batch))
        if rejected is None:
            # The service said yes; resending would store nothing new, and
            # dropping the events would lose them. Trust the status.
            self._report(
                "unreadable",
                logging.WARNING,
                "The audit service answered %s with a body auditkit can't read; "
                "the batch of %d events is counted as delivered.",
                describe_status(response.status_code),
                len(batch),
            )
            return SendResult.delivered()
        return SendResult.delivered(rejected=rejected)

    def _on_all_rejected(self, answer: bytes, batch: Batch) -> SendResult:
        listed = parse_rejections(answer, len(batch)) or {}
        fallback = "rejected by the audit service (422) without a reason"
        rejected = {index: listed.get(index, fallback) for index in range(len(batch))}
        self._report(
            "422",
            logging.WARNING,
            "The audit service rejected every event of a batch of %d "
            "(422 Unprocessable Content); first reason: %s. The events go to "
            "on_failure and are not retried.",
            len(batch),
            rejected[0].partition(":")[0] if rejected else "none",
        )
        return SendResult.delivered(rejected=rejected)

    def _on_busy(self, response: httpx.Response) -> SendResult:
        retry_after = parse_retry_after(
            response.headers.get("Retry-After"),
            now=time.time(),
            cap=self._max_retry_after,
        )
        reason = f"The audit service answered {describe_status(response.status_code)}."
        floor = min(_MIN_RETRY_AFTER, self._max_retry_after)
        if retry_after is not None and retry_after < floor:
            # "Retry now", or a date already (or all but) past, which often means
            # the service's clock runs behind ours. Honoured as given, a service
            # that keeps answering so would be resent to in a tight loop, about a
            # thousand requests a second. The recorder's backoff still retries
            # soon, and waits longer each time the answer repeats.
            return SendResult.retry(reason[:-1] + " and asked to retry at once.")
        if retry_after is not None:
            reason = reason[:-1] + f" and asked to retry after {retry_after:g} s."
        return SendResult.retry(reason, retry_after=retry_after)

    def _on_refused(self, response: httpx.Response, batch: Batch) -> SendResult:
        status = describe_status(response.status_code)
        refusal = refusal_for(response.status_code)
        self._report(
            str(response.status_code),
            logging.ERROR,
            "%s (%s). %s %d events were not delivered and are not retried.",
            refusal.summary,
            status,
            refusal.advice,
            len(batch),
        )
        return SendResult.failed(f"{refusal.summary} ({status}).")

    def _on_client_closed(self, batch: Batch) -> SendResult:
        self._report(
            "client closed",
            logging.ERROR,
            "The httpx.Client given to auditkit as client= was closed while the "
            "recorder still uses it: %d events were not delivered. Close the "
            "recorder before the client.",
            len(batch),
        )
        return SendResult.failed("The httpx.Client given as client= is closed.")

    def _on_send_error(self, exc: _SendError, batch: Batch) -> SendResult:
        logger.debug("Sending %d events failed: %s", len(batch), exc)
        if exc.certificate:
            self._report(
                "certificate",
                logging.ERROR,
                "%s Check verify= (the CA bundle) and the endpoint's host name; "
                "the batch will be retried.",
                exc,
            )
        if exc.retryable:
            return SendResult.retry(str(exc))
        return SendResult.failed(str(exc))

    def _report(self, kind: str, level: int, message: str, *args: object) -> None:
        with self._lock:
            report = self._reports.get(kind)
            if report is None:
                report = RateLimitedLog(logger, level, interval=_REPORT_INTERVAL)
                self._reports[kind] = report
        report.log(message, *args)


class _SendError(TransportError):
    """A request that got no answer, with whether sending again may work."""

    def __init__(
        self, message: str, *, retryable: bool, certificate: bool = False
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.certificate = certificate


@contextlib.contextmanager
def _map_httpx_errors(api_key: str) -> Iterator[None]:
    """Turn httpx's exceptions into :class:`_SendError`, with the key scrubbed."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise _SendError(
            f"The request to the audit service timed out ({_detail(exc, api_key)}).",
            retryable=True,
        ) from exc
    except (httpx.UnsupportedProtocol, httpx.LocalProtocolError) as exc:
        raise _SendError(
            f"The request could not be made: {_detail(exc, api_key)}.",
            retryable=False,
        ) from exc
    except httpx.ConnectError as exc:
        certificate = _is_certificate_error(exc)
        what = "verify the TLS certificate of" if certificate else "connect to"
        raise _SendError(
            f"Could not {what} the audit service ({_detail(exc, api_key)}).",
            retryable=True,
            certificate=certificate,
        ) from exc
    except (httpx.TransportError, httpx.DecodingError, OSError) as exc:
        # Reads, writes, resets, protocol errors and proxies: nothing tells
        # whether the service stored the batch, and it de-duplicates on event ids,
        # so sending again is safe.
        raise _SendError(
            f"The connection to the audit service failed ({_detail(exc, api_key)}).",
            retryable=True,
        ) from exc


def _read_bounded(response: httpx.Response, read_timeout: float | None) -> bytes:
    """Read an answer's body within one read timeout in all, and up to a size.

    httpx's read timeout bounds each read from the socket, so a service that
    trickles its answer a byte at a time could hold the worker for hours. The whole
    body gets one read timeout here; the check runs as each piece arrives, so the
    body takes at most twice the read timeout.
    """
    deadline = None if read_timeout is None else time.monotonic() + read_timeout
    body = bytearray()
    for piece in response.iter_bytes():
        body += piece
        if len(body) > _MAX_ANSWER_BYTES:
            # An ingest answer is a few hundred bytes per rejected event; more is
            # no ingest answer, and is read as an unreadable body.
            return bytes(body[:_MAX_ANSWER_BYTES])
        if deadline is not None and time.monotonic() > deadline:
            raise httpx.ReadTimeout(
                "The answer's body took longer than the read timeout.",
                request=response.request,
            )
    return bytes(body)


def _detail(exc: BaseException, api_key: str) -> str:
    text = str(exc).replace(api_key, "[api key]").strip() or "no detail"
    text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= 200 else text[:199] + "…"


def _is_certificate_error(exc: BaseException) -> bool:
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def _at_most(configured: float | None, timeout: float) -> float:
    return timeout if configured is None else min(configured, timeout)


def _display_url(url: str) -> str:
    # Userinfo in an endpoint would be a credential: never show it.
    return str(httpx.URL(url).copy_with(username=None, password=None))


def _parse_limits(body: bytes) -> Limits:
    try:
        data = decode_json(body)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise TransportError("The audit service's limits are not a JSON object.")
    values = {
        name: data[name]
        for name in ("max_event_bytes", "max_batch_events", "max_batch_bytes")
        if name in data
    }
    try:
        return Limits(**values)
    except ConfigurationError as exc:
        raise TransportError(f"The audit service sent unusable limits: {exc}") from exc


def _check_endpoint(endpoint: object) -> str:
    if not isinstance(endpoint, str):
        raise ConfigurationError(f"endpoint must be a URL string, got {endpoint!r}.")
    try:
        url = httpx.URL(endpoint)
    except httpx.InvalidURL:
        url = None
    shown = _display_url(endpoint) if url is not None else endpoint
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise ConfigurationError(
            f"endpoint must be an http:// or https:// URL with a host, got {shown!r}."
        )
    if url.query or url.fragment:
        raise ConfigurationError(
            f"endpoint must have no query or fragment, got {shown!r}."
        )
    base = endpoint.rstrip("/")
    if base.endswith("/v1/events"):
        raise ConfigurationError(
            f"endpoint is the service's base URL, without /v1/events: got {shown!r}."
        )
    return base


def _check_api_key(api_key: object) -> str:
    # The key's value is never put in a message, not even a wrong one.
    if not isinstance(api_key, str):
        raise ConfigurationError(
            f"api_key must be a str, got an object of type {type(api_key).__name__}."
        )
    if not _PRINTABLE_ASCII.fullmatch(api_key):
        raise ConfigurationError(
            "api_key must be a non-empty string of printable ASCII characters "
            "without spaces."
        )
    return api_key


def _check_timeout(timeout: object) -> httpx.Timeout:
    if isinstance(timeout, httpx.Timeout):
        parts = (timeout.connect, timeout.read, timeout.write, timeout.pool)
        if all(part is None or (math.isfinite(part) and part > 0) for part in parts):
            return timeout
    elif _is_positive_number(timeout):
        return httpx.Timeout(float(timeout))  # type: ignore[arg-type]
    raise ConfigurationError(
        f"timeout must be an httpx.Timeout or a positive number of seconds, "
        f"got {timeout!r}."
    )


def _check_gzip_threshold(threshold: object) -> int | None:
    if threshold is None or (
        isinstance(threshold, int)
        and not isinstance(threshold, bool)
        and threshold >= 0
    ):
        return threshold
    raise ConfigurationError(
        f"gzip_threshold must be a number of bytes (0 or more) or None, "
        f"got {threshold!r}."
    )


def _check_gzip_level(level: object) -> int:
    if isinstance(level, int) and not isinstance(level, bool) and 1 <= level <= 9:
        return level
    raise ConfigurationError(
        f"gzip_level must be an integer from 1 to 9, got {level!r}."
    )


def _check_max_retry_after(value: object) -> float:
    if _is_positive_number(value):
        return float(value)  # type: ignore[arg-type]
    raise ConfigurationError(
        f"max_retry_after must be a positive number of seconds, got {value!r}."
    )


def _is_positive_number(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def _build_headers(
    api_key: str, extra: Mapping[str, str] | None, user_agent: str | None
) -> dict[str, str]:
    agent = f"auditkit/{__version__} python-httpx/{httpx.__version__}"
    if user_agent is not None:
        if not isinstance(user_agent, str) or not _is_header_value(user_agent):
            raise ConfigurationError(
                f"user_agent must be a non-empty string without control characters, "
                f"got {user_agent!r}."
            )
        agent = f"{user_agent.strip()} {agent}"

    headers = _check_headers(extra)
    headers.update(
        {
            "Authorization": f"Bearer {api_key}",
            "User-Agent": agent,
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
    )
    return headers


def _check_headers(extra: object) -> dict[str, str]:
    if extra is None:
        return {}
    if not isinstance(extra, Mapping):
        raise ConfigurationError(
            f"headers must be a mapping of names to values, got {extra!r}."
        )
    checked: dict[str, str] = {}
    for name, value in extra.items():
        # Header values may be secrets: messages show the name only.
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise ConfigurationError(f"headers has an invalid header name {name!r}.")
        if name.lower() in _RESERVED_HEADERS:
            raise ConfigurationError(
                f"headers can't set {name!r}: the transport sets it itself "
                "(use api_key= or user_agent= instead)."
            )
        if not isinstance(value, str) or not _is_header_value(value):
            raise ConfigurationError(
                f"headers[{name!r}] must be a string without control characters."
            )
        checked[name] = value
    return checked


def _is_header_value(value: str) -> bool:
    return bool(value.strip()) and not any(
        ord(char) < 0x20 or ord(char) == 0x7F for char in value
    )


def _check_client(
    client: object, *, verify: object, cert: object, proxy: object
) -> None:
    if client is None:
        return
    if not isinstance(client, httpx.Client):
        raise ConfigurationError(
            f"client must be an httpx.Client, got {type(client).__name__}."
        )
    if verify is not True or cert is not None or proxy is not None:
        raise ConfigurationError(
            "verify, cert and proxy configure the client auditkit builds; with "
            "client=..., configure your own client instead."
        )


def _build_ssl_context(verify: object, cert: object) -> ssl.SSLContext | None:
    """Return the TLS context for ``verify`` and ``cert``; None for httpx's default.

    Built here rather than by httpx, which no longer takes paths for either.
    """
    if isinstance(verify, ssl.SSLContext):
        context = verify
    elif verify is True and cert is None:
        return None
    elif verify is True:
        context = _default_context("verify", None)
    elif verify is False:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif isinstance(verify, str | os.PathLike):
        context = _default_context("verify", os.fspath(verify))
    else:
        raise ConfigurationError(
            f"verify must be True, False, a CA bundle path or an ssl.SSLContext, "
            f"got {verify!r}."
        )
    if cert is not None:
        _load_cert(context, cert)
    return context


def _default_context(name: str, ca_path: str | None) -> ssl.SSLContext:
    try:
        if ca_path is None:
            import certifi  # httpx depends on it: its CAs are httpx's default.

            return ssl.create_default_context(cafile=certifi.where())
        if os.path.isdir(ca_path):
            return ssl.create_default_context(capath=ca_path)
        return ssl.create_default_context(cafile=ca_path)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(
            f"{name} could not be loaded as a CA bundle from {ca_path!r}: {exc}."
        ) from exc


def _load_cert(context: ssl.SSLContext, cert: object) -> None:
    if isinstance(cert, str | os.PathLike):
        parts: tuple[object, ...] = (cert,)
    elif isinstance(cert, tuple) and len(cert) in (2, 3):
        parts = cert
    else:
        raise ConfigurationError(
            f"cert must be a path or a (cert_file, key_file[, password]) tuple, "
            f"got {type(cert).__name__}."
        )
    certfile, keyfile, password = (*parts, None, None)[:3]
    try:
        context.load_cert_chain(
            certfile,  # type: ignore[arg-type]
            keyfile,  # type: ignore[arg-type]
            password,  # type: ignore[arg-type]
        )
    except (OSError, ssl.SSLError, TypeError) as exc:
        # The password may be part of the tuple: show the file names only.
        raise ConfigurationError(
            f"cert could not be loaded from {certfile!r} and {keyfile!r}: "
            f"{type(exc).__name__}."
        ) from exc


def _check_proxy(proxy: object) -> httpx.Proxy | None:
    if proxy is None or isinstance(proxy, httpx.Proxy):
        return proxy
    if not isinstance(proxy, str | httpx.URL):
        raise ConfigurationError(
            f"proxy must be a URL or an httpx.Proxy, got {type(proxy).__name__}."
        )
    try:
        url = httpx.URL(proxy)
    except httpx.InvalidURL:
        url = None
    # A proxy URL may carry credentials: messages show its scheme only.
    if url is None or url.scheme not in _PROXY_SCHEMES or not url.host:
        scheme = url.scheme if url is not None else "unparsable"
        raise ConfigurationError(
            "proxy must be an http://, https://, socks5:// or socks5h:// URL with "
            f"a host, got one with scheme {scheme!r}."
        )
    return httpx.Proxy(url)
