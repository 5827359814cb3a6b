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
from dispatcher.domain.statuses import CallStatus, FailReason
from dispatcher.store import campaigns, jobs, keys
from dispatcher.store.scripts import Scripts

OFFER_GONE = "Offer is no longer available"


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
        now_ms = clock.to_ms(clock.now())
        call = change.call
        doc = call.model_dump_json()
        webhooks = (
            jobs.webhook_jobs(self.tenant, "call", call.id, doc, before.rev + 1, now_ms)
            if change.announce
            else []
        )
        specs = [*change.jobs, *webhooks]
        created = clock.parse_iso(call.created_at)
        menu_id = (change.meta or before.meta).menu_id or 0
        entry = history.change(before.call, call, now_ms) if change.announce else None
        keys = [
            self.keys.call(call.id),
            self.keys.calls_by_status(before.call.status),
            self.keys.calls_by_status(call.status),
            self.keys.waiting(menu_id),
            self.keys.agent(before.agent_id or 0),
            jobs.QUEUE_NAME,
            self.keys.scheduled,
            self.keys.call_history(call.id),
        ]
        args = [
            before.rev,
            doc,
            call.status,
            change.meta.model_dump_json() if change.meta else "",
            call.id,
            clock.to_ms(created) if created else now_ms,
            change.waiting,
            now_ms,
            "1" if change.release_agent else "0",
            *jobs.script_args(specs, now_ms),
            orjson.dumps(entry) if entry else "",  # the history entry's fixed place
        ]
        campaign_id = before.meta.campaign_id
        fires = before.call.status == CallStatus.SCHEDULED and call.status == CallStatus.QUEUED
        if campaign_id is not None and fires:
            return await self._fire_in_campaign(call, campaign_id, keys, args)
        return int(await self.scripts.transition(keys=keys, args=args))

    async def _fire_in_campaign(
        self, fired: CallObject, campaign_id: int, keys: list[str], args: list[Any]
    ) -> int:
        """A call of a campaign fires only while its campaign runs: checked in the same atomic
        step as the compare-and-set (fire_campaign_call.lua)."""
        moments = [clock.parse_iso(fired.scheduled_at), clock.parse_iso(fired.queued_at)]
        gate = [
            self.keys.campaign(campaign_id),
            self.keys.campaign_due(campaign_id),
            self.keys.campaign_released(campaign_id),
        ]
        outcome = await self.scripts.fire_campaign_call(
            keys=[*keys, *gate],
            args=[*args, *(clock.to_ms(at) if at else 0 for at in moments), campaigns.BURST_S],
        )
        verdict = outcome[0].decode()
        if verdict == "ok":
            return int(outcome[1])
        if verdict == "stale":
            return 0
        raise CampaignHeld(verdict, int(outcome[1]) if verdict == "early" else 0)

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
        flat: list[str | int] = []
        for agent_id, capacity, group in candidates:
            flat += [agent_id, capacity, group]
        made, rang_out = await self.scripts.make_offers(
            keys=[
                self.keys.call(call_id),
                self.keys.call_offers(call_id),
                self.keys.sequence("offer"),
                self.keys.call_history(call_id),
            ],
            args=[self.keys.prefix, call_id, now_ms, expires_ms, *flat],
        )
        offers = []
        groups = {agent_id: group for agent_id, _, group in candidates}
        for i in range(0, len(made), 2):
            agent_id, offer_id = int(made[i]), int(made[i + 1])
            offers.append(
                Offer(offer_id, call_id, agent_id, groups[agent_id], now_ms, expires_ms, "open")
            )
        if offers:
            async with self.redis.pipeline(transaction=False) as pipe:
                for offer in offers:
                    pipe.publish(
                        self.keys.agent_events(offer.agent_id), _event("offer", offer.view())
                    )
                made = {"type": "offers.made", "call_id": call_id}
                made["agent_ids"] = [offer.agent_id for offer in offers]
                pipe.publish(self.keys.events, orjson.dumps(made))
                await pipe.execute()
        if rang_out:
            await self.wake_waiting_calls([int(agent_id) for agent_id in rang_out])
        return offers

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
            outcome = await self._accept_script(offer, snapshot, call, now)
            if outcome[0] == b"ok":
                after = Snapshot(call, snapshot.meta, snapshot.rev + 1)
                await self._after_accept(after, outcome[1:])
                return Accepted(after, offer, clock.to_ms(now))
            if outcome[0] != b"stale":
                raise Conflict(OFFER_GONE)
        raise CallChanging(f"call {offer.call_id} kept changing")

    async def _accept_script(
        self, offer: Offer, snapshot: Snapshot, call: CallObject, now: datetime
    ) -> list[bytes]:
        now_ms = clock.to_ms(now)
        agent = self.tenant.agents_by_id[offer.agent_id]
        connect = jobs.JobSpec(jobs.CONNECT_CALL, self.tenant.subdomain, call.id, now_ms)
        doc = call.model_dump_json()
        webhooks = jobs.webhook_jobs(self.tenant, "call", call.id, doc, snapshot.rev + 1, now_ms)
        specs = [connect, *webhooks]
        created = clock.parse_iso(call.created_at)
        result = await self.scripts.accept_offer(
            keys=[
                self.keys.offer(offer.id),
                self.keys.call(call.id),
                self.keys.agent(agent.id),
                self.keys.call_offers(call.id),
                self.keys.calls_by_status(CallStatus.QUEUED),
                self.keys.calls_by_status(CallStatus.ASSIGNED),
                self.keys.waiting(snapshot.meta.menu_id or 0),
                jobs.QUEUE_NAME,
                self.keys.call_history(call.id),
            ],
            args=[
                self.keys.prefix,
                now_ms,
                snapshot.rev,
                doc,
                agent.capacity.voice,
                clock.to_ms(created) if created else now_ms,
                offer.id,
                *jobs.script_args(specs, now_ms),
            ],
        )
        return list(result)

    async def _after_accept(self, after: Snapshot, withdrawn: list[bytes]) -> None:
        await self.announce(after)
        released = []
        for i in range(0, len(withdrawn), 2):
            agent_id = int(withdrawn[i])
            released.append(agent_id)
            await self.publish_to_agent(
                agent_id, "offer_withdrawn", {"id": int(withdrawn[i + 1]), "call_id": after.call.id}
            )
        await self.wake_waiting_calls(released)  # no longer ringing: free for the next call

    async def decline(self, offer_id: int) -> Offer:
        offer = await self.offer(offer_id)
        if offer is None:
            raise Conflict(OFFER_GONE)
        declined = await self.scripts.decline_offer(
            keys=[
                self.keys.offer(offer_id),
                self.keys.agent_offers(offer.agent_id),
                self.keys.call_history(offer.call_id),
            ],
            args=[offer_id, clock.to_ms(clock.now())],
        )
        if not declined:
            raise Conflict(OFFER_GONE)
        await self.wake_waiting_calls([offer.agent_id])  # no longer ringing for this call
        return offer

    async def enqueue(self, specs: list[jobs.JobSpec]) -> None:
        await jobs.enqueue(self.scripts, specs)

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
        args: list[str | int] = [self.keys.prefix, per_menu, now_ms]
        for agent in agents:
            args += [agent.id, agent.capacity.voice, len(agent.languages), *agent.languages]
        picked = await self.scripts.pick_waiting(
            keys=[self.keys.waiting(menu_id) for menu_id in menus], args=args
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
        now_ms = clock.to_ms(clock.now())
        wait = await self.scripts.take_token(
            keys=[self.keys.carrier_bucket], args=[rate, max(1.0, rate), now_ms]
        )
        return int(wait)


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
        if status not in {
            CallStatus.SCHEDULED,
            CallStatus.QUEUED,
            CallStatus.ASSIGNED,
            CallStatus.CONNECTING,
            CallStatus.SWITCHING,
        }:
            return None
        failed = lifecycle.failed(current.call, now, reason or FailReason.AG_CANCELED, details)
        held = status in {CallStatus.ASSIGNED, CallStatus.CONNECTING, CallStatus.SWITCHING}
        return Change(
            failed,
            release_agent=held,
            waiting="rem" if status == CallStatus.QUEUED else "",
            jobs=hangups(current),
        )

    after = await calls.apply(call_id, decide)
    if after is not None and after.agent_id is not None:
        await calls.wake_waiting_calls([after.agent_id])
    return after


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return orjson.dumps({"event": kind, "data": data})
