"""Query: filters, ordering and cursor pagination, also under concurrent writes."""

# This folder is not a package, so mypy's override for tests.* misses it:
# mypy: allow-untyped-defs, allow-incomplete-defs
# mypy: allow-untyped-calls, check-untyped-defs

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from fake_server_support import attach, batch, post_events, wire_event

import fake_server


@pytest.fixture(scope="module")
def server():
    with fake_server.serve_in_thread() as handle:
        yield handle


@pytest.fixture
def r(server):
    with attach(server) as attached:
        yield attached


def _mixed_events():
    return [
        wire_event(
            action="doc.read",
            actor={"type": "user", "id": "alice"},
            occurred_at="2024-05-01T10:00:00Z",
        ),
        wire_event(
            action="doc.write",
            actor={"type": "service", "id": "bot"},
            target={"type": "doc", "id": "d-2"},
            result={"status": "denied", "code": 403},
            tenant_id="t-1",
            occurred_at="2024-05-01T11:00:00Z",
        ),
        wire_event(
            action="doc.read",
            actor={"type": "user", "id": "bob"},
            result={"status": "error"},
            tenant_id="t-2",
            occurred_at="2024-05-01T12:00:00+02:00",
        ),
    ]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, [0, 1, 2]),
        ({"action": "doc.read"}, [0, 2]),
        ({"actor_id": "bob"}, [2]),
        ({"actor_type": "service"}, [1]),
        ({"target_type": "doc"}, [1]),
        ({"target_id": "s-1"}, [0, 2]),
        ({"tenant_id": "t-1"}, [1]),
        ({"status": "denied"}, [1]),
        ({"since": "2024-05-01T10:30:00Z"}, [1]),
        ({"until": "2024-05-01T10:30:00Z"}, [0, 2]),
        ({"since": "2024-05-01T10:00:00Z", "until": "2024-05-01T11:00:00Z"}, [0, 2]),
        ({"action": "doc.read", "status": "success"}, [0]),
        ({"action": "nothing"}, []),
    ],
)
def test_each_filter_selects_the_matching_events_oldest_first(r, filters, expected):
    events = _mixed_events()
    post_events(r.http, batch(*events))

    page = r.http.get("/v1/events", params=filters).json()

    assert [e["id"] for e in page["events"]] == [events[i]["id"] for i in expected]
    assert page["next_cursor"] is None


def test_datetime_filters_are_accepted_by_the_client(r):
    post_events(r.http, batch(*_mixed_events()))

    found = r.client.events(since=datetime(2024, 5, 1, 10, 30, tzinfo=UTC))

    assert [e.action for e in found] == ["doc.write"]


def test_events_come_back_in_arrival_order_not_time_order(r):
    late = wire_event(action="first-sent", occurred_at="2030-01-01T00:00:00Z")
    early = wire_event(action="second-sent", occurred_at="2000-01-01T00:00:00Z")
    post_events(r.http, batch(late))
    post_events(r.http, batch(early))

    assert [e.action for e in r.client.events()] == ["first-sent", "second-sent"]


def test_pages_follow_the_cursor_to_the_end(r):
    events = [wire_event(action=f"a.{i}") for i in range(25)]
    post_events(r.http, batch(*events))

    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 10, **({"cursor": cursor} if cursor else {})}
        page = r.http.get("/v1/events", params=params).json()
        pages += 1
        seen += [e["id"] for e in page["events"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert pages == 3
    assert seen == [e["id"] for e in events]


def test_pagination_neither_skips_nor_repeats_while_events_keep_arriving(r, server):
    first = [wire_event(action="before") for _ in range(50)]
    post_events(r.http, batch(*first))
    stop = threading.Event()
    written: list[str] = []

    def write_more():
        with attach(server, namespace=r.client.namespace) as writer:
            while not stop.is_set() and len(written) < 2000:
                more = [wire_event(action="during") for _ in range(7)]
                post_events(writer.http, batch(*more))
                written.extend(e["id"] for e in more)

    thread = threading.Thread(target=write_more)
    thread.start()
    try:
        seen, cursor = [], None
        while True:
            params = {"limit": 9, **({"cursor": cursor} if cursor else {})}
            page = r.http.get("/v1/events", params=params).json()
            seen += [e["id"] for e in page["events"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
    finally:
        stop.set()
        thread.join(30)

    assert len(seen) == len(set(seen))
    assert seen[:50] == [e["id"] for e in first]
    assert seen[50:] == written[: len(seen) - 50]
    assert [e.id for e in r.client.events()] == [e["id"] for e in first] + written


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "1001"},
        {"limit": "ten"},
        {"cursor": "not-a-cursor"},
        {"cursor": "c1.eyJhZnRlciI6LTF9"},
        {"status": "maybe"},
        {"since": "yesterday"},
        {"until": "2024-05-01T10:00:00"},
        {"unknown": "x"},
        {"action": ""},
    ],
)
def test_bad_query_parameters_are_a_400(r, params):
    response = r.http.get("/v1/events", params=params)

    assert response.status_code == 400
    assert response.json()["error"]


def test_a_repeated_parameter_is_a_400(r):
    response = r.http.get("/v1/events?action=a&action=b")

    assert response.status_code == 400


def test_query_needs_a_key(r, server):
    import httpx

    response = httpx.get(f"{server.url}/v1/events")

    assert response.status_code == 401


def test_namespaces_see_only_their_own_events(server):
    with attach(server) as one, attach(server) as two:
        post_events(one.http, batch(wire_event(action="one")))
        post_events(two.http, batch(wire_event(action="two")))
        with server.client() as default:
            default.reset()
            post_events_default = default.ingest([wire_event(action="default")])
            assert post_events_default["accepted"] == 1

            assert [e.action for e in one.client.events()] == ["one"]
            assert [e.action for e in two.client.events()] == ["two"]
            assert [e.action for e in default.events()] == ["default"]


def test_the_same_id_in_two_namespaces_is_stored_twice(server):
    event = wire_event()
    with attach(server) as one, attach(server) as two:
        assert one.client.ingest([event])["accepted"] == 1
        assert two.client.ingest([{**event, "action": "other"}])["accepted"] == 1
