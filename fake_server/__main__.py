"""Command line: ``python -m fake_server`` or ``fake-audit-server``.

Prints ``fake_server listening on http://HOST:PORT`` as the first line on stdout once
the port is bound, logs one line per request on stderr, and stops cleanly on SIGINT or
SIGTERM (exit status 0). Every option also reads an environment variable, which is
how the container is configured.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType

import uvicorn

from auditkit import ConfigurationError, Limits

from ._app import ServerConfig
from ._thread import bind_socket, make_server

__all__ = ["main"]

logger = logging.getLogger("fake_server")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the fake audit server until SIGINT or SIGTERM; return the exit status.

    Args:
        argv: The arguments, without the program name; ``sys.argv[1:]`` by default.
    """
    args = _parser().parse_args(argv)
    try:
        config = _config(args)
    except (ConfigurationError, ValueError) as exc:
        print(f"fake_server: {exc}", file=sys.stderr)
        return 2

    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        sock = bind_socket(args.host, args.port)
    except OSError as exc:
        print(
            f"fake_server: cannot listen on {args.host}:{args.port}: {exc}",
            file=sys.stderr,
        )
        return 1

    server = make_server(config, args.host, log_level="warning")
    _handle_stop_signals(server)
    port = sock.getsockname()[1]
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"fake_server listening on http://{host}:{port}", flush=True)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    logger.info("stopped")
    return 0


def _parser() -> argparse.ArgumentParser:
    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog="fake-audit-server",
        description="A fake audit service for tests: wire protocol v1 plus /_fake/.",
    )
    parser.add_argument(
        "--host",
        default=env("FAKE_SERVER_HOST", "127.0.0.1"),
        help="address to listen on (env FAKE_SERVER_HOST; default 127.0.0.1)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(env("FAKE_SERVER_PORT", "8080")),
        help="port; 0 picks a free one (env FAKE_SERVER_PORT; default 8080)",
    )
    parser.add_argument(
        "--api-key",
        action="append",
        metavar="KEY[=TENANT]",
        help="accept only this key, bound to TENANT if given; repeatable (env "
        "FAKE_SERVER_API_KEYS, comma-separated); default: any non-empty key",
    )
    parser.add_argument(
        "--db",
        default=env("FAKE_SERVER_DB"),
        help="SQLite file that keeps events across restarts (env FAKE_SERVER_DB); "
        "default: in memory",
    )
    defaults = Limits()
    for name in ("max_batch_events", "max_batch_bytes", "max_event_bytes"):
        flag = name.replace("_", "-")
        parser.add_argument(
            f"--{flag}",
            type=int,
            default=int(env(f"FAKE_SERVER_{name.upper()}", getattr(defaults, name))),
            help=f"limit (env FAKE_SERVER_{name.upper()}; default %(default)s)",
        )
    parser.add_argument(
        "--log-level",
        default=env("FAKE_SERVER_LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
        help="log level; info logs one line per request (env FAKE_SERVER_LOG_LEVEL)",
    )
    return parser


def _config(args: argparse.Namespace) -> ServerConfig:
    specs = args.api_key
    if specs is None:
        from_env = os.environ.get("FAKE_SERVER_API_KEYS", "")
        specs = [spec for spec in from_env.split(",") if spec.strip()] or None
    keys: dict[str, str | None] | None = None
    if specs is not None:
        keys = {}
        for spec in specs:
            key, has_tenant, tenant = spec.strip().partition("=")
            if not key or (has_tenant and not tenant):
                # The spec is a secret: say what is wrong without echoing it.
                raise ValueError("--api-key takes KEY or KEY=TENANT, both non-empty.")
            keys[key] = tenant if has_tenant else None
    limits = Limits(
        max_event_bytes=args.max_event_bytes,
        max_batch_events=args.max_batch_events,
        max_batch_bytes=args.max_batch_bytes,
    )
    return ServerConfig(api_keys=keys, db=args.db, limits=limits)


def _handle_stop_signals(server: uvicorn.Server) -> None:
    # uvicorn handles SIGINT and SIGTERM only while it runs, then restores these
    # handlers and raises the signal again. Installed first, they make a signal that
    # arrives before uvicorn is ready stop it too, and the re-raised one a no-op, so
    # that a stop by signal always ends with status 0.
    def stop(signum: int, frame: FrameType | None) -> None:
        logger.info("received signal %d, stopping", signum)
        server.should_exit = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)


if __name__ == "__main__":
    sys.exit(main())
