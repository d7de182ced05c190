"""The middleware's added time per request, against the bare Starlette and Flask apps.

Both apps are called in-process through their ASGI or WSGI interface, with no
server and no socket, so that the difference between the two timings is what the
middleware (and recording the request's event) adds. The audited app's handler does
what a user's would: it sets the action, the target and three metadata keys on
:func:`auditkit.current_event` and records it; the ``actor`` hook supplies the actor.
The bare app's handler does the same work on an event it builds itself, without the
middleware or a recorder, so only auditkit's part differs.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import time
from typing import Any

__all__ = ["measure"]

_METADATA = {"ip": "203.0.113.7", "plan": "pro", "attempt": 3}


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Time ``spec["count"]`` requests to the bare and the audited app."""
    from bench._child import percentiles

    framework = spec["framework"]
    middleware_module = {"starlette": "auditkit.asgi", "flask": "auditkit.wsgi"}[
        framework
    ]
    if importlib.util.find_spec(framework) is None:
        return {"skipped": f"{framework} is not installed"}
    try:
        middleware = importlib.import_module(middleware_module)
    except ImportError as exc:
        return {"skipped": f"{middleware_module} is missing ({exc})"}

    from bench._clients import open_client

    recorder = open_client("auditkit", spec["endpoint"]).recorder
    build, run = {
        "starlette": (_build_starlette, _time_asgi),
        "flask": (_build_flask, _time_wsgi),
    }[framework]
    bare = build(None, None)
    audited = build(recorder, middleware.AuditMiddleware)
    count, warmup = spec["count"], spec["warmup"]
    run(bare, warmup)
    run(audited, warmup)
    bare_samples = run(bare, count)
    audited_samples = run(audited, count)
    stats = recorder.stats()
    recorder.close(5.0)
    bare_stats = percentiles(bare_samples)
    audited_stats = percentiles(audited_samples)
    return {
        "requests": count,
        "bare": bare_stats,
        "audited": audited_stats,
        "added_p50_us": round(audited_stats["p50"] - bare_stats["p50"], 2),
        "added_p99_us": round(audited_stats["p99"] - bare_stats["p99"], 2),
        "added_mean_us": round(audited_stats["mean"] - bare_stats["mean"], 2),
        "enqueued": stats.enqueued,
    }


def _actor(_: Any) -> Any:
    import auditkit

    return auditkit.Actor("user", "user-42")


def _fill_event(event: Any, document: str) -> None:
    import auditkit

    event.action = "document.read"
    event.target = auditkit.Target("document", document)
    event.metadata.update(_METADATA)


def _build_starlette(recorder: Any, middleware: Any) -> Any:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    import auditkit

    async def read_document(request: Any) -> Any:
        document = request.path_params["doc"]
        if recorder is None:
            event = auditkit.Event(actor=_actor(None))
            _fill_event(event, document)
        else:
            event = auditkit.current_event()
            _fill_event(event, document)
            recorder.record(event)
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/documents/{doc}", read_document)])
    if middleware is None:
        return app
    return middleware(app, recorder, actor=_actor)


def _time_asgi(app: Any, count: int) -> list[int]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/documents/doc-1234",
        "raw_path": b"/documents/doc-1234",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"bench"), (b"user-agent", b"bench/1")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    async def loop() -> list[int]:
        clock = time.perf_counter_ns
        samples = []
        for _ in range(count):
            start = clock()
            await app(dict(scope), receive, send)
            samples.append(clock() - start)
        return samples

    return asyncio.run(loop())


def _build_flask(recorder: Any, middleware: Any) -> Any:
    from flask import Flask

    import auditkit

    app = Flask("bench")

    @app.get("/documents/<doc>")
    def read_document(doc: str) -> str:
        if recorder is None:
            event = auditkit.Event(actor=_actor(None))
            _fill_event(event, doc)
        else:
            event = auditkit.current_event()
            _fill_event(event, doc)
            recorder.record(event)
        return "ok"

    if middleware is None:
        return app.wsgi_app
    return middleware(app.wsgi_app, recorder, actor=_actor)


def _time_wsgi(app: Any, count: int) -> list[int]:
    from werkzeug.test import EnvironBuilder

    environ = EnvironBuilder(
        path="/documents/doc-1234", headers=[("User-Agent", "bench/1")]
    ).get_environ()

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        return None

    clock = time.perf_counter_ns
    samples = []
    for _ in range(count):
        request_environ = dict(environ)
        start = clock()
        body = app(request_environ, start_response)
        for _chunk in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()
        samples.append(clock() - start)
    return samples
