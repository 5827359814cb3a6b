"""A tenant's stores, got in one way, and what spans them: ending a call frees its agent."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from redis.asyncio import Redis

from dispatcher.directory.tenant import Tenant
from dispatcher.domain import clock, lifecycle
from dispatcher.domain.statuses import HELD_BY_AGENT, CallStatus, FailReason, ending
from dispatcher.store import jobs
from dispatcher.store.agents import AgentStore
from dispatcher.store.calls import CallStore, Change, Snapshot
from dispatcher.store.campaigns import Campaigns
from dispatcher.store.chats import ChatStore
from dispatcher.store.dnc import DncList
from dispatcher.store.opt_outs import OptOuts
from dispatcher.store.scripts import Scripts

if TYPE_CHECKING:
    from dispatcher.history.archive import Archive


@dataclass(frozen=True)
class Stores:
    """The owners of a tenant's aggregates: calls, chats, agents (with their offers), campaigns,
    SMS opt-outs, the company DNC list. HTTP handlers and jobs write Redis through these only."""

    tenant: Tenant
    calls: CallStore
    chats: ChatStore
    agents: AgentStore
    campaigns: Campaigns
    opt_outs: OptOuts
    dnc: DncList

    @classmethod
    def of(
        cls, redis: Redis, scripts: Scripts, tenant: Tenant, archive: Archive | None = None
    ) -> Stores:
        """With `archive`, calls and chats are read from PostgreSQL too once archived."""
        calls = CallStore(redis, scripts, tenant, archive)
        return cls(
            tenant=tenant,
            calls=calls,
            chats=ChatStore(redis, scripts, tenant, archive),
            agents=AgentStore(redis, scripts, calls),
            campaigns=Campaigns(redis, scripts, tenant.subdomain),
            opt_outs=OptOuts(redis, tenant.subdomain),
            dnc=DncList(redis, scripts, tenant.subdomain),
        )


async def end_call(
    stores: Stores,
    call_id: int,
    reason: FailReason | None,
    *,
    by: str = "disconnected_by_unknown",
    details: str | None = None,
    hang_up: bool = False,
    only_if: Callable[[Snapshot], bool] | None = None,
) -> Snapshot | None:
    """Ends a call that has not ended: finished if connected, else failed with `reason`
    (ag_canceled when none is given). Frees the agent's slot and wakes the calls waiting.
    With `hang_up` (the end did not come from the carrier), a call the carrier has placed is
    hung up there by a job queued with the change. With `only_if`, only a call it holds for,
    judged on the revision the end is written over (a compare-and-set, like every write)."""
    now = clock.now()

    def hangups(current: Snapshot) -> list[jobs.JobSpec]:
        carrier_id = current.meta.carrier_call_id
        if not hang_up or carrier_id is None:
            return []
        sub, carrier = stores.tenant.subdomain, current.meta.carrier
        return [jobs.hangup(sub, current.call.id, carrier_id, clock.to_ms(now), carrier)]

    def decide(current: Snapshot) -> Change | None:
        status = CallStatus(current.call.status)
        end = ending(status)
        if end is None or (only_if is not None and not only_if(current)):
            return None
        if end == CallStatus.FINISHED:
            finished = lifecycle.finished(current.call, now, by)
            return Change(finished, release_agent=True, jobs=hangups(current))
        failed = lifecycle.failed(current.call, now, reason or FailReason.AG_CANCELED, details)
        return Change(
            failed,
            release_agent=status in HELD_BY_AGENT,
            waiting="rem" if status == CallStatus.QUEUED else "",
            jobs=hangups(current),
        )

    after = await stores.calls.apply(call_id, decide)
    if after is not None and after.agent_id is not None:
        await stores.agents.wake_waiting_calls([after.agent_id])
    return after
