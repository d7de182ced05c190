"""The pytest plugin as a user meets it: fixtures and failures in their project."""

from __future__ import annotations

import socket
import sys
import time
import uuid
from typing import Any

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestAssertRewriteWarning")


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # pytest-benchmark, when installed, warns inside xdist workers, and this suite
    # turns warnings into errors.
    return pytester.runpytest_inprocess("-p", "no:benchmark", *args)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_every_fixture_is_listed_with_its_documentation(
    pytester: pytest.Pytester,
) -> None:
    result = _run(pytester, "--fixtures")

    pairs = [
        ("audit_recorder", "A fresh ``auditkit_testing.InMemoryRecorder`` for each*"),
        ("fake_audit_server", "A fake audit service for this test*"),
        ("audit_buffered_recorder", "A ``BufferedRecorder`` that delivers to*"),
        ("audit_respx", "A respx mock of the audit service's ingest endpoint*"),
    ]
    for name, summary in pairs:
        result.stdout.fnmatch_lines(
            [f"{name} -- *auditkit_testing*plugin.py:*", f"    {summary}"],
            consecutive=True,
        )


def test_the_options_and_the_marker_are_registered(pytester: pytest.Pytester) -> None:
    help_text = _run(pytester, "--help")
    markers = _run(pytester, "--markers")

    help_text.stdout.fnmatch_lines(
        ["*--audit-server-url=URL*", "*--audit-server-api-key=KEY*"]
    )
    markers.stdout.fnmatch_lines(["@pytest.mark.audit_respx(base_url=None):*"])


def test_a_users_passing_tests_pass_with_every_fixture(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import httpx
        import pytest
        from auditkit import Actor, BufferedRecorder, Event, Result
        from auditkit_testing import assert_recorded, assert_not_recorded

        def handler(recorder, user_id):
            recorder.record(
                Event(action="secret.read", actor=Actor("user", user_id),
                      result=Result("denied", code=404))
            )

        def test_in_memory(audit_recorder):
            handler(audit_recorder, "1")
            assert_recorded(audit_recorder, "secret.read", actor={"id": "1"},
                            result="denied")
            assert_not_recorded(audit_recorder, "secret.write")

        def test_fake_server(fake_audit_server, audit_buffered_recorder):
            handler(audit_buffered_recorder, "2")
            event = assert_recorded(fake_audit_server, "secret.read", timeout=10)
            assert event.actor.id == "2"
            assert fake_audit_server.stats()["events"] == 1

        def test_buffered_recorder_as_a_source(audit_buffered_recorder):
            handler(audit_buffered_recorder, "3")
            assert_recorded(audit_buffered_recorder, "secret.read", count=1)

        @pytest.mark.audit_respx(base_url="https://audit.example.test")
        def test_respx(audit_respx):
            with BufferedRecorder("https://audit.example.test", "key",
                                  flush_interval=0.01) as recorder:
                handler(recorder, "4")
                assert_recorded(audit_respx, "secret.read", timeout=10)
            assert len(audit_respx.requests) == 1
        """
    )

    result = _run(pytester)

    result.assert_outcomes(passed=4)


def test_the_fake_server_fixtures_work_while_the_test_mocks_httpx(
    pytester: pytest.Pytester,
) -> None:
    """A test that mocks httpx for its own code (respx answering every request,
    refusing unmocked ones) still delivers to and reads from the fake server."""
    pytester.makepyfile(
        """
        import httpx
        import respx
        from auditkit import Event
        from auditkit_testing import assert_recorded

        def test_mocked(fake_audit_server, audit_buffered_recorder):
            with respx.mock() as mock:
                mock.get("https://api.example.test/users").respond(json=[])
                assert httpx.get("https://api.example.test/users").json() == []

                audit_buffered_recorder.record(Event(action="user.list"))

                assert_recorded(fake_audit_server, "user.list", timeout=10)
                assert fake_audit_server.requests()[0]["status"] == 200
        """
    )

    result = _run(pytester)

    result.assert_outcomes(passed=1)


def test_a_wrong_assertion_names_the_closest_event_and_the_differing_field(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_wrong="""
        from auditkit import Actor, Event
        from auditkit_testing import assert_recorded

        def test_wrong(audit_recorder):
            audit_recorder.record(Event(action="user.login", actor=Actor("user", "7")))
            audit_recorder.record(Event(action="secret.read", actor=Actor("user", "1")))
            assert_recorded(audit_recorder, "secret.read", actor={"id": 1})
        """
    )

    result = _run(pytester)

    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            '>       assert_recorded(audit_recorder, "secret.read", actor={"id": 1})',
            "E       *AuditAssertionError: auditkit: no recorded event matches.",
            "E       Asked for: action='secret.read', actor={'id': 1}",
            "E       Recorded: 2 events in the in-memory recorder.",
            "E       Closest events, best first:",
            "E         event[[]1] Event(action='secret.read', "
            "actor=Actor(type='user', id='1'))*",
            "E           1 of 2 fields match; differs in:",
            "E             actor.id: expected 1 (int), got '1' (str)",
            "E         event[[]0] Event(action='user.login', *",
            "E           0 of 2 fields match; differs in:",
            "E             action: expected 'secret.read' (str), "
            "got 'user.login' (str)",
            "E             actor.id: expected 1 (int), got '7' (str)",
            "",
            "test_wrong.py:7: AuditAssertionError",
        ]
    )
    result.stdout.no_fnmatch_line("*auditkit_testing/_assertions.py*")


def test_an_event_without_action_is_explained_when_nothing_was_recorded(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_skipped="""
        from auditkit import Actor, Event
        from auditkit_testing import assert_recorded

        def test_forgot_the_action(audit_recorder):
            audit_recorder.record(Event(actor=Actor("user", "1")))
            assert_recorded(audit_recorder, "user.login", actor={"id": "1"})
        """
    )

    result = _run(pytester)

    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E       *AuditAssertionError: auditkit: no recorded event matches.",
            "E       Asked for: action='user.login', actor={'id': '1'}",
            "E       No events were recorded: the in-memory recorder holds none.",
            "E       Record calls that stored nothing:",
            "E         SKIPPED: the event has no action",
            "E           Event(actor=Actor(type='user', id='1'))",
            "E           It matches the other fields asked for.",
            "E           An event with an empty action is a no-op: set event.action *",
        ]
    )


def test_the_buffered_recorder_explains_record_calls_that_stored_nothing(
    pytester: pytest.Pytester,
) -> None:
    """The recorders of the fake server list skipped, cancelled, invalid and dropped
    calls with the reason, as the in-memory recorder does."""
    pytester.makepyfile(
        test_refused="""
        import auditkit
        from auditkit import Actor, Event
        from auditkit_testing import assert_recorded

        def test_nothing_arrives(fake_audit_server, audit_buffered_recorder):
            audit_buffered_recorder.record(Event(actor=Actor("user", "1")))
            with auditkit.scope() as scope:
                scope.cancel()
                audit_buffered_recorder.record(Event(action="cancelled"))
            audit_buffered_recorder.record(Event(action="bad", metadata={"x": {1}}))
            assert_recorded(audit_buffered_recorder, "user.login", actor={"id": "1"})

        def test_one_is_dropped(fake_audit_server):
            full = fake_audit_server.recorder(capacity=1, flush_interval=60)
            full.record(Event(action="first"))
            full.record(Event(action="user.login"))
            assert_recorded(fake_audit_server, "user.login", timeout=0.1)
        """
    )

    result = _run(pytester, "-p", "no:logging")

    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "E       No events were recorded: the fake audit server (after *",
            "E       Record calls that stored nothing:",
            "E         SKIPPED: the event has no action",
            "E           Event(actor=Actor(type='user', id='1'))",
            "E           It matches the other fields asked for.",
            "E           An event with an empty action is a no-op: set event.action *",
            "E         CANCELLED: the scope was cancelled or its deadline passed",
            "E           Event(action='cancelled')",
            "E         INVALID: metadata.x: *",
            "E           Event(action='bad', *",
            "E       Notes from the fake audit server (after flushing the recorder):",
            "E         The recorder counts: enqueued 0, delivered 0, skipped 1, "
            "cancelled 1, invalid 1, dropped 0, *",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "E       Record calls that stored nothing:",
            "E         DROPPED: the buffer was full",
            "E           Event(action='user.login')",
        ]
    )


def test_the_fixtures_clean_up_after_each_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import fake_server
        from auditkit import Event, Outcome

        seen = {}

        def test_first(fake_audit_server, audit_buffered_recorder, audit_respx):
            audit_buffered_recorder.record(Event(action="first"))
            fake_audit_server.wait(1, timeout=10)
            seen.update(
                recorder=audit_buffered_recorder,
                namespace=fake_audit_server.namespace,
                url=fake_audit_server.url,
                respx=audit_respx,
            )

        def test_second(fake_audit_server):
            assert seen["recorder"].record(Event(action="late")) is Outcome.CLOSED
            assert fake_audit_server.namespace != seen["namespace"]
            assert fake_audit_server.events() == []
            with fake_server.Client(seen["url"], namespace=seen["namespace"]) as old:
                assert old.events() == []
        """
    )

    result = _run(pytester, "-p", "no:randomly")

    result.assert_outcomes(passed=2)


def test_faults_queued_on_the_fake_server_are_retried_through(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        from auditkit import Event
        from auditkit_testing import assert_recorded

        def test_retries(fake_audit_server, audit_buffered_recorder):
            fake_audit_server.add_fault(503, times=2, retry_after=0)
            audit_buffered_recorder.record(Event(action="retried"))
            assert_recorded(fake_audit_server, "retried", count=1, timeout=10)
            statuses = [entry["status"] for entry in fake_audit_server.requests()]
            assert statuses == [503, 503, 200]
        """
    )

    result = _run(pytester)

    result.assert_outcomes(passed=1)


def test_audit_respx_leaves_a_users_own_respx_mock_alone(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import httpx
        import respx
        from auditkit import BufferedRecorder, Event
        from auditkit_testing import assert_recorded

        def test_both(audit_respx):
            audit_respx.add_fault(503, retry_after=0)
            with respx.mock(base_url="https://api.example.test") as api:
                api.get("/users/1").respond(json={"id": 1})
                with BufferedRecorder("https://audit.example.test", "key",
                                      flush_interval=0.01) as recorder:
                    answer = httpx.get("https://api.example.test/users/1")
                    assert answer.json() == {"id": 1}
                    recorder.record(Event(action="user.read"))
                    assert_recorded(audit_respx, "user.read", timeout=10)
                assert api.calls.call_count == 1
            assert [r.status for r in audit_respx.requests] == [503, 200]
        """
    )

    result = _run(pytester)

    result.assert_outcomes(passed=1)


def test_the_external_server_option_drives_a_running_server(
    pytester: pytest.Pytester, running_server: Any
) -> None:
    pytester.makepyfile(
        f"""
        from auditkit import Event
        from auditkit_testing import assert_recorded

        def test_external(fake_audit_server, audit_buffered_recorder):
            assert fake_audit_server.url == "{running_server.url}"
            audit_buffered_recorder.record(Event(action="external"))
            assert_recorded(fake_audit_server, "external", timeout=10)
        """
    )

    result = _run(pytester, "--audit-server-url", running_server.url)

    result.assert_outcomes(passed=1)


def test_the_environment_variable_names_the_external_server(
    pytester: pytest.Pytester, running_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUDITKIT_SERVER_URL", running_server.url)
    pytester.makepyfile(
        f"""
        def test_external(fake_audit_server):
            assert fake_audit_server.url == "{running_server.url}"
        """
    )

    result = _run(pytester)

    result.assert_outcomes(passed=1)


def test_an_unreachable_server_fails_the_fixture_at_once_with_the_reason(
    pytester: pytest.Pytester,
) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    pytester.makepyfile(
        """
        def test_one(fake_audit_server):
            pass

        def test_two(fake_audit_server):
            pass
        """
    )
    started = time.monotonic()

    result = _run(pytester, "--audit-server-url", url)

    assert time.monotonic() - started < 60
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [f"*auditkit: The audit server at {url} can't be reached: *--audit-server-url*"]
    )
    # The reason is shown once per test, not chained to the error it came from.
    result.stdout.no_fnmatch_line("*During handling of the above exception*")


def test_two_xdist_workers_sharing_one_server_do_not_see_each_others_events(
    pytester: pytest.Pytester, running_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each worker runs the test at the same time and sees only its own event."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # start workers faster
    meeting = uuid.uuid4().hex
    pytester.makepyfile(
        f"""
        import os
        import fake_server
        from auditkit import Event

        def test_worker(fake_audit_server, audit_buffered_recorder):
            worker = os.environ["PYTEST_XDIST_WORKER"]
            audit_buffered_recorder.record(
                Event(action="isolated", metadata={{"worker": worker}})
            )
            assert audit_buffered_recorder.flush(timeout=10)
            # Neither worker looks before both have delivered.
            with fake_server.Client(fake_audit_server.url, namespace="{meeting}") as m:
                m.ingest([Event(action="arrived", metadata={{"worker": worker}})])
                m.wait(2, timeout=60, action="arrived")
            events = fake_audit_server.events()
            assert [event.metadata["worker"] for event in events] == [worker]
        """
    )

    result = pytester.runpytest_subprocess(
        *("-p", "xdist.plugin", "-p", "auditkit_testing.plugin"),
        *("-n", "2", "--dist", "each"),
        *("--audit-server-url", running_server.url),
    )

    result.assert_outcomes(passed=2)


def test_the_plugin_imports_no_optional_module_until_a_fixture_needs_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Other plugins may import what they like: load only this one.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(
        """
        import sys

        def test_lazy(audit_recorder):
            optional = {"fake_server", "respx", "hypothesis", "starlette", "uvicorn",
                        "auditkit_testing._respx", "auditkit_testing.strategies"}
            assert optional & set(sys.modules) == set()
        """
    )

    result = pytester.runpytest_subprocess("-p", "auditkit_testing.plugin")

    result.assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("blocked", "fixture", "extra"),
    [
        ("respx", "audit_respx", "testing"),
        ("fake_server", "fake_audit_server", "server"),
    ],
)
def test_a_missing_extra_is_named_in_the_error(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    blocked: str,
    fixture: str,
    extra: str,
) -> None:
    # The user's conftest hides the module once pytest has loaded its plugins;
    # monkeypatch puts it back afterwards.
    monkeypatch.setitem(sys.modules, blocked, sys.modules[blocked])
    monkeypatch.delitem(sys.modules, "auditkit_testing._respx", raising=False)
    pytester.makeconftest(f"import sys\nsys.modules[{blocked!r}] = None\n")
    pytester.makepyfile(
        f"""
        def test_needs_it({fixture}):
            pass
        """
    )

    result = _run(pytester)

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            f"E*ImportError: The {fixture} fixture needs {blocked}, which is not "
            f"installed; install it with: pip install 'auditkit[[]{extra}]'."
        ]
    )


def test_a_server_that_cannot_start_fails_every_test_using_it_with_the_reason(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fake_server

    def cannot_start(**options: object) -> None:
        raise OSError("address already in use")

    monkeypatch.setattr(fake_server, "serve_in_thread", cannot_start)
    pytester.makepyfile(
        """
        def test_one(fake_audit_server):
            pass

        def test_two(audit_buffered_recorder):
            pass
        """
    )

    result = _run(pytester)

    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            "*auditkit: The in-process fake audit server did not start: "
            "OSError('address already in use')"
        ]
        * 2
    )
    result.stdout.no_fnmatch_line("*During handling of the above exception*")
