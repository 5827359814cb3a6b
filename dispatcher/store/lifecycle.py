"""Write-back of calls after creation: compare-and-set transitions, offers, and their events."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import orjson
from redis.asyncio import Redis

from dispatcher.directory.tenant import Tenant
from dispatcher.domain import clock, history, lifecycle
from dispatcher.domain.errors import Conflict
from dispatcher.domain.objects import CallObject
from dispatcher.domain.records import CallMeta
from dispatcher.domain.statuses import CALL_TRANSITIONS, HELD_BY_AGENT, CallStatus, FailReason
from dispatcher.store import campaigns, jobs, keys
from dispatcher.store.buckets import Bucket
from dispatcher.store.scripts import (
    OFFER_GONE,
    AcceptOffer,
    DeclineOffer,
    FireCampaignCall,
    Held,
    Jobs,
    MakeOffers,
    PickWaiting,
    Scripts,
    Stale,
    TakeToken,
    Transition,
    Write,
)

__all__ = ["OFFER_GONE"]


class CallChanging(RuntimeError):
    """The call kept changing under us; the job is retried by ARQ."""


class CampaignHeld(Exception):
    """A call of a campaign was not fired (fire_campaign_call.lua): its campaign is paused or
    cancelled, or the call came `wait_ms` too early for the campaign's pace."""

    def __init__(self, reason: Literal["paused", "cancelled", "early"], wait_ms: int = 0) -> None:
        super().__init__(f"campaign call held: {reason}")
        self.reason = reason
        self.wait_ms = wait_ms


@dataclass(frozen=True)
class Snapshot:
    call: CallObject
    meta: CallMeta
    rev: int

    @property
    def agent_id(self) -> int | None:
        if self.meta.agent_id is not None:
            return self.meta.agent_id
        return self.call.agent_info.id if self.call.agent_info else None


@dataclass
class Change:
    call: CallObject
    meta: CallMeta | None = None
    jobs: list[jobs.JobSpec] = field(default_factory=list)
    waiting: Literal["add", "rem", ""] = ""
    release_agent: bool = False
    announce: bool = True  # False for changes clients cannot see (private facts only)


@dataclass(frozen=True)
class Offer:
    id: int
    call_id: int
    agent_id: int
    group: str
    offered_at_ms: int
    expires_at_ms: int
    state: str

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "call_id": self.call_id,
            "group": self.group,
            "offered_at": clock.iso(clock.from_ms(self.offered_at_ms)),
            "expires_at": clock.iso(clock.from_ms(self.expires_at_ms)),
        }


@dataclass(frozen=True)
class Accepted:
    snapshot: Snapshot
    offer: Offer
    accepted_at_ms: int

    @property
    def waited_s(self) -> float:
        """How long the offer rang before the agent took it."""
        return (self.accepted_at_ms - self.offer.offered_at_ms) / 1000


class Calls:
    """One tenant's calls after creation; every write is a CAS on the call's revision."""

    def __init__(self, redis: Redis, scripts: Scripts, tenant: Tenant) -> None:
        self.redis = redis
        self.scripts = scripts
        self.tenant = tenant
        self.keys = keys.TenantKeys(tenant.subdomain)

    async def load(self, call_id: int) -> Snapshot | None:
        doc, meta, rev = await self.redis.hmget(self.keys.call(call_id), ["doc", "meta", "rev"])  # type: ignore[misc]
        if doc is None or meta is None or rev is None:
            return None
        return Snapshot(
            call=CallObject.model_validate_json(doc),
            meta=CallMeta.model_validate_json(meta),
            rev=int(rev),
        )

    async def apply(
        self, call_id: int, decide: Callable[[Snapshot], Change | None], attempts: int = 8
    ) -> Snapshot | None:
        """Load, decide, write if unchanged meanwhile; None when there was nothing to do."""
        for _ in range(attempts):
            snapshot = await self.load(call_id)
            if snapshot is None:
                return None
            change = decide(snapshot)
            if change is None:
                return None
            rev = await self._write(snapshot, change)
            if rev:
                after = Snapshot(change.call, change.meta or snapshot.meta, rev)
                if change.announce:
                    await self.announce(after)
                return after
        raise CallChanging(f"call {call_id} kept changing")

    async def _write(self, before: Snapshot, change: Change) -> int:
        """The change's compare-and-set: the new revision, or 0 when the call changed."""
        now_ms = clock.to_ms(clock.now())
        call = change.call
        doc = call.model_dump_json()
        webhooks = (
            jobs.webhook_jobs(self.tenant, "call", call.id, doc, before.rev + 1, now_ms)
            if change.announce
            else []
        )
        queued = Jobs.of([*change.jobs, *webhooks], now_ms)
        write = self.write(before, call, change, now_ms)
        campaign_id = before.meta.campaign_id
        fires = before.call.status == CallStatus.SCHEDULED and call.status == CallStatus.QUEUED
        try:
            if campaign_id is not None and fires:
                return await self._fire_in_campaign(call, campaign_id, write, queued)
            return await self.scripts.run(Transition(write, queued))
        except Stale:
            return 0

    def write(self, before: Snapshot, call: CallObject, change: Change, now_ms: int) -> Write:
        """The compare-and-set of `before` into `call` (lib.lua's cas_transition)."""
        created = clock.parse_iso(call.created_at)
        menu_id = (change.meta or before.meta).menu_id or 0
        entry = history.change(before.call, call, now_ms) if change.announce else None
        campaign_id = before.meta.campaign_id
        return Write(
            record=self.keys.call(call.id),
            from_index=self.keys.calls_by_status(before.call.status),
            to_index=self.keys.calls_by_status(call.status),
            rev=before.rev,
            doc=call.model_dump_json(),
            status=call.status,
            id=call.id,
            score=clock.to_ms(created) if created else now_ms,
            meta=change.meta.model_dump_json() if change.meta else None,
            waiting=self.keys.waiting(menu_id) if change.waiting else None,
            waiting_op=change.waiting or None,
            waiting_score=now_ms if change.waiting else None,
            agent=self.keys.agent(before.agent_id or 0) if change.release_agent else None,
            release=change.release_agent,
            scheduled=self.keys.scheduled,
            history=self.keys.call_history(call.id),
            entry=orjson.dumps(entry).decode() if entry else None,
            campaign=self.keys.campaign(campaign_id) if campaign_id is not None else None,
        )

    async def _fire_in_campaign(
        self, fired: CallObject, campaign_id: int, write: Write, queued: Jobs
    ) -> int:
        """A call of a campaign fires only while its campaign runs: checked in the same atomic
        step as the compare-and-set (fire_campaign_call.lua)."""
        moments = [clock.parse_iso(fired.scheduled_at), clock.parse_iso(fired.queued_at)]
        scheduled, queued_ms = (clock.to_ms(at) if at else 0 for at in moments)
        fire = FireCampaignCall(
            change=write,
            jobs=queued,
            due=self.keys.campaign_due(campaign_id),
            released=self.keys.campaign_released(campaign_id),
            scheduled=scheduled,
            queued=queued_ms,
            burst_s=campaigns.BURST_S,
        )
        try:
            return await self.scripts.run(fire)
        except Held as held:
            raise CampaignHeld(held.reason, held.wait_ms) from held  # type: ignore[arg-type]

    async def history_of(self, call: CallObject) -> list[dict[str, Any]]:
        """The call's history, oldest first: its creation, then the last stored entries."""
        stored = await self.redis.lrange(self.keys.call_history(call.id), 0, -1)  # type: ignore[misc]
        return [history.created(call), *(orjson.loads(raw) for raw in stored)]

    async def announce(self, snapshot: Snapshot) -> None:
        """The tenant's channel gets every change; the call's agent gets it too (their
        console follows the call they hold), after `assigned` when it is the assignment."""
        call = snapshot.call.model_dump(mode="json")
        agent_id = snapshot.agent_id
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.publish(self.keys.events, orjson.dumps({"type": "call.updated", "call": call}))
            if agent_id is not None:
                channel = self.keys.agent_events(agent_id)
                if snapshot.call.status == CallStatus.ASSIGNED:
                    pipe.publish(channel, _event("assigned", {"call_id": snapshot.call.id}))
                pipe.publish(channel, _event("call_updated", call))
            await pipe.execute()

    async def publish_to_agent(self, agent_id: int, kind: str, data: dict[str, Any]) -> None:
        await self.redis.publish(self.keys.agent_events(agent_id), _event(kind, data))

    # Offers ---------------------------------------------------------------------------------

    async def make_offers(
        self, call_id: int, candidates: list[tuple[int, int, str]], now: datetime, timeout_s: float
    ) -> list[Offer]:
        """Offers for (agent id, voice capacity, group) candidates; returns those made. The
        agents whose earlier offers of the call rang out are woken for other calls."""
        now_ms = clock.to_ms(now)
        expires_ms = now_ms + int(timeout_s * 1000)
        for _ in range(8):
            try:
                made, rang_out = await self.scripts.run(
                    await self._offering(call_id, candidates, now_ms, expires_ms)
                )
                break
            except Stale:
                continue
        else:
            raise CallChanging(f"call {call_id} kept getting offers")
        offers = []
        groups = {agent_id: group for agent_id, _, group in candidates}
        for agent_id, offer_id in made:
            offers.append(
                Offer(offer_id, call_id, agent_id, groups[agent_id], now_ms, expires_ms, "open")
            )
        if offers:
            async with self.redis.pipeline(transaction=False) as pipe:
                for offer in offers:
                    pipe.publish(
                        self.keys.agent_events(offer.agent_id), _event("offer", offer.view())
                    )
                event = {"type": "offers.made", "call_id": call_id}
                event["agent_ids"] = [offer.agent_id for offer in offers]
                pipe.publish(self.keys.events, orjson.dumps(event))
                await pipe.execute()
        if rang_out:
            await self.wake_waiting_calls(rang_out)
        return offers

    async def _offering(
        self, call_id: int, candidates: list[tuple[int, int, str]], now_ms: int, expires_ms: int
    ) -> MakeOffers:
        """make_offers.lua, told of the call's offers so far and of offer ids reserved for
        each candidate (the ids left unused go back to the counter)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hvals(self.keys.call_offers(call_id))
            if candidates:
                pipe.incrby(self.keys.sequence("offer"), len(candidates))
            replies = await pipe.execute()
        existing = [int(raw) for raw in replies[0]]
        first = int(replies[1]) - len(candidates) + 1 if candidates else 0
        agents = [str(agent_id) for agent_id, _, _ in candidates]
        return MakeOffers(
            call=self.keys.call(call_id),
            call_offers=self.keys.call_offers(call_id),
            offer_seq=self.keys.sequence("offer"),
            history=self.keys.call_history(call_id),
            existing={str(offer_id): self.keys.offer(offer_id) for offer_id in existing},
            agents={agent: self.keys.agent(int(agent)) for agent in agents},
            agent_offers={agent: self.keys.agent_offers(int(agent)) for agent in agents},
            offers=[self.keys.offer(first + i) for i in range(len(candidates))],
            call_id=call_id,
            now=now_ms,
            expires=expires_ms,
            candidates=[
                {"id": agent_id, "capacity": capacity, "group": group}
                for agent_id, capacity, group in candidates
            ],
            first=first,
        )

    async def offer(self, offer_id: int) -> Offer | None:
        raw = await self.redis.hgetall(self.keys.offer(offer_id))  # type: ignore[misc]
        if not raw:
            return None
        return Offer(
            id=offer_id,
            call_id=int(raw[b"call_id"]),
            agent_id=int(raw[b"agent_id"]),
            group=raw[b"group"].decode(),
            offered_at_ms=int(raw[b"offered_at"]),
            expires_at_ms=int(raw[b"expires_at"]),
            state=raw[b"state"].decode(),
        )

    async def open_offers(self, agent_id: int) -> list[Offer]:
        now_ms = clock.to_ms(clock.now())
        key = self.keys.agent_offers(agent_id)
        await self.redis.zremrangebyscore(key, "-inf", now_ms)
        offers = [await self.offer(int(i)) for i in await self.redis.zrange(key, 0, -1)]
        return [o for o in offers if o is not None and o.state == "open"]

    async def accept(self, offer_id: int, attempts: int = 8) -> Accepted:
        """The first accept wins; any later one, or one for an expired or withdrawn offer, is
        a Conflict. The connect job is queued in the same step as the assignment."""
        offer = await self.offer(offer_id)
        agent = self.tenant.agents_by_id.get(offer.agent_id) if offer else None
        if offer is None or agent is None:
            raise Conflict(OFFER_GONE)
        for _ in range(attempts):
            snapshot = await self.load(offer.call_id)
            if snapshot is None or snapshot.call.status != CallStatus.QUEUED:
                raise Conflict(OFFER_GONE)
            now = clock.now()
            participant_id = await self.redis.incr(self.keys.sequence("participant"))
            call = lifecycle.assigned(snapshot.call, agent, participant_id, now)
            try:
                withdrawn = await self.scripts.run(
                    await self._acceptance(offer, snapshot, call, now)
                )
            except Stale:
                continue
            after = Snapshot(call, snapshot.meta, snapshot.rev + 1)
            await self._after_accept(after, withdrawn)
            return Accepted(after, offer, clock.to_ms(now))
        raise CallChanging(f"call {offer.call_id} kept changing")

    async def _acceptance(
        self, offer: Offer, snapshot: Snapshot, call: CallObject, now: datetime
    ) -> AcceptOffer:
        """accept_offer.lua, told of the call's offers so far (to withdraw the others)."""
        now_ms = clock.to_ms(now)
        agent = self.tenant.agents_by_id[offer.agent_id]
        connect = jobs.JobSpec(jobs.CONNECT_CALL, self.tenant.subdomain, call.id, now_ms)
        doc = call.model_dump_json()
        webhooks = jobs.webhook_jobs(self.tenant, "call", call.id, doc, snapshot.rev + 1, now_ms)
        offered = await self.redis.hgetall(self.keys.call_offers(call.id))  # type: ignore[misc]
        others = {int(offer_id): int(agent_id) for agent_id, offer_id in offered.items()}
        write = self.write(snapshot, call, Change(call, waiting="rem", announce=False), now_ms)
        return AcceptOffer(
            offer=self.keys.offer(offer.id),
            change=write,
            agent=self.keys.agent(agent.id),
            agent_offers=self.keys.agent_offers(agent.id),
            call_offers=self.keys.call_offers(call.id),
            others={str(offer_id): self.keys.offer(offer_id) for offer_id in others},
            other_agent_offers={
                str(agent_id): self.keys.agent_offers(agent_id) for agent_id in others.values()
            },
            jobs=Jobs.of([connect, *webhooks], now_ms),
            now=now_ms,
            offer_id=offer.id,
            agent_id=agent.id,
            capacity=agent.capacity.voice,
        )

    async def _after_accept(self, after: Snapshot, withdrawn: list[tuple[int, int]]) -> None:
        await self.announce(after)
        released = []
        for agent_id, offer_id in withdrawn:
            released.append(agent_id)
            await self.publish_to_agent(
                agent_id, "offer_withdrawn", {"id": offer_id, "call_id": after.call.id}
            )
        await self.wake_waiting_calls(released)  # no longer ringing: free for the next call

    async def decline(self, offer_id: int) -> Offer:
        offer = await self.offer(offer_id)
        if offer is None:
            raise Conflict(OFFER_GONE)
        await self.scripts.run(
            DeclineOffer(
                offer=self.keys.offer(offer_id),
                agent_offers=self.keys.agent_offers(offer.agent_id),
                history=self.keys.call_history(offer.call_id),
                offer_id=offer_id,
                now=clock.to_ms(clock.now()),
            )
        )
        await self.wake_waiting_calls([offer.agent_id])  # no longer ringing for this call
        # Routed again now: the next agents need not wait for the offer to ring out.
        now_ms = clock.to_ms(clock.now())
        again = jobs.JobSpec(
            jobs.ROUTE_CALL, self.tenant.subdomain, offer.call_id, now_ms, (), f"d{offer.id}"
        )
        await self.enqueue([again])
        return offer

    async def enqueue(self, specs: list[jobs.JobSpec]) -> None:
        await self.scripts.enqueue(specs, clock.to_ms(clock.now()))

    async def wake_waiting_calls(self, agent_ids: Sequence[int], per_menu: int = 200) -> int:
        """Agents became free: route again the waiting calls that will ring for them (see
        pick_waiting.lua), looking at the first `per_menu` calls of each of their menus."""
        agents = [self.tenant.agents_by_id[i] for i in agent_ids if i in self.tenant.agents_by_id]
        ids = {agent.id for agent in agents}
        menus = [
            menu.id
            for menu in self.tenant.doc.menus
            if any(agent_id in ids for group in menu.groups for agent_id in group)
        ]
        if not menus:
            return 0
        now_ms = clock.to_ms(clock.now())
        async with self.redis.pipeline(transaction=False) as pipe:
            for menu_id in menus:
                pipe.zrange(self.keys.waiting(menu_id), 0, per_menu - 1, withscores=True)
            heads = await pipe.execute()
        waiting = [int(raw) for raw, _ in sorted(
            (entry for head in heads for entry in head), key=lambda entry: entry[1]
        )]  # fmt: skip
        if not waiting:
            return 0
        ids_ = [str(agent.id) for agent in agents]
        picked = await self.scripts.run(
            PickWaiting(
                agents={i: self.keys.agent(int(i)) for i in ids_},
                agent_offers={i: self.keys.agent_offers(int(i)) for i in ids_},
                calls={str(c): self.keys.call(c) for c in waiting},
                call_offers={str(c): self.keys.call_offers(c) for c in waiting},
                now=now_ms,
                agent_list=[
                    {"id": a.id, "capacity": a.capacity.voice, "languages": a.languages}
                    for a in agents
                ],
                waiting=waiting,
            )
        )
        await self.enqueue(
            [
                jobs.JobSpec(
                    jobs.ROUTE_CALL, self.tenant.subdomain, int(raw), now_ms, (), f"w{now_ms}"
                )
                for raw in picked
            ]
        )
        return len(picked)

    async def take_carrier_token(self, rate: float) -> int:
        """0 when a call may be placed now, else the ms until the tenant's bucket refills."""
        bucket = Bucket(self.keys.carrier_bucket, rate, max(1.0, rate))
        return await self.scripts.run(TakeToken(bucket))


async def end_call(
    calls: Calls,
    call_id: int,
    reason: FailReason | None,
    *,
    by: str = "disconnected_by_unknown",
    details: str | None = None,
    hang_up: bool = False,
) -> Snapshot | None:
    """Ends a call that has not ended: finished if connected, else failed with `reason`
    (ag_canceled when none is given). Frees the agent's slot and wakes the calls waiting.
    With `hang_up` (the end did not come from the carrier), a call the carrier has placed is
    hung up there by a job queued with the change."""
    now = clock.now()

    def hangups(current: Snapshot) -> list[jobs.JobSpec]:
        carrier_id = current.meta.carrier_call_id
        if not hang_up or carrier_id is None:
            return []
        return [jobs.hangup(calls.tenant.subdomain, current.call.id, carrier_id, clock.to_ms(now))]

    def decide(current: Snapshot) -> Change | None:
        status = CallStatus(current.call.status)
        if status == CallStatus.CONNECTED:
            finished = lifecycle.finished(current.call, now, by)
            return Change(finished, release_agent=True, jobs=hangups(current))
        if CallStatus.FAILED not in CALL_TRANSITIONS.get(status, frozenset()):
            return None
        failed = lifecycle.failed(current.call, now, reason or FailReason.AG_CANCELED, details)
        return Change(
            failed,
            release_agent=status in HELD_BY_AGENT,
            waiting="rem" if status == CallStatus.QUEUED else "",
            jobs=hangups(current),
        )

    after = await calls.apply(call_id, decide)
    if after is not None and after.agent_id is not None:
        await calls.wake_waiting_calls([after.agent_id])
    return after


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return orjson.dumps({"event": kind, "data": data})
