"""Operators' dashboard sessions in Redis: opened by a tenant's credentials, ended by logout,
by expiry, or by any new load of the tenant's directory (which may have rotated its tokens)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from redis.asyncio import Redis

from dispatcher.directory.tenant import Tenant
from dispatcher.store import keys


def _key(subdomain: str, secret: str) -> str:
    # Only a digest is stored: what Redis holds (a dump, a replica) cannot be replayed as a cookie.
    digest = hashlib.sha256(secret.encode()).hexdigest()
    return keys.TenantKeys(subdomain).operator_session(digest)


def csrf_token(secret: str) -> str:
    """The token a state-changing request of the session must send back in a header: derived
    from the cookie's secret (so nothing more is stored), which a cross-site page can read
    neither from the HttpOnly cookie nor from Redis's key names (a digest of another kind)."""
    return hmac.new(secret.encode(), b"csrf", hashlib.sha256).hexdigest()


async def open_session(redis: Redis, tenant: Tenant, lifetime_s: int) -> str:
    """A new session's secret (256 random bits), for the cookie only."""
    secret = secrets.token_urlsafe(32)
    await redis.set(_key(tenant.subdomain, secret), tenant.version, ex=lifetime_s)
    return secret


async def is_open(redis: Redis, tenant: Tenant, secret: str) -> bool:
    """True while the session lives and the tenant's directory is the one it was opened under."""
    version: bytes | None = await redis.get(_key(tenant.subdomain, secret))
    return version is not None and version.decode() == tenant.version


async def close_session(redis: Redis, subdomain: str, secret: str) -> None:
    await redis.delete(_key(subdomain, secret))
