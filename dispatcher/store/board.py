"""What the dashboard shows beside the tenant's stats (store/stats.py): each agent's state, the
latest calls, the calls created in each of the last minutes, the newest campaigns and the open
SMS sessions."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

from dispatcher.directory.tenant import Tenant
from dispatcher.domain import clock
from dispatcher.domain.objects import ChatObject
from dispatcher.domain.phones import mask
from dispatcher.domain.records import ChatMeta
from dispatcher.domain.statuses import (
    AgentStatus,
    CallStatus,
)
from dispatcher.store import keys
from dispatcher.store.stores import Stores

MINUTE_MS = 60_000


@dataclass(frozen=True)
class Board:
    agents: list[dict[str, Any]]  # every agent of the directory, in its order
    latest_calls: list[dict[str, Any]]  # newest first, each a summary of the call object
    calls_per_minute: list[int]  # oldest first; the last is the minute under way

    def as_dict(self) -> dict[str, Any]:
        return {
            "agents": self.agents,
            "latest_calls": self.latest_calls,
            "calls_per_minute": self.calls_per_minute,
        }


async def read_board(
    redis: Redis, tenant: Tenant, at_ms: int, latest: int = 20, minutes: int = 30
) -> Board:
    """Two round trips: the counts and the latest ids, then those calls' documents."""
    tenant_keys = keys.TenantKeys(tenant.subdomain)
    this_minute = at_ms - at_ms % MINUTE_MS
    starts = [this_minute - i * MINUTE_MS for i in range(minutes - 1, -1, -1)]
    async with redis.pipeline(transaction=False) as pipe:
        for agent in tenant.doc.agents:
            pipe.hmget(tenant_keys.agent(agent.id), ["status", "voice"])
            pipe.zcount(tenant_keys.agent_offers(agent.id), f"({at_ms}", "+inf")
        for start in starts:
            pipe.zcount(tenant_keys.calls, start, f"({start + MINUTE_MS}")
        pipe.zrange(tenant_keys.calls, 0, latest - 1, desc=True)
        replies: Iterator[Any] = iter(await pipe.execute())
    agents = []
    queues = _queues_of_agents(tenant)
    for agent in tenant.doc.agents:
        status, voice = next(replies)
        agents.append(
            {
                "id": agent.id,
                "name": agent.name,
                "status": status.decode() if status else AgentStatus.OFFLINE.value,
                "active_calls": int(voice or 0),
                "ringing": int(next(replies)),
                # The menus that offer it calls: an agent in none is never offered one.
                "queues": queues.get(agent.id, []),
                "voice_capacity": agent.capacity.voice,
            }
        )
    per_minute = [int(next(replies)) for _ in starts]
    ids = [int(raw) for raw in next(replies)]
    return Board(agents, await _summaries(redis, tenant_keys, ids, at_ms), per_minute)


def _queues_of_agents(tenant: Tenant) -> dict[int, list[str]]:
    """Each agent's menus, by name, in the directory's order."""
    found: dict[int, list[str]] = {}
    for menu in tenant.doc.menus:
        for agent_id in sorted({agent_id for group in menu.groups for agent_id in group}):
            found.setdefault(agent_id, []).append(menu.name)
    return found


async def _summaries(
    redis: Redis, tenant_keys: keys.TenantKeys, ids: list[int], at_ms: int
) -> list[Any]:
    if not ids:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for call_id in ids:
            pipe.hget(tenant_keys.call(call_id), "doc")
        docs = await pipe.execute()
    return [summary(orjson.loads(doc), at_ms) for doc in docs if doc is not None]


def summary(call: dict[str, Any], at_ms: int) -> dict[str, Any]:
    """The fields of a call the dashboard's table shows. A queued call's wait runs on until it
    is assigned (the stored `wait_duration` is only written then), as the queue's card counts
    it; a scheduled call shows when it is due."""
    menu, agent = call.get("selected_menu") or {}, call.get("agent_info") or {}
    wait_s = call.get("wait_duration", 0)
    queued_at = clock.parse_iso(call.get("queued_at"))
    if call["status"] == CallStatus.QUEUED and queued_at is not None:
        wait_s = max(wait_s, (at_ms - clock.to_ms(queued_at)) // 1000)
    return {
        "id": call["id"],
        "call_type": call["call_type"],
        "status": call["status"],
        "created_at": call["created_at"],
        "menu": menu.get("name"),
        "agent": agent.get("name"),
        "wait_duration": wait_s,
        "scheduled_at": call.get("scheduled_at"),
        "call_duration": call.get("call_duration", 0),
        "fail_reason": call.get("fail_reason", "nothing"),
    }


async def read_campaigns(stores: Stores, latest: int = 10) -> list[dict[str, Any]]:
    """The newest campaigns as the campaign API reads them, with when their calls not yet fired
    are due (the first and the last of them; null when none is left)."""
    campaigns = stores.campaigns
    _, ids = await campaigns.page(1, latest)
    found = await campaigns.read_many(ids)
    spans = await campaigns.due_spans([campaign.id for campaign in found])
    menus = {menu.id: menu.name for menu in stores.tenant.doc.menus}
    return [
        {
            **campaign.model_dump(mode="json", include=_CAMPAIGN_FIELDS),
            "menu": menus.get(campaign.menu_id),
            "next_due_at": _due_at(first),
            "last_due_at": _due_at(last),
        }
        for campaign, (first, last) in zip(found, spans, strict=True)
    ]


_CAMPAIGN_FIELDS = {"id", "name", "menu_id", "state", "pacing", "total", "progress"}


def _due_at(at_ms: int | None) -> str | None:
    return clock.iso(clock.from_ms(at_ms)) if at_ms is not None else None


async def open_sms_sessions(stores: Stores, latest: int = 20) -> list[dict[str, Any]]:
    """The newest chats not ended, each with its consumer's number masked (a wall screen shows
    them) and how many messages it holds."""
    return [_session(*found) for found in await stores.chats.newest_open(latest)]


def _session(chat: ChatObject, meta: ChatMeta, messages: int) -> dict[str, Any]:
    return {
        "id": chat.id,
        "status": chat.status,
        "created_at": chat.created_at,
        "end_user_number": mask(meta.end_user_number or ""),
        "outbound_number": chat.outbound_number,
        "agent": chat.agent_info.name if chat.agent_info else None,
        "messages": messages,
    }
