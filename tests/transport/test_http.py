"""HttpTransport against a respx-mocked audit service: one exchange, one SendResult."""

from __future__ import annotations

import email.utils
import gzip
import logging
import time
from collections.abc import Iterator

import httpx
import pytest
import respx

import auditkit
from auditkit import HttpTransport, SendStatus

from ._helpers import API_KEY, ENDPOINT, EVENTS_URL, make_batch, sent_events


def _accepted(count: int, *, duplicates: int = 0) -> httpx.Response:
    return httpx.Response(
        200,
        json={"accepted": count - duplicates, "duplicates": duplicates, "rejected": []},
    )


@pytest.fixture
def service() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router


@pytest.fixture
def transport() -> Iterator[HttpTransport]:
    with HttpTransport(ENDPOINT, API_KEY) as transport:
        yield transport


def _records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name.startswith("auditkit") and record.levelno == level
    ]


# The request


def test_send_posts_the_batch_with_key_user_agent_and_json_type(
    service: respx.MockRouter, transport: HttpTransport
) -> None:
    route = service.post(EVENTS_URL).mock(return_value=_accepted(2))

    result = transport.send(make_batch(2))

    assert result.status is SendStatus.DELIVERED
    request = route.calls.last.request
    assert request.method == "POST"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == (
        f"auditkit/{auditkit.__version__} python-httpx/{httpx.__version__}"
    )


def test_extra_headers_and_user_agent_prefix_are_sent(
    service: respx.MockRouter,
) -> None:
    route = service.post(EVENTS_URL).mock(return_value=_accepted(1))
    with HttpTransport(
        ENDPOINT,
        API_KEY,
        headers={"X-Fake-Namespace": "test-42"},
        user_agent="billing/2.1",
    ) as transport:
        transport.send(make_batch(1))

    headers = route.calls.last.request.headers
    assert headers["x-fake-namespace"] == "test-42"
    assert headers["user-agent"].startswith("billing/2.1 auditkit/")


def test_endpoint_with_a_path_prefix_and_trailing_slash_is_joined_once(
    service: respx.MockRouter,
) -> None:
    route = service.post("https://gw.example.test/audit/v1/events").mock(
        return_value=_accepted(1)
    )
    with HttpTransport("https://gw.example.test/audit/", API_KEY) as transport:
        result = transport.send(make_batch(1))

    assert result.status is SendStatus.DELIVERED
    assert route.call_count == 1


def test_bytes_on_the_wire_decode_to_exactly_the_batch_events(
    service: respx.MockRouter, transport: HttpTransport
) -> None:
    route = service.post(EVENTS_URL).mock(return_value=_accepted(50))
    batch = make_batch(50, padding=100)

    transport.send(batch)

    assert sent_events(route.calls.last.request) == list(batch.events)


def test_small_body_is_sent_plain(
    service: respx.MockRouter, transport: HttpTransport
) -> None:
    route = service.post(EVENTS_URL).mock(return_value=_accepted(1))
    batch = make_batch(1)
    assert len(batch.body) <= 1024

    transport.send(batch)

    request = route.calls.last.request
    assert "content-encoding" not in request.headers
    assert request.content == batch.body


def test_body_over_the_threshold_is_gzipped(
    service: respx.MockRouter, transport: HttpTransport
) -> None:
    route = service.post(EVENTS_URL).mock(return_value=_accepted(20))
    batch = make_batch(20, padding=200)
    assert len(batch.body) > 1024

    transport.send(batch)

    request = route.calls.last.request
    assert request.headers["content-encoding"] == "gzip"
    assert len(request.content) < len(batch.body)
    assert gzip.decompress(request.content) == batch.body


def test_gzip_threshold_none_never_compresses(service: respx.MockRouter) -> None:
    route = service.post(EVENTS_URL).mock(return_value=_accepted(20))
    batch = make_batch(20, padding=200)
    with HttpTransport(ENDPOINT, API_KEY, gzip_threshold=None) as transport:
        transport.send(batch)

    assert route.calls.last.request.content == batch.body


def test_retry_of_the_same_batch_resends_identical_bytes(
    service: respx.MockRouter, transport: HttpTransport
) -> None:
    route = service.post(EVENTS_URL).mock(
        side_effect=[httpx.Response(503), httpx.Response(503), _accepted(20)]
    )
    batch = make_batch(20, padding=200)

    results = [transport.send(batch) for _ in range(3)]

    assert [result.status for result in results] == [
        SendStatus.RETRY,
        SendStatus.RETRY,
        SendStatus.DELIVERED,
    ]
    bodies = {call.request.content for call in route.calls}
    assert len(bodies) == 1
    assert gzip.decompress(bodies.pop()) == batch.body


def test_batch_over_the_protocol_limits_is_too_large_without_a_request(
    service: respx.MockRouter, transport: HttpTransport
) -> None:
    route = service.post(EVENTS_URL).mock(return_value=_accepted(501))

    result = transport.send(make_batch(501))

    assert result.status is SendStatus.TOO_LARGE
    assert route.call_count == 0


def test_send_timeout_caps_every_phase_of_the_request(
    service: respx.MockRouter, transport: HttpTransport
) -> None:
    route = service.post(EVENTS_URL).mock(return_value=_accepted(1))

    transport.send(make_batch(1), timeout=2.0)

    assert route.calls.last.request.extensions["timeout"] == {
        "connect": 2.0,
        "read": 2.0,
        "write": 2.0,
        "pool": 2.0,
    }


def test_default_timeouts_are_explicit_for_every_phase(
    service: respx.MockRouter, transport: HttpTransport
) -> None:
    route = service.post(EVENTS_URL).mock(return_value=_accepted(1))

    transport.send(make_batch(1))

    phases = route.calls.last.request.extensions["timeout"]
    assert set(phases) == {"connect", "read", "write", "pool"}
    assert all(isinstance(value, float) and value > 0 for value in phases.values())


# Answers


def test_duplicates_count_as_delivered(
    service: respx.MockRouter, transport: HttpTransport
) -> None:
    service.post(EVENTS_URL).mock(return_value=_accepted(3, duplicates=3))

    result = transport.send(make_batch(3))

    assert result.status is SendStatus.DELIVERED
    assert result.rejected == {}


def test_partial_success_lists_rejected_events_with_the_service_reason(
    service: respx.MockRouter, transport: HttpTransport
) -> None:
    batch = make_batch(4)
    service.post(EVENTS_URL).mock(
        return_value=httpx.Response(
            200,
            json={
                "accepted": 2,
                "duplicates": 0,
                "rejected": [
                    {
                        "index": 1,
                        "id": batch.events[1]["id"],
                        "code": "too_long",
                        "field": "actor.id",
                        "error": "Must be at most 256 characters.",
                    },
                    {
                        "index": 3,
                        "id": batch.events[3]["id"],
                        "code": "id_conflict",
                        "field": None,
                        "error": "Known id with other content.",
                    },
                ],
            },
        )
    )

    result = transport.send(batch)

    assert result.status is SendStatus.DELIVERED
    assert result.rejected == {
        1: "too_long at actor.id: Must be at most 256 characters.",
        3: "id_conflict: Known id with other content.",
    }


def test_unreadable_success_body_is_delivered_and_warned_once(
    service: respx.MockRouter,
    transport: HttpTransport,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="auditkit")
    service.post(EVENTS_URL).mock(return_value=httpx.Response(200, text="<html>ok"))

    results = [transport.send(make_batch(2)) for _ in range(3)]

    assert {result.status for result in results} == {SendStatus.DELIVERED}
    assert all(result.rejected == {} for result in results)
    warnings = _records(caplog, logging.WARNING)
    assert len(warnings) == 1
    assert "200 OK" in warnings[0].getMessage()


def test_422_rejects_every_event_with_reasons_and_logs_once(
    service: respx.MockRouter,
    transport: HttpTransport,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="auditkit")
    service.post(EVENTS_URL).mock(
        return_value=httpx.Response(
            422,
            json={
                "accepted": 0,
                "duplicates": 0,
                "rejected": [
                    {
                        "index": 0,
                        "code": "unknown_field",
                        "field": "colour",
                        "error": "x",
                    }
                ],
            },
        )
    )

    results = [transport.send(make_batch(3)) for _ in range(2)]

    assert results[0].status is SendStatus.DELIVERED
    assert results[0].rejected[0] == "unknown_field at colour: x"
    assert set(results[0].rejected) == {0, 1, 2}
    assert "422" in results[0].rejected[2]
    assert len(_records(caplog, logging.WARNING)) == 1


def test_422_without_a_body_rejects_every_event(
    service: respx.MockRouter, transport: HttpTransport
) -> None:
    service.post(EVENTS_URL).mock(return_value=httpx.Response(422))

    result = transport.send(make_batch(2))

    assert result.status is SendStatus.DELIVERED
    assert set(result.rejected) == {0, 1}


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_busy_statuses_ask_for_a_retry(
    service: respx.MockRouter, transport: HttpTransport, status: int
) -> None:
    service.post(EVENTS_URL).mock(return_value=httpx.Response(status))

    result = transport.send(make_batch(1))

    assert result.status is SendStatus.RETRY
    assert str(status) in result.reason
    assert result.retry_after is None


def test_status_sequence_maps_each_answer(
    service: respx.MockRouter, transport: HttpTransport
) -> None:
    service.post(EVENTS_URL).mock(
        side_effect=[
            httpx.Response(503, headers={"Retry-After": "2"}),
            httpx.Response(429, headers={"Retry-After": "1"}),
            httpx.Response(413),
            _accepted(1),
        ]
    )
    batch = make_batch(1)

    results = [transport.send(batch) for _ in range(4)]

    assert [(result.status, result.retry_after) for result in results] == [
        (SendStatus.RETRY, 2.0),
        (SendStatus.RETRY, 1.0),
        (SendStatus.TOO_LARGE, None),
        (SendStatus.DELIVERED, None),
    ]


def test_retry_after_in_seconds_is_honoured(
    service: respx.MockRouter, transport: HttpTransport
) -> None:
    service.post(EVENTS_URL).mock(
        return_value=httpx.Response(429, headers={"Retry-After": "7"})
    )

    result = transport.send(make_batch(1))

    assert result.retry_after == 7.0
    assert "retry after 7 s" in result.reason


def test_retry_after_as_an_http_date_is_honoured(
    service: respx.MockRouter, transport: HttpTransport
) -> None:
    when = email.utils.formatdate(time.time() + 20, usegmt=True)
    service.post(EVENTS_URL).mock(
        return_value=httpx.Response(503, headers={"Retry-After": when})
    )

    result = transport.send(make_batch(1))

    # The date has a resolution of one second; the bound is generous on purpose.
    assert result.retry_after is not None
    assert 10.0 <= result.retry_after <= 21.0


@pytest.mark.parametrize("when", ["0", "past date", "date now"])
def test_retry_after_of_no_wait_is_left_to_the_backoff(
    service: respx.MockRouter, transport: HttpTransport, when: str
) -> None:
    """A "retry now" gives no delay, so that a service repeating it isn't hammered."""
    offset = {"0": None, "past date": -3600, "date now": 0}[when]
    value = (
        "0"
        if offset is None
        else email.utils.formatdate(time.time() + offset, usegmt=True)
    )
    service.post(EVENTS_URL).mock(
        return_value=httpx.Response(503, headers={"Retry-After": value})
    )

    result = transport.send(make_batch(1))

    assert result.status is SendStatus.RETRY
    assert result.retry_after is None
    assert "retry at once" in result.reason


def test_retry_after_capped_below_one_second_is_still_honoured(
    service: respx.MockRouter,
) -> None:
    service.post(EVENTS_URL).mock(
        return_value=httpx.Response(503, headers={"Retry-After": "3600"})
    )
    with HttpTransport(ENDPOINT, API_KEY, max_retry_after=0.25) as transport:
        result = transport.send(make_batch(1))

    assert result.retry_after == 0.25


@pytest.mark.parametrize("offset", ["3600", "date"])
def test_retry_after_is_capped_by_max_retry_after(
    service: respx.MockRouter, offset: str
) -> None:
    value = (
        offset
        if offset != "date"
        else email.utils.formatdate(time.time() + 3600, usegmt=True)
    )
    service.post(EVENTS_URL).mock(
        return_value=httpx.Response(503, headers={"Retry-After": value})
    )
    with HttpTransport(ENDPOINT, API_KEY, max_retry_after=12.5) as transport:
        result = transport.send(make_batch(1))

    assert result.retry_after == 12.5


def test_unreadable_retry_after_is_ignored(
    service: respx.MockRouter, transport: HttpTransport
) -> None:
    service.post(EVENTS_URL).mock(
        return_value=httpx.Response(503, headers={"Retry-After": "soon-ish"})
    )

    result = transport.send(make_batch(1))

    assert result.status is SendStatus.RETRY
    assert result.retry_after is None


def test_413_asks_for_a_split(
    service: respx.MockRouter, transport: HttpTransport
) -> None:
    service.post(EVENTS_URL).mock(return_value=httpx.Response(413))

    result = transport.send(make_batch(8))

    assert result.status is SendStatus.TOO_LARGE
    assert "413" in result.reason


@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectError,
        httpx.ConnectTimeout,
        httpx.ReadTimeout,
        httpx.WriteTimeout,
        httpx.PoolTimeout,
        httpx.ReadError,
        httpx.WriteError,
        httpx.RemoteProtocolError,
        httpx.ProxyError,
    ],
)
def test_network_failures_ask_for_a_retry_without_raising(
    service: respx.MockRouter, transport: HttpTransport, error: type[Exception]
) -> None:
    service.post(EVENTS_URL).mock(side_effect=error)

    result = transport.send(make_batch(1))

    assert result.status is SendStatus.RETRY
    assert error.__name__ in result.reason


def test_connection_errors_then_success_deliver(
    service: respx.MockRouter, transport: HttpTransport
) -> None:
    service.post(EVENTS_URL).mock(
        side_effect=[
            httpx.ConnectError("refused"),
            httpx.ReadTimeout("slow"),
            _accepted(1),
        ]
    )
    batch = make_batch(1)

    statuses = [transport.send(batch).status for _ in range(3)]

    assert statuses == [SendStatus.RETRY, SendStatus.RETRY, SendStatus.DELIVERED]


def test_local_protocol_error_fails_without_retry(
    service: respx.MockRouter, transport: HttpTransport
) -> None:
    service.post(EVENTS_URL).mock(side_effect=httpx.LocalProtocolError)

    assert transport.send(make_batch(1)).status is SendStatus.FAILED


REFUSALS = [
    (400, "malformed"),
    (401, "refused the API key"),
    (403, "refused the API key for this endpoint"),
    (404, "no ingest endpoint"),
    (409, "refused a batch"),
    (415, "content type or encoding"),
    (301, "redirected"),
]


@pytest.mark.parametrize(("status", "phrase"), REFUSALS)
def test_refusals_fail_and_are_logged_once_at_error(
    service: respx.MockRouter,
    transport: HttpTransport,
    caplog: pytest.LogCaptureFixture,
    status: int,
    phrase: str,
) -> None:
    caplog.set_level(logging.DEBUG, logger="auditkit")
    route = service.post(EVENTS_URL).mock(return_value=httpx.Response(status))

    results = [transport.send(make_batch(2)) for _ in range(5)]

    assert route.call_count == 5
    assert {result.status for result in results} == {SendStatus.FAILED}
    assert phrase in results[0].reason
    errors = _records(caplog, logging.ERROR)
    assert len(errors) == 1
    assert errors[0].name == "auditkit._http"
    assert phrase in errors[0].getMessage()
    assert str(status) in errors[0].getMessage()


def test_wrong_key_is_obvious_from_the_first_log_line(
    service: respx.MockRouter,
    transport: HttpTransport,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="auditkit")
    service.post(EVENTS_URL).mock(return_value=httpx.Response(401))

    transport.send(make_batch(1))

    first = next(
        record for record in caplog.records if record.levelno >= logging.WARNING
    )
    assert first.levelno == logging.ERROR
    message = first.getMessage()
    assert "refused the API key (401 Unauthorized)" in message
    assert "Check the api_key" in message


def test_different_refusals_are_each_reported(
    service: respx.MockRouter,
    transport: HttpTransport,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="auditkit")
    service.post(EVENTS_URL).mock(
        side_effect=[httpx.Response(401), httpx.Response(403), httpx.Response(401)]
    )

    for _ in range(3):
        transport.send(make_batch(1))

    messages = [record.getMessage() for record in _records(caplog, logging.ERROR)]
    assert len(messages) == 2
    assert "401" in messages[0]
    assert "403" in messages[1]


# The API key stays secret


def test_api_key_is_in_no_log_line_reason_or_repr(
    service: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    service.post(EVENTS_URL).mock(
        side_effect=[
            _accepted(1),
            httpx.Response(200, text="not json"),
            httpx.Response(401),
            httpx.Response(403),
            httpx.Response(422),
            httpx.Response(503, headers={"Retry-After": "1"}),
            httpx.Response(413),
            httpx.ConnectError(f"could not connect with {API_KEY}"),
            httpx.ReadTimeout(f"timed out, key {API_KEY}"),
            httpx.LocalProtocolError(f"bad header {API_KEY}"),
        ]
    )
    service.get(ENDPOINT + "/v1/limits").mock(return_value=httpx.Response(401))
    transport = HttpTransport(ENDPOINT, API_KEY, headers={"X-Namespace": "n1"})

    texts = [repr(transport), str(transport)]
    for _ in range(10):
        result = transport.send(make_batch(1))
        texts += [result.reason, repr(result), *result.rejected.values()]
    with pytest.raises(auditkit.TransportError) as raised:
        transport.fetch_limits()
    texts.append(str(raised.value))
    transport.close()
    texts.append(repr(transport))

    assert caplog.records
    texts += [record.getMessage() for record in caplog.records]
    texts.append(caplog.text)
    assert not [text for text in texts if API_KEY in text]


@pytest.mark.parametrize(
    "options",
    [
        {"headers": {"Authorization": "Bearer other"}},
        {"headers": {"X-Bad": "a\nb"}},
        {"timeout": -1},
        {"gzip_level": 0},
        {"max_retry_after": 0},
        {"verify": "/nonexistent/ca.pem"},
        {"cert": "/nonexistent/cert.pem"},
        {"proxy": "ftp://proxy.test"},
        {"user_agent": "bad\r\nagent"},
    ],
)
def test_configuration_errors_never_show_the_key(options: dict[str, object]) -> None:
    with pytest.raises(auditkit.ConfigurationError) as raised:
        HttpTransport(ENDPOINT, API_KEY, **options)  # type: ignore[arg-type]

    assert API_KEY not in str(raised.value)
    assert next(iter(options)) in str(raised.value)


@pytest.mark.parametrize(
    "api_key", ["", "  ", f"{API_KEY} extra", f"{API_KEY}\n", "ключ", 42, None]
)
def test_invalid_api_key_is_refused_without_showing_it(api_key: object) -> None:
    with pytest.raises(auditkit.ConfigurationError, match="api_key") as raised:
        HttpTransport(ENDPOINT, api_key)  # type: ignore[arg-type]

    if isinstance(api_key, str) and api_key.strip():
        assert api_key.strip() not in str(raised.value)


# Configuration


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("endpoint", "audit.example.test"),
        ("endpoint", "ftp://audit.example.test"),
        ("endpoint", "https://audit.example.test/v1/events"),
        ("endpoint", "https://audit.example.test/?q=1"),
        ("endpoint", 42),
        ("timeout", "fast"),
        ("timeout", True),
        ("timeout", float("inf")),
        ("gzip_threshold", -1),
        ("gzip_threshold", 1.5),
        ("gzip_level", 10),
        ("gzip_level", True),
        ("max_retry_after", -3),
        ("max_retry_after", float("nan")),
        ("headers", [("X-A", "b")]),
        ("headers", {"Bad Name": "v"}),
        ("headers", {"Content-Type": "text/plain"}),
        ("headers", {"X-A": 1}),
        ("verify", 3),
        ("cert", 3),
        ("proxy", 3),
        ("proxy", "not a url"),
        ("user_agent", ""),
        ("client", "http://other.example.test"),
    ],
)
def test_invalid_arguments_are_refused_naming_the_parameter(
    name: str, value: object
) -> None:
    endpoint = value if name == "endpoint" else ENDPOINT
    options = {} if name == "endpoint" else {name: value}

    with pytest.raises(auditkit.ConfigurationError, match=name):
        HttpTransport(endpoint, API_KEY, **options)  # type: ignore[arg-type]


def test_tls_options_cannot_be_combined_with_your_own_client() -> None:
    with httpx.Client() as client:
        with pytest.raises(auditkit.ConfigurationError, match="verify"):
            HttpTransport(ENDPOINT, API_KEY, client=client, verify=False)


def test_tls_and_proxy_options_are_accepted() -> None:
    transports = [
        HttpTransport(ENDPOINT, API_KEY, verify=False),
        HttpTransport(ENDPOINT, API_KEY, proxy="http://proxy.example.test:3128"),
        HttpTransport(ENDPOINT, API_KEY, timeout=3),
    ]
    for transport in transports:
        transport.close()

    assert "closed" in repr(transports[0])


def test_repr_shows_the_endpoint_without_credentials() -> None:
    with HttpTransport("https://user:pw@audit.example.test", API_KEY) as transport:
        assert "pw" not in repr(transport)
        assert "audit.example.test" in repr(transport)


# Lifecycle


def test_your_own_client_is_used_and_left_open(service: respx.MockRouter) -> None:
    route = service.post(EVENTS_URL).mock(return_value=_accepted(1))
    with httpx.Client(headers={"X-Client": "mine"}) as client:
        transport = HttpTransport(ENDPOINT, API_KEY, client=client)
        transport.send(make_batch(1))
        transport.close()

        assert not client.is_closed
    assert route.calls.last.request.headers["x-client"] == "mine"


def test_your_own_client_closed_under_the_transport_fails_without_raising(
    service: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    route = service.post(EVENTS_URL).mock(return_value=_accepted(1))
    client = httpx.Client()
    transport = HttpTransport(ENDPOINT, API_KEY, client=client)
    client.close()

    with caplog.at_level(logging.ERROR, logger="auditkit"):
        results = [transport.send(make_batch(1)) for _ in range(3)]

    assert [result.status for result in results] == [SendStatus.FAILED] * 3
    assert "client= is closed" in results[0].reason
    errors = _records(caplog, logging.ERROR)
    assert len(errors) == 1
    assert "was closed while the recorder still uses it" in errors[0].getMessage()
    assert route.call_count == 0


def test_your_own_client_closed_during_a_send_fails_without_raising(
    service: respx.MockRouter,
) -> None:
    client = httpx.Client()

    def close_then_refuse(request: httpx.Request) -> httpx.Response:
        # What httpx does when its client is closed while a send is starting.
        client.close()
        raise RuntimeError("Cannot send a request, as the client has been closed.")

    service.post(EVENTS_URL).mock(side_effect=close_then_refuse)
    transport = HttpTransport(ENDPOINT, API_KEY, client=client)

    result = transport.send(make_batch(1))

    assert result.status is SendStatus.FAILED


def test_close_closes_the_own_client_and_later_sends_fail(
    service: respx.MockRouter,
) -> None:
    route = service.post(EVENTS_URL).mock(return_value=_accepted(1))
    transport = HttpTransport(ENDPOINT, API_KEY)
    client = transport._client

    transport.close()
    transport.close()
    result = transport.send(make_batch(1))

    assert client.is_closed
    assert result.status is SendStatus.FAILED
    assert route.call_count == 0


def test_reset_after_fork_builds_a_fresh_client(
    service: respx.MockRouter, transport: HttpTransport
) -> None:
    route = service.post(EVENTS_URL).mock(return_value=_accepted(1))
    parent_client = transport._client

    transport.reset_after_fork()
    result = transport.send(make_batch(1))

    assert transport._client is not parent_client
    assert not parent_client.is_closed
    assert result.status is SendStatus.DELIVERED
    assert route.call_count == 1
    parent_client.close()


def test_reset_after_fork_keeps_your_own_client() -> None:
    with httpx.Client() as client:
        transport = HttpTransport(ENDPOINT, API_KEY, client=client)
        transport.reset_after_fork()

        assert transport._client is client


def test_transport_satisfies_the_transport_protocol(transport: HttpTransport) -> None:
    assert isinstance(transport, auditkit.Transport)


# Limits


def test_fetch_limits_reads_the_service_limits(
    service: respx.MockRouter, transport: HttpTransport
) -> None:
    route = service.get(ENDPOINT + "/v1/limits").mock(
        return_value=httpx.Response(
            200, json={"max_batch_events": 100, "max_batch_bytes": 512 * 1024}
        )
    )

    limits = transport.fetch_limits()

    assert limits == auditkit.Limits(max_batch_events=100, max_batch_bytes=512 * 1024)
    assert route.calls.last.request.headers["authorization"] == f"Bearer {API_KEY}"


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(401),
        httpx.Response(200, text="nope"),
        httpx.Response(200, json={"max_batch_events": -1}),
    ],
)
def test_fetch_limits_raises_transport_error_for_unusable_answers(
    service: respx.MockRouter, transport: HttpTransport, answer: httpx.Response
) -> None:
    service.get(ENDPOINT + "/v1/limits").mock(return_value=answer)

    with pytest.raises(auditkit.TransportError):
        transport.fetch_limits()


def test_fetch_limits_raises_transport_error_when_unreachable(
    service: respx.MockRouter, transport: HttpTransport
) -> None:
    service.get(ENDPOINT + "/v1/limits").mock(side_effect=httpx.ConnectError)

    with pytest.raises(auditkit.TransportError, match="connect") as raised:
        transport.fetch_limits()

    assert isinstance(raised.value.__cause__, httpx.ConnectError)


def test_send_with_no_time_left_asks_for_a_retry_without_a_request(
    service: respx.MockRouter, transport: HttpTransport
) -> None:
    route = service.post(EVENTS_URL).mock(return_value=_accepted(1))

    result = transport.send(make_batch(1), timeout=0)

    assert result.status is SendStatus.RETRY
    assert route.call_count == 0
