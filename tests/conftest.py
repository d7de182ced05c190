"""Shared test configuration: the hypothesis profiles and the soak options.

``ci`` (the default) is quick enough for every run; ``thorough`` explores far more
examples for a long run: ``HYPOTHESIS_PROFILE=thorough python3 -m pytest tests``.
Neither profile changes anything but hypothesis settings.

The end-to-end options are declared here rather than in ``tests/e2e`` so that pytest
knows them however it is started: ``python3 -m pytest --soak-long`` from the root
works as well as ``python3 -m pytest tests/e2e --soak-long``.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

# Recorder tests start threads and event loops, so an example can take a while on
# a loaded CI machine: no per-example deadline, and no complaint about slow data.
settings.register_profile(
    "ci",
    max_examples=25,
    deadline=None,
    derandomize=False,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile(
    "thorough",
    max_examples=1_000,
    deadline=None,
    derandomize=False,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("auditkit-e2e", "auditkit end-to-end tests")
    group.addoption(
        "--soak-long",
        action="store_true",
        default=False,
        help="Run the long fault soak and longer fuzzing (also AUDITKIT_SOAK=long).",
    )
    group.addoption(
        "--soak-seed",
        type=int,
        default=None,
        help="Seed of the fault schedule, to replay a failure (also "
        "AUDITKIT_SOAK_SEED).",
    )
