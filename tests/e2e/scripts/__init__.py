"""Programs the end-to-end tests run as subprocesses, to test process exit and fork."""

from __future__ import annotations
