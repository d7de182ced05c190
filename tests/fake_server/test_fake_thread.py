"""serve_in_thread and the public surface of fake_server."""

# This folder is not a package, so mypy's override for tests.* misses it:
# mypy: allow-untyped-defs, allow-incomplete-defs
# mypy: allow-untyped-calls, check-untyped-defs

from __future__ import annotations

import socket

import httpx
import pytest

import fake_server


def test_serve_in_thread_serves_until_stopped():
    handle = fake_server.serve_in_thread()
    try:
        assert handle.running
        assert httpx.get(f"{handle.url}/healthz").json() == {"status": "ok"}
    finally:
        handle.stop()

    assert not handle.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{handle.url}/healthz")
    handle.stop()  # a second stop does nothing


def test_a_port_in_use_fails_with_the_reason():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        with pytest.raises(OSError, match="in use"):
            fake_server.serve_in_thread(port=port)


def test_two_servers_get_different_free_ports():
    with fake_server.serve_in_thread() as one, fake_server.serve_in_thread() as two:
        assert one.url != two.url
        with one.client() as first, two.client() as second:
            assert first.health()
            assert second.health()


def test_reprs_never_show_api_keys():
    config = fake_server.ServerConfig(api_keys={"very-secret": "t"})
    with fake_server.Client("http://127.0.0.1:1", api_key="very-secret") as client:
        shown = repr(config) + repr(client)

    assert "very-secret" not in shown


def test_exported_names_are_the_public_surface():
    public = {
        name
        for name in dir(fake_server)
        if not name.startswith("_") and name not in {"annotations"}
    }

    assert set(fake_server.__all__) == public
