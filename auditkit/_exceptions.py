"""The exceptions auditkit raises.

Recording never raises for a runtime condition (a full buffer, a closed recorder, bad
content, cancellation): those are reported as an :class:`~auditkit.Outcome`. The
exceptions below are for programming errors and for helpers that validate on demand::

    AuditkitError
    ├── ConfigurationError  (ValueError)    a bad constructor argument or option
    ├── InvalidEventError   (ValueError)    content that can't be sent as it is
    ├── RecorderStateError  (RuntimeError)  a call the recorder's state forbids
    └── TransportError      (OSError)       the audit service could not be reached
"""

from __future__ import annotations

__all__ = [
    "AuditkitError",
    "ConfigurationError",
    "InvalidEventError",
    "RecorderStateError",
    "TransportError",
]


class AuditkitError(Exception):
    """The root of every exception auditkit raises."""


class ConfigurationError(AuditkitError, ValueError):
    """A constructor argument or option has a value auditkit can't work with."""


class InvalidEventError(AuditkitError, ValueError):
    """An event's content can't be sent: it isn't JSON, or it breaks a limit.

    Args:
        field: The dotted path of the offending field, for example
            ``"metadata.when"`` or ``"actor.id"``; ``""`` for the event as a whole.
        code: A short machine-readable code, such as ``"not_json"``,
            ``"too_long"`` or ``"too_large"``; the fake server reports the same codes.
        message: The reason as a sentence a person can act on.
    """

    def __init__(self, field: str, code: str, message: str) -> None:
        self.field = field
        self.code = code
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)


class RecorderStateError(AuditkitError, RuntimeError):
    """The recorder's state forbids the call, for example configuring it after use."""


class TransportError(AuditkitError, OSError):
    """The audit service could not be reached or answered in a way auditkit can't use.

    The message never contains the API key.
    """
