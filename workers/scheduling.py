"""Scheduled calls: at `scheduled_at` the call is queued and routed like an inbound call."""

from __future__ import annotations

from typing import Any

import structlog

from dispatcher.domain import clock, lifecycle
from dispatcher.domain.records import first_groups
from dispatcher.domain.statuses import CallStatus, FailReason
from dispatcher.store.lifecycle import Change, Snapshot
from workers.context import calls_of, typed
from workers.routing import route_call

log = structlog.get_logger("workers.scheduling")


async def fire_scheduled_call(ctx: dict[str, Any], subdomain: str, call_id: int) -> str:
    """scheduled -> queued, then the first routing step in the same job (one job per fired
    call, not two: firing is what campaigns do by the thousand each second). If a worker dies
    between the two, ARQ runs this job again, which finds the call queued and routes it."""
    context = typed(ctx)
    calls = await calls_of(context, subdomain)
    if calls is None:
        return "no tenant"
    now = clock.now()

    def decide(current: Snapshot) -> Change | None:
        if current.call.status != CallStatus.SCHEDULED:
            return None  # fired already, or cancelled: a repeated job changes nothing
        menu = calls.tenant.menus_by_id.get(current.meta.menu_id or 0)
        if menu is None:
            return Change(lifecycle.failed(current.call, now, FailReason.MENU_DELETED))
        fired = lifecycle.fired(current.call, first_groups(menu, now), now)
        return Change(fired, waiting="add")

    after = await calls.apply(call_id, decide)
    if after is None:
        current = await calls.load(call_id)
        if current is None or current.call.status != CallStatus.QUEUED:
            return "not scheduled"
        return "fired before; " + await route_call(ctx, subdomain, call_id)
    if after.call.status != CallStatus.QUEUED:
        return "menu deleted"
    scheduled = clock.parse_iso(after.call.scheduled_at)
    lateness_ms = clock.to_ms(now) - clock.to_ms(scheduled) if scheduled else None
    if lateness_ms is not None:
        context["metrics"].scheduled_fired(lateness_ms / 1000)
    log.info("scheduled call fired", tenant=subdomain, call_id=call_id, lateness_ms=lateness_ms)
    return f"fired {lateness_ms} ms late; " + await route_call(ctx, subdomain, call_id)
