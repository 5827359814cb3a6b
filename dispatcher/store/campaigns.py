"""Campaigns in Redis: creation, reads, pause/resume/cancel, and the pump that hands their calls
to fire jobs at the campaign's pace (release_campaign.lua), shared by every worker process.

A call of a campaign has no fire job of its own: it waits in the campaign's `due` set (by
scheduled time) until the pump releases it to a fire job; firing then checks the campaign's
state in the same atomic step as the call's compare-and-set (fire_campaign_call.lua)."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from redis.asyncio import Redis

from dispatcher.domain import clock
from dispatcher.domain.campaigns import CampaignObject, CampaignPlan, campaign_object
from dispatcher.domain.compliance import NO_CAMPAIGN_RULES, CampaignRules
from dispatcher.store import jobs, keys
from dispatcher.store.keys import Key, TenantKeys
from dispatcher.store.scripting import Refused, Stale
from dispatcher.store.scripts import (
    NO_JOBS,
    CampaignControl,
    CreateCampaign,
    Jobs,
    NameTaken,
    Pump,
    ReleaseCampaign,
    Scripts,
    WantPump,
)

# The pump's pace-keeping (release_campaign.lua). Calls due within the lookahead are handed to
# fire jobs queued at their own time, so a campaign under its pace fires on time; pumps run at
# most every MIN_PUMP_INTERVAL_MS; a full queue is looked at again every FULL_QUEUE_POLL_MS.
LOOKAHEAD_MS = 100
MIN_PUMP_INTERVAL_MS = 20
MAX_RELEASED_PER_PUMP = 500
BURST_S = 0.1  # the token bucket holds 0.1 s of the rate (at least one call)
FULL_QUEUE_POLL_MS = 100
WAIT_HELD_POLL_MS = 1000  # a campaign held by its menu's estimated wait looks again this often
STALE_RELEASE_MS = 60_000  # a handed-over call whose fire job never ran is handed over again

Action = Literal["pause", "resume", "cancel"]

# Campaigns' own rules as this process read them, per Redis client, by (tenant, campaign id):
# they never change once the campaign is created.
RULES_CACHED = 10_000
_RULES: weakref.WeakKeyDictionary[Redis, dict[tuple[str, int], CampaignRules]] = (
    weakref.WeakKeyDictionary()
)


ATTEMPTS = 8  # reads of a campaign's pump count before a script that names its next pump
# A failed call's redial counts as being made this long at most: its job runs within
# milliseconds, and one that never ends (its tries spent) must not keep the campaign from
# reading `completed` for good.
REDIAL_LEASE_MS = 300_000


@dataclass(frozen=True)
class CampaignLink:
    """What storing calls of a campaign needs (create_record.lua): its keys, and its pump, wanted
    once the calls are stored (want_pump.lua)."""

    subdomain: str
    campaign_id: int
    key: Key
    due_key: Key
    calls_key: Key  # the campaign's list index
    pump_payload: bytes
    rules: CampaignRules = NO_CAMPAIGN_RULES  # its own calling window and contact limit

    def want_pump(self, seq: int, wake_ms: int) -> WantPump:
        pump = Pump(self.subdomain, self.campaign_id, seq, self.pump_payload)
        return WantPump(self.key, pump, wake_ms, clock.to_ms(clock.now()))

    async def settle_pump(self, scripts: Scripts, outcome: Any, asked: WantPump) -> None:
        """The pump wanted with a batch, asked again (with the count read again) if another
        pump was counted meanwhile."""
        try:
            asked.decode(outcome)
            return
        except Stale:
            pass
        for _ in range(ATTEMPTS):
            seq = await _pump_seq(scripts, self.key)
            try:
                await scripts.run(self.want_pump(seq, asked.wake))
                return
            except Stale:
                continue
        raise Stale("want_pump")


async def _pump_seq(scripts: Scripts, campaign_key: Key) -> int:
    raw = await scripts.redis.hget(campaign_key, "pump_seq")  # type: ignore[misc]
    return int(raw or 0)


class Campaigns:
    """Repository of one tenant's campaigns."""

    def __init__(self, redis: Redis, scripts: Scripts, subdomain: str) -> None:
        self._redis = redis
        self._scripts = scripts
        self.subdomain = subdomain
        self.keys = TenantKeys(subdomain)

    async def create(self, plan: CampaignPlan) -> tuple[bool, int]:
        """(True, id) when created; (False, id) of the campaign that has this name already."""
        seq = self.keys.sequence("campaign")
        for _ in range(ATTEMPTS):
            campaign_id = int(await self._redis.get(seq) or 0) + 1
            try:
                created = await self._scripts.run(
                    CreateCampaign(
                        names=self.keys.campaign_names,
                        seq=seq,
                        all=self.keys.campaigns,
                        campaign=self.keys.campaign(campaign_id),
                        id=campaign_id,
                        campaign_name=plan.name,
                        menu_id=plan.menu.id,
                        rate=repr(plan.calls_per_second),
                        max_waiting="" if plan.max_waiting is None else plan.max_waiting,
                        rules=plan.rules.model_dump_json(),
                        now=clock.to_ms(clock.now()),
                    )
                )
            except NameTaken as taken:
                return False, taken.campaign_id
            except Stale:
                continue
            return True, created
        raise Stale("create_campaign")

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
                since = now_ms - REDIAL_LEASE_MS
                pipe.zcount(self.keys.campaign_redialling(campaign_id), since, "+inf")
            replies = await pipe.execute()
        found = []
        for i in range(0, len(replies), 4):
            raw, due, released, redialling = replies[i : i + 4]
            if raw:
                fields = {k.decode(): v.decode() for k, v in raw.items()}
                found.append(campaign_object(fields, due + released, redialling))
        return found

    async def redial_made(self, campaign_id: int, call_id: int) -> None:
        """The failed call's redial was made, or decided against: no longer being made."""
        await self._redis.zrem(self.keys.campaign_redialling(campaign_id), call_id)

    async def rules(self, campaign_id: int) -> CampaignRules:
        """The campaign's own calling window and contact limit, fixed at its creation: read
        once per process (each fire of its calls needs them)."""
        known = _RULES.setdefault(self._redis, {})
        cached = known.get((self.subdomain, campaign_id))
        if cached is not None:
            return cached
        raw = await self._redis.hget(self.keys.campaign(campaign_id), "rules")  # type: ignore[misc]
        rules = CampaignRules.model_validate_json(raw) if raw else NO_CAMPAIGN_RULES
        if raw is not None:
            if len(known) >= RULES_CACHED:
                known.pop(next(iter(known)))
            known[(self.subdomain, campaign_id)] = rules
        return rules

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

    async def link(self, campaign_id: int, menu_id: int) -> CampaignLink:
        now_ms = clock.to_ms(clock.now())
        return CampaignLink(
            subdomain=self.subdomain,
            campaign_id=campaign_id,
            key=self.keys.campaign(campaign_id),
            due_key=self.keys.campaign_due(campaign_id),
            calls_key=self.keys.campaign_calls(campaign_id),
            pump_payload=self._pump(campaign_id, menu_id).payload(now_ms),
            rules=await self.rules(campaign_id),
        )

    async def control(self, campaign_id: int, menu_id: int, action: Action) -> str:
        """'ok', 'missing' or 'cancelled' (see campaign_control.lua). A cancel queues the sweep
        that fails the calls not yet fired (workers/campaigns.py)."""
        for _ in range(ATTEMPTS):
            now_ms = clock.to_ms(clock.now())
            sweep = jobs.JobSpec(jobs.SWEEP_CAMPAIGN, self.subdomain, campaign_id, now_ms)
            control = CampaignControl(
                campaign=self.keys.campaign(campaign_id),
                pump=await self.next_pump(campaign_id, menu_id, now_ms),
                jobs=Jobs.of([sweep], now_ms) if action == "cancel" else NO_JOBS,
                action=action,
                now=now_ms,
            )
            try:
                await self._scripts.run(control)
            except Stale:
                continue
            except Refused as refused:
                return refused.code
            return "ok"
        raise Stale("campaign_control")

    async def release(self, campaign_id: int, menu_id: int, held: bool = False) -> tuple[int, str]:
        """One run of the pump: (calls handed to fire jobs, the campaign's state). `held` (its
        menu's estimated wait is too long): none handed over, the pump looks again later."""
        for _ in range(ATTEMPTS):
            try:
                return await self._scripts.run(await self._release(campaign_id, menu_id, held))
            except Stale:
                continue
        raise Stale("release_campaign")

    async def _release(self, campaign_id: int, menu_id: int, held: bool) -> ReleaseCampaign:
        """The pump's run, told of the calls it may hand over (each one's fire job named)."""
        now_ms = clock.to_ms(clock.now())
        due, released = (
            self.keys.campaign_due(campaign_id),
            self.keys.campaign_released(campaign_id),
        )
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zrangebyscore(due, "-inf", now_ms + LOOKAHEAD_MS, 0, MAX_RELEASED_PER_PUMP)
            pipe.zrangebyscore(released, "-inf", now_ms - STALE_RELEASE_MS)
            pipe.hget(self.keys.campaign(campaign_id), "pump_seq")
            soon, stale, seq = await pipe.execute()
        fires = {}
        for raw in set() if held else {*soon, *stale}:
            spec = jobs.JobSpec(jobs.FIRE_SCHEDULED_CALL, self.subdomain, int(raw), now_ms)
            job_id = f"{spec.job_id}:r{now_ms}"
            fires[raw.decode()] = {"job": job_id, "payload": spec.payload(now_ms).decode()}
        pump = Pump(
            self.subdomain,
            campaign_id,
            int(seq or 0),
            self._pump_payload(campaign_id, menu_id, now_ms),
        )
        return ReleaseCampaign(
            campaign=self.keys.campaign(campaign_id),
            due=due,
            released=released,
            waiting=self.keys.waiting(menu_id),
            queue=keys.QUEUE,
            fires={call_id: keys.arq_job(fire["job"]) for call_id, fire in fires.items()},
            pump=pump,
            now=now_ms,
            fire_jobs=fires,
            lookahead=LOOKAHEAD_MS,
            min_interval=MIN_PUMP_INTERVAL_MS,
            most=0 if held else MAX_RELEASED_PER_PUMP,
            burst_s=BURST_S,
            full_poll=WAIT_HELD_POLL_MS if held else FULL_QUEUE_POLL_MS,
            stale_after=STALE_RELEASE_MS,
        )

    async def next_pump(self, campaign_id: int, menu_id: int, now_ms: int) -> Pump:
        raw = await self._redis.hget(self.keys.campaign(campaign_id), "pump_seq")  # type: ignore[misc]
        return Pump(
            self.subdomain,
            campaign_id,
            int(raw or 0),
            self._pump_payload(campaign_id, menu_id, now_ms),
        )

    async def due_spans(self, ids: Sequence[int]) -> list[tuple[int | None, int | None]]:
        """For each campaign, when its first and its last call not yet handed over are due
        (ms; None when none is left), in one pipelined round trip."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for campaign_id in ids:
                pipe.zrange(self.keys.campaign_due(campaign_id), 0, 0, withscores=True)
                pipe.zrange(self.keys.campaign_due(campaign_id), -1, -1, withscores=True)
            replies = await pipe.execute()
        ends = [int(reply[0][1]) if reply else None for reply in replies]
        return list(zip(ends[::2], ends[1::2], strict=True))

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

    def _pump_payload(self, campaign_id: int, menu_id: int, now_ms: int) -> bytes:
        return self._pump(campaign_id, menu_id).payload(now_ms)
