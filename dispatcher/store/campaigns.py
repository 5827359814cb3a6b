"""Campaigns in Redis: creation, reads, pause/resume/cancel, and the pump that hands their calls
to fire jobs at the campaign's pace (release_campaign.lua), shared by every worker process.

A call of a campaign has no fire job of its own: it waits in the campaign's `due` set (by
scheduled time) until the pump releases it to a fire job; firing then checks the campaign's
state in the same atomic step as the call's compare-and-set (fire_campaign_call.lua)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from redis.asyncio import Redis

from dispatcher.domain import clock
from dispatcher.domain.campaigns import CampaignObject, CampaignPlan, campaign_object
from dispatcher.store import jobs
from dispatcher.store.keys import TenantKeys
from dispatcher.store.scripts import Scripts

# The pump's pace-keeping (release_campaign.lua). Calls due within the lookahead are handed to
# fire jobs queued at their own time, so a campaign under its pace fires on time; pumps run at
# most every MIN_PUMP_INTERVAL_MS; a full queue is looked at again every FULL_QUEUE_POLL_MS.
LOOKAHEAD_MS = 100
MIN_PUMP_INTERVAL_MS = 20
MAX_RELEASED_PER_PUMP = 500
BURST_S = 0.1  # the token bucket holds 0.1 s of the rate (at least one call)
FULL_QUEUE_POLL_MS = 100
STALE_RELEASE_MS = 60_000  # a handed-over call whose fire job never ran is handed over again

Action = Literal["pause", "resume", "cancel"]


@dataclass(frozen=True)
class CampaignLink:
    """What storing a call of a campaign needs (create_record.lua): its keys and its pump."""

    campaign_id: int
    key: str
    due_key: str
    pump_prefix: str
    pump_payload: bytes

    def script_args(self, due_ms: int) -> list[str | bytes | int]:
        return [self.campaign_id, due_ms, self.pump_prefix, self.pump_payload]


class Campaigns:
    """Repository of one tenant's campaigns."""

    def __init__(self, redis: Redis, scripts: Scripts, subdomain: str) -> None:
        self._redis = redis
        self._scripts = scripts
        self.subdomain = subdomain
        self.keys = TenantKeys(subdomain)

    async def create(self, plan: CampaignPlan) -> tuple[bool, int]:
        """(True, id) when created; (False, id) of the campaign that has this name already."""
        created, campaign_id = await self._scripts.create_campaign(
            keys=[self.keys.campaign_names, self.keys.sequence("campaign"), self.keys.campaigns],
            args=[
                self.keys.prefix,
                plan.name,
                plan.menu.id,
                repr(plan.calls_per_second),
                "" if plan.max_waiting is None else plan.max_waiting,
                clock.to_ms(clock.now()),
            ],
        )
        return bool(created), int(campaign_id)

    async def read(self, campaign_id: int) -> CampaignObject | None:
        found = await self.read_many([campaign_id])
        return found[0] if found else None

    async def read_many(self, ids: Sequence[int]) -> list[CampaignObject]:
        """The campaigns of these ids that exist, in this order: one pipelined round trip."""
        now_ms = clock.to_ms(clock.now())
        async with self._redis.pipeline(transaction=False) as pipe:
            for campaign_id in ids:
                pipe.hgetall(self.keys.campaign(campaign_id))
                pipe.zcount(self.keys.campaign_due(campaign_id), "-inf", now_ms)
                pipe.zcard(self.keys.campaign_released(campaign_id))
            replies = await pipe.execute()
        found = []
        for i in range(0, len(replies), 3):
            raw, due, released = replies[i : i + 3]
            if raw:
                fields = {k.decode(): v.decode() for k, v in raw.items()}
                found.append(campaign_object(fields, overdue=due + released))
        return found

    async def basics(self, campaign_id: int) -> tuple[int, str] | None:
        """(menu id, state) of the campaign, None when there is no such campaign."""
        menu_id, state = await self._redis.hmget(  # type: ignore[misc]
            self.keys.campaign(campaign_id), ["menu_id", "state"]
        )
        return None if menu_id is None else (int(menu_id), state.decode())

    async def state_of(self, campaign_id: int) -> str | None:
        raw = await self._redis.hget(self.keys.campaign(campaign_id), "state")  # type: ignore[misc]
        return raw.decode() if raw is not None else None

    async def id_named(self, name: str) -> int | None:
        raw = await self._redis.hget(self.keys.campaign_names, name)  # type: ignore[misc]
        return int(raw) if raw is not None else None

    async def page(self, page: int, per: int) -> tuple[int, list[int]]:
        """(how many campaigns, the ids of one page of them, newest first)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zcard(self.keys.campaigns)
            pipe.zrevrange(self.keys.campaigns, (page - 1) * per, page * per - 1)
            total, ids = await pipe.execute()
        return int(total), [int(i) for i in ids]

    def link(self, campaign_id: int, menu_id: int) -> CampaignLink:
        now_ms = clock.to_ms(clock.now())
        return CampaignLink(
            campaign_id=campaign_id,
            key=self.keys.campaign(campaign_id),
            due_key=self.keys.campaign_due(campaign_id),
            pump_prefix=self._pump_prefix(campaign_id),
            pump_payload=self._pump(campaign_id, menu_id).payload(now_ms),
        )

    async def control(self, campaign_id: int, menu_id: int, action: Action) -> str:
        """'ok', 'missing' or 'cancelled' (see campaign_control.lua). A cancel queues the sweep
        that fails the calls not yet fired (workers/campaigns.py)."""
        now_ms = clock.to_ms(clock.now())
        sweep = jobs.JobSpec(jobs.SWEEP_CAMPAIGN, self.subdomain, campaign_id, now_ms)
        outcome = await self._scripts.campaign_control(
            keys=[self.keys.campaign(campaign_id), jobs.QUEUE_NAME],
            args=[
                action,
                now_ms,
                self._pump_prefix(campaign_id),
                self._pump(campaign_id, menu_id).payload(now_ms),
                *jobs.script_args([sweep] if action == "cancel" else [], now_ms),
            ],
        )
        return outcome.decode() if isinstance(outcome, bytes) else str(outcome)

    async def release(self, campaign_id: int, menu_id: int) -> tuple[int, str]:
        """One run of the pump: (calls handed to fire jobs, the campaign's state)."""
        now_ms = clock.to_ms(clock.now())
        head, tail = jobs.payload_around_id(jobs.FIRE_SCHEDULED_CALL, self.subdomain, now_ms)
        released, state = await self._scripts.release_campaign(
            keys=[
                self.keys.campaign(campaign_id),
                self.keys.campaign_due(campaign_id),
                self.keys.campaign_released(campaign_id),
                self.keys.waiting(menu_id),
                jobs.QUEUE_NAME,
            ],
            args=[
                now_ms,
                f"{jobs.FIRE_SCHEDULED_CALL}:{self.subdomain}:",
                head,
                tail,
                self._pump_prefix(campaign_id),
                self._pump(campaign_id, menu_id).payload(now_ms),
                LOOKAHEAD_MS,
                MIN_PUMP_INTERVAL_MS,
                MAX_RELEASED_PER_PUMP,
                BURST_S,
                FULL_QUEUE_POLL_MS,
                STALE_RELEASE_MS,
            ],
        )
        return int(released), state.decode() if isinstance(state, bytes) else str(state)

    async def unfired(self, campaign_id: int, limit: int) -> list[int]:
        """Up to `limit` calls of the campaign not yet fired (waiting, or handed over)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zrange(self.keys.campaign_due(campaign_id), 0, limit - 1)
            pipe.zrange(self.keys.campaign_released(campaign_id), 0, limit - 1)
            due, released = await pipe.execute()
        return sorted({int(i) for i in [*due, *released]})[:limit]

    async def forget(self, campaign_id: int, call_ids: Sequence[int]) -> None:
        """These calls have fired or ended: the campaign hands them over no more."""
        if call_ids:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.zrem(self.keys.campaign_due(campaign_id), *call_ids)
                pipe.zrem(self.keys.campaign_released(campaign_id), *call_ids)
                await pipe.execute()

    def _pump(self, campaign_id: int, menu_id: int) -> jobs.JobSpec:
        return jobs.JobSpec(jobs.PUMP_CAMPAIGN, self.subdomain, campaign_id, 0, (menu_id,))

    def _pump_prefix(self, campaign_id: int) -> str:
        return f"{jobs.PUMP_CAMPAIGN}:{self.subdomain}:{campaign_id}:"
