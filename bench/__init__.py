"""Benchmarks of auditkit beside the SDKs a team would otherwise use.

Run everything with ``python -m bench`` (a few minutes) or ``python -m bench
--quick`` (tiny counts). See ``bench/RESULTS.md`` for the latest results and how to
read them.
"""

from __future__ import annotations

__all__: list[str] = []
