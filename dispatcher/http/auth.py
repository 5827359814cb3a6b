"""HTTP Basic authentication of a tenant: subdomain as user name, an API token as password."""

from __future__ import annotations

import base64
import binascii

import structlog
from aiohttp import web

from dispatcher.directory.tenant import Tenant
from dispatcher.domain.errors import NotFound, Unauthorized
from dispatcher.http.appkeys import DIRECTORY


async def tenant_of(request: web.Request) -> Tenant:
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic" or not encoded.strip() or len(encoded) > 1024:
        raise Unauthorized()
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
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
    return tenant
