"""Constructor validation, defaults and repr of the buffered recorder."""

from __future__ import annotations

from typing import Any

import pytest

from auditkit import BufferedRecorder, ConfigurationError, Policy, Recorder
from auditkit._http import HttpTransport

from ._transports import RecordingTransport

SECRET = "sk-live-very-secret-key"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("capacity", 0),
        ("capacity", 1.5),
        ("capacity", True),
        ("policy", "block"),
        ("batch_size", 0),
        ("batch_size", 501),
        ("flush_interval", 0),
        ("flush_interval", -1.0),
        ("flush_interval", float("nan")),
        ("send_timeout", 0),
        ("retry_budget", -1),
        ("retry_budget", float("inf")),
        ("backoff_initial", "1"),
        ("backoff_max", -0.5),
        ("deferred_timeout", None),
        ("exit_timeout", -1),
        ("max_batch_bytes", 1000),
        ("max_event_bytes", 10),
        ("on_drop", 42),
        ("on_failure", "print"),
        ("on_invalid", object()),
    ],
)
def test_constructor_rejects_a_bad_argument_naming_it(name: str, value: Any) -> None:
    with pytest.raises(ConfigurationError) as info:
        BufferedRecorder(transport=RecordingTransport(), **{name: value})

    assert name in str(info.value)
    if name != "max_event_bytes":
        assert repr(value) in str(info.value)


def test_transport_without_send_and_close_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="transport"):
        BufferedRecorder(transport=object())  # type: ignore[arg-type]


def test_endpoint_and_api_key_are_required_without_a_transport() -> None:
    with pytest.raises(ConfigurationError, match="endpoint"):
        BufferedRecorder()
    with pytest.raises(ConfigurationError, match="api_key"):
        BufferedRecorder("http://127.0.0.1:9")
    with pytest.raises(ConfigurationError, match="api_key"):
        BufferedRecorder("http://127.0.0.1:9", "")


def test_default_transport_is_http_to_the_endpoint() -> None:
    with BufferedRecorder("http://127.0.0.1:9", SECRET) as recorder:
        assert isinstance(recorder._transport, HttpTransport)
        assert isinstance(recorder, Recorder)


def test_api_key_never_appears_in_repr_or_errors() -> None:
    with BufferedRecorder("http://127.0.0.1:9", SECRET) as recorder:
        assert SECRET not in repr(recorder)
        assert SECRET not in repr(recorder._transport)
    with pytest.raises(ConfigurationError) as info:
        BufferedRecorder("not a url", SECRET)
    assert SECRET not in str(info.value)
    with pytest.raises(ConfigurationError) as info:
        BufferedRecorder(SECRET, 12345)  # type: ignore[arg-type]
    assert "12345" not in str(info.value)


def test_repr_shows_state_policy_and_depth() -> None:
    recorder = BufferedRecorder(transport=RecordingTransport(), policy=Policy.BLOCK)
    assert repr(recorder) == (
        "<BufferedRecorder open policy=block capacity=10000 depth=0>"
    )
    recorder.close()
    assert repr(recorder).startswith("<BufferedRecorder closed")


def test_a_recorder_that_never_recorded_starts_no_thread_and_closes_its_transport() -> (
    None
):
    transport = RecordingTransport()
    recorder = BufferedRecorder(transport=transport)

    assert recorder.close(timeout=1.0) is True
    assert recorder._worker is None
    assert transport.closed == 1
