"""The vault: a small multi-tenant secret store that audits who read what.

Each user belongs to one tenant and authenticates with a bearer token. The audit
middleware resolves the actor and the tenant from the token before a handler runs,
so the handlers only say what happened.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

import auditkit
from auditkit import Actor, Recorder, Result, Target
from auditkit.asgi import AuditMiddleware

__all__ = ["DEMO_TOKENS", "Secret", "User", "Vault", "create_app"]


@dataclasses.dataclass(frozen=True, slots=True)
class User:
    """Someone who may use the vault, within one tenant."""

    id: str
    tenant_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class Secret:
    """A stored secret. Only ``value`` is sensitive; the rest is metadata."""

    id: str
    tenant_id: str
    name: str
    value: str


#: The demo's users, by bearer token: two tenants, so cross-tenant access can happen.
DEMO_TOKENS: Mapping[str, User] = {
    "alice-token": User("alice", "acme"),
    "bob-token": User("bob", "globex"),
}


class Vault:
    """An in-memory secret store: secrets by id, each owned by one tenant."""

    def __init__(self, secrets: list[Secret] | None = None) -> None:
        self._secrets = {s.id: s for s in secrets or ()}
        self._ids = itertools.count(1)

    def get(self, secret_id: str) -> Secret | None:
        """Return the secret with this id, whatever its tenant, or None."""
        return self._secrets.get(secret_id)

    def add(self, tenant_id: str, name: str, value: str) -> Secret:
        """Store a new secret for ``tenant_id`` and return it."""
        secret_id = f"s{next(self._ids)}"
        while secret_id in self._secrets:
            secret_id = f"s{next(self._ids)}"
        secret = Secret(secret_id, tenant_id, name, value)
        self._secrets[secret_id] = secret
        return secret


def create_app(
    recorder: Recorder,
    *,
    vault: Vault | None = None,
    tokens: Mapping[str, User] = DEMO_TOKENS,
) -> AuditMiddleware:
    """Build the vault's ASGI application, audited into ``recorder``.

    Args:
        recorder: Where the audit events go.
        vault: The store; an empty one by default.
        tokens: The users, by bearer token.
    """
    store = vault if vault is not None else Vault()

    def user_of(scope: Any) -> User | None:
        # The hooks and the handlers both ask this, with the same ASGI scope, so the
        # audit log names the user the handler acted for: reading the headers two
        # ways would let a request with two Authorization headers act as one user
        # and be recorded as another.
        authorization = Headers(scope=scope).getlist("authorization")
        if len(authorization) != 1:
            return None
        scheme, _, token = authorization[0].partition(" ")
        return tokens.get(token.strip()) if scheme.lower() == "bearer" else None

    async def read_secret(request: Request) -> Response:
        me = user_of(request.scope)
        if me is None:
            return PlainTextResponse("Unauthorized", status_code=401)
        secret = store.get(request.path_params["secret_id"])
        if secret is None or secret.tenant_id != me.tenant_id:
            # No action set: nothing is recorded for a secret this user can't see.
            return PlainTextResponse("Not Found", status_code=404)

        event = auditkit.current_event()
        event.action = "secret.read"
        event.target = Target("secret", secret.id, name=secret.name)
        recorder.record(event)
        return JSONResponse({"id": secret.id, "name": secret.name})

    async def reveal_secret(request: Request) -> Response:
        secret_id = request.path_params["secret_id"]
        event = auditkit.current_event()
        event.action = "secret.reveal"
        event.target = Target("secret", secret_id)
        # Recorded up front: whatever happens next, the attempt is in the audit log,
        # with the result the middleware takes from the status unless set below.
        recorder.record(event)

        me = user_of(request.scope)
        if me is None:
            return PlainTextResponse("Unauthorized", status_code=401)
        secret = store.get(secret_id)
        if secret is None:
            return PlainTextResponse("Not Found", status_code=404)
        if secret.tenant_id != me.tenant_id:
            # Answer exactly as for a missing secret, so that nobody can probe for
            # the ids of other tenants; only the audit log tells the two apart.
            event.result = Result("denied", 403, "cross-tenant access")
            return PlainTextResponse("Not Found", status_code=404)
        return JSONResponse({"value": secret.value})

    async def create_secret(request: Request) -> Response:
        me = user_of(request.scope)
        if me is None:
            return PlainTextResponse("Unauthorized", status_code=401)
        fields = await _name_and_value(request)
        if fields is None:
            return PlainTextResponse("Bad Request", status_code=400)
        secret = store.add(me.tenant_id, *fields)

        event = auditkit.current_event()
        event.action = "secret.create"
        event.target = Target("secret", secret.id, name=secret.name)
        recorder.record(event)
        return JSONResponse({"id": secret.id}, status_code=201)

    def actor(scope: Any) -> Actor | None:
        me = user_of(scope)
        return Actor("user", me.id) if me is not None else None

    def tenant(scope: Any) -> str | None:
        me = user_of(scope)
        return me.tenant_id if me is not None else None

    app = Starlette(
        routes=[
            Route("/secrets", create_secret, methods=["POST"]),
            Route("/secrets/{secret_id}", read_secret),
            Route("/secrets/{secret_id}/reveal", reveal_secret),
        ]
    )
    return AuditMiddleware(app, recorder, actor=actor, tenant=tenant)


async def _name_and_value(request: Request) -> tuple[str, str] | None:
    """The ``name`` and ``value`` strings of a JSON object body, or None."""
    try:
        body = await request.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    name, value = body.get("name"), body.get("value")
    if not isinstance(name, str) or not isinstance(value, str):
        return None
    return name, value
