"""The public surface: every name in ``__all__`` exists, and nothing else is public."""

from __future__ import annotations

from types import ModuleType

import auditkit
import auditkit_testing


def _public_names(module: ModuleType) -> set[str]:
    """Names the module defines for users: anything public whose home is the package.

    Imports of other libraries (``Any``, ``pytest``) and submodules are not part of
    the surface; names resolved lazily must still be listed in ``__all__``.
    """
    names = {"__version__"} if hasattr(module, "__version__") else set()
    for name, value in vars(module).items():
        if name.startswith("_") or isinstance(value, ModuleType):
            continue
        home = getattr(value, "__module__", None) or type(value).__module__
        if home.split(".")[0] == module.__name__:
            names.add(name)
    return names


def test_auditkit_all_lists_exactly_the_public_names() -> None:
    assert set(auditkit.__all__) == _public_names(auditkit)
    for name in auditkit.__all__:
        getattr(auditkit, name)


def test_auditkit_all_is_sorted() -> None:
    assert auditkit.__all__ == sorted(auditkit.__all__)


def test_auditkit_testing_all_lists_exactly_the_public_names() -> None:
    assert _public_names(auditkit_testing) <= set(auditkit_testing.__all__)
    for name in auditkit_testing.__all__:
        getattr(auditkit_testing, name)  # the lazy ones resolve too


def test_contract_names_import_from_auditkit() -> None:
    """The names the design contract promises are importable from the package."""
    for name in (
        "Event",
        "Actor",
        "Target",
        "Result",
        "RequestInfo",
        "Outcome",
        "Policy",
        "Recorder",
        "Stats",
        "Scope",
        "scope",
        "current_event",
    ):
        assert hasattr(auditkit, name), name
    assert {member.name for member in auditkit.Outcome} == {
        "ENQUEUED",
        "DEFERRED",
        "SKIPPED",
        "DROPPED",
        "CANCELLED",
        "TIMED_OUT",
        "INVALID",
        "CLOSED",
    }
    assert {member.name for member in auditkit.Policy} == {
        "DROP_NEWEST",
        "DROP_OLDEST",
        "BLOCK",
    }


def test_every_public_name_has_a_docstring() -> None:
    for module in (auditkit, auditkit_testing):
        for name in module.__all__:
            value = getattr(module, name)
            if name.startswith("__") or isinstance(value, str):
                continue
            assert getattr(value, "__doc__", None), f"{module.__name__}.{name}"
