"""Run the vault against an audit service: ``python -m examples.vault``.

    python -m fake_server --port 8081 &
    python -m examples.vault --audit-url http://127.0.0.1:8081 --api-key dev-key
    python -m examples.vault --audit-url http://127.0.0.1:8081 --api-key dev-key --demo

The first form serves the vault with uvicorn on ``--host``/``--port`` until Ctrl-C;
``--demo`` instead plays a short scripted session in-process, delivers its events,
and prints what the audit service stored. ``AUDIT_URL`` and ``AUDIT_API_KEY`` may
replace the two options.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import httpx

from .app import Secret, Vault, create_app

if TYPE_CHECKING:
    import uvicorn

__all__ = ["main", "server_config"]

_SEED = [
    Secret("s-acme-db", "acme", "database password", "hunter2"),
    Secret("s-globex-api", "globex", "payments api key", "pk_live_42"),
]


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the vault, or play the demo with ``--demo``; return the exit status."""
    args = _parser().parse_args(argv)
    if not args.audit_url or not args.api_key:
        print(
            "vault: give --audit-url and --api-key (or AUDIT_URL and AUDIT_API_KEY).",
            file=sys.stderr,
        )
        return 2

    # Imported here so that the vault's app and tests need only auditkit's core.
    from auditkit import BufferedRecorder

    recorder = BufferedRecorder(args.audit_url, args.api_key, flush_interval=0.2)
    app = create_app(recorder, vault=Vault(list(_SEED)))
    try:
        if args.demo:
            asyncio.run(_play_demo(app))
        else:
            import uvicorn

            uvicorn.Server(server_config(app, host=args.host, port=args.port)).run()
    finally:
        delivered = recorder.close(timeout=10)
    print(f"audit: {recorder.stats()}", file=sys.stderr)
    if args.demo:
        _print_stored(args.audit_url, args.api_key)
    return 0 if delivered else 1


def server_config(app: Any, *, host: str, port: int) -> uvicorn.Config:
    """uvicorn's settings for serving the vault on ``host`` and ``port``.

    ``proxy_headers`` is off: uvicorn would otherwise believe ``X-Forwarded-For``
    from any client on 127.0.0.1 and rewrite the socket's peer with it, so a local
    client could forge the IP in the audit log. Which proxies to believe is the
    middleware's ``trusted_proxies``, and the vault trusts none.
    """
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, proxy_headers=False)


async def _play_demo(app: Any) -> None:
    alice = {"authorization": "Bearer alice-token"}
    steps = [
        ("alice reads her secret", "/secrets/s-acme-db", alice),
        ("alice reveals her secret", "/secrets/s-acme-db/reveal", alice),
        ("alice reads a missing secret", "/secrets/nope", alice),
        ("alice reveals a missing secret", "/secrets/nope/reveal", alice),
        ("alice reveals globex's secret", "/secrets/s-globex-api/reveal", alice),
        ("anonymous reveal", "/secrets/s-acme-db/reveal", {}),
    ]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://vault"
    ) as client:
        for title, path, headers in steps:
            response = await client.get(path, headers=headers)
            print(f"{title:32} GET {path:30} -> {response.status_code} {response.text}")


def _print_stored(audit_url: str, api_key: str) -> None:
    response = httpx.get(
        f"{audit_url.rstrip('/')}/v1/events",
        params={"limit": 100},
        headers={"authorization": f"Bearer {api_key}"},
        timeout=10,
    )
    response.raise_for_status()
    print("events stored by the audit service:")
    for event in response.json()["events"]:
        actor = (event.get("actor") or {}).get("id")
        summary = {
            "action": event["action"],
            "actor": actor,
            "tenant_id": event.get("tenant_id"),
            "target": (event.get("target") or {}).get("id"),
            "result": event.get("result"),
        }
        print("  " + json.dumps(summary))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m examples.vault")
    parser.add_argument("--audit-url", default=os.environ.get("AUDIT_URL"))
    parser.add_argument("--api-key", default=os.environ.get("AUDIT_API_KEY"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--demo", action="store_true", help="play a scripted session and exit"
    )
    return parser


if __name__ == "__main__":
    sys.exit(main())
