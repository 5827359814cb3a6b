"""Scheduled calls: at `scheduled_at` the call is queued and routed like an inbound call."""

from __future__ import annotations

from typing import Any

import structlog

from dispatcher.domain import clock, lifecycle
from dispatcher.domain.records import first_groups
from dispatcher.domain.statuses import CallStatus, FailReason
from dispatcher.store import jobs
from dispatcher.store.lifecycle import Change, Snapshot
from workers.context import calls_of, typed

log = structlog.get_logger("workers.scheduling")


async def fire_scheduled_call(ctx: dict[str, Any], subdomain: str, call_id: int) -> str:
    calls = await calls_of(typed(ctx), subdomain)
    if calls is None:
        return "no tenant"
    now = clock.now()

    def decide(current: Snapshot) -> Change | None:
        if current.call.status != CallStatus.SCHEDULED:
            return None  # fired already, or cancelled: a repeated job changes nothing
        menu = calls.tenant.menus_by_id.get(current.meta.menu_id or 0)
        if menu is None:
            return Change(lifecycle.failed(current.call, now, FailReason.MENU_DELETED))
        route = jobs.JobSpec(jobs.ROUTE_CALL, subdomain, call_id, clock.to_ms(now), (), "fired")
        fired = lifecycle.fired(current.call, first_groups(menu, now), now)
        return Change(fired, jobs=[route], waiting="add")

    after = await calls.apply(call_id, decide)
    if after is None:
        return "not scheduled"
    scheduled = clock.parse_iso(after.call.scheduled_at)
    lateness_ms = clock.to_ms(now) - clock.to_ms(scheduled) if scheduled else None
    log.info("scheduled call fired", tenant=subdomain, call_id=call_id, lateness_ms=lateness_ms)
    return f"fired {lateness_ms} ms late"
