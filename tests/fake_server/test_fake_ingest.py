"""Ingest: validation, de-duplication, partial success, limits and bad bodies."""

# This folder is not a package, so mypy's override for tests.* misses it:
# mypy: allow-untyped-defs, allow-incomplete-defs
# mypy: allow-untyped-calls, check-untyped-defs

from __future__ import annotations

import gzip
import socket
import zlib

import httpx
import pytest
from fake_server_support import attach, batch, post_events, running, wire_event

import fake_server
from auditkit import InvalidEventError
from auditkit._wire import parse_wire_event

GZIP = {"content-encoding": "gzip"}


@pytest.fixture(scope="module")
def server():
    with fake_server.serve_in_thread() as handle:
        yield handle


@pytest.fixture
def r(server):
    with attach(server) as attached:
        yield attached


def test_valid_events_are_accepted_and_stored(r):
    response = post_events(
        r.http, batch(*[wire_event(action=f"a.{i}") for i in range(3)])
    )

    assert response.status_code == 200
    assert response.json() == {"accepted": 3, "duplicates": 0, "rejected": []}
    assert [e.action for e in r.client.events()] == ["a.0", "a.1", "a.2"]


def test_same_id_with_same_content_is_a_duplicate(r):
    event = wire_event()
    post_events(r.http, batch(event))

    response = post_events(r.http, batch(event, event))

    assert response.json() == {"accepted": 0, "duplicates": 2, "rejected": []}
    assert len(r.client.events()) == 1


def test_same_id_with_other_content_is_rejected_as_id_conflict(r):
    event = wire_event()
    post_events(r.http, batch(event))

    response = post_events(r.http, batch({**event, "action": "other"}, wire_event()))

    body = response.json()
    assert response.status_code == 200
    assert body["accepted"] == 1
    assert body["rejected"] == [
        {
            "index": 0,
            "id": event["id"],
            "code": "id_conflict",
            "field": "id",
            "error": body["rejected"][0]["error"],
        }
    ]
    assert [e.action for e in r.client.events()] == ["secret.read"] * 2


def test_rejections_carry_the_same_code_and_field_as_the_sdk(r):
    bad = [
        wire_event(result={"status": "maybe"}),
        wire_event(surprise=1),
        wire_event(metadata={"deep": {"x": [1, {"y": "\ud800"}]}}),
        wire_event(actor={"type": "user", "id": 7}),
        wire_event(occurred_at="yesterday"),
        wire_event(metadata={"big": "x" * 70_000}),
    ]
    expected = []
    for index, event in enumerate(bad, start=1):
        with pytest.raises(InvalidEventError) as caught:
            parse_wire_event(event)
        expected.append((index, caught.value.code, caught.value.field))

    response = post_events(r.http, batch(wire_event(), *bad))

    body = response.json()
    assert response.status_code == 200
    assert body["accepted"] == 1
    assert [(x["index"], x["code"], x["field"]) for x in body["rejected"]] == expected
    assert all(x["error"] for x in body["rejected"])


def test_every_event_rejected_answers_422_with_the_same_body(r):
    response = post_events(r.http, batch(wire_event(action=""), wire_event(id="x")))

    assert response.status_code == 422
    body = response.json()
    assert body["accepted"] == 0
    assert [(x["code"], x["field"]) for x in body["rejected"]] == [
        ("empty", "action"),
        ("bad_format", "id"),
    ]
    assert r.client.events() == []


def test_an_empty_batch_is_accepted_as_nothing(r):
    response = post_events(r.http, batch())

    assert response.status_code == 200
    assert response.json() == {"accepted": 0, "duplicates": 0, "rejected": []}


def test_gzip_body_is_decompressed(r):
    body = gzip.compress(batch(wire_event(action="zipped")))

    response = post_events(r.http, body, GZIP)

    assert response.status_code == 200
    assert [e.action for e in r.client.events()] == ["zipped"]


def test_concatenated_gzip_members_form_one_body(r):
    body = batch(wire_event(action="two-part"))
    middle = len(body) // 2
    compressed = gzip.compress(body[:middle]) + gzip.compress(body[middle:])
    response = post_events(r.http, compressed, GZIP)

    assert response.status_code == 200
    assert [e.action for e in r.client.events()] == ["two-part"]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"\x1f\x8b\x08\x00garbage", id="corrupt"),
        pytest.param(gzip.compress(batch(wire_event()))[:-12], id="truncated"),
        pytest.param(b"", id="empty"),
        pytest.param(gzip.compress(b"{}") + b"trailing", id="trailing-garbage"),
        pytest.param(batch(wire_event()), id="not-gzip"),
    ],
)
def test_broken_gzip_is_a_400_and_stores_nothing(body, r):
    response = post_events(r.http, body, GZIP)

    assert response.status_code == 400
    assert response.json()["code"] == "malformed_gzip"
    assert r.client.stats()["events"] == 0


def test_gzip_bomb_is_refused_with_413_while_decompressing(r):
    bomb = zlib.compressobj(9, zlib.DEFLATED, 31)
    compressed = bomb.compress(b"{" + b" " * (64 * 1024 * 1024)) + bomb.flush()
    assert len(compressed) < 1024 * 1024
    response = post_events(r.http, compressed, GZIP)

    assert response.status_code == 413
    assert response.json()["code"] == "body_too_large"


def test_body_over_the_byte_limit_is_a_413(r):
    response = post_events(r.http, b" " * (1024 * 1024 + 1))

    assert response.status_code == 413
    assert response.json()["code"] == "body_too_large"


def test_a_huge_body_is_refused_without_reading_it_all(r):
    def chunks():
        for _ in range(200):
            yield b" " * (256 * 1024)

    response = r.http.post(
        "/v1/events",
        content=chunks(),
        headers={"content-type": "application/json"},
    )

    assert response.status_code == 413


def test_more_events_than_the_batch_limit_is_a_413(r):
    response = post_events(r.http, batch(*[wire_event() for _ in range(501)]))

    assert response.status_code == 413
    assert response.json()["code"] == "too_many_events"
    assert r.client.stats()["events"] == 0


def test_configured_limits_are_enforced_and_advertised():
    limits = fake_server.ServerConfig().limits.__class__(
        max_event_bytes=1000, max_batch_events=2, max_batch_bytes=4096
    )
    with running(limits=limits) as r:
        assert r.client.limits() == {
            "max_batch_events": 2,
            "max_batch_bytes": 4096,
            "max_event_bytes": 1000,
        }
        assert post_events(r.http, batch(*[wire_event()] * 3)).status_code == 413
        big = post_events(r.http, batch(wire_event(metadata={"x": "y" * 1000})))
        assert big.json()["rejected"][0]["code"] == "too_large"


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({"content-type": "text/plain"}, "unsupported_media_type"),
        (
            {"content-type": "application/x-www-form-urlencoded"},
            "unsupported_media_type",
        ),
        ({"content-encoding": "br"}, "unsupported_encoding"),
        ({"content-encoding": "deflate"}, "unsupported_encoding"),
    ],
)
def test_other_content_types_and_encodings_are_a_415(headers, code, r):
    response = post_events(r.http, batch(wire_event()), headers)

    assert response.status_code == 415
    assert response.json()["code"] == code


def test_content_type_with_a_charset_is_json(r):
    response = post_events(
        r.http, batch(wire_event()), {"content-type": "application/json; charset=utf-8"}
    )

    assert response.status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"not json", id="text"),
        pytest.param(b"[]", id="array"),
        pytest.param(b'{"events": {}}', id="events-object"),
        pytest.param(b'{"events": [], "extra": 1}', id="extra-field"),
        pytest.param(b'{"events": [NaN]}', id="nan"),
        pytest.param("{}".encode("utf-16"), id="utf16"),
        pytest.param(b'\xef\xbb\xbf{"events": []}', id="bom"),
        pytest.param(b"[" * 100_000, id="deep-open"),
        pytest.param(b'{"events": [' + b"[" * 5000 + b"]" * 5000 + b"]}", id="deep"),
        pytest.param(b'{"events": [1, "two", null]', id="truncated"),
        pytest.param(b"", id="empty"),
    ],
)
def test_malformed_bodies_are_a_400_and_store_nothing(body, r):
    response = post_events(r.http, body)

    assert response.status_code == 400
    assert response.json()["error"]
    assert r.client.stats()["events"] == 0


def test_wrong_types_inside_events_are_rejected_one_by_one(r):
    events = [1, "two", None, [], {"id": []}, {"id": {"a": 1}, "action": 3}]
    response = post_events(r.http, batch(*events))

    assert response.status_code == 422
    assert [x["code"] for x in response.json()["rejected"]] == [
        "wrong_type",
        "wrong_type",
        "wrong_type",
        "wrong_type",
        "required",
        "required",
    ]


@pytest.mark.parametrize(
    "authorization", [None, "", "Bearer", "Basic abc", "token", "bearer"]
)
def test_a_missing_or_malformed_key_is_a_401(authorization, r):
    headers = {"content-type": "application/json"}
    if authorization is not None:
        headers["authorization"] = authorization
    response = httpx.post(
        f"{r.url}/v1/events", content=batch(wire_event()), headers=headers
    )
    assert r.client.stats()["events"] == 0

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_configured_keys_are_the_only_ones_accepted():
    with running(api_keys={"good": None}) as r:
        for key, status in (("good", 200), ("bad", 401), ("goo", 401), ("good2", 401)):
            response = httpx.post(
                f"{r.url}/v1/events",
                content=batch(wire_event()),
                headers={
                    "authorization": f"Bearer {key}",
                    "content-type": "application/json",
                },
            )
            assert response.status_code == status, key


def test_a_tenant_bound_key_fills_in_and_enforces_its_tenant():
    keys = {"key-a": "tenant-a", "key-b": "tenant-b", "admin": None}
    with running(api_keys=keys) as r, r.server.client(api_key="key-a") as as_a:
        answer = as_a.ingest(
            [wire_event(action="mine"), wire_event(tenant_id="tenant-b")]
        )
        assert answer["accepted"] == 1
        assert [(x["code"], x["field"]) for x in answer["rejected"]] == [
            ("tenant_mismatch", "tenant_id")
        ]
        assert [e.tenant_id for e in as_a.events()] == ["tenant-a"]

        with r.server.client(api_key="key-b") as as_b:
            as_b.ingest([wire_event(action="theirs")])
            assert [e.action for e in as_b.events()] == ["theirs"]
            with pytest.raises(fake_server.FakeServerError) as refused:
                as_b.events(tenant_id="tenant-a")
            assert refused.value.status == 403

        with r.server.client(api_key="admin") as admin:
            assert sorted(e.action for e in admin.events()) == ["mine", "theirs"]


@pytest.mark.parametrize("offset", [-10, 10, 10_000])
def test_a_lying_content_length_never_gets_a_500(offset, r):
    body = batch(wire_event())
    host, port = r.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n"
            b"Content-Type: application/json\r\n"
            + f"Content-Length: {len(body) + offset}\r\n\r\n".encode()
            + body
        )
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    stored = r.client.stats()["events"]

    statuses = [line for line in answer.split(b"\r\n") if line.startswith(b"HTTP/1.1 ")]
    assert all(not line.startswith(b"HTTP/1.1 5") for line in statuses)
    assert stored == 0
