"""Options and fixtures of the end-to-end tests.

``--soak-long`` (or ``AUDITKIT_SOAK=long``) runs the long variant of the fault soak
and of the fuzzers; ``--soak-seed N`` (or ``AUDITKIT_SOAK_SEED=N``) replays a fault
schedule; ``--soak-schedule`` (or ``AUDITKIT_SOAK_SCHEDULE``) replaces the seeded
fault schedule with one written elsewhere. The options are declared in
``tests/conftest.py``. Every test starts its
own servers on 127.0.0.1 and stops them, so the tests are safe under pytest-xdist.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from ._harness import FaultStep, ServerProcess, SoakSettings, load_plan

# Seconds each test of the long variant may take.
_LONG_TIMEOUT = 1_200


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "e2e: end-to-end test over real sockets on 127.0.0.1"
    )


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    # The long variant outlasts the suite's per-test timeout by design.
    if not is_long_run(config):
        return
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.timeout(_LONG_TIMEOUT))


def is_long_run(config: pytest.Config) -> bool:
    """Whether the long variant was asked for, by option or environment."""
    if config.getoption("--soak-long", default=False):
        return True
    return os.environ.get("AUDITKIT_SOAK", "").strip().lower() == "long"


def soak_seed(config: pytest.Config) -> int:
    """The seed given by option or environment, or a fresh random one."""
    seed = config.getoption("--soak-seed", default=None)
    if seed is not None:
        return int(seed)
    from_env = os.environ.get("AUDITKIT_SOAK_SEED", "").strip()
    if from_env:
        return int(from_env)
    return random.SystemRandom().randrange(2**32)


@pytest.fixture
def soak_settings(request: pytest.FixtureRequest) -> SoakSettings:
    """The soak's size and seed for this run; the seed is printed for replay."""
    seed = soak_seed(request.config)
    settings = (
        SoakSettings.long(seed)
        if is_long_run(request.config)
        else (SoakSettings.ci(seed))
    )
    # Captured output is shown with a failure: this is how a failing seed is found.
    print(f"auditkit soak: {settings.describe()} (replay with --soak-seed={seed})")
    return settings


@pytest.fixture
def soak_plan(
    request: pytest.FixtureRequest, soak_settings: SoakSettings
) -> list[FaultStep] | None:
    """The fault schedule given from outside, or None for the seeded one."""
    source = request.config.getoption("--soak-schedule", default=None)
    if source is None:
        source = os.environ.get("AUDITKIT_SOAK_SCHEDULE", "").strip() or None
    if source is None:
        return None
    plan = load_plan(source, soak_settings)
    print(f"auditkit soak: {len(plan)} steps from the given fault schedule")
    return plan


@pytest.fixture
def long_run(request: pytest.FixtureRequest) -> bool:
    """Whether the long variant was asked for."""
    return is_long_run(request.config)


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[ServerProcess]:
    """A fake server in a subprocess with a SQLite store, on a fixed free port.

    Events survive :meth:`ServerProcess.restart`. Stopped after the test.
    """
    server = ServerProcess(db=tmp_path / "events.db", log_dir=tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
