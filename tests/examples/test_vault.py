"""The vault example: what it answers, and what it leaves in the audit log."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from auditkit import Actor, Target
from auditkit_testing import (
    ANY_STR,
    InMemoryRecorder,
    assert_not_recorded,
    assert_recorded,
    assert_recorded_in_order,
)
from examples.vault import Secret, Vault, create_app
from examples.vault.__main__ import main, server_config

ALICE = {"authorization": "Bearer alice-token"}
BOB = {"authorization": "Bearer bob-token"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _vault() -> Vault:
    return Vault(
        [
            Secret("acme-1", "acme", "database password", "hunter2"),
            Secret("globex-1", "globex", "payments key", "pk_42"),
        ]
    )


@pytest.fixture
def recorder() -> Iterator[InMemoryRecorder]:
    recorder = InMemoryRecorder()
    yield recorder
    recorder.close()


@pytest.fixture
async def client(recorder: InMemoryRecorder) -> Any:
    transport = httpx.ASGITransport(app=create_app(recorder, vault=_vault()))
    async with httpx.AsyncClient(transport=transport, base_url="http://vault") as c:
        yield c


@pytest.mark.anyio
async def test_reading_an_existing_secret_records_secret_read(
    client: httpx.AsyncClient, recorder: InMemoryRecorder
) -> None:
    response = await client.get("/secrets/acme-1", headers=ALICE)

    assert response.json() == {"id": "acme-1", "name": "database password"}
    assert_recorded(
        recorder,
        "secret.read",
        actor=Actor("user", "alice"),
        tenant_id="acme",
        target=Target("secret", "acme-1", name="database password"),
        result={"status": "success", "code": 200},
        request={"method": "GET", "path": "/secrets/acme-1", "id": ANY_STR},
        count=1,
    )


@pytest.mark.anyio
async def test_reading_a_missing_secret_records_nothing(
    client: httpx.AsyncClient, recorder: InMemoryRecorder
) -> None:
    missing = await client.get("/secrets/nope", headers=ALICE)
    other_tenant = await client.get("/secrets/globex-1", headers=ALICE)

    assert (missing.status_code, other_tenant.status_code) == (404, 404)
    assert_not_recorded(recorder)


@pytest.mark.anyio
async def test_revealing_an_own_secret_succeeds_and_is_recorded(
    client: httpx.AsyncClient, recorder: InMemoryRecorder
) -> None:
    response = await client.get("/secrets/acme-1/reveal", headers=ALICE)

    assert response.json() == {"value": "hunter2"}
    assert_recorded(
        recorder,
        "secret.reveal",
        actor=Actor("user", "alice"),
        target=Target("secret", "acme-1"),
        result={"status": "success", "code": 200},
    )


@pytest.mark.anyio
async def test_revealing_a_missing_secret_is_an_error_404(
    client: httpx.AsyncClient, recorder: InMemoryRecorder
) -> None:
    response = await client.get("/secrets/nope/reveal", headers=ALICE)

    assert response.status_code == 404
    assert_recorded(
        recorder,
        "secret.reveal",
        target=Target("secret", "nope"),
        result={"status": "error", "code": 404, "message": None},
    )


@pytest.mark.anyio
async def test_revealing_another_tenants_secret_is_denied_in_the_log_only(
    client: httpx.AsyncClient, recorder: InMemoryRecorder
) -> None:
    response = await client.get("/secrets/globex-1/reveal", headers=ALICE)

    assert response.status_code == 404
    assert_recorded(
        recorder,
        "secret.reveal",
        actor=Actor("user", "alice"),
        tenant_id="acme",
        target=Target("secret", "globex-1"),
        result={"status": "denied", "code": 403, "message": "cross-tenant access"},
    )


@pytest.mark.anyio
async def test_the_client_cannot_tell_the_two_404s_apart_but_the_log_can(
    client: httpx.AsyncClient, recorder: InMemoryRecorder
) -> None:
    missing = await client.get("/secrets/nope/reveal", headers=BOB)
    foreign = await client.get("/secrets/acme-1/reveal", headers=BOB)

    assert missing.status_code == foreign.status_code == 404
    assert missing.content == foreign.content
    assert missing.headers.raw == foreign.headers.raw
    first, second = assert_recorded_in_order(
        recorder,
        [
            {"action": "secret.reveal", "result": "error"},
            {"action": "secret.reveal", "result": "denied"},
        ],
    )
    assert first.result != second.result


@pytest.mark.anyio
async def test_an_anonymous_reveal_is_recorded_as_denied_401(
    client: httpx.AsyncClient, recorder: InMemoryRecorder
) -> None:
    response = await client.get("/secrets/acme-1/reveal")

    assert response.status_code == 401
    assert_recorded(
        recorder,
        "secret.reveal",
        actor=None,
        tenant_id=None,
        result={"status": "denied", "code": 401},
    )


@pytest.mark.anyio
async def test_creating_a_secret_records_it_in_the_creators_tenant(
    client: httpx.AsyncClient, recorder: InMemoryRecorder
) -> None:
    created = await client.post(
        "/secrets", headers=BOB, json={"name": "ssh key", "value": "k"}
    )
    secret_id = created.json()["id"]
    readable = await client.get(f"/secrets/{secret_id}", headers=BOB)
    hidden = await client.get(f"/secrets/{secret_id}", headers=ALICE)

    assert (created.status_code, readable.status_code, hidden.status_code) == (
        201,
        200,
        404,
    )
    assert_recorded(
        recorder,
        "secret.create",
        actor=Actor("user", "bob"),
        tenant_id="globex",
        target=Target("secret", secret_id, name="ssh key"),
        result={"status": "success", "code": 201},
    )


@pytest.mark.anyio
async def test_two_authorization_headers_act_for_nobody_and_blame_nobody(
    client: httpx.AsyncClient, recorder: InMemoryRecorder
) -> None:
    """The hooks and the handler read the token alike, so a second header can't
    make the log name another user than the one the handler acted for."""
    response = await client.get(
        "/secrets/acme-1/reveal",
        headers=[
            ("authorization", "Bearer alice-token"),
            ("authorization", "Bearer bob-token"),
        ],
    )

    assert response.status_code == 401
    assert_recorded(
        recorder,
        "secret.reveal",
        actor=None,
        tenant_id=None,
        result={"status": "denied", "code": 401},
        count=1,
    )


@pytest.mark.anyio
@pytest.mark.parametrize(
    "content",
    [b"not json", b"[1, 2]", b'{"name": "n"}', b'{"name": "n", "value": 7}'],
)
async def test_creating_a_secret_from_a_bad_body_is_a_400_and_records_nothing(
    client: httpx.AsyncClient, recorder: InMemoryRecorder, content: bytes
) -> None:
    response = await client.post("/secrets", headers=ALICE, content=content)

    assert response.status_code == 400
    assert recorder.events == []


def test_the_served_vault_records_the_socket_peer_not_a_forged_header() -> None:
    """uvicorn's own proxy headers are off, so a local client can't forge its IP."""
    recorder = InMemoryRecorder()
    app = create_app(recorder, vault=_vault())
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    # Listening before uvicorn starts: the request waits in the backlog.
    sock.listen()
    port = sock.getsockname()[1]
    config = server_config(app, host="127.0.0.1", port=port)
    config.log_level = "critical"
    config.lifespan = "off"
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
    thread.start()
    try:
        response = httpx.get(
            f"http://127.0.0.1:{port}/secrets/acme-1",
            headers={**ALICE, "x-forwarded-for": "203.0.113.66"},
            timeout=30,
        )
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()

    assert response.status_code == 200
    assert_recorded(recorder, "secret.read", request={"ip": "127.0.0.1"}, count=1)


@pytest.mark.anyio
async def test_the_vault_delivers_to_the_fake_audit_server(
    fake_audit_server: Any,
) -> None:
    recorder = fake_audit_server.recorder()
    transport = httpx.ASGITransport(app=create_app(recorder, vault=_vault()))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://v") as c:
            await c.get("/secrets/globex-1/reveal", headers=ALICE)
            await c.get("/secrets/nope", headers=ALICE)
    finally:
        recorder.close(timeout=10)

    assert_recorded(
        fake_audit_server,
        "secret.reveal",
        result={"status": "denied", "code": 403, "message": "cross-tenant access"},
        timeout=10,
    )
    assert_not_recorded(fake_audit_server, "secret.read")


@pytest.fixture
def fake_server_process() -> Iterator[str]:
    """A fake audit server in a process of its own, as a user would run it."""
    process = subprocess.Popen(
        [sys.executable, "-m", "fake_server", "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("fake_server listening on "), line
        yield line.rsplit(" ", 1)[1].strip()
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


def test_the_runner_plays_its_demo_against_a_running_fake_server(
    fake_server_process: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["--audit-url", fake_server_process, "--api-key", "k", "--demo"])

    out = capsys.readouterr().out
    assert status == 0
    assert '"message": "cross-tenant access"' in out
    assert out.count('"action": "secret.reveal"') == 4
    assert out.count('"action": "secret.read"') == 1


def test_the_runner_refuses_to_start_without_an_audit_service(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AUDIT_URL", raising=False)
    monkeypatch.delenv("AUDIT_API_KEY", raising=False)

    assert main(["--demo"]) == 2
    assert "--audit-url" in capsys.readouterr().err
