"""Shared test configuration: the hypothesis profiles and the soak options.

``ci`` (the default) is quick enough for every run; ``thorough`` explores far more
examples for a long run: ``HYPOTHESIS_PROFILE=thorough python3 -m pytest tests``.
Besides hypothesis settings, ``thorough`` only lifts the per-test timeout.

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
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)

# Seconds a test may take under the thorough profile: 40 times the examples of the
# quick one outlast the suite's per-test timeout by design.
_THOROUGH_TIMEOUT = 1_800


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
    group.addoption(
        "--soak-schedule",
        default=None,
        metavar="PATH_OR_JSON",
        help="A fault schedule for the soak instead of the seeded one: a JSON list "
        'of {"at": s, "fault": {...}} and {"at": s, "restart": down_for} steps, '
        "or a file holding one (also AUDITKIT_SOAK_SCHEDULE).",
    )


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    if PROFILE != "thorough":
        return
    for item in items:
        # Appended, so a timeout a test sets for itself still comes first.
        item.add_marker(pytest.mark.timeout(_THOROUGH_TIMEOUT))
