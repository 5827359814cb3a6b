"""HTTP Basic authentication: a tenant's API token (user name: the subdomain) for every route,
or an agent's own token (user name: `<subdomain>/<agent id>`) for that agent's routes only.
And the rate limits: a tenant's bucket for its accepted requests, a client address's bucket
for refused credentials, so that nobody can spend a tenant's budget with wrong tokens."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import structlog
from aiohttp import web

from dispatcher.directory.schema import Agent
from dispatcher.directory.tenant import Tenant
from dispatcher.domain.errors import DispatchError, Forbidden, NotFound, Unauthorized
from dispatcher.domain.fields import integer
from dispatcher.http.appkeys import DIRECTORY, SCRIPTS, SETTINGS
from dispatcher.http.client_address import client_address
from dispatcher.http.headers import credential
from dispatcher.store.buckets import Bucket
from dispatcher.store.keys import TenantKeys, refused_bucket

TENANT_ONLY = "This route needs the tenant's API token, not an agent's"
OTHER_AGENT = "An agent's token acts for that agent only"


@dataclass(frozen=True)
class Caller:
    """Who a request's credentials are: the tenant (`agent` None), or one of its agents."""

    tenant: Tenant
    agent: Agent | None

    def may_act_for(self, agent_id: int) -> None:
        """403 unless the tenant itself or this very agent calls."""
        if self.agent is not None and self.agent.id != agent_id:
            raise Forbidden(OTHER_AGENT)


async def tenant_of(request: web.Request, charged: bool = True) -> Tenant:
    """The tenant whose API token the request carries (an agent's token is 403 here)."""
    caller = await caller_of(request, charged)
    if caller.agent is not None:
        raise Forbidden(TENANT_ONLY)
    return caller.tenant


async def caller_of(request: web.Request, charged: bool = True) -> Caller:
    """The tenant or agent whose credentials the request carries, charged one token of the
    tenant's bucket (unless not `charged`: see `tenant_to_create`); refused credentials are
    charged to the client address instead."""
    try:
        caller = await _credentials(request)
    except (Unauthorized, NotFound):
        await refused(request)
        raise
    structlog.contextvars.bind_contextvars(tenant=caller.tenant.subdomain)
    if caller.agent is not None:
        structlog.contextvars.bind_contextvars(agent_id=caller.agent.id)
    if charged:
        await within_rate_limit(request, caller.tenant)
    return caller


async def _credentials(request: web.Request) -> Caller:
    user, token = _basic(request)
    subdomain, slash, agent_id = user.partition("/")
    if not subdomain:
        raise Unauthorized()
    tenant = await request.app[DIRECTORY].tenant(subdomain) if len(subdomain) <= 63 else None
    if tenant is None:
        raise NotFound()
    if not slash:
        if not tenant.accepts_token(token):
            raise Unauthorized()
        return Caller(tenant, None)
    agent = tenant.agents_by_id.get(integer(agent_id) or 0)
    if agent is None or not tenant.accepts_agent_token(agent.id, token):
        raise Unauthorized()
    return Caller(tenant, agent)


def _basic(request: web.Request) -> tuple[str, str]:
    encoded = credential(request, "basic")
    if encoded is None:
        raise Unauthorized()
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except ValueError as exc:  # not base64 (binascii.Error), not ASCII, not UTF-8
        raise Unauthorized() from exc
    user, separator, token = decoded.partition(":")
    if not separator or not user:
        raise Unauthorized()
    return user, token


async def within_rate_limit(request: web.Request, tenant: Tenant) -> None:
    """One token of the tenant's bucket per request, or 429 with the seconds to wait."""
    await charge(request, tenant, 1)


async def charge(request: web.Request, tenant: Tenant, tokens: int) -> None:
    """`tokens` of the tenant's bucket (at most its burst), or 429 with the seconds to wait
    until they are there: a batch pays for its items on top of its request's one token."""
    await request.app[SCRIPTS].take(tenant_bucket(request, tenant), tokens)


def tenant_bucket(request: web.Request, tenant: Tenant) -> Bucket | None:
    """The tenant's API bucket (its own limit, else the process's); None: no limit."""
    settings, own = request.app[SETTINGS], tenant.doc.settings
    rate = own.rate_limit_per_s if own.rate_limit_per_s is not None else settings.rate_limit_per_s
    burst = own.rate_limit_burst or settings.rate_limit_burst
    return Bucket(TenantKeys(tenant.subdomain).api_bucket, rate, burst) if rate else None


async def refused(request: web.Request) -> None:
    """One token of the client address's bucket for a refused credential, or 429: guessing
    is slowed down per address, and a tenant's own requests are not."""
    settings = request.app[SETTINGS]
    rate, burst = settings.refused_rate_limit_per_s, settings.refused_rate_limit_burst
    bucket = Bucket(refused_bucket(client_address(request)), rate, burst) if rate else None
    await request.app[SCRIPTS].take(bucket)


async def tenant_to_create(request: web.Request) -> tuple[Tenant, Charge]:
    """`tenant_of` for a route that creates one record: the request's token is left to the
    create's own script (one round trip fewer on the hot path), or taken as it ends."""
    tenant = await tenant_of(request, charged=False)
    return tenant, Charge(request, tenant_bucket(request, tenant))


class Charge:
    """A request's one token of its tenant's bucket, not taken yet. `for_create` hands it to
    the script that creates the record; a request that ends otherwise (a replay, a refusal)
    pays it on its way out, and over the limit is answered 429 instead, as if it had paid
    first."""

    def __init__(self, request: web.Request, bucket: Bucket | None) -> None:
        self._scripts = request.app[SCRIPTS]
        self._bucket = bucket

    def for_create(self) -> Bucket | None:
        bucket, self._bucket = self._bucket, None
        return bucket

    async def __aenter__(self) -> Charge:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, *_: object) -> None:
        # Not after a storage failure or a cancellation: the token would not be taken either.
        if kind is None or issubclass(kind, DispatchError):
            await self._scripts.take(self.for_create())
