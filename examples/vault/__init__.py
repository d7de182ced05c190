"""A secret vault audited with auditkit: see ``README.md`` in this folder."""

from __future__ import annotations

from .app import DEMO_TOKENS, Secret, User, Vault, create_app

__all__ = ["DEMO_TOKENS", "Secret", "User", "Vault", "create_app"]
