"""The version of auditkit: read by the build and sent in the ``User-Agent``."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
