"""The WSGI middleware on a real Django application, driven through its WSGI handler.

Django's own test client calls views without going through WSGI, so these tests use
``httpx.WSGITransport`` on ``get_wsgi_application()``, as a WSGI server would.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import django  # type: ignore[import-untyped]
import httpx
import pytest
from django.conf import settings  # type: ignore[import-untyped]
from django.core.handlers.wsgi import WSGIHandler  # type: ignore[import-untyped]
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse  # type: ignore[import-untyped]
from django.test.utils import override_settings  # type: ignore[import-untyped]
from django.urls import path  # type: ignore[import-untyped]

import auditkit
from auditkit import Actor, Result, Target
from auditkit.wsgi import AuditMiddleware
from auditkit_testing import InMemoryRecorder

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="only-for-tests",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
        USE_TZ=True,
    )
    django.setup()

# The views record into whichever recorder the running test installed here.
_current_recorder: list[InMemoryRecorder] = []


class Boom(Exception):
    """The exception the failing view raises."""


def _record(**fields: Any) -> None:
    event = auditkit.current_event()
    for name, value in fields.items():
        setattr(event, name, value)
    _current_recorder[0].record(event)


def read_doc(request: HttpRequest, doc_id: str) -> HttpResponse:
    _record(action="doc.read", target=Target("doc", doc_id))
    if doc_id == "missing":
        return HttpResponse("not found", status=404)
    return HttpResponse("ok")


async def read_doc_async(request: HttpRequest, doc_id: str) -> HttpResponse:
    _record(action="doc.read", target=Target("doc", doc_id))
    return HttpResponse("ok")


def forbidden(request: HttpRequest) -> HttpResponse:
    _record(action="doc.delete")
    return HttpResponse("no", status=403)


def explode(request: HttpRequest) -> HttpResponse:
    _record(action="doc.explode")
    raise Boom("view failed")


def untracked(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


def stream(request: HttpRequest) -> StreamingHttpResponse:
    _record(action="doc.export")

    def chunks() -> Iterator[bytes]:
        yield b"a"
        auditkit.current_event().metadata["rows"] = 1
        yield b"b"

    return StreamingHttpResponse(chunks())


urlpatterns = [
    path("docs/<str:doc_id>", read_doc),
    path("async-docs/<str:doc_id>", read_doc_async),
    path("forbidden", forbidden),
    path("explode", explode),
    path("untracked", untracked),
    path("stream", stream),
]


@pytest.fixture
def recorder() -> Iterator[InMemoryRecorder]:
    recorder = InMemoryRecorder()
    _current_recorder.append(recorder)
    try:
        with override_settings(ROOT_URLCONF=__name__):
            yield recorder
    finally:
        _current_recorder.remove(recorder)


def _client(recorder: InMemoryRecorder, **options: Any) -> httpx.Client:
    app = AuditMiddleware(WSGIHandler(), recorder, **options)
    transport = httpx.WSGITransport(app=app, remote_addr="10.0.0.1")
    return httpx.Client(transport=transport, base_url="http://testserver")


@pytest.mark.parametrize("prefix", ["docs", "async-docs"])
def test_sync_and_async_views_record_through_the_middleware(
    recorder: InMemoryRecorder, prefix: str
) -> None:
    def actor(environ: Any) -> Actor:
        return Actor("user", environ.get("HTTP_X_USER", "anonymous"))

    with _client(recorder, actor=actor, tenant=lambda environ: "acme") as client:
        response = client.get(f"/{prefix}/42?x=1", headers={"x-user": "dora"})

    assert response.status_code == 200
    [event] = recorder.events
    assert event.action == "doc.read"
    assert event.target == Target("doc", "42")
    assert event.actor == Actor("user", "dora")
    assert event.tenant_id == "acme"
    assert event.result == Result("success", 200)
    assert event.request is not None
    assert (event.request.path, event.request.ip) == (f"/{prefix}/42", "10.0.0.1")


def test_statuses_become_results(recorder: InMemoryRecorder) -> None:
    with _client(recorder) as client:
        client.get("/docs/missing")
        client.get("/forbidden")
        client.get("/untracked")

    assert [e.result for e in recorder.events] == [
        Result("error", 404),
        Result("denied", 403),
    ]


def test_an_exception_django_turns_into_a_500_is_an_error(
    recorder: InMemoryRecorder,
) -> None:
    django_log = logging.getLogger("django.request")
    django_log.disabled = True
    try:
        with _client(recorder) as client:
            response = client.get("/explode")
    finally:
        django_log.disabled = False

    assert response.status_code == 500
    [event] = recorder.events
    assert (event.action, event.result) == ("doc.explode", Result("error", 500))


def test_a_streaming_response_is_finished_after_its_last_chunk(
    recorder: InMemoryRecorder,
) -> None:
    with _client(recorder) as client:
        response = client.get("/stream")

    assert response.content == b"ab"
    [event] = recorder.events
    assert event.metadata == {"rows": 1}
    assert event.result == Result("success", 200)


def test_forwarding_headers_are_believed_only_from_trusted_proxies(
    recorder: InMemoryRecorder,
) -> None:
    headers = {"x-forwarded-for": "6.6.6.6, 198.51.100.7"}
    with _client(recorder, trusted_proxies=["10.0.0.1"]) as client:
        client.get("/docs/1", headers=headers)
    with _client(recorder) as client:
        client.get("/docs/2", headers=headers)

    assert [e.request.ip for e in recorder.events if e.request] == [
        "198.51.100.7",
        "10.0.0.1",
    ]
