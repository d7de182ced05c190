"""auditkit_testing: make audit behaviour as easy to test as anything else.

The pytest plugin in this package is registered when auditkit is installed; it
imports only pytest and auditkit when it loads. Hypothesis, respx and the fake
server are imported when a fixture or helper first needs them.
"""

from __future__ import annotations

import pytest

# Registered before the import below, so that pytest rewrites the helpers' asserts
# and failures read as the user's own.
pytest.register_assert_rewrite("auditkit_testing._assertions")

from ._assertions import (  # noqa: E402 (the rewrite hook must be registered first)
    AuditAssertionError as AuditAssertionError,
    assert_not_recorded as assert_not_recorded,
    assert_recorded as assert_recorded,
    assert_recorded_in_order as assert_recorded_in_order,
)
from ._matchers import (  # noqa: E402 (after the rewrite hook, as above)
    ANY as ANY,
    ANY_STR as ANY_STR,
    Matcher as Matcher,
    approx_time as approx_time,
    predicate as predicate,
)
from ._memory import (  # noqa: E402 (after the rewrite hook, as above)
    InMemoryRecorder as InMemoryRecorder,
    RecordedOutcome as RecordedOutcome,
)
from ._sources import AuditSource as AuditSource  # noqa: E402 (as above)

__all__ = [
    "ANY",
    "ANY_STR",
    "AuditAssertionError",
    "AuditSource",
    "InMemoryRecorder",
    "Matcher",
    "RecordedOutcome",
    "approx_time",
    "assert_not_recorded",
    "assert_recorded",
    "assert_recorded_in_order",
    "predicate",
]
