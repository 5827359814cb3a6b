"""Storing tenant directories in Redis atomically, and reading them back through a cache."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from dispatcher.directory.schema import DirectoryFile, TenantDoc, TenantRecord
from dispatcher.directory.tenant import Tenant, hash_token
from dispatcher.store import keys
from dispatcher.store.scripts import RaiseCounter, Scripts


async def save(
    redis: Redis,
    scripts: Scripts,
    document: DirectoryFile,
    *,
    on_tenant: Callable[[], object] | None = None,
) -> None:
    """Replace the directories of the document's tenants in one transaction; their calls,
    chats, sessions and agents' live state are kept. Agents new to Redis start in the status
    the file gives them; agents already known keep their live status. `on_tenant` is called as
    each tenant is ready to write; the transaction runs once all are."""
    async with redis.pipeline(transaction=True) as pipe:
        for tenant in document.tenants:
            tenant_keys = keys.TenantKeys(tenant.subdomain)
            record = TenantRecord(
                directory=TenantDoc.model_validate(tenant.model_dump(exclude={"api_tokens"})),
                token_hashes=[hash_token(token) for token in tenant.api_tokens],
                agent_token_hashes={
                    agent.id: [hash_token(token) for token in agent.api_tokens]
                    for agent in tenant.agents
                    if agent.api_tokens
                },
            )
            pipe.set(tenant_keys.directory, record.model_dump_json())
            pipe.hset(keys.TENANTS, tenant.subdomain, uuid.uuid4().hex)
            for agent in tenant.agents:
                pipe.hsetnx(tenant_keys.agent(agent.id), "status", agent.status.value)
            highest_contact = max((c.id for c in tenant.contacts), default=0)
            # Anonymous end users are numbered after the CRM's contacts.
            counter = RaiseCounter(tenant_keys.sequence("end_user"), highest_contact)
            await scripts.queue(counter, pipe)
            if on_tenant is not None:
                on_tenant()
        await pipe.execute()


REDACTED = "[redacted]"


async def dump(redis: Redis) -> dict[str, Any]:
    """Every stored tenant's directory, as a document of the file format without its secrets:
    no tokens, and a webhook secret shown only as set."""
    subdomains = sorted(s.decode() for s in await redis.hkeys(keys.TENANTS))  # type: ignore[misc]
    raws = (
        await redis.mget([keys.TenantKeys(s).directory for s in subdomains]) if subdomains else []
    )
    tenants = []
    for raw in raws:
        if raw is not None:
            tenant = TenantRecord.model_validate_json(raw).directory.model_dump(mode="json")
            if tenant["settings"].get("webhook_secret"):
                tenant["settings"]["webhook_secret"] = REDACTED
            tenants.append(tenant)
    return {"tenants": tenants}


class DirectoryCache:
    """Each process keeps parsed directories and checks the stored version (one HGET) at most
    once per `ttl_s` per tenant, so a load takes effect everywhere within `ttl_s` (at once
    with 0) without a Redis round trip on every request. With a `ttl_s`, lookups of a tenant
    that come while its check (or its parse) is under way wait for that one: a worker starting
    a poll's 500 jobs on a cold cache parsed the directory 500 times, and kept the memory. With
    0 each lookup reads for itself, as one joining an earlier read could miss a load just made."""

    def __init__(self, redis: Redis, ttl_s: float = 0.0) -> None:
        self._redis = redis
        self._ttl_s = ttl_s
        self._tenants: dict[str, tuple[Tenant, float]] = {}
        self._reading: dict[str, asyncio.Future[Tenant | None]] = {}

    async def tenant(self, subdomain: str) -> Tenant | None:
        cached = self._tenants.get(subdomain)
        if cached is not None and time.monotonic() - cached[1] < self._ttl_s:
            return cached[0]
        if not self._ttl_s:
            return await self._read(subdomain)
        reading = self._reading.get(subdomain)
        if reading is None:
            reading = asyncio.ensure_future(self._read(subdomain))
            self._reading[subdomain] = reading
            reading.add_done_callback(lambda _: self._reading.pop(subdomain, None))
        # Shielded: a lookup cancelled (its request or job ended) leaves the others the read.
        return await asyncio.shield(reading)

    async def _read(self, subdomain: str) -> Tenant | None:
        cached = self._tenants.get(subdomain)
        now = time.monotonic()
        version = await self._redis.hget(keys.TENANTS, subdomain)  # type: ignore[misc]
        if version is None:
            self._tenants.pop(subdomain, None)
            return None
        if cached is not None and cached[0].version == version.decode():
            self._tenants[subdomain] = (cached[0], now)
            return cached[0]
        raw = await self._redis.get(keys.TenantKeys(subdomain).directory)
        if raw is None:
            return None
        tenant = Tenant.from_record(TenantRecord.model_validate_json(raw), version.decode())
        self._tenants[subdomain] = (tenant, now)
        return tenant

    def forget(self) -> None:
        """Drop every cached tenant: the next lookup reads the stored version."""
        self._tenants.clear()
