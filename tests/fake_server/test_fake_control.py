"""The /_fake/ control API: reset, faults, journal, stats and wait."""

# This folder is not a package, so mypy's override for tests.* misses it:
# mypy: allow-untyped-defs, allow-incomplete-defs
# mypy: allow-untyped-calls, check-untyped-defs

from __future__ import annotations

import threading
import time

import httpx
import pytest
from fake_server_support import DROPPED, attach, batch, post_events, wire_event

import fake_server
from auditkit import Event


@pytest.fixture(scope="module")
def server():
    with fake_server.serve_in_thread() as handle:
        yield handle


@pytest.fixture
def r(server):
    with attach(server) as attached:
        yield attached


def test_reset_forgets_events_faults_journal_and_counts_of_one_namespace(r, server):
    post_events(r.http, batch(wire_event()))
    r.client.add_fault(status=503, times=3)
    with attach(server) as other:
        post_events(other.http, batch(wire_event()))

        r.client.reset()

        assert r.client.events() == []
        assert r.client.faults() == []
        assert r.client.requests() == []
        assert r.client.stats()["requests"] == 0
        assert len(other.client.events()) == 1
        assert len(other.client.requests()) == 1


def test_a_status_fault_answers_with_retry_after_and_stores_nothing(r):
    r.client.add_fault(status=503, times=2, retry_after=1)
    event = wire_event()

    first = post_events(r.http, batch(event))
    second = post_events(r.http, batch(event))
    third = post_events(r.http, batch(event))

    assert [first.status_code, second.status_code] == [503, 503]
    assert first.headers["retry-after"] == "1"
    assert first.json()["code"] == "injected_fault"
    assert third.json() == {"accepted": 1, "duplicates": 0, "rejected": []}
    assert [entry["status"] for entry in r.client.requests()] == [503, 503, 200]


def test_a_429_fault_without_retry_after_sends_no_header(r):
    r.client.add_fault(status=429)

    response = post_events(r.http, batch(wire_event()))

    assert response.status_code == 429
    assert "retry-after" not in response.headers


def test_faults_apply_in_the_order_they_were_queued(r):
    r.client.add_fault(status=500)
    r.client.add_fault(status=429, times=2)
    r.client.add_fault(status=408)

    statuses = [post_events(r.http, batch(wire_event())).status_code for _ in range(5)]

    assert statuses == [500, 429, 429, 408, 200]


def test_faults_are_listed_with_what_is_left_and_cleared_by_delete(r):
    r.client.add_fault(status=503, times=3)
    post_events(r.http, batch(wire_event()))

    assert r.client.faults() == [
        {"status": 503, "retry_after": None, "delay": None, "drop": None, "times": 2}
    ]
    assert r.client.stats()["faults_pending"] == 2
    r.client.clear_faults()
    assert r.client.faults() == []
    assert post_events(r.http, batch(wire_event())).status_code == 200


def test_a_delay_fault_adds_latency_then_stores(r):
    r.client.add_fault(delay=0.3)

    started = time.monotonic()
    response = post_events(r.http, batch(wire_event()))

    # asyncio's clock may round a sleep down by a tick.
    assert time.monotonic() - started >= 0.25
    assert response.status_code == 200
    assert r.client.stats()["events"] == 1


@pytest.mark.parametrize(("drop", "stored"), [("before_body", 0), ("after_body", 1)])
def test_a_drop_fault_closes_the_connection_without_an_answer(r, drop, stored):
    r.client.add_fault(drop=drop)

    with pytest.raises(DROPPED):
        post_events(r.http, batch(wire_event()))

    assert r.client.stats()["events"] == stored
    journal = r.client.requests()
    assert [entry["status"] for entry in journal] == ["dropped"]
    assert journal[0]["fault"]["drop"] == drop
    assert post_events(r.http, batch(wire_event())).status_code == 200


def test_a_retry_after_a_dropped_answer_is_counted_as_a_duplicate(r):
    r.client.add_fault(drop="after_body")
    event = wire_event()
    with pytest.raises(DROPPED):
        post_events(r.http, batch(event))

    retry = post_events(r.http, batch(event))

    assert retry.json() == {"accepted": 0, "duplicates": 1, "rejected": []}
    assert r.client.stats()["dropped"] == 1


@pytest.mark.parametrize(
    "fault",
    [
        {},
        {"times": 0},
        {"times": 1, "status": 99},
        {"times": 1, "status": "503"},
        {"times": 1, "drop": "sometimes"},
        {"times": 1, "drop": "after_body", "status": 503},
        {"times": 1, "delay": -1},
        {"times": 1, "delay": 61},
        {"times": 1, "retry_after": 1},
        {"times": 1, "colour": "red"},
        [],
    ],
)
def test_a_bad_fault_is_a_400(r, fault):
    response = r.http.post("/_fake/faults", json=fault)

    assert response.status_code == 400
    assert response.json()["error"]


def test_control_bodies_that_are_not_json_are_a_400(r):
    for path in ("/_fake/faults", "/_fake/wait"):
        response = r.http.post(path, content=b"{nope")
        assert response.status_code == 400


def test_the_journal_lists_ingest_requests_with_the_key_masked(r):
    post_events(r.http, batch(wire_event(), wire_event()), {"x-custom": "yes"})
    httpx.post(
        f"{r.url}/v1/events",
        content=b"{}",
        headers={"x-fake-namespace": r.client.namespace or ""},
    )

    journal = r.client.requests()

    assert [(e["method"], e["path"], e["events"], e["status"]) for e in journal] == [
        ("POST", "/v1/events", 2, 200),
        ("POST", "/v1/events", 0, 401),
    ]
    first = journal[0]
    assert first["headers"]["authorization"] == "Bearer ***"
    assert first["headers"]["x-custom"] == "yes"
    assert first["at"].endswith("Z")
    assert "authorization" not in journal[1]["headers"]


def test_the_journal_counts_the_events_of_refused_requests(r):
    """A test checks a client's retries against the journal, faults included."""
    r.client.add_fault(status=503)
    post_events(r.http, batch(wire_event(), wire_event()))
    post_events(r.http, batch(*[wire_event() for _ in range(501)]))

    journal = r.client.requests()

    assert [(entry["events"], entry["status"]) for entry in journal] == [
        (2, 503),
        (501, 413),
    ]


def test_stats_count_events_requests_duplicates_and_rejections(r):
    event = wire_event()
    post_events(r.http, batch(event, wire_event(action="")))
    post_events(r.http, batch(event))

    stats = r.client.stats()

    assert stats == {
        "events": 1,
        "requests": 2,
        "accepted": 1,
        "duplicates": 1,
        "rejected": 1,
        "dropped": 0,
        "faults_applied": 0,
        "faults_pending": 0,
    }


def test_wait_answers_as_soon_as_enough_matching_events_arrive(r, server):
    answered = threading.Event()
    result: list[list[Event]] = []

    def waiter():
        with attach(server, namespace=r.client.namespace) as other:
            result.append(other.client.wait(2, timeout=30, action="wanted"))
        answered.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    try:
        post_events(r.http, batch(wire_event(action="other")))
        post_events(r.http, batch(wire_event(action="wanted")))
        assert not answered.wait(0.2)
        post_events(r.http, batch(wire_event(action="wanted")))
        assert answered.wait(10)
    finally:
        thread.join(30)

    assert [e.action for e in result[0]] == ["wanted", "wanted"]


def test_wait_returns_at_once_when_the_events_are_already_there(r):
    post_events(r.http, batch(wire_event()))

    assert len(r.client.wait(1, timeout=0)) == 1


def test_wait_times_out_with_408(r):
    post_events(r.http, batch(wire_event()))

    response = r.http.post("/_fake/wait", json={"count": 2, "timeout": 0.2})

    assert response.status_code == 408
    assert response.json()["matched"] == 1
    with pytest.raises(fake_server.WaitTimeoutError):
        r.client.wait(2, timeout=0.1)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"count": -1},
        {"count": "1"},
        {"count": 1, "timeout": 301},
        {"count": 1, "timeout": "soon"},
        {"count": 1, "status": "maybe"},
        {"count": 1, "colour": "red"},
    ],
)
def test_a_bad_wait_is_a_400(r, body):
    assert r.http.post("/_fake/wait", json=body).status_code == 400


@pytest.mark.parametrize("namespace", ["", "a b", "x" * 129, "\xfc".encode("latin-1")])
def test_a_bad_namespace_is_a_400(server, namespace):
    headers = {"x-fake-namespace": namespace}
    for method, path in (("GET", "/_fake/stats"), ("POST", "/v1/events")):
        response = httpx.request(
            method, f"{server.url}{path}", headers=headers, content=b"{}"
        )
        assert response.status_code == 400


def test_health_limits_and_unknown_paths(r):
    assert r.client.health() is True
    assert r.client.limits() == {
        "max_batch_events": 500,
        "max_batch_bytes": 1024 * 1024,
        "max_event_bytes": 64 * 1024,
    }
    assert r.http.get("/nowhere").status_code == 404
    assert r.http.put("/v1/events").status_code == 405
