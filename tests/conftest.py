"""Shared test configuration: the hypothesis profiles.

``ci`` (the default) is quick enough for every run; ``thorough`` explores far more
examples for a long run: ``HYPOTHESIS_PROFILE=thorough python3 -m pytest tests``.
Neither profile changes anything but hypothesis settings.
"""

from __future__ import annotations

import os

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
