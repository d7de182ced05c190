"""Fixtures for the guarantee properties."""

from __future__ import annotations

import hypothesis.core
import pytest
from hypothesis.vendor import pretty


@pytest.fixture(autouse=True)
def _readable_counterexamples(monkeypatch: pytest.MonkeyPatch) -> None:
    """Print the values of a falsifying example, not blanks.

    The schemathesis pytest plugin swaps hypothesis' printer for one that prints
    nothing, to speed up its own runs; these properties are only useful if a
    failure shows the shrunk scenario.
    """
    monkeypatch.setattr(
        hypothesis.core, "RepresentationPrinter", pretty.RepresentationPrinter
    )
