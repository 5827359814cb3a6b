"""A tenant's agents in Redis: live state, offers, and waking the calls waiting for them."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from dispatcher.domain import clock, lifecycle
from dispatcher.domain.errors import Conflict
from dispatcher.domain.objects import CallObject
from dispatcher.domain.statuses import AgentStatus, CallStatus
from dispatcher.store import jobs, waits
from dispatcher.store.calls import CallChanging, CallStore, Change, Snapshot
from dispatcher.store.desks import Desk
from dispatcher.store.scripting import Stale
from dispatcher.store.scripts import (
    NO_JOBS,
    OFFER_GONE,
    AcceptOffer,
    DeclineOffer,
    Jobs,
    MakeOffers,
    PickWaiting,
    Scripts,
    SetAgentStatuses,
)


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


@dataclass(frozen=True)
class StatusChange:
    """What a status change did to one agent: `held` when the agent holds a call (in a system
    status), in which case a guarded change left it alone."""

    agent_id: int
    previous: AgentStatus
    current: AgentStatus
    held: bool


def _steps(
    next_step: Callable[[int], Sequence[jobs.JobSpec]] | None,
    wake_ms: int,
    now_ms: int,
    expires_ms: int,
) -> tuple[Jobs, Jobs]:
    """make_offers.lua's next routing step: due at `wake_ms` when no offer is made, or when
    the offers made ring out if that is sooner."""
    if next_step is None:
        return NO_JOBS, NO_JOBS
    offered_ms = min(wake_ms, expires_ms)
    return Jobs.of(next_step(wake_ms), now_ms), Jobs.of(next_step(offered_ms), now_ms)


@dataclass(frozen=True)
class Routing:
    """What a routing step reads in one round trip: the call, the ids of its offers so far,
    and offer ids reserved for its candidates (`reserved` of them from `first`)."""

    snapshot: Snapshot
    existing: list[int]
    first: int
    reserved: int


class AgentStore:
    """One tenant's agents in Redis: their live state (status, calls held), the offers of calls
    to them, and the waking of waiting calls when they have room again. Assigning a call goes
    through the call's own compare-and-set (CallStore.write)."""

    def __init__(self, redis: Redis, scripts: Scripts, calls: CallStore) -> None:
        self._redis = redis
        self._scripts = scripts
        self._calls = calls
        self.tenant = calls.tenant
        self.keys = calls.keys

    async def live(self, agent_ids: Sequence[int]) -> list[dict[bytes, bytes]]:
        """Each agent's live state (`status`, `voice`: calls held), in this order."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for agent_id in agent_ids:
                pipe.hgetall(self.keys.agent(agent_id))
            states: list[dict[bytes, bytes]] = await pipe.execute()
        return states

    async def set_status(self, agent_id: int, status: AgentStatus) -> dict[bytes, bytes]:
        """The agent's own (or its tenant's) change, made whatever calls the agent holds.
        Returns the agent's live state."""
        await self.set_statuses([agent_id], status)
        (live,) = await self.live([agent_id])
        return live

    async def set_statuses(
        self,
        agent_ids: Sequence[int],
        status: AgentStatus,
        *,
        guard: bool = False,
        logout: bool = False,
    ) -> list[StatusChange]:
        """Writes and announces the agents' statuses in one atomic step (set_agent_statuses.lua):
        with `guard`, an agent holding a call keeps its status; with `logout`, an agent holding
        a call is logged out when its last call ends. Agents now available wake the calls
        waiting for them."""
        script = SetAgentStatuses(
            agents={str(i): self.keys.agent(i) for i in agent_ids},
            ids=list(agent_ids),
            status=status.value,
            guard=guard,
            logout=logout,
        )
        changes = [
            StatusChange(i, AgentStatus(was), AgentStatus(now), held)
            for i, was, now, held in await self._scripts.run(script)
        ]
        written = [change for change in changes if not (guard and change.held)]
        async with self._redis.pipeline(transaction=False) as pipe:
            for change in written:
                event = {"type": "agent.updated", "agent_id": change.agent_id}
                event["status"] = change.current.value
                pipe.publish(self.keys.events, orjson.dumps(event))
            await pipe.execute()
        available = [c.agent_id for c in written if c.current == AgentStatus.AVAILABLE]
        if available:
            await self.wake_waiting_calls(available)
        return changes

    def desk(self, agent_id: int) -> Desk:
        """A new event stream's claim on the agent's desk (store/desks.py)."""
        return Desk(self._redis, self._scripts, self.keys, agent_id)

    async def load_for_routing(self, call_id: int, reserve: int) -> Routing | None:
        """The call, its offers so far and `reserve` offer ids, in one round trip (a routing
        step then pays no read of its own before make_offers.lua)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            self._calls.queue_load(pipe, call_id)
            replies = await self._queue_reservation(pipe, call_id, reserve)
        snapshot = CallStore.snapshot_of(replies[0])
        if snapshot is None:
            return None
        return Routing(snapshot, *self._reserved(replies[1:], reserve))

    async def make_offers(
        self,
        call_id: int,
        candidates: list[tuple[int, int, str]],
        now: datetime,
        timeout_s: float,
        read: Routing | None = None,
        next_step: Callable[[int], Sequence[jobs.JobSpec]] | None = None,
        wake_ms: int = 0,
    ) -> list[Offer]:
        """Offers for (agent id, voice capacity, group) candidates; returns those made. The
        agents whose earlier offers of the call rang out are woken for other calls. With `read`
        (load_for_routing), its offers and reserved ids serve the first attempt. `next_step`
        gives the jobs of the call's next step due at some ms, queued in the same step (for a
        call still queued): due at `wake_ms`, or when the offers made ring out if sooner."""
        now_ms = clock.to_ms(now)
        expires_ms = now_ms + int(timeout_s * 1000)
        steps = _steps(next_step, wake_ms, now_ms, expires_ms)
        for attempt in range(8):
            if attempt == 0 and read is not None and read.reserved >= len(candidates):
                prepared = (read.existing, read.first, read.reserved)
            else:  # read again: the call got offers since, or nothing was read with it
                prepared = await self._reserve(call_id, len(candidates))
            try:
                answer = await self._scripts.run(
                    self._offering(call_id, candidates, now_ms, expires_ms, *prepared, steps)
                )
                break
            except Stale:
                continue
        else:
            raise CallChanging(f"call {call_id} kept getting offers")
        made = await self.offered(answer)
        groups = {agent_id: group for agent_id, _, group in candidates}
        return [
            Offer(offer_id, call_id, agent_id, groups[agent_id], now_ms, expires_ms, "open")
            for agent_id, offer_id in made
        ]

    def first_offering(
        self,
        candidates: list[tuple[int, int, str]],
        now: datetime,
        timeout_s: float,
        read: Routing,
        next_step: Callable[[int], Sequence[jobs.JobSpec]],
        wake_ms: int,
    ) -> MakeOffers | None:
        """make_offers' first attempt as a script, for a caller that sends it in a round trip
        of its own (a firing's write, CallStore's Then), its answer then given to `offered`;
        None when `read` reserved too few ids for the candidates."""
        if read.reserved < len(candidates):
            return None
        now_ms = clock.to_ms(now)
        expires_ms = now_ms + int(timeout_s * 1000)
        steps = _steps(next_step, wake_ms, now_ms, expires_ms)
        call_id = read.snapshot.call.id
        return self._offering(
            call_id, candidates, now_ms, expires_ms, read.existing, read.first, read.reserved, steps
        )

    async def offered(
        self, answer: tuple[list[tuple[int, int]], list[int]]
    ) -> list[tuple[int, int]]:
        """An offering's answer: the agents whose earlier offers rang out are woken for other
        calls; (agent id, offer id) of the offers made."""
        made, rang_out = answer
        if rang_out:
            await self.wake_waiting_calls(rang_out)
        return made

    async def _reserve(self, call_id: int, reserve: int) -> tuple[list[int], int, int]:
        async with self._redis.pipeline(transaction=False) as pipe:
            replies = await self._queue_reservation(pipe, call_id, reserve)
        return self._reserved(replies, reserve)

    async def _queue_reservation(self, pipe: Pipeline, call_id: int, reserve: int) -> list[Any]:
        """The call's offer ids so far and `reserve` new ones, queued on `pipe`, which is
        executed: its replies."""
        pipe.hvals(self.keys.call_offers(call_id))
        if reserve:
            pipe.incrby(self.keys.sequence("offer"), reserve)
        replies: list[Any] = await pipe.execute()
        return replies

    @staticmethod
    def _reserved(replies: list[Any], reserve: int) -> tuple[list[int], int, int]:
        existing = [int(raw) for raw in replies[-2 if reserve else -1]]
        first = int(replies[-1]) - reserve + 1 if reserve else 0
        return existing, first, reserve

    def _offering(
        self,
        call_id: int,
        candidates: list[tuple[int, int, str]],
        now_ms: int,
        expires_ms: int,
        existing: list[int],
        first: int,
        reserved: int,
        steps: tuple[Jobs, Jobs] = (NO_JOBS, NO_JOBS),
    ) -> MakeOffers:
        """make_offers.lua, told of the call's offers so far and of the offer ids reserved
        (at least one a candidate; the ids left unused go back to the counter)."""
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
            reserved=reserved,
            channels={agent: self.keys.agent_events(int(agent)) for agent in agents},
            events=self.keys.events,
            offered_at=clock.iso(clock.from_ms(now_ms)),
            expires_at=clock.iso(clock.from_ms(expires_ms)),
            next_step=steps[0],
            next_step_offered=steps[1],
        )

    async def offer(self, offer_id: int) -> Offer | None:
        raw = await self._redis.hgetall(self.keys.offer(offer_id))  # type: ignore[misc]
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
        await self._redis.zremrangebyscore(key, "-inf", now_ms)
        offers = [await self.offer(int(i)) for i in await self._redis.zrange(key, 0, -1)]
        return [o for o in offers if o is not None and o.state == "open"]

    async def accept(self, offer_id: int, attempts: int = 8) -> Accepted:
        """The first accept wins; any later one, or one for an expired or withdrawn offer, is
        a Conflict. The connect job is queued in the same step as the assignment."""
        offer = await self.offer(offer_id)
        agent = self.tenant.agents_by_id.get(offer.agent_id) if offer else None
        if offer is None or agent is None:
            raise Conflict(OFFER_GONE)
        for _ in range(attempts):
            # One round trip: the call, the agent's participant id, the call's offers so far.
            async with self._redis.pipeline(transaction=False) as pipe:
                self._calls.queue_load(pipe, offer.call_id)
                pipe.incr(self.keys.sequence("participant"))
                pipe.hgetall(self.keys.call_offers(offer.call_id))
                raw, participant_id, offered = await pipe.execute()
            snapshot = CallStore.snapshot_of(raw)
            if snapshot is None or snapshot.call.status != CallStatus.QUEUED:
                raise Conflict(OFFER_GONE)
            now = clock.now()
            call = lifecycle.assigned(snapshot.call, agent, participant_id, now)
            try:
                withdrawn = await self._scripts.run(
                    self._acceptance(offer, snapshot, call, now, offered)
                )
            except Stale:
                continue
            after = Snapshot(call, snapshot.meta, snapshot.rev + 1)
            await self._after_accept(withdrawn)
            return Accepted(after, offer, clock.to_ms(now))
        raise CallChanging(f"call {offer.call_id} kept changing")

    def _acceptance(
        self,
        offer: Offer,
        snapshot: Snapshot,
        call: CallObject,
        now: datetime,
        offered: dict[bytes, bytes],
    ) -> AcceptOffer:
        """accept_offer.lua, told of the call's offers so far (`offered`: agent id -> offer
        id), to withdraw the others."""
        now_ms = clock.to_ms(now)
        agent = self.tenant.agents_by_id[offer.agent_id]
        queued_at = clock.parse_iso(snapshot.call.queued_at)
        connect = jobs.JobSpec(jobs.CONNECT_CALL, self.tenant.subdomain, call.id, now_ms)
        doc = call.model_dump_json()
        webhooks = jobs.webhook_jobs(self.tenant, "call", call.id, doc, snapshot.rev + 1, now_ms)
        others = {int(offer_id): int(agent_id) for agent_id, offer_id in offered.items()}
        write = self._calls.write(
            snapshot, call, Change(call, waiting="rem", announce=False), now_ms, doc
        )
        # Announced by the script, as CallStore.announce would (`assigned`, then the call, to
        # the agent), though the assignment has no history entry of its own: the offer's
        # `accepted` entry says it.
        announced = dataclasses.replace(
            write, events=self.keys.events, agent_events=self.keys.agent_events(agent.id)
        )
        return AcceptOffer(
            offer=self.keys.offer(offer.id),
            change=announced,
            agent=self.keys.agent(agent.id),
            agent_offers=self.keys.agent_offers(agent.id),
            call_offers=self.keys.call_offers(call.id),
            others={str(offer_id): self.keys.offer(offer_id) for offer_id in others},
            other_agent_offers={
                str(agent_id): self.keys.agent_offers(agent_id) for agent_id in others.values()
            },
            other_channels={
                str(agent_id): self.keys.agent_events(agent_id) for agent_id in others.values()
            },
            jobs=Jobs.of([connect, *webhooks], now_ms),
            now=now_ms,
            offer_id=offer.id,
            agent_id=agent.id,
            capacity=agent.capacity.voice,
            recent_waits=self.keys.recent_waits(snapshot.meta.menu_id or 0),
            waited=max(now_ms - clock.to_ms(queued_at), 0) if queued_at else 0,
            waits_kept=waits.KEPT,
        )

    async def _after_accept(self, withdrawn: list[tuple[int, int]]) -> None:
        # The agents whose offers were withdrawn (told so by accept_offer.lua) no longer ring.
        await self.wake_waiting_calls([agent_id for agent_id, _ in withdrawn])

    async def decline(self, offer_id: int) -> Offer:
        offer = await self.offer(offer_id)
        if offer is None:
            raise Conflict(OFFER_GONE)
        await self._scripts.run(
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
        await self._calls.enqueue([again])
        return offer

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
        async with self._redis.pipeline(transaction=False) as pipe:
            for menu_id in menus:
                pipe.zrange(self.keys.waiting(menu_id), 0, per_menu - 1, withscores=True)
            heads = await pipe.execute()
        waiting = [int(raw) for raw, _ in sorted(
            (entry for head in heads for entry in head), key=lambda entry: entry[1]
        )]  # fmt: skip
        if not waiting:
            return 0
        ids_ = [str(agent.id) for agent in agents]
        picked = await self._scripts.run(
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
        await self._calls.enqueue(
            [
                jobs.JobSpec(
                    jobs.ROUTE_CALL, self.tenant.subdomain, int(raw), now_ms, (), f"w{now_ms}"
                )
                for raw in picked
            ]
        )
        return len(picked)
