"""The pytest plugin of auditkit_testing, registered through the ``pytest11`` entry
point.

It imports only pytest and auditkit when it loads: respx, Hypothesis and the fake
server are imported by the fixtures that need them, with an error naming the extra
to install when they are missing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from ._memory import InMemoryRecorder
from ._server import (
    DEFAULT_API_KEY,
    FakeAuditServer,
    ServerSession,
    StartError,
    namespace_for,
)

if TYPE_CHECKING:
    from auditkit._buffered import BufferedRecorder

    from ._respx import AuditRespx

__all__ = [
    "audit_buffered_recorder",
    "audit_recorder",
    "audit_respx",
    "fake_audit_server",
    "pytest_addoption",
    "pytest_configure",
]

#: The environment variables that stand in for the command-line options.
URL_VARIABLE = "AUDITKIT_SERVER_URL"
API_KEY_VARIABLE = "AUDITKIT_SERVER_API_KEY"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add the ``auditkit`` options to pytest's command line."""
    group = parser.getgroup("auditkit", "auditkit audit-event testing")
    group.addoption(
        "--audit-server-url",
        dest="audit_server_url",
        default=None,
        metavar="URL",
        help=(
            "Run the fake_audit_server fixture against an already running fake "
            "audit server (such as its container) instead of starting one. "
            f"Default: ${URL_VARIABLE}."
        ),
    )
    group.addoption(
        "--audit-server-api-key",
        dest="audit_server_api_key",
        default=None,
        metavar="KEY",
        help=(
            "The API key the audit fixtures send to the server. Default: "
            f"${API_KEY_VARIABLE}, or a fixed test key."
        ),
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the plugin's markers."""
    config.addinivalue_line(
        "markers",
        "audit_respx(base_url=None): the base URL whose /v1/events the audit_respx "
        "fixture mocks; None mocks /v1/events on any host.",
    )


@pytest.fixture
def audit_recorder() -> Iterator[InMemoryRecorder]:
    """A fresh ``auditkit_testing.InMemoryRecorder`` for each test, closed after it.

    Pass it wherever your code takes a recorder, then assert on it with
    ``assert_recorded(audit_recorder, "user.login", actor={"id": "42"})`` or read
    ``audit_recorder.events``; ``.outcomes`` shows what each record() call did.
    """
    recorder = InMemoryRecorder()
    try:
        yield recorder
    finally:
        recorder.close()


@pytest.fixture(scope="session")
def _auditkit_server_session(
    pytestconfig: pytest.Config,
) -> Iterator[ServerSession]:
    """The fake audit server of the session, started on first use."""
    url = pytestconfig.getoption("audit_server_url") or os.environ.get(URL_VARIABLE)
    api_key = (
        pytestconfig.getoption("audit_server_api_key")
        or os.environ.get(API_KEY_VARIABLE)
        or DEFAULT_API_KEY
    )
    session = ServerSession(url or None, api_key)
    try:
        yield session
    finally:
        session.stop()


@pytest.fixture
def fake_audit_server(
    request: pytest.FixtureRequest, _auditkit_server_session: ServerSession
) -> Iterator[FakeAuditServer]:
    """A fake audit service for this test, with its own empty namespace.

    One server runs per test session (in-process, on a free port of 127.0.0.1,
    started when a test first needs it), or, with ``--audit-server-url URL`` or
    ``$AUDITKIT_SERVER_URL``, an already running one such as the container. Each
    test gets a namespace of its own, reset before the test, so parallel tests
    (xdist workers, other runs sharing a server) never see each other's events.

    Exposes ``.url`` and ``.api_key`` for the code under test, ``.events(**filters)``,
    ``.requests()`` (the ingest journal), ``.add_fault(status, times=...)``,
    ``.stats()``, ``.wait(count, timeout=...)``, and ``.recorder()`` for a
    ``BufferedRecorder`` that sends to this namespace. It is an assertion source:
    ``assert_recorded(fake_audit_server, "user.login", timeout=5)``.

    A server that can't be started or reached fails the test at once, with why.
    """
    url = _start_server(_auditkit_server_session)
    server = FakeAuditServer(
        url, _auditkit_server_session.api_key, namespace_for(request.node.nodeid)
    )
    _reset_namespace(server)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def audit_buffered_recorder(
    fake_audit_server: FakeAuditServer,
) -> Iterator[BufferedRecorder]:
    """A ``BufferedRecorder`` that delivers to ``fake_audit_server``, closed after
    the test.

    It flushes every 20 ms and retries with short backoff, so delivery takes
    milliseconds. Assertions given this recorder flush it and read the server:
    ``assert_recorded(audit_buffered_recorder, "user.login")``.
    """
    recorder = fake_audit_server.recorder()
    try:
        yield recorder
    finally:
        recorder.close(timeout=5.0)


@pytest.fixture
def audit_respx(request: pytest.FixtureRequest) -> Iterator[AuditRespx]:
    """A respx mock of the audit service's ingest endpoint, ``POST /v1/events``.

    It decodes every posted batch (gzip too) into events, answers like the service
    (duplicates, rejections), and can fail on purpose with
    ``audit_respx.add_fault(503, times=2, retry_after=0)``. It is an assertion
    source: ``assert_recorded(audit_respx, "user.login", timeout=5)``. Requests to
    other URLs go to your own respx or pytest-httpx mocks, or to the network.

    By default it mocks ``/v1/events`` on any host; narrow it with
    ``@pytest.mark.audit_respx(base_url="https://audit.example.com")``.
    """
    from ._respx import AuditRespx

    marker = request.node.get_closest_marker("audit_respx")
    options: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    if marker is not None and marker.args:
        options.setdefault("base_url", marker.args[0])
    mock = AuditRespx(**options)
    mock.start()
    try:
        yield mock
    finally:
        mock.stop()


# Private helpers. Each fails outside its ``except`` block, so that pytest shows the
# reason once instead of chaining it to the exception it came from.


def _start_server(session: ServerSession) -> str:
    try:
        return session.url()
    except StartError as exc:
        reason = str(exc)
    pytest.fail(f"auditkit: {reason}", pytrace=False)


def _reset_namespace(server: FakeAuditServer) -> None:
    try:
        server.reset()
        return
    except Exception as exc:
        reason = repr(exc)
    server.close()
    pytest.fail(
        f"auditkit: the fake audit server at {server.url} did not reset the "
        f"test's namespace: {reason}",
        pytrace=False,
    )
