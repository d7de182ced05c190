"""Imports of optional dependencies, with an error that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["import_extra"]

# The third-party modules behind each extra; an ImportError for any other module is
# a real bug and is raised unchanged.
_EXTRA_MODULES = {
    "testing": ("respx", "hypothesis", "httpx"),
    "server": ("fake_server", "starlette", "uvicorn", "anyio", "h11"),
}


def import_extra(module: str, *, extra: str, feature: str) -> ModuleType:
    """Import ``module``, or explain which extra provides it.

    Args:
        module: The module to import.
        extra: The extra of the auditkit distribution that installs it.
        feature: What needs it, for the message (``"The audit_respx fixture"``).

    Raises:
        ImportError: The module or one of its dependencies is missing; the message
            names ``pip install 'auditkit[extra]'``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing = (exc.name or "").partition(".")[0]
        if missing not in _EXTRA_MODULES.get(extra, ()) and missing != module:
            raise
        raise ImportError(
            f"{feature} needs {missing or module}, which is not installed; install it "
            f"with: pip install 'auditkit[{extra}]'."
        ) from None
