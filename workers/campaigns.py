"""Campaign jobs: the pump that hands a campaign's due calls to fire jobs at its pace, and the
sweep that fails, in chunks, the calls a cancelled campaign never fired."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from redis.asyncio import Redis

from dispatcher.domain import clock, lifecycle, wait_times
from dispatcher.domain.campaigns import CANCELLED_DETAILS, CampaignState
from dispatcher.domain.statuses import CallStatus, FailReason
from dispatcher.store import jobs
from dispatcher.store.calls import CallStore, Change, Snapshot
from dispatcher.store.stores import Stores
from dispatcher.store.waits import queues_now
from workers.context import stores_of, typed

log = structlog.get_logger("workers.campaigns")

SWEEP_CHUNK = 500  # calls failed by one sweep job; the next chunk is the next job
SWEEP_CONCURRENCY = 50


async def pump_campaign(ctx: dict[str, Any], subdomain: str, campaign_id: int, menu_id: int) -> str:
    """Hands the due calls to fire jobs as far as the pace allows, and queues the next pump
    itself (release_campaign.lua): one pump per campaign, whichever worker runs it."""
    context = typed(ctx)
    stores = await stores_of(context, subdomain)
    if stores is None:
        return "no tenant"
    held = await _wait_too_long(context["redis"], stores, campaign_id, menu_id)
    released, state = await stores.campaigns.release(campaign_id, menu_id, held)
    return f"released {released} ({state})" + (" held by the estimated wait" if held else "")


async def _wait_too_long(redis: Redis, stores: Stores, campaign_id: int, menu_id: int) -> bool:
    """A campaign with `pacing.max_estimated_wait_s` fires only while its menu's estimated
    wait (GET /wait_times's, for the menu's first language) is at most that; no estimate (no
    agent logged in, so none would take the call) holds it too."""
    limit = (await stores.campaigns.rules(campaign_id)).max_estimated_wait_s
    menu = stores.tenant.menus_by_id.get(menu_id)
    if limit is None or menu is None:
        return False
    now_ms = clock.to_ms(clock.now())
    [queue] = await queues_now(redis, stores.tenant, [menu], menu.languages[0], now_ms)
    estimate = wait_times.estimate(queue)
    return estimate is None or estimate > limit


async def sweep_campaign(
    ctx: dict[str, Any], subdomain: str, campaign_id: int, chunk: int = 0
) -> str:
    """After a cancel: fails one chunk of the calls not yet fired, then queues the next chunk.
    Idempotent (a failed call is failed once; a fired one is left alone), so a job run again
    after a crash changes nothing twice."""
    stores = await stores_of(typed(ctx), subdomain)
    if stores is None:
        return "no tenant"
    calls, campaigns = stores.calls, stores.campaigns
    if await campaigns.state_of(campaign_id) != CampaignState.CANCELLED:
        return "not cancelled"
    ids = await campaigns.unfired(campaign_id, SWEEP_CHUNK)
    failed = 0
    for start in range(0, len(ids), SWEEP_CONCURRENCY):
        batch = ids[start : start + SWEEP_CONCURRENCY]
        failed += sum(await asyncio.gather(*(fail_unfired(calls, i) for i in batch)))
    await campaigns.forget(campaign_id, ids)
    if ids:
        now_ms = clock.to_ms(clock.now())
        following = chunk + 1
        await calls.enqueue(
            [
                jobs.JobSpec(
                    jobs.SWEEP_CAMPAIGN,
                    subdomain,
                    campaign_id,
                    now_ms,
                    (following,),
                    f"{following}",
                )
            ]
        )
    log.info(
        "campaign swept", tenant=subdomain, campaign_id=campaign_id, chunk=chunk, failed=failed
    )
    return f"failed {failed} of {len(ids)}"


async def fail_unfired(calls: CallStore, call_id: int) -> bool:
    """A call of a cancelled campaign that has not fired ends failed, and says why."""
    now = clock.now()

    def decide(current: Snapshot) -> Change | None:
        if current.call.status != CallStatus.SCHEDULED:
            return None
        reason = FailReason.AG_CANCELED
        return Change(lifecycle.failed(current.call, now, reason, CANCELLED_DETAILS))

    return await calls.apply(call_id, decide) is not None
