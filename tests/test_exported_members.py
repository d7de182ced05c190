"""The public surface: every name in ``__all__`` exists, and nothing else is public."""

from __future__ import annotations

import auditkit
import auditkit_testing


def _public_names(module: object) -> set[str]:
    return {
        name
        for name in vars(module)
        if not name.startswith("_") and not _is_submodule(module, name)
    } | ({"__version__"} if hasattr(module, "__version__") else set())


def _is_submodule(module: object, name: str) -> bool:
    # Submodules (auditkit.asgi) and the `annotations` feature of the
    # `from __future__` import are attributes, not part of the API.
    value = getattr(module, name)
    return type(value).__name__ in {"module", "_Feature"}


def test_auditkit_all_lists_exactly_the_public_names() -> None:
    assert set(auditkit.__all__) == _public_names(auditkit)


def test_auditkit_all_is_sorted() -> None:
    assert auditkit.__all__ == sorted(auditkit.__all__)


def test_auditkit_testing_all_lists_exactly_the_public_names() -> None:
    assert set(auditkit_testing.__all__) == _public_names(auditkit_testing)


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
