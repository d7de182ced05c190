"""How the middleware finds the client's address behind proxies."""

from __future__ import annotations

import ipaddress
import time

import pytest
from hypothesis import given, strategies as st

from auditkit._middleware import client_ip, parse_trusted_proxies, request_info

TRUSTED = parse_trusted_proxies(["10.0.0.0/8", "2001:db8:ffff::/48", "192.0.2.1"])


def test_the_peer_is_the_client_when_no_proxy_is_trusted() -> None:
    assert client_ip("203.0.113.5", (), None, "1.2.3.4") == "203.0.113.5"


def test_a_peer_that_is_not_an_address_is_kept_as_the_server_gave_it() -> None:
    assert client_ip("/run/app.sock", TRUSTED, None, "1.2.3.4") == "/run/app.sock"


def test_no_peer_means_no_address() -> None:
    assert client_ip(None, TRUSTED, None, "1.2.3.4") is None


@pytest.mark.parametrize(
    ("xff", "expected"),
    [
        ("198.51.100.1", "198.51.100.1"),
        ("198.51.100.1, 10.9.9.9, 192.0.2.1", "198.51.100.1"),
        (" 6.6.6.6 ,198.51.100.1 ", "198.51.100.1"),
        ("198.51.100.1:8080", "198.51.100.1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("::ffff:198.51.100.1", "198.51.100.1"),
        # Every hop is trusted: the furthest one is the last we can vouch for.
        ("10.1.1.1, 10.2.2.2", "10.1.1.1"),
        # An unreadable hop right of the client: stop at the last trusted one.
        ("198.51.100.1, unknown, 10.2.2.2", "10.2.2.2"),
        ("", "10.0.0.1"),
    ],
)
def test_x_forwarded_for_is_walked_from_the_right(xff: str, expected: str) -> None:
    assert client_ip("10.0.0.1", TRUSTED, None, xff) == expected


@pytest.mark.parametrize(
    ("forwarded", "expected"),
    [
        ("for=198.51.100.1", "198.51.100.1"),
        ("For=6.6.6.6, for=198.51.100.1;proto=https;by=10.0.0.1", "198.51.100.1"),
        ('for="[2001:db8::1]:4711"', "2001:db8::1"),
        ('for="198.51.100.1:80", for=10.3.3.3', "198.51.100.1"),
        ('proto=https;for="198.51.100.1"', "198.51.100.1"),
        ("for=_hidden, for=10.3.3.3", "10.3.3.3"),
        ('for="a,b", for=198.51.100.1', "198.51.100.1"),
        ('for="a\\",b", for=198.51.100.1', "198.51.100.1"),
    ],
)
def test_forwarded_is_parsed_as_rfc_7239_and_walked_from_the_right(
    forwarded: str, expected: str
) -> None:
    assert client_ip("10.0.0.1", TRUSTED, forwarded, None) == expected


def test_a_huge_forged_header_is_parsed_in_linear_time() -> None:
    """Quadratic parsing would take minutes here; linear takes milliseconds."""
    forwarded = '"for=x", ' * 20_000 + "for=198.51.100.1"
    started = time.monotonic()

    answer = client_ip("10.0.0.1", TRUSTED, forwarded, "1.1.1.1, " * 20_000)

    assert answer == "10.0.0.1"
    assert time.monotonic() - started < 10


def test_agreeing_headers_give_their_client() -> None:
    answer = client_ip("10.0.0.1", TRUSTED, "for=198.51.100.1", "198.51.100.1")

    assert answer == "198.51.100.1"


def test_disagreeing_headers_give_the_trusted_peer() -> None:
    answer = client_ip("10.0.0.1", TRUSTED, "for=6.6.6.6", "198.51.100.1")

    assert answer == "10.0.0.1"


addresses = st.ip_addresses(v=4).map(str)


@given(forged=st.lists(st.text(max_size=20) | addresses, max_size=5), client=addresses)
def test_a_client_cannot_forge_its_address_through_one_trusted_proxy(
    forged: list[str], client: str
) -> None:
    """Whatever the client sends, the proxy appends the address it saw."""
    if ipaddress.ip_address(client) in ipaddress.ip_network("10.0.0.0/8"):
        return
    if client == "192.0.2.1":
        return
    header = ", ".join([*(f.replace(",", "") for f in forged), client])

    assert client_ip("10.0.0.1", TRUSTED, None, header) == client


def test_request_info_generates_an_id_for_a_blank_header() -> None:
    info = request_info(
        method="GET", path="/", request_id="  ", ip=None, user_agent=None
    )

    assert info.id is not None
    assert len(info.id) == 36


def test_request_info_replaces_lone_surrogates() -> None:
    info = request_info(
        method="GET", path="/caf\udce9", request_id=None, ip=None, user_agent=None
    )

    assert info.path == "/caf?"
