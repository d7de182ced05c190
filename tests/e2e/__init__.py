"""End-to-end tests: the real SDK, the real fake server, real sockets on 127.0.0.1."""

from __future__ import annotations
