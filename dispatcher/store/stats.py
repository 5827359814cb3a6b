"""A tenant's live picture in one pipelined read: calls, queues, agents, offers, SMS, schedule."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from dispatcher.directory.tenant import Tenant
from dispatcher.domain import clock
from dispatcher.domain.statuses import (
    OPEN_CHAT_STATUSES,
    AgentStatus,
    CallStatus,
)
from dispatcher.store import keys

SCHEDULE_HORIZON_MS = 3_600_000  # "due in the next hour"
ENDED_KINDS = ("call", "chat")
# A chat is an SMS session until it ends (finished by timeout, opt-out or the API).


@dataclass(frozen=True)
class MenuQueue:
    menu_id: int
    name: str
    waiting: int
    longest_wait_s: float  # 0.0 when no call waits


@dataclass(frozen=True)
class TenantStats:
    subdomain: str
    at_ms: int  # when it was read (the reference of the waits)
    calls: Mapping[str, int]  # every call status -> calls in it
    queues: tuple[MenuQueue, ...]  # every menu of the directory, in its order
    agents: Mapping[str, int]  # every agent status -> agents of the directory in it
    offers_in_flight: int  # offers ringing now (open and not expired)
    sms_sessions: int  # chats not ended
    scheduled_next_hour: int  # scheduled calls not fired yet due by at_ms + 1 h (late included)
    held: int = 0  # scheduled calls held past their time (calling window, contact limit)
    # Per kind (call, chat): ended records still in Redis, and how long the longest-ended of
    # them has been ended (0 when none), which the archiver moves after the hot retention.
    ended: Mapping[str, int] = field(default_factory=dict)
    longest_ended_s: Mapping[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, for the dashboard."""
        return {
            "subdomain": self.subdomain,
            "at_ms": self.at_ms,
            "calls": dict(self.calls),
            "queues": [vars(queue) for queue in self.queues],
            "agents": dict(self.agents),
            "offers_in_flight": self.offers_in_flight,
            "sms_sessions": self.sms_sessions,
            "scheduled_next_hour": self.scheduled_next_hour,
            "held": self.held,
        }


async def tenant_stats(redis: Redis, tenant: Tenant, now_ms: int | None = None) -> TenantStats:
    """One round trip, whatever the tenant's size: counts are ZCARD/ZCOUNT of the indexes the
    writes keep, never a scan. Not a transaction: the counts may straddle a write in flight."""
    at_ms = clock.to_ms(clock.now()) if now_ms is None else now_ms
    tenant_keys = keys.TenantKeys(tenant.subdomain)
    menus, agents = tenant.doc.menus, tenant.doc.agents
    async with redis.pipeline(transaction=False) as pipe:
        for status in CallStatus:
            pipe.zcard(tenant_keys.calls_by_status(status))
        for menu in menus:
            pipe.zcard(tenant_keys.waiting(menu.id))
            pipe.zrange(tenant_keys.waiting(menu.id), 0, 0, withscores=True)
        for agent in agents:
            pipe.hget(tenant_keys.agent(agent.id), "status")
            pipe.zcount(tenant_keys.agent_offers(agent.id), f"({at_ms}", "+inf")
        for chat_status in OPEN_CHAT_STATUSES:
            pipe.zcard(tenant_keys.chats_by_status(chat_status))
        pipe.zcount(tenant_keys.scheduled, "-inf", at_ms + SCHEDULE_HORIZON_MS)
        pipe.zcard(tenant_keys.held)
        for kind in ENDED_KINDS:
            pipe.zcard(tenant_keys.ended(kind))
            pipe.zrange(tenant_keys.ended(kind), 0, 0, withscores=True)
        replies: Iterator[Any] = iter(await pipe.execute())
    calls = {str(status): int(next(replies)) for status in CallStatus}
    queues = tuple(
        _queue(menu.id, menu.name, next(replies), next(replies), at_ms) for menu in menus
    )
    by_agent_status = {str(status): 0 for status in AgentStatus}
    offers = 0
    for _ in agents:
        raw_status = next(replies)
        agent_status = raw_status.decode() if raw_status is not None else AgentStatus.OFFLINE.value
        by_agent_status[agent_status] = by_agent_status.get(agent_status, 0) + 1
        offers += int(next(replies))
    sessions = sum(int(next(replies)) for _ in OPEN_CHAT_STATUSES)
    return TenantStats(
        subdomain=tenant.subdomain,
        at_ms=at_ms,
        calls=calls,
        queues=queues,
        agents=by_agent_status,
        offers_in_flight=offers,
        sms_sessions=sessions,
        scheduled_next_hour=int(next(replies)),
        held=int(next(replies)),
        **_ended(replies, at_ms),
    )


def _ended(replies: Iterator[Any], at_ms: int) -> dict[str, dict[str, Any]]:
    ended: dict[str, int] = {}
    longest: dict[str, float] = {}
    for kind in ENDED_KINDS:
        ended[kind], oldest = int(next(replies)), next(replies)
        longest[kind] = max(at_ms - int(oldest[0][1]), 0) / 1000 if oldest else 0.0
    return {"ended": ended, "longest_ended_s": longest}


def _queue(
    menu_id: int, name: str, waiting: int, oldest: list[tuple[bytes, float]], at_ms: int
) -> MenuQueue:
    longest_ms = max(at_ms - int(oldest[0][1]), 0) if oldest else 0
    return MenuQueue(menu_id, name, int(waiting), longest_ms / 1000)
