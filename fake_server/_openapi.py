"""The wire protocol v1 and the ``/_fake/`` control API as an OpenAPI 3.0 document."""

from __future__ import annotations

import copy
import functools
from typing import Any

from auditkit import __version__

__all__ = ["openapi_document"]

_JSON = "application/json"
_TEXT = {"type": "string"}
_NULLABLE_TEXT = {"type": "string", "nullable": True}
_FILTER_DOCS = {
    "action": "Only events with this action.",
    "actor_id": "Only events whose actor has this id.",
    "actor_type": "Only events whose actor has this type.",
    "target_type": "Only events whose target has this type.",
    "target_id": "Only events whose target has this id.",
    "tenant_id": "Only events of this tenant.",
    "status": "Only events whose result has this status.",
    "since": "Only events that occurred at or after this time (RFC 3339).",
    "until": "Only events that occurred before this time (RFC 3339).",
}


def openapi_document() -> dict[str, Any]:
    """Return the OpenAPI document the server serves at ``/openapi.json``.

    Returns:
        A fresh deep copy, which the caller may change.
    """
    return copy.deepcopy(_build_document())


@functools.cache
def _build_document() -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "auditkit fake audit service",
            "version": __version__,
            "description": (
                "The audit service's wire protocol v1, plus the /_fake/ control API "
                "that tests use to inject faults and inspect what arrived. Every "
                "endpoint honours the X-Fake-Namespace header: a namespace has its "
                "own events, faults, journal and counts, so tests sharing a server "
                "stay apart. Without the header a request uses the namespace "
                '"default".'
            ),
        },
        "paths": _paths(),
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "parameters": {"Namespace": _namespace_parameter()},
            "schemas": _schemas(),
        },
    }


def _paths() -> dict[str, Any]:
    return {
        "/healthz": {
            "get": _operation("Health check.", {"200": _ref_response("Health")})
        },
        "/v1/limits": {
            "get": _operation(
                "The batch and event limits the service enforces.",
                {"200": _ref_response("Limits")},
            )
        },
        "/v1/events": {"post": _ingest_operation(), "get": _query_operation()},
        "/_fake/reset": {
            "post": _operation(
                "Forget the namespace's events, faults, journal and counts.",
                {"200": _ref_response("Reset")},
            )
        },
        "/_fake/faults": {
            "post": _operation(
                "Queue a fault for the next `times` ingest requests; faults apply "
                "in the order they were queued.",
                {"200": _ref_response("FaultList")},
                body="FaultRequest",
            ),
            "get": _operation(
                "The faults still queued.", {"200": _ref_response("FaultList")}
            ),
            "delete": _operation(
                "Clear the queued faults.", {"200": _ref_response("FaultList")}
            ),
        },
        "/_fake/requests": {
            "get": _operation(
                "The journal of ingest requests, oldest first.",
                {"200": _ref_response("Journal")},
            )
        },
        "/_fake/stats": {
            "get": _operation(
                "Counts for the namespace.", {"200": _ref_response("Stats")}
            )
        },
        "/_fake/wait": {
            "post": _operation(
                "Answer as soon as `count` matching events are stored, or with 408 "
                "at the timeout.",
                {
                    "200": _ref_response("WaitResult"),
                    "408": _ref_response("WaitTimeout"),
                    "503": _ref_response(
                        "WaitTimeout", "The server stopped before the count."
                    ),
                },
                body="WaitRequest",
            )
        },
    }


def _ingest_operation() -> dict[str, Any]:
    responses = {
        "200": _ref_response("IngestResult", "Stored; rejected events are listed."),
        "401": _ref_response("Error", "Missing or unknown API key."),
        "408": _ref_response("Error", "The body stopped arriving before its end."),
        "413": _ref_response("Error", "Body or batch too large; split it."),
        "415": _ref_response("Error", "Not JSON, or an encoding other than gzip."),
        "422": _ref_response("IngestResult", "Every event was rejected."),
        "429": _ref_response("Error", "Injected fault; see Retry-After."),
        "503": _ref_response("Error", "Injected fault; see Retry-After."),
    }
    operation = _operation(
        "Ingest a batch of events, de-duplicated on their ids. The body may be "
        "gzip-encoded (Content-Encoding: gzip).",
        responses,
        body="IngestRequest",
    )
    operation["security"] = [{"bearer": []}]
    return operation


def _query_operation() -> dict[str, Any]:
    filters = [
        {
            "name": name,
            "in": "query",
            "required": False,
            "description": doc,
            "schema": {"type": "string", "minLength": 1},
        }
        for name, doc in _FILTER_DOCS.items()
    ]
    filters[6]["schema"] = {"type": "string", "enum": ["success", "denied", "error"]}
    filters[7]["schema"] = filters[8]["schema"] = {
        "type": "string",
        "format": "date-time",
    }
    paging = [
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "schema": {
                "type": "integer",
                "minimum": 1,
                "maximum": 1000,
                "default": 100,
            },
        },
        {
            "name": "cursor",
            "in": "query",
            "required": False,
            "description": "The next_cursor of the previous page.",
            "schema": _TEXT,
        },
    ]
    operation = _operation(
        "Stored events, oldest first, by arrival order. A key bound to a tenant "
        "sees only that tenant's events.",
        {
            "200": _ref_response("EventPage"),
            "401": _ref_response("Error", "Missing or unknown API key."),
            "403": _ref_response(
                "Error", "tenant_id names another tenant than the key's."
            ),
        },
    )
    operation["parameters"] = [*operation["parameters"], *filters, *paging]
    operation["security"] = [{"bearer": []}]
    return operation


def _operation(
    summary: str, responses: dict[str, Any], *, body: str | None = None
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "parameters": [{"$ref": "#/components/parameters/Namespace"}],
        "responses": {
            **responses,
            "400": _ref_response("Error", "Malformed request."),
            "default": _ref_response("Error", "Another error."),
        },
    }
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {_JSON: {"schema": _ref(body)}},
        }
    return operation


def _namespace_parameter() -> dict[str, Any]:
    return {
        "name": "X-Fake-Namespace",
        "in": "header",
        "required": False,
        "description": (
            "Isolates tests that share one server: the request sees and changes "
            "only this namespace's events, faults, journal and counts."
        ),
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"},
    }


def _schemas() -> dict[str, Any]:
    party = _object(
        {"type": _TEXT, "id": _TEXT, "name": _NULLABLE_TEXT, "metadata": _metadata()},
        required=["type", "id"],
        nullable=True,
    )
    return {
        "Party": party,
        "Result": _object(
            {
                "status": {"type": "string", "enum": ["success", "denied", "error"]},
                "code": {"type": "integer", "nullable": True},
                "message": _NULLABLE_TEXT,
            },
            required=["status"],
            nullable=True,
        ),
        "RequestInfo": _object(
            {
                name: _NULLABLE_TEXT
                for name in ("id", "method", "path", "ip", "user_agent")
            },
            nullable=True,
        ),
        "Event": _object(
            {
                "id": {"type": "string", "format": "uuid"},
                "action": {"type": "string", "minLength": 1},
                "occurred_at": {"type": "string", "format": "date-time"},
                "actor": _ref("Party"),
                "target": _ref("Party"),
                "result": _ref("Result"),
                "tenant_id": _NULLABLE_TEXT,
                "request": _ref("RequestInfo"),
                "metadata": _metadata(),
            },
            required=["id", "action", "occurred_at"],
        ),
        "IngestRequest": _object(
            {"events": {"type": "array", "items": _ref("Event")}}, required=["events"]
        ),
        "Rejection": _object(
            {
                "index": {"type": "integer"},
                "id": _NULLABLE_TEXT,
                "code": _TEXT,
                "field": _TEXT,
                "error": _TEXT,
            },
            required=["index", "id", "code", "field", "error"],
        ),
        "IngestResult": _object(
            {
                "accepted": {"type": "integer"},
                "duplicates": {"type": "integer"},
                "rejected": {"type": "array", "items": _ref("Rejection")},
            },
            required=["accepted", "duplicates", "rejected"],
        ),
        "EventPage": _object(
            {
                "events": {"type": "array", "items": _ref("Event")},
                "next_cursor": _NULLABLE_TEXT,
            },
            required=["events", "next_cursor"],
        ),
        "Limits": _object(
            {
                "max_batch_events": {"type": "integer"},
                "max_batch_bytes": {"type": "integer"},
                "max_event_bytes": {"type": "integer"},
            },
            required=["max_batch_events", "max_batch_bytes", "max_event_bytes"],
        ),
        "Error": _open_object(
            {"error": _TEXT, "code": _TEXT, "field": _NULLABLE_TEXT},
            required=["error", "code"],
        ),
        "Health": _object({"status": {"type": "string", "enum": ["ok"]}}, ["status"]),
        "Reset": _object({"reset": {"type": "boolean"}, "namespace": _TEXT}, ["reset"]),
        **_fault_schemas(),
        **_control_schemas(),
    }


def _fault_schemas() -> dict[str, Any]:
    seconds = {"type": "number", "minimum": 0, "nullable": True}
    fault = {
        "status": {"type": "integer", "minimum": 200, "maximum": 599, "nullable": True},
        "retry_after": {**seconds, "maximum": 86400},
        "delay": {**seconds, "maximum": 60},
        "drop": {
            "type": "string",
            "enum": ["before_body", "after_body"],
            "nullable": True,
        },
    }
    return {
        "FaultRequest": _object(
            {**fault, "times": {"type": "integer", "minimum": 1, "maximum": 1000000}},
            required=["times"],
        ),
        "Fault": _object(
            {**fault, "times": {"type": "integer"}},
            required=["status", "retry_after", "delay", "drop", "times"],
        ),
        "FaultList": _object(
            {"faults": {"type": "array", "items": _ref("Fault")}}, ["faults"]
        ),
    }


def _control_schemas() -> dict[str, Any]:
    counter = {"type": "integer", "minimum": 0}
    filters = {
        name: {"type": "string", "minLength": 1, "description": doc}
        for name, doc in _FILTER_DOCS.items()
    }
    filters["status"] = {"type": "string", "enum": ["success", "denied", "error"]}
    filters["since"] = filters["until"] = {"type": "string", "format": "date-time"}
    return {
        "JournalEntry": _object(
            {
                "method": _TEXT,
                "path": _TEXT,
                "headers": {"type": "object", "additionalProperties": _TEXT},
                "events": counter,
                "status": {
                    "oneOf": [
                        {"type": "integer"},
                        {"type": "string", "enum": ["dropped"]},
                    ],
                    "nullable": True,
                },
                "fault": {"allOf": [_ref("Fault")], "nullable": True},
                "at": {"type": "string", "format": "date-time"},
            },
            required=["method", "path", "headers", "events", "status", "at"],
            open_=True,
        ),
        "Journal": _object(
            {"requests": {"type": "array", "items": _ref("JournalEntry")}}, ["requests"]
        ),
        "Stats": _object(
            {
                name: counter
                for name in (
                    "events",
                    "requests",
                    "accepted",
                    "duplicates",
                    "rejected",
                    "dropped",
                    "faults_applied",
                    "faults_pending",
                )
            },
            required=["events", "requests", "accepted", "duplicates", "rejected"],
        ),
        "WaitRequest": _object(
            {
                "count": {"type": "integer", "minimum": 0, "maximum": 1000000},
                "timeout": {"type": "number", "minimum": 0, "maximum": 300},
                **filters,
            },
            required=["count"],
        ),
        "WaitResult": _object(
            {"matched": counter, "events": {"type": "array", "items": _ref("Event")}},
            required=["matched", "events"],
        ),
        "WaitTimeout": _open_object(
            {"error": _TEXT, "code": _TEXT, "matched": counter},
            required=["error", "matched"],
        ),
    }


def _object(
    properties: dict[str, Any],
    required: list[str] | None = None,
    *,
    nullable: bool = False,
    open_: bool = False,
) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": open_,
    }
    if required:
        schema["required"] = required
    if nullable:
        schema["nullable"] = True
    return schema


def _open_object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return _object(properties, required, open_=True)


def _metadata() -> dict[str, Any]:
    return {"type": "object", "additionalProperties": True}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _ref_response(name: str, description: str = "OK.") -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": _ref(name)}}}
