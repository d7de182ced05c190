"""HttpTransport over TLS: CA bundles, contexts, client certificates, refusals."""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import Iterator

import pytest
import trustme

from auditkit import HttpTransport, SendStatus

from ._helpers import API_KEY, make_batch
from ._socket_server import Action, scripted_server

ACCEPTED = json.dumps({"accepted": 1, "duplicates": 0, "rejected": []}).encode()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


@pytest.fixture
def ca_file(ca: trustme.CA) -> Iterator[str]:
    with ca.cert_pem.tempfile() as path:
        yield path


def _answers(count: int = 1) -> list[Action]:
    return [Action("answer", 200, ACCEPTED) for _ in range(count)]


def test_ca_bundle_path_verifies_the_service(
    server_tls: ssl.SSLContext, ca_file: str
) -> None:
    with scripted_server(_answers(), server_tls) as server:
        with HttpTransport(server.url, API_KEY, verify=ca_file) as transport:
            result = transport.send(make_batch(1))

    assert result.status is SendStatus.DELIVERED


def test_ssl_context_verifies_the_service(
    server_tls: ssl.SSLContext, ca: trustme.CA
) -> None:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with scripted_server(_answers(), server_tls) as server:
        with HttpTransport(server.url, API_KEY, verify=context) as transport:
            result = transport.send(make_batch(1))

    assert result.status is SendStatus.DELIVERED


def test_untrusted_certificate_is_retried_and_reported_once(
    server_tls: ssl.SSLContext, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="auditkit")
    with scripted_server([], server_tls) as server:
        with HttpTransport(server.url, API_KEY) as transport:
            results = [transport.send(make_batch(1)) for _ in range(3)]

    assert {result.status for result in results} == {SendStatus.RETRY}
    assert "TLS certificate" in results[0].reason
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "verify=" in errors[0].getMessage()


def test_verify_false_skips_verification(server_tls: ssl.SSLContext) -> None:
    with scripted_server(_answers(), server_tls) as server:
        with HttpTransport(server.url, API_KEY, verify=False) as transport:
            result = transport.send(make_batch(1))

    assert result.status is SendStatus.DELIVERED


def test_client_certificate_is_presented_for_mutual_tls(
    ca: trustme.CA, server_tls: ssl.SSLContext, ca_file: str
) -> None:
    server_tls.verify_mode = ssl.CERT_REQUIRED
    ca.configure_trust(server_tls)
    client_cert = ca.issue_cert("client.example.test")

    with client_cert.private_key_and_cert_chain_pem.tempfile() as cert_file:
        with scripted_server(_answers(), server_tls) as server:
            with HttpTransport(
                server.url, API_KEY, verify=ca_file, cert=cert_file
            ) as with_cert:
                accepted = with_cert.send(make_batch(1))
            with HttpTransport(server.url, API_KEY, verify=ca_file) as without:
                refused = without.send(make_batch(1))

    assert accepted.status is SendStatus.DELIVERED
    assert refused.status is SendStatus.RETRY


def test_client_certificate_with_separate_key_file_is_loaded(
    ca: trustme.CA, ca_file: str
) -> None:
    client_cert = ca.issue_cert("client.example.test")
    with (
        client_cert.cert_chain_pems[0].tempfile() as cert_file,
        client_cert.private_key_pem.tempfile() as key_file,
    ):
        transport = HttpTransport(
            "https://audit.example.test",
            API_KEY,
            verify=ca_file,
            cert=(cert_file, key_file),
        )
    transport.close()

    assert "closed" in repr(transport)
