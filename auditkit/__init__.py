"""auditkit: audit events for Python services.

Record who did what, to which target, with what result, from request handlers and
jobs. ``record()`` returns in microseconds and never fails the request; a background
worker batches the events and ships them to the audit service.
"""

from __future__ import annotations

from ._buffered import BufferedRecorder as BufferedRecorder
from ._config import Limits as Limits
from ._events import (
    Actor as Actor,
    Event as Event,
    RequestInfo as RequestInfo,
    Result as Result,
    Target as Target,
)
from ._exceptions import (
    AuditkitError as AuditkitError,
    ConfigurationError as ConfigurationError,
    InvalidEventError as InvalidEventError,
    RecorderStateError as RecorderStateError,
    TransportError as TransportError,
)
from ._http import HttpTransport as HttpTransport
from ._ids import new_event_id as new_event_id
from ._outcome import DropReason as DropReason, Outcome as Outcome, Policy as Policy
from ._recorder import Recorder as Recorder, Stats as Stats
from ._scope import (
    Scope as Scope,
    current_event as current_event,
    current_scope as current_scope,
    scope as scope,
)
from ._transport import (
    Batch as Batch,
    SendResult as SendResult,
    SendStatus as SendStatus,
    Transport as Transport,
)
from ._version import __version__ as __version__

__all__ = [
    "Actor",
    "AuditkitError",
    "Batch",
    "BufferedRecorder",
    "ConfigurationError",
    "DropReason",
    "Event",
    "HttpTransport",
    "InvalidEventError",
    "Limits",
    "Outcome",
    "Policy",
    "Recorder",
    "RecorderStateError",
    "RequestInfo",
    "Result",
    "Scope",
    "SendResult",
    "SendStatus",
    "Stats",
    "Target",
    "Transport",
    "TransportError",
    "__version__",
    "current_event",
    "current_scope",
    "new_event_id",
    "scope",
]
