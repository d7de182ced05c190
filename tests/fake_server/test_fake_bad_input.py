"""No input, however malformed, gets a 5xx or changes what is stored."""

# This folder is not a package, so mypy's override for tests.* misses it:
# mypy: allow-untyped-defs, allow-incomplete-defs
# mypy: allow-untyped-calls, check-untyped-defs

from __future__ import annotations

import gzip
import json

import pytest
from fake_server_support import fast_client, unique_namespace, wire_event
from hypothesis import HealthCheck, given, settings, strategies as st

import fake_server

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=8,
)
_EVENT_FIELDS = st.dictionaries(
    st.sampled_from([*wire_event(), "extra"]), _JSON, max_size=9
)
_BODIES = st.one_of(
    st.binary(max_size=300),
    _JSON.map(lambda value: json.dumps(value).encode()),
    st.lists(_EVENT_FIELDS, max_size=5).map(
        lambda events: json.dumps({"events": events}).encode()
    ),
    st.lists(st.builds(lambda extra: {**wire_event(), **extra}, _EVENT_FIELDS)).map(
        lambda events: json.dumps({"events": events}).encode()
    ),
)


@pytest.fixture(scope="module")
def server():
    with fake_server.serve_in_thread() as handle:
        yield handle


@pytest.fixture(scope="module")
def http(server):
    with fast_client(base_url=server.url) as client:
        yield client


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    body=_BODIES,
    compress=st.booleans(),
    content_type=st.sampled_from(
        ["application/json", "text/plain", "", "application/JSON"]
    ),
    path=st.sampled_from(["/v1/events", "/_fake/faults", "/_fake/wait"]),
)
def test_malformed_requests_never_get_a_server_error(
    http, body, compress, content_type, path
):
    headers = {"authorization": "Bearer k", "content-type": content_type}
    if compress:
        body = gzip.compress(body)
        headers["content-encoding"] = "gzip"
    if path == "/_fake/wait":
        body = body[:0] + b'{"count": 0, "timeout": 0}' if body[:1] != b"{" else body
    headers["x-fake-namespace"] = unique_namespace()

    response = http.post(path, content=body, headers=headers)
    stored = http.get("/_fake/stats", headers=headers).json()["events"]

    assert response.status_code < 500
    assert response.headers["content-type"] == "application/json"
    if response.status_code >= 400 and path == "/v1/events":
        assert stored == 0
