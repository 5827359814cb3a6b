"""What a wait estimate reads of a tenant's queues, in one pipelined round trip: each menu's
waiting calls, its latest assignments (kept by accept_offer.lua) and its agents' live state."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from redis.asyncio import Redis

from dispatcher.directory.schema import Menu
from dispatcher.directory.tenant import Tenant
from dispatcher.domain import routing
from dispatcher.domain.statuses import AgentStatus
from dispatcher.domain.wait_times import QueueNow
from dispatcher.store import keys

# The assignments a menu keeps (one LPUSH and LTRIM in the accept's own script): enough gaps
# for a steady rate, few enough to follow a change of pace within a few calls.
KEPT = 20


async def queues_now(
    redis: Redis, tenant: Tenant, menus: Sequence[Menu], lang: str, at_ms: int
) -> list[QueueNow]:
    """Each menu's queue as its calls in `lang` see it, in the order given. Not a
    transaction: a count may straddle a write in flight, as the dashboard's do."""
    tenant_keys = keys.TenantKeys(tenant.subdomain)
    order = sorted({agent_id for menu in menus for agent_id in _agents_of(tenant, menu, lang)})
    async with redis.pipeline(transaction=False) as pipe:
        for menu in menus:
            pipe.zcard(tenant_keys.waiting(menu.id))
            pipe.zrange(tenant_keys.waiting(menu.id), 0, 0, withscores=True)
            pipe.lrange(tenant_keys.recent_waits(menu.id), 0, -1)
        for agent_id in order:
            pipe.hmget(tenant_keys.agent(agent_id), ["status", "voice"])
        replies: Iterator[Any] = iter(await pipe.execute())
    per_menu = [(next(replies), next(replies), next(replies)) for _ in menus]
    live: dict[int, list[bytes | None]] = {agent_id: next(replies) for agent_id in order}
    return [
        _queue(tenant, menu, lang, at_ms, raw, live)
        for menu, raw in zip(menus, per_menu, strict=True)
    ]


def _queue(
    tenant: Tenant,
    menu: Menu,
    lang: str,
    at_ms: int,
    raw: tuple[Any, Any, Any],
    live: dict[int, list[bytes | None]],
) -> QueueNow:
    waiting, oldest, recent = raw
    cast = routing.non_empty_groups(menu)
    first = set(menu.groups[cast[0]]) if cast else set()
    logged_in = available = free = breakthrough = 0
    for agent_id in _agents_of(tenant, menu, lang):
        raw_status, voice = live[agent_id]
        status = AgentStatus(raw_status.decode()) if raw_status else AgentStatus.OFFLINE
        if status == AgentStatus.OFFLINE:
            continue
        logged_in += 1
        if menu.routing == "cascade" and agent_id not in first:
            breakthrough += 1  # reached once a call has waited through Group 1 (docs/api.md)
        slots = tenant.agents_by_id[agent_id].capacity.voice - int(voice or 0)
        if status == AgentStatus.AVAILABLE and slots > 0:
            available, free = available + 1, free + slots
    return QueueNow(
        at_ms=at_ms,
        waiting=int(waiting),
        longest_wait_s=max(at_ms - int(oldest[0][1]), 0) / 1000 if oldest else 0.0,
        logged_in=logged_in,
        available=available,
        free_slots=free,
        breakthrough=breakthrough,
        recent=[_assignment(entry) for entry in recent],
    )


def _agents_of(tenant: Tenant, menu: Menu, lang: str) -> list[int]:
    """The menu's agents (every group, each once) who speak `lang`."""
    ids = sorted({agent_id for group in menu.groups for agent_id in group})
    return [
        agent_id
        for agent_id in ids
        if (agent := tenant.agents_by_id.get(agent_id)) is not None and lang in agent.languages
    ]


def _assignment(raw: bytes) -> tuple[int, int]:
    at, _, waited = raw.decode().partition(" ")
    return int(at), int(waited)
