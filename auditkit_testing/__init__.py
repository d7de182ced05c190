"""auditkit_testing: make audit behaviour as easy to test as anything else.

The pytest plugin in this package is registered when auditkit is installed; it
imports only pytest and auditkit when it loads. Hypothesis, respx and the fake
server are imported when a fixture or helper first needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
from ._server import FakeAuditServer as FakeAuditServer  # noqa: E402 (as above)
from ._sources import AuditSource as AuditSource  # noqa: E402 (as above)

if TYPE_CHECKING:
    from ._respx import AuditRespx as AuditRespx, CapturedRequest as CapturedRequest

__all__ = [
    "ANY",
    "ANY_STR",
    "AuditAssertionError",
    "AuditRespx",
    "AuditSource",
    "CapturedRequest",
    "FakeAuditServer",
    "InMemoryRecorder",
    "Matcher",
    "RecordedOutcome",
    "approx_time",
    "assert_not_recorded",
    "assert_recorded",
    "assert_recorded_in_order",
    "predicate",
]


# Limitation: AuditRespx and CapturedRequest are resolved on first access, because
# importing them imports respx; ``from auditkit_testing import *`` therefore needs
# the testing extra.
def __getattr__(name: str) -> Any:
    if name in ("AuditRespx", "CapturedRequest"):
        from . import _respx

        return getattr(_respx, name)
    raise AttributeError(f"module 'auditkit_testing' has no attribute {name!r}")
