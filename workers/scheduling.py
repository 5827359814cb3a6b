"""Scheduled calls: at `scheduled_at` the call is queued and routed like an inbound call."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog

from dispatcher.domain import clock, lifecycle
from dispatcher.domain.campaigns import CampaignState
from dispatcher.domain.records import first_groups
from dispatcher.domain.statuses import CallStatus, FailReason
from dispatcher.store import jobs
from dispatcher.store.calls import CallStore, CampaignHeld, Change, Snapshot
from dispatcher.store.stores import Stores
from workers.campaigns import fail_unfired
from workers.context import stores_of, typed
from workers.routing import route_call

log = structlog.get_logger("workers.scheduling")


async def fire_scheduled_call(ctx: dict[str, Any], subdomain: str, call_id: int) -> str:
    """scheduled -> queued, then the first routing step in the same job (one job per fired
    call, not two: firing is what campaigns do by the thousand each second). If a worker dies
    between the two, ARQ runs this job again, which finds the call queued and routes it."""
    context = typed(ctx)
    stores = await stores_of(context, subdomain)
    if stores is None:
        return "no tenant"
    calls = stores.calls
    now = clock.now()

    def decide(current: Snapshot) -> Change | None:
        if current.call.status != CallStatus.SCHEDULED:
            return None  # fired already, or cancelled: a repeated job changes nothing
        menu = calls.tenant.menus_by_id.get(current.meta.menu_id or 0)
        if menu is None:
            return Change(lifecycle.failed(current.call, now, FailReason.MENU_DELETED))
        fired = lifecycle.fired(current.call, first_groups(menu, now), now)
        return Change(fired, waiting="add")

    try:
        after = await calls.apply(call_id, decide)
    except CampaignHeld as held:
        return await _held(calls, call_id, held)
    if after is not None and after.call.status == CallStatus.QUEUED:
        lateness_ms = _lateness_ms(after, now)
        if lateness_ms is not None:
            context["metrics"].scheduled_fired(lateness_ms / 1000)
        log.info("scheduled call fired", tenant=subdomain, call_id=call_id, lateness_ms=lateness_ms)
        return f"fired {lateness_ms} ms late; " + await route_call(ctx, subdomain, call_id)
    return await _not_fired_here(ctx, stores, call_id, after)


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


def _lateness_ms(fired: Snapshot, now: datetime) -> int | None:
    scheduled = clock.parse_iso(fired.call.scheduled_at)
    return clock.to_ms(now) - clock.to_ms(scheduled) if scheduled else None


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
