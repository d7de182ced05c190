"""The served OpenAPI document: valid, and honoured by the server under fuzzing."""

# This folder is not a package, so mypy's override for tests.* misses it:
# mypy: allow-untyped-defs, allow-incomplete-defs
# mypy: allow-untyped-calls, check-untyped-defs

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import fake_server

# Waits and faults are left out of the fuzzing: a generated wait may block for its
# whole timeout, and a generated fault would slow or break the requests after it.
# Their validation is tested directly in test_fake_control.py.
schema = schemathesis.openapi.from_dict(fake_server.openapi_document()).exclude(
    path_regex="^/_fake/(wait|faults)$", method="POST"
)
_HTTP_PARSER_REJECTION = "Invalid HTTP request received."
_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def server():
    with fake_server.serve_in_thread() as handle:
        yield handle


def test_the_served_document_is_valid_openapi(server):
    document = httpx.get(f"{server.url}/openapi.json").json()

    validate(document)
    assert document == fake_server.openapi_document()
    assert "X-Fake-Namespace" in str(document["components"]["parameters"])


@schema.parametrize()
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_server_answers_every_generated_request_as_documented(case, server):
    response = case.call(base_url=server.url, timeout=10)

    if response.text == _HTTP_PARSER_REJECTION:
        # uvicorn refused the bytes (a generated Transfer-Encoding, say) before the
        # application saw them; that answer is HTTP's, not the protocol's.
        assert response.status_code == 400
        return
    case.validate_response(response, checks=_CHECKS)
