"""Scheduled calls: at `scheduled_at` the call is queued and routed like an inbound call."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

import structlog

from dispatcher.domain import clock, compliance, lifecycle
from dispatcher.domain.campaigns import CampaignState
from dispatcher.domain.errors import InvalidRequest
from dispatcher.domain.objects import CallObject
from dispatcher.domain.records import first_groups
from dispatcher.domain.statuses import CallStatus, CallType, FailReason
from dispatcher.store import jobs
from dispatcher.store.agents import Routing
from dispatcher.store.calls import CallBlocked, CallStore, CampaignHeld, Change, Snapshot, Then
from dispatcher.store.stores import Stores
from workers.campaigns import fail_unfired
from workers.context import stores_of, typed
from workers.routing import first_offering, read_for_routing, route, route_call

log = structlog.get_logger("workers.scheduling")


async def fire_scheduled_call(ctx: dict[str, Any], subdomain: str, call_id: int) -> str:
    """scheduled -> queued, then the first routing step in the same job (one job per fired
    call, not two: firing is what campaigns do by the thousand each second). If a worker dies
    between the two, ARQ runs this job again, which finds the call queued and routes it.
    A call that may not be placed now is held (its calling window is closed at the end user's
    location, or its number had its contact limit of calls): it stays scheduled, due again at
    the next time it may be placed; one whose number is on the company DNC list fails."""
    context = typed(ctx)
    stores = await stores_of(context, subdomain)
    if stores is None:
        return "no tenant"
    calls = stores.calls
    now = clock.now()
    # Read as a routing step reads, so that the step after the firing reads nothing: the
    # offer ids reserved are lost to a call that is held (a reservation's ids are spare).
    read = await read_for_routing(stores, call_id)
    if read is None:
        return "not scheduled"
    loaded = read.snapshot
    rules = await _rules_of(stores, loaded)
    sent: list[Then] = []

    def offering(fired: CallObject) -> Then | None:
        # Once: decided again after a stale write, the step reads afresh (the reservation
        # may have gone back to the counter).
        then = None if sent else first_offering(ctx, stores, read, fired)
        sent.extend([then] if then else [])
        return then

    try:
        after = await calls.apply(call_id, _firing(calls, rules, now, offering), loaded=loaded)
    except CampaignHeld as held:
        return await _held(calls, call_id, held)
    except CallBlocked as blocked:
        return await _blocked(stores, call_id, rules, blocked)
    if after is not None and after.call.status == CallStatus.QUEUED:
        lateness_ms = _lateness_ms(loaded, now)
        if lateness_ms is not None:
            context["metrics"].scheduled_fired(lateness_ms / 1000)
        log.info("scheduled call fired", tenant=subdomain, call_id=call_id, lateness_ms=lateness_ms)
        return f"fired {lateness_ms} ms late; " + await _routed(ctx, stores, read, after, sent)
    if after is not None and after.call.held_until is not None:
        until, reason = after.call.held_until, after.call.held_reason
        log.info("scheduled call held", tenant=subdomain, call_id=call_id, until=until, by=reason)
        return f"held until {until} ({reason})"
    return await _not_fired_here(ctx, stores, call_id, after)


async def _routed(
    ctx: dict[str, Any], stores: Stores, read: Routing, after: Snapshot, sent: list[Then]
) -> str:
    """The fired call's first routing step: made already if its offering went with the
    firing's write; else run now, on what was read before the firing if nothing was sent
    with a write, or afresh (an offering sent with a stale write, or found stale itself)."""
    if not sent or not sent[0].ran:
        return await route(ctx, stores, replace(read, snapshot=after))
    if isinstance(sent[0].answer, tuple):
        made = await stores.agents.offered(sent[0].answer)
        return f"offered to {len(made)} with the firing"
    return await route_call(ctx, stores.tenant.subdomain, after.call.id)


def _firing(
    calls: CallStore,
    rules: compliance.Rules,
    now: datetime,
    offering: Callable[[CallObject], Then | None],
) -> Callable[[Snapshot], Change | None]:
    """What firing makes of the call: queued (if the DNC list and its contact limit let it
    start, store/scripts.py's Guard), held till its window opens, or failed. Queued, its
    first `offering` goes with the write, when there is one."""

    def decide(current: Snapshot) -> Change | None:
        if current.call.status != CallStatus.SCHEDULED:
            return None  # fired already, or cancelled: a repeated job changes nothing
        menu = calls.tenant.menus_by_id.get(current.meta.menu_id or 0)
        if menu is None:
            return Change(lifecycle.failed(current.call, now, FailReason.MENU_DELETED))
        opens = _opening(calls, current, rules, now, now)
        if isinstance(opens, Change):
            return opens
        if opens > now:
            return _hold(calls, current, opens, compliance.HELD_BY_WINDOW)
        fired = lifecycle.fired(current.call, first_groups(menu, now), now)
        number = current.meta.end_user_number or ""
        guard = calls.guard(number, current.call.id, rules, now)
        return Change(fired, waiting="add", guard=guard, then=offering(fired))

    return decide


async def _rules_of(stores: Stores, call: Snapshot) -> compliance.Rules:
    campaign_id = call.meta.campaign_id
    own = await stores.campaigns.rules(campaign_id) if campaign_id is not None else None
    return compliance.rules_for(stores.tenant, CallType.SCHEDULED, own)


def _opening(
    calls: CallStore, current: Snapshot, rules: compliance.Rules, at: datetime, now: datetime
) -> datetime | Change:
    """When the call's window is open at or next after `at`; or, for a window that never
    opens, the change that fails the call, saying so."""
    number = current.meta.end_user_number or ""
    try:
        return compliance.opening(calls.tenant, rules.window, number, at)
    except InvalidRequest as never:
        return Change(lifecycle.failed(current.call, now, FailReason.AG_CANCELED, str(never)))


def _hold(calls: CallStore, current: Snapshot, until: datetime, reason: str) -> Change:
    """The call stays scheduled, held until `until`: a call of a campaign goes back among the
    campaign's calls due then (CallStore's hold), any other is fired again then by a job of
    its own, named after that time so that a repeated hold queues it once."""
    held = lifecycle.held(current.call, until, reason)
    if current.meta.campaign_id is not None:
        return Change(held)
    due = clock.to_ms(until)
    job = jobs.JobSpec(
        jobs.FIRE_SCHEDULED_CALL, calls.tenant.subdomain, held.id, due, (), f"h{due}"
    )
    return Change(held, jobs=[job])


async def _blocked(
    stores: Stores, call_id: int, rules: compliance.Rules, blocked: CallBlocked
) -> str:
    """Its number is on the company DNC list (the call fails, saying so), or had its contact
    limit of calls (the call is held until it may be called again, within its window)."""
    calls, now = stores.calls, clock.now()
    if blocked.reason == "dnc":
        details = compliance.ON_DNC_LIST

        def fail(current: Snapshot) -> Change | None:
            if current.call.status != CallStatus.SCHEDULED:
                return None
            return Change(lifecycle.failed(current.call, now, FailReason.AG_CANCELED, details))

        after = await calls.apply(call_id, fail)
        if after is not None and after.meta.campaign_id is not None:
            await stores.campaigns.forget(after.meta.campaign_id, [call_id])
        return "on the DNC list: failed"
    retry = clock.from_ms(blocked.retry_at)

    def hold(current: Snapshot) -> Change | None:
        if current.call.status != CallStatus.SCHEDULED:
            return None
        opens = _opening(calls, current, rules, retry, now)
        if isinstance(opens, Change):
            return opens
        return _hold(calls, current, opens, compliance.HELD_BY_LIMIT)

    after = await calls.apply(call_id, hold)
    return f"held until {after.call.held_until} (contact limit)" if after else "not scheduled"


async def _not_fired_here(
    ctx: dict[str, Any], stores: Stores, call_id: int, after: Snapshot | None
) -> str:
    """The call did not fire in this job: its menu was deleted (`after`), or it had fired
    already, or ended."""
    subdomain = stores.tenant.subdomain
    current = after or await stores.calls.load(call_id)
    if current is not None and current.meta.campaign_id is not None:
        # Not fired by this job (ended, or fired by another): its campaign is done with it.
        await stores.campaigns.forget(current.meta.campaign_id, [call_id])
    if after is not None:
        return "menu deleted"
    if current is None or current.call.status != CallStatus.QUEUED:
        return "not scheduled"
    return "fired before; " + await route_call(ctx, subdomain, call_id)


def _lateness_ms(before: Snapshot, now: datetime) -> int | None:
    """How late the call fired, against the time it was due: its scheduled_at, or the end of
    its hold when it was held (a call held to its window's opening is not late for it)."""
    due = clock.parse_iso(before.call.held_until or before.call.scheduled_at)
    return clock.to_ms(now) - clock.to_ms(due) if due else None


async def _held(calls: CallStore, call_id: int, held: CampaignHeld) -> str:
    """Its campaign is paused (the call went back to wait for the resume), cancelled (the call
    ends failed here, if the cancel's sweep has not failed it already), or the call came too
    early for the campaign's pace (workers that fell behind ran several at once): it tries
    again when its turn comes."""
    if held.reason == CampaignState.PAUSED:
        return "campaign paused: held"
    if held.reason == CampaignState.CANCELLED:
        await fail_unfired(calls, call_id)
        return "campaign cancelled"
    due = clock.to_ms(clock.now()) + held.wait_ms
    subdomain = calls.tenant.subdomain
    await calls.enqueue(
        [jobs.JobSpec(jobs.FIRE_SCHEDULED_CALL, subdomain, call_id, due, (), f"p{due}")]
    )
    return f"paced {held.wait_ms} ms"
