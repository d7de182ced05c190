"""fake_server: a fake audit service for tests, in-process or as a container."""

from __future__ import annotations

__all__: list[str] = []
