"""Where the assertions read events from: recorders, fixtures, lists, your own."""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Protocol, final, runtime_checkable

from auditkit import Event

from ._memory import InMemoryRecorder, RecordedOutcome

__all__ = ["AuditSource", "SourceView", "register_alias", "view_source"]

#: The condition a wait hook waits for: it gets the events held so far.
Condition = Callable[[Sequence[Event]], bool]

# Objects that are not sources themselves but stand for one, such as the recorder
# the audit_buffered_recorder fixture makes, which stands for its server.
_ALIASES: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


@runtime_checkable
class AuditSource(Protocol):
    """What the assertions can read events from.

    Implement :meth:`audit_events` to make your own capture usable with
    :func:`~auditkit_testing.assert_recorded`. Three more methods are optional and
    looked up by name:

    - ``audit_outcomes() -> Sequence[RecordedOutcome]``: record calls that stored
      nothing (skipped, dropped, invalid...), shown when nothing matches.
    - ``audit_wait(condition, timeout) -> bool``: block until
      ``condition(events)`` holds or ``timeout`` seconds pass, waking on new
      events; without it, ``timeout=`` is refused for the source.
    - ``audit_diagnostics() -> Sequence[str]``: extra lines for failure messages,
      such as requests a server refused.
    """

    def audit_events(self) -> Sequence[Event]:
        """Return the events held so far, oldest first."""
        ...


@final
@dataclasses.dataclass(frozen=True, slots=True)
class SourceView:
    """A uniform view of any supported source."""

    name: str
    events: Callable[[], Sequence[Event]]
    outcomes: Callable[[], Sequence[RecordedOutcome]]
    wait: Callable[[Condition, float], bool] | None
    diagnostics: Callable[[], Sequence[str]]


def view_source(source: Any) -> SourceView:
    """Return a :class:`SourceView` of ``source``.

    Raises:
        TypeError: ``source`` is not something events can be read from.
    """
    try:
        source = _ALIASES.get(source, source)
    except TypeError:
        pass  # unhashable or not weakly referable: not an alias
    if isinstance(source, InMemoryRecorder):
        return SourceView(
            "the in-memory recorder",
            lambda: source.events,
            lambda: source.outcomes,
            source.wait_for,
            tuple,
        )
    if isinstance(source, list | tuple):
        return _view_list(source)
    if isinstance(source, AuditSource):
        return SourceView(
            getattr(source, "audit_source_name", type(source).__name__),
            source.audit_events,
            getattr(source, "audit_outcomes", tuple),
            getattr(source, "audit_wait", None),
            getattr(source, "audit_diagnostics", tuple),
        )
    raise TypeError(
        f"auditkit: can't read events from {type(source).__name__}. Pass the "
        "audit_recorder, fake_audit_server or audit_respx fixture, an "
        "InMemoryRecorder, a list of auditkit.Event, or an object with an "
        "audit_events() method. (A BufferedRecorder only sends events: assert on "
        "the server or the mock it sends them to.)"
    )


def register_alias(obj: Any, source: Any) -> None:
    """Make the assertions read ``source`` when given ``obj``, while ``obj`` lives."""
    _ALIASES[obj] = source


def _view_list(events: Sequence[Any]) -> SourceView:
    for index, item in enumerate(events):
        if not isinstance(item, Event):
            raise TypeError(
                f"auditkit: item {index} of the list is a {type(item).__name__}, "
                "not an auditkit.Event."
            )
    snapshot = tuple(events)
    return SourceView("the list", lambda: snapshot, tuple, None, tuple)
