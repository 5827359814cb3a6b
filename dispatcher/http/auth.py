"""HTTP Basic authentication of a tenant: subdomain as user name, an API token as password."""

from __future__ import annotations

import base64
import math

import structlog
from aiohttp import web

from dispatcher.directory.tenant import Tenant
from dispatcher.domain import clock
from dispatcher.domain.errors import NotFound, TooManyRequests, Unauthorized
from dispatcher.http.appkeys import DIRECTORY, SCRIPTS, SETTINGS
from dispatcher.http.headers import credential
from dispatcher.store.keys import TenantKeys


async def tenant_of(request: web.Request) -> Tenant:
    encoded = credential(request, "basic")
    if encoded is None:
        raise Unauthorized()
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except ValueError as exc:  # not base64 (binascii.Error), not ASCII, not UTF-8
        raise Unauthorized() from exc
    subdomain, separator, token = decoded.partition(":")
    if not separator or not subdomain:
        raise Unauthorized()
    tenant = await request.app[DIRECTORY].tenant(subdomain) if len(subdomain) <= 63 else None
    if tenant is None:
        raise NotFound()
    if not tenant.accepts_token(token):
        raise Unauthorized()
    structlog.contextvars.bind_contextvars(tenant=tenant.subdomain)
    await within_rate_limit(request, tenant)
    return tenant


async def within_rate_limit(request: web.Request, tenant: Tenant) -> None:
    """One token of the tenant's bucket per request, or 429 with the seconds to wait."""
    await charge(request, tenant, 1)


async def charge(request: web.Request, tenant: Tenant, tokens: int) -> None:
    """`tokens` of the tenant's bucket (at most its burst), or 429 with the seconds to wait
    until they are there: a batch pays for its items on top of its request's one token."""
    settings, own = request.app[SETTINGS], tenant.doc.settings
    rate = own.rate_limit_per_s if own.rate_limit_per_s is not None else settings.rate_limit_per_s
    if rate == 0 or tokens <= 0:
        return
    burst = own.rate_limit_burst or settings.rate_limit_burst
    wait_ms = await request.app[SCRIPTS].take_token(
        keys=[TenantKeys(tenant.subdomain).api_bucket],
        args=[rate, burst, clock.to_ms(clock.now()), tokens],
    )
    if wait_ms:
        raise TooManyRequests(
            f"Too many requests: the limit is {rate:g} per second", math.ceil(wait_ms / 1000)
        )
