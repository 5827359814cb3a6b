"""Routing a queued call: cast its groups (cascade or multicast), offer it, expire it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog

from dispatcher.directory.schema import Menu
from dispatcher.domain import clock, lifecycle, routing
from dispatcher.domain.objects import CallObject
from dispatcher.domain.statuses import CallStatus, FailReason
from dispatcher.store import jobs
from dispatcher.store.agents import Routing
from dispatcher.store.calls import CallStore, Change, Snapshot, Then
from dispatcher.store.stores import Stores
from workers.context import stores_of, typed

log = structlog.get_logger("workers.routing")


async def route_call(ctx: dict[str, Any], subdomain: str, call_id: int) -> str:
    """One routing step; safe to run any number of times. It schedules the next step itself
    (next cascade group, or the queue's maximum wait); agents who become free wake it too."""
    stores = await stores_of(typed(ctx), subdomain)
    if stores is None:
        return "not queued"
    return await route(ctx, stores, await read_for_routing(stores, call_id))


async def read_for_routing(stores: Stores, call_id: int) -> Routing | None:
    """The call with its offers so far and offer ids for as many agents as a menu has, in one
    round trip (unused ids go back): the call's menu is not known before the call is read."""
    return await stores.agents.load_for_routing(call_id, stores.tenant.most_menu_agents)


async def route(ctx: dict[str, Any], stores: Stores, read: Routing | None) -> str:
    """The routing step of a call `read` (read_for_routing's, or the call a firing has just
    written with what was read before it)."""
    if read is None or read.snapshot.call.status != CallStatus.QUEUED:
        return "not queued"
    calls, snapshot = stores.calls, read.snapshot
    call_id = snapshot.call.id
    now = _now(ctx)
    menu = calls.tenant.menus_by_id.get(snapshot.meta.menu_id or 0)
    if menu is None:
        await _fail(calls, call_id, now, FailReason.MENU_DELETED)
        return "menu deleted"
    queued_at = clock.parse_iso(snapshot.call.queued_at) or now
    deadline = routing.deadline(menu, queued_at)
    if now >= deadline:
        await _fail(calls, call_id, now, FailReason.EXPIRED)
        return "expired"
    cast = await _cast_new_groups(calls, snapshot, menu, queued_at, now)
    if cast is None:
        return "changed"
    step = _Step(calls, cast.call, menu, queued_at, deadline, now)
    # The next step is queued by the offering's own script: at the next group's unlock or the
    # deadline, or when the offers made ring out (their agents are free again) if sooner.
    offers = await stores.agents.make_offers(
        call_id, step.candidates, now, menu.offer_timeout_s, read, step.next_step, step.wake_ms
    )
    return f"offered to {len(offers)}"


def first_offering(
    ctx: dict[str, Any], stores: Stores, read: Routing, fired: CallObject
) -> Then | None:
    """The routing step of a call about to fire as `fired`, as a script to send right after
    its firing's write (CallStore's Then), so that the firing and the step's offering take
    one round trip. None when the step would first write something else (its menu is gone,
    it expired, or groups are left to cast), or `read` reserved too few offer ids: the step
    then runs after the firing, as `route`."""
    calls, now = stores.calls, _now(ctx)
    menu = calls.tenant.menus_by_id.get(read.snapshot.meta.menu_id or 0)
    queued_at = clock.parse_iso(fired.queued_at)
    if menu is None or queued_at is None:
        return None
    deadline = routing.deadline(menu, queued_at)
    cast = {event.group for event in fired.offer_events}
    unlocked = routing.unlocked_groups(menu, queued_at, now)
    if now >= deadline or any(routing.group_name(i) not in cast for i in unlocked):
        return None
    step = _Step(calls, fired, menu, queued_at, deadline, now)
    script = stores.agents.first_offering(
        step.candidates, now, menu.offer_timeout_s, read, step.next_step, step.wake_ms
    )
    return Then(script) if script is not None else None


def _now(ctx: dict[str, Any]) -> datetime:
    # ARQ may start a job up to half a millisecond before its score: judge at the due time at
    # least, or the next step would get this job's own id and never be queued.
    return max(clock.now(), clock.from_ms(ctx.get("score") or 0))


class _Step:
    """What a routing step offers (the unlocked groups' agents who speak the call's language,
    each once) and when the call's next step is due: the next group's unlock, or the
    deadline."""

    def __init__(
        self,
        calls: CallStore,
        call: CallObject,
        menu: Menu,
        queued_at: datetime,
        deadline: datetime,
        now: datetime,
    ) -> None:
        self.subdomain, self.call_id = calls.tenant.subdomain, call.id
        self.candidates = _candidates(calls, call, menu, queued_at, now)
        wake = min(routing.next_unlock(menu, queued_at, now) or deadline, deadline)
        self.wake_ms = clock.to_ms(wake)

    def next_step(self, due_ms: int) -> list[jobs.JobSpec]:
        return [
            jobs.JobSpec(jobs.ROUTE_CALL, self.subdomain, self.call_id, due_ms, (), str(due_ms))
        ]


async def _cast_new_groups(
    calls: CallStore, snapshot: Snapshot, menu: Menu, queued_at: datetime, now: datetime
) -> Snapshot | None:
    names = [routing.group_name(i) for i in routing.unlocked_groups(menu, queued_at, now)]
    cast = {event.group for event in snapshot.call.offer_events}
    if all(name in cast for name in names):
        return snapshot

    def decide(current: Snapshot) -> Change | None:
        if current.call.status != CallStatus.QUEUED:
            return None
        done = {event.group for event in current.call.offer_events}
        added = [name for name in names if name not in done]
        return Change(lifecycle.cast(current.call, added, now)) if added else None

    return await calls.apply(snapshot.call.id, decide) or await calls.load(snapshot.call.id)


def _candidates(
    calls: CallStore, call: CallObject, menu: Menu, queued_at: datetime, now: datetime
) -> list[tuple[int, int, str]]:
    """Agents of the unlocked groups who speak the call's language, each once."""
    seen: set[int] = set()
    found = []
    for index in routing.unlocked_groups(menu, queued_at, now):
        for agent_id in menu.groups[index]:
            agent = calls.tenant.agents_by_id.get(agent_id)
            if agent and agent_id not in seen and call.lang in agent.languages:
                seen.add(agent_id)
                found.append((agent_id, agent.capacity.voice, routing.group_name(index)))
    return found


async def _fail(calls: CallStore, call_id: int, now: datetime, reason: FailReason) -> None:
    def decide(current: Snapshot) -> Change | None:
        if current.call.status != CallStatus.QUEUED:
            return None
        return Change(lifecycle.failed(current.call, now, reason), waiting="rem")

    if await calls.apply(call_id, decide):
        log.info("call ended unrouted", fail_reason=reason.value)
