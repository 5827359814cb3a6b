"""The redial of a failed campaign call: its child, a scheduled call of the same campaign due
the policy's delay later, then the failed call marked `recovered`. Queued with the failure
(store/calls.py); run again after a crash or by a second worker, it makes no second child: the
child is created under a key named after the failed call (create_record.lua claims it in the
same step), and the failed call moves on by compare-and-set."""

from __future__ import annotations

from typing import Any

import orjson
import structlog
from arq import Retry

from dispatcher.domain import clock, compliance, lifecycle, redials
from dispatcher.domain.campaigns import CampaignState
from dispatcher.domain.errors import DispatchError
from dispatcher.domain.statuses import CallStatus
from dispatcher.store import idempotency
from dispatcher.store.calls import Change, Snapshot
from dispatcher.store.stores import Stores
from workers.context import stores_of, typed

log = structlog.get_logger("workers.redials")

# How long the key that makes a redial once is kept: far beyond any retry of its job.
ONCE_TTL_S = 3600
RETRY_S = 1.0


async def redial_call(ctx: dict[str, Any], subdomain: str, call_id: int) -> str:
    """Makes the failed call's redial, if its policy still wants one now; then the call is
    no longer among its campaign's redials being made (an error leaves it there, for the
    retry)."""
    stores = await stores_of(typed(ctx), subdomain)
    if stores is None:
        return "no tenant"
    loaded = await stores.calls.load(call_id)
    campaign_id = loaded.meta.campaign_id if loaded is not None else None
    if loaded is None or campaign_id is None:
        return "not a campaign's call"
    made = await _redial(stores, loaded, campaign_id)
    await stores.campaigns.redial_made(campaign_id, call_id)
    return made


async def _redial(stores: Stores, failed: Snapshot, campaign_id: int) -> str:
    if failed.call.status != CallStatus.FAILED:
        return "not failed"
    call_id = failed.call.id
    own = await stores.campaigns.rules(campaign_id)
    policy = redials.policy_for(stores.tenant, own)
    outcome = redials.outcome_of(failed.call, failed.meta)
    delay_s = policy.delay_s(outcome, failed.meta.attempt) if policy else None
    if delay_s is None:
        return "not redialled"
    if await stores.campaigns.state_of(campaign_id) == CampaignState.CANCELLED:
        return "campaign cancelled"
    child = await _child(stores, failed, delay_s)
    if isinstance(child, str):
        return child
    recovered = await stores.calls.apply(call_id, _recover, loaded=failed)
    log.info(
        "campaign call redialled",
        call_id=call_id,
        child_id=child,
        outcome=outcome,
        attempt=failed.meta.attempt + 1,
        after_s=delay_s,
    )
    return f"redial {child} in {delay_s} s" + ("" if recovered else " (recovered before)")


async def _child(stores: Stores, failed: Snapshot, delay_s: int) -> int | str:
    """The redial's id (made now, or by an earlier run of this job); or why there is none."""
    campaign_id = failed.meta.campaign_id
    assert campaign_id is not None
    plan = redials.redial_plan(stores.tenant, failed.call, failed.meta, delay_s, clock.now())
    if plan is None:
        return "menu deleted: not redialled"
    key = idempotency.internal_once(stores.calls.keys, "redial", str(failed.call.id), ONCE_TTL_S)
    link = await stores.campaigns.link(campaign_id, plan.menu.id)
    [answer] = await stores.calls.create_calls([(plan, key)], link, brief=True)
    if isinstance(answer, DispatchError):
        if answer.message == compliance.ON_DNC_LIST:
            return "on the DNC list: not redialled"
        if answer.status >= 500:
            raise Retry(defer=RETRY_S)
        return f"not redialled: {answer.message}"
    child_id = orjson.loads(answer.body)["id"]
    assert isinstance(child_id, int)
    return child_id


def _recover(current: Snapshot) -> Change | None:
    if current.call.status != CallStatus.FAILED:
        return None
    return Change(lifecycle.recovered(current.call))
