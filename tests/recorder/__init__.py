"""Tests of the buffered recorder, against transports written for the tests."""

from __future__ import annotations
