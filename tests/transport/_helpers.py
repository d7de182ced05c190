"""Helpers shared by the transport tests: batches, a test key, the mocked service."""

from __future__ import annotations

import gzip
import json
from typing import Any

import httpx

import auditkit
from auditkit._encoding import encode_event

__all__ = ["API_KEY", "ENDPOINT", "EVENTS_URL", "make_batch", "sent_events"]

ENDPOINT = "https://audit.example.test"
EVENTS_URL = ENDPOINT + "/v1/events"
# Distinctive enough that finding it in any output can't be a coincidence.
API_KEY = "ak_live_9fQ2xTzSECRETv7Lm3"


def make_batch(count: int, *, padding: int = 0) -> auditkit.Batch:
    """Return a batch of ``count`` valid events, each with ``padding`` extra bytes."""
    events = []
    for number in range(count):
        event = auditkit.Event(
            action="document.read",
            actor=auditkit.Actor("user", f"user-{number}"),
            target=auditkit.Target("document", f"doc-{number}"),
            result=auditkit.Result("success"),
            metadata={"padding": "x" * padding, "number": number},
            id=auditkit.new_event_id(),
        )
        events.append(event.to_wire())
    return auditkit.Batch(events, [encode_event(wire) for wire in events])


def sent_events(request: httpx.Request) -> list[dict[str, Any]]:
    """Return the events a captured ingest request carried, gzip or not."""
    body = request.content
    if request.headers.get("content-encoding") == "gzip":
        body = gzip.decompress(body)
    data = json.loads(body)
    assert list(data) == ["events"]
    return list(data["events"])
