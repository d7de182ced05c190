"""A BufferedRecorder over real sockets delivers to the fake server, faults and all."""

# This folder is not a package, so mypy's override for tests.* misses it:
# mypy: allow-untyped-defs, allow-incomplete-defs
# mypy: allow-untyped-calls, check-untyped-defs

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fake_server_support import unique_namespace

import fake_server
from auditkit import Actor, BufferedRecorder, Event, HttpTransport, Limits, Outcome

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def server() -> Iterator[fake_server.ServerHandle]:
    with fake_server.serve_in_thread() as handle:
        yield handle


def _recorder(
    url: str, namespace: str, *, api_key: str = "k", **options
) -> BufferedRecorder:
    transport = HttpTransport(url, api_key, headers={"X-Fake-Namespace": namespace})
    settings = {
        "batch_size": 25,
        "flush_interval": 0.05,
        "backoff_initial": 0.01,
        "backoff_max": 0.1,
        **options,
    }
    return BufferedRecorder(url, api_key, transport=transport, **settings)


def _record(recorder: BufferedRecorder, count: int, prefix: str) -> list[str]:
    ids = []
    for index in range(count):
        event = Event(action=f"{prefix}.{index}", actor=Actor("user", f"u-{index}"))
        assert recorder.record(event) is Outcome.ENQUEUED
        ids.append(event.id)
    return ids


def _stored_actions(client: fake_server.Client) -> list[str]:
    return [event.action for event in client.events()]


def test_recorded_events_arrive_once_each_in_order(server):
    namespace = unique_namespace()
    with server.client(namespace=namespace) as client:
        with _recorder(server.url, namespace) as recorder:
            _record(recorder, 300, "plain")
            assert recorder.flush(timeout=30)
            stats = recorder.stats()

        assert _stored_actions(client) == [f"plain.{i}" for i in range(300)]
        assert stats.delivered == 300
        assert stats.failed == 0
        assert client.stats()["duplicates"] == 0


def test_every_fault_kind_is_survived_with_nothing_lost_or_duplicated(server):
    namespace = unique_namespace()
    with server.client(namespace=namespace) as client:
        client.add_fault(status=503, retry_after=0, times=2)
        client.add_fault(status=429, retry_after=0)
        client.add_fault(status=500)
        client.add_fault(drop="before_body")
        client.add_fault(drop="after_body")
        client.add_fault(delay=0.2)
        client.add_fault(status=408)

        with _recorder(server.url, namespace) as recorder:
            _record(recorder, 200, "faulty")
            assert recorder.flush(timeout=60)
            stats = recorder.stats()

        stored = _stored_actions(client)
        assert sorted(stored) == sorted(f"faulty.{i}" for i in range(200))
        assert len(stored) == len(set(stored))
        assert client.faults() == []
        assert stats.failed == 0
        assert stats.retried >= 7
        journal = client.requests()
        assert [entry["status"] for entry in journal[:8]] == [
            503,
            503,
            429,
            500,
            "dropped",
            "dropped",
            200,
            408,
        ]
        # The batch whose answer was dropped after storing came back as duplicates.
        assert client.stats()["duplicates"] >= 1


def test_a_batch_over_the_server_limit_is_split_and_delivered():
    limits = Limits(max_batch_events=4)
    with (
        fake_server.serve_in_thread(limits=limits) as server,
        server.client() as client,
    ):
        with _recorder(
            server.url, "default", batch_size=20, flush_interval=10
        ) as recorder:
            _record(recorder, 20, "split")
            assert recorder.flush(timeout=30)

        assert sorted(_stored_actions(client)) == sorted(
            f"split.{i}" for i in range(20)
        )
        assert 413 in [entry["status"] for entry in client.requests()]


def test_a_tenant_bound_key_tags_the_recorded_events():
    keys = {"tenant-key": "acme"}
    with fake_server.serve_in_thread(api_keys=keys) as server:
        with _recorder(server.url, "default", api_key="tenant-key") as recorder:
            _record(recorder, 3, "tenant")
            assert recorder.flush(timeout=30)

        with server.client(api_key="tenant-key") as client:
            assert [event.tenant_id for event in client.events()] == ["acme"] * 3


def test_events_recorded_while_the_server_waits_are_waited_for(server):
    namespace = unique_namespace()
    with server.client(namespace=namespace) as client:
        with _recorder(server.url, namespace) as recorder:
            _record(recorder, 5, "waited")
            events = client.wait(5, timeout=30, actor_type="user")

        assert sorted(event.action for event in events) == [
            f"waited.{i}" for i in range(5)
        ]
