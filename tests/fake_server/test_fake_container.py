"""The container image: built with podman, it answers like the in-process server.

Skipped unless podman works and the local base image exists (``ci/setup-podman``
makes both); no registry is needed.
"""

# This folder is not a package, so mypy's override for tests.* misses it:
# mypy: allow-untyped-defs, allow-incomplete-defs
# mypy: allow-untyped-calls, check-untyped-defs

from __future__ import annotations

import importlib.metadata
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fake_server_support import DROPPED, batch, wire_event

import fake_server

_REPO_ROOT = Path(__file__).resolve().parents[2]
_BASE_IMAGE = "localhost/debian-py:bookworm"
# The pure-Python distributions the server imports, copied from this interpreter's
# site-packages so that the image build needs no package index.
_DISTRIBUTIONS = (
    "starlette",
    "uvicorn",
    "h11",
    "click",
    "anyio",
    "sniffio",
    "idna",
    "typing_extensions",
    "httpx",
    "httpcore",
    "certifi",
)
_COMMAND_TIMEOUT = 180

pytestmark = pytest.mark.timeout(300)


def _podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONTAINERS_CONF": str(_REPO_ROOT / "ci" / "containers.conf")}
    return subprocess.run(
        ["podman", *args],
        capture_output=True,
        text=True,
        timeout=_COMMAND_TIMEOUT,
        env=env,
        check=check,
    )


def _podman_unusable_reason() -> str | None:
    if shutil.which("podman") is None:
        return "podman is not installed (ci/setup-podman installs it)"
    try:
        info = _podman("info", check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"podman info failed: {exc}"
    if info.returncode != 0:
        return f"podman info failed: {info.stderr.strip()[:200]}"
    if _podman("image", "exists", _BASE_IMAGE, check=False).returncode != 0:
        return f"the base image {_BASE_IMAGE} is missing (ci/setup-podman makes it)"
    return None


def _build_context(root: Path) -> None:
    for name in ("auditkit", "fake_server"):
        shutil.copytree(
            _REPO_ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(_REPO_ROOT / "pyproject.toml", root)
    site = root / "build" / "fake-server-site"
    for name in _DISTRIBUTIONS:
        distribution = importlib.metadata.distribution(name)
        for file in distribution.files or ():
            if file.parts[0] == ".." or "__pycache__" in file.parts:
                continue
            source = Path(str(distribution.locate_file(file)))
            if source.is_file():
                target = site / file
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        pause.wait(0.05)
    raise AssertionError(f"the container did not answer on {url} in {timeout} s")


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    reason = _podman_unusable_reason()
    if reason is not None:
        pytest.skip(reason)
    context = tmp_path_factory.mktemp("image-context")
    _build_context(context)
    tag = f"localhost/fake-audit-server:test-{uuid.uuid4().hex[:8]}"
    _podman(
        "build",
        "--quiet",
        "--format",
        "docker",
        "--build-arg",
        f"BASE={_BASE_IMAGE}",
        "--tag",
        tag,
        "--file",
        str(context / "fake_server" / "Dockerfile"),
        str(context),
    )
    try:
        yield tag
    finally:
        _podman("rmi", "--force", tag, check=False)


@pytest.fixture
def container(image: str) -> Iterator[tuple[str, str]]:
    name = f"fake-audit-server-{uuid.uuid4().hex[:8]}"
    port = _free_port()
    _podman(
        "run",
        "--detach",
        "--name",
        name,
        "--network",
        "host",
        "--health-interval",
        "disable",
        "--env",
        f"FAKE_SERVER_PORT={port}",
        image,
        "--host",
        "127.0.0.1",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, timeout=30)
        yield name, url
    finally:
        _podman("rm", "--force", "--time", "2", name, check=False)


def _scenario(url: str) -> list[tuple[str, int, Any]]:
    """Drive a server through ingest, de-dup, query and faults; return what it said."""
    first = wire_event(action="doc.read", actor={"type": "user", "id": "alice"})
    second = wire_event(action="doc.write", result={"status": "denied"})
    said: list[tuple[str, int, Any]] = []
    headers = {"authorization": "Bearer k", "content-type": "application/json"}
    with httpx.Client(base_url=url, headers=headers, timeout=10) as http:

        def post(step: str, body: bytes) -> None:
            response = http.post("/v1/events", content=body)
            said.append((step, response.status_code, response.json()))

        post("ingest", batch(first, second))
        post("duplicate", batch(first))
        post("conflict", batch({**first, "action": "changed"}))
        post("invalid", batch(wire_event(action="")))
        query = http.get("/v1/events", params={"action": "doc.read"}).json()
        said.append(("query", 200, [e["id"] == first["id"] for e in query["events"]]))
        http.post("/_fake/faults", json={"status": 503, "retry_after": 2, "times": 1})
        fault = http.post("/v1/events", content=batch(second))
        said.append(("fault", fault.status_code, fault.headers.get("retry-after")))
        http.post("/_fake/faults", json={"drop": "before_body", "times": 1})
        try:
            http.post("/v1/events", content=batch(second))
            said.append(("drop", 0, "answered"))
        except DROPPED:
            said.append(("drop", 0, "dropped"))
        waited = http.post("/_fake/wait", json={"count": 2, "timeout": 5})
        said.append(("wait", waited.status_code, waited.json()["matched"]))
        stats = http.get("/_fake/stats").json()
        said.append(("stats", 200, stats))
    for index, (step, status, body) in enumerate(said):
        if isinstance(body, dict) and isinstance(body.get("rejected"), list):
            for rejected in body["rejected"]:
                rejected.pop("id")
            said[index] = (step, status, body)
    return said


def test_the_container_answers_like_the_in_process_server(container):
    _, url = container
    with fake_server.serve_in_thread() as server:
        expected = _scenario(server.url)

    assert _scenario(url) == expected


def test_the_container_is_healthy_runs_unprivileged_and_stops_promptly(container):
    name, _ = container

    assert _podman("healthcheck", "run", name, check=False).returncode == 0
    assert _podman("exec", name, "id", "-u").stdout.strip() == "10001"
    started = time.monotonic()
    _podman("stop", "--time", "20", name)
    elapsed = time.monotonic() - started
    state = _podman("inspect", name, "--format", "{{.State.ExitCode}}").stdout.strip()

    assert state == "0"
    # Far below the 20 s after which podman would have had to kill it.
    assert elapsed < 10


def test_the_recorder_contract_holds_against_the_container(container):
    """The conformance suite of auditkit_testing, pointed at the container."""
    _, url = container
    suite = _REPO_ROOT / "tests" / "testing" / "test_conformance.py"

    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(suite),
            "-k",
            "external",
            f"--audit-server-url={url}",
            "-p",
            "no:cacheprovider",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=_COMMAND_TIMEOUT,
        cwd=_REPO_ROOT,
    )

    assert run.returncode == 0, run.stdout + run.stderr
    assert " passed" in run.stdout
    assert "skipped" not in run.stdout
