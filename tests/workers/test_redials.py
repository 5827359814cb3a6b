"""Redials, and campaigns held by their menu's estimated wait. A campaign call that fails
with an outcome its policy lists is called again as its child (same campaign, `parent_id` the
failed call, due the policy's delay later) and the failed call becomes `recovered`; never after
a rejection, never to a number now on the DNC list, the child held by its calling window like
any campaign call; exactly one child per failed call however many workers run its job, however
often. Real workers on the real Redis."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from aiohttp.test_utils import TestClient
from arq import Worker
from redis.asyncio import Redis

from dispatcher.domain import clock
from dispatcher.domain.records import CallMeta
from dispatcher.domain.statuses import FailReason
from dispatcher.store import jobs
from dispatcher.store.stores import end_call
from tests.conftest import basic
from tests.polling import eventually
from tests.workers.conftest import (
    API,
    TENANT,
    get_json,
    load_tenant,
    post_json,
    wait_for_offer,
)
from workers.context import stores_of, typed
from workers.redials import redial_call
from workers.settings import shutdown, startup

CAMPAIGNS = f"{API}/campaigns"
LOCK_STAR = 9  # a mobile menu: takes scheduled calls; groups [[1, 2], [4]]
BUSY = {"prefix": "+1205555", "outcome": "busy"}
STILL = {"cascade_interval_s": 10, "offer_timeout_s": 10, "max_wait_s": 60}
NUMBER = "+12055550100"


async def create_campaign(
    client: TestClient[Any, Any], status: int = 201, **options: Any
) -> dict[str, Any]:
    body = {"name": "redials", "menu_id": LOCK_STAR, "pacing": {"calls_per_second": 50}}
    created: dict[str, Any] = await post_json(client, CAMPAIGNS, {**body, **options}, status=status)
    return created


async def join(client: TestClient[Any, Any], campaign_id: int, after_s: float = 0.1) -> int:
    item = {
        "end_user_number": NUMBER,
        "scheduled_at": clock.iso(clock.now() + timedelta(seconds=after_s)),
    }
    answer = await post_json(client, f"{CAMPAIGNS}/{campaign_id}/calls/batch", {"calls": [item]})
    call_id: int = answer["results"][0]["body"]["id"]
    return call_id


async def stored(redis: Redis, call_id: int) -> tuple[dict[str, Any], CallMeta]:
    doc, meta = await redis.hmget(TENANT.call(call_id), ["doc", "meta"])
    return orjson.loads(doc), CallMeta.model_validate_json(meta)


async def call_ids(redis: Redis) -> list[int]:
    return sorted(int(i) for i in await redis.zrange(TENANT.calls, 0, -1))


async def agents(client: TestClient[Any, Any], status: str) -> None:
    for agent_id in (1, 2, 4):
        response = await client.put(
            f"{API}/agents/{agent_id}/status", json={"status": status}, headers=basic()
        )
        assert response.status == 200, await response.text()


async def accept(client: TestClient[Any, Any], call_id: int) -> None:
    offer = await wait_for_offer(client, 1, call_id)
    response = await client.post(f"{API}/offers/{offer['id']}/accept", headers=basic())
    assert response.status == 200, await response.text()


async def status_of(redis: Redis, call_id: int, wanted: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        doc, _ = await stored(redis, call_id)
        return doc if doc["status"] == wanted else None

    return await eventually(probe, f"call {call_id} {wanted}", timeout=8)


async def test_a_busy_call_is_redialled_as_its_child_until_its_attempts_run_out(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    """Busy through the simulated carrier: the child is a scheduled call of the same campaign,
    due after_s after the failure; the second attempt is busy too, and with max_attempts 2 it
    is the last."""
    await load_tenant(redis, settings={"simulator": {"answer_after_s": 0.05, "rules": [BUSY]}})
    policy = {"max_attempts": 2, "after_s": {"eu_busy": 1, "eu_no_answer": 30}}
    created = await create_campaign(client, redial=policy)
    assert created["redial"] == policy
    first = await join(client, created["id"])
    await accept(client, first)
    parent = await status_of(redis, first, "recovered")
    assert (parent["fail_reason"], parent["ends_at"] is not None) == ("eu_busy", True)
    [_, second] = await call_ids(redis)
    child, meta = await stored(redis, second)
    assert (child["status"], child["parent_id"], child["call_type"]) == (
        "scheduled",
        first,
        "Voice Scheduled (API)",
    )
    assert (meta.campaign_id, meta.attempt, meta.contact_id, meta.end_user_number) == (
        created["id"],
        2,
        first,
        NUMBER,
    )
    due_ms = clock.to_ms(clock.parse_iso(child["scheduled_at"]))  # type: ignore[arg-type]
    ended_ms = clock.to_ms(clock.parse_iso(parent["ends_at"]))  # type: ignore[arg-type]
    assert 1000 <= due_ms - ended_ms < 1500
    await accept(client, second)
    last = await status_of(redis, second, "failed")
    assert last["fail_reason"] == "eu_busy"
    await asyncio.sleep(0.3)  # a redial job would have run by now
    assert await call_ids(redis) == [first, second]
    read = await get_json(client, f"{CAMPAIGNS}/{created['id']}")
    assert (read["total"], read["counts"]) == (2, {"failed": 1, "recovered": 1})


async def test_a_chain_of_redials_counts_its_attempts_from_the_first_call(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    """No agent takes the calls: each expires in its queue and is redialled (the tenant's
    default policy: the campaign has none), up to three calls in all."""
    fast = {"cascade_interval_s": 0.3, "offer_timeout_s": 0.2, "max_wait_s": 0.3}
    policy = {"max_attempts": 3, "after_s": {"expired": 1}}
    await load_tenant(redis, settings={"redial": policy}, menus={LOCK_STAR: fast})
    await agents(client, "offline")
    created = await create_campaign(client)
    assert created["redial"] is None
    first = await join(client, created["id"])

    async def three_ended() -> list[int] | None:
        ids = await call_ids(redis)
        if len(ids) < 3:
            return None
        docs = [(await stored(redis, i))[0] for i in ids]
        return ids if [d["status"] for d in docs] == ["recovered", "recovered", "failed"] else None

    ids = await eventually(three_ended, "three attempts, the last failed", timeout=12)
    assert ids[0] == first
    chain = [await stored(redis, i) for i in ids]
    assert [doc["parent_id"] for doc, _ in chain] == [None, ids[0], ids[1]]
    assert [(m.attempt, m.contact_id) for _, m in chain] == [(1, None), (2, first), (3, first)]
    assert {doc["fail_reason"] for doc, _ in chain} == {"expired"}


async def redial_context(redis: Redis) -> dict[str, Any]:
    ctx: dict[str, Any] = {"redis": redis, "job_try": 1}
    await startup(ctx)
    return ctx


async def failed_campaign_call(
    client: TestClient[Any, Any], job_context: dict[str, Any], reason: FailReason, **options: Any
) -> tuple[int, int]:
    """A campaign call failed through the store (no worker runs): its redial job is queued."""
    created = await create_campaign(client, **options)
    call_id = await join(client, created["id"], after_s=3600)
    stores = await stores_of(typed(job_context), "demo")
    assert stores is not None
    assert await end_call(stores, call_id, reason) is not None
    return created["id"], call_id


async def test_one_child_however_many_workers_run_the_job_however_often(
    client: TestClient[Any, Any], redis: Redis, redis_url: str, job_context: dict[str, Any]
) -> None:
    await load_tenant(redis)
    policy = {"max_attempts": 5, "after_s": {"eu_no_answer": 600}}
    campaign_id, call_id = await failed_campaign_call(
        client, job_context, FailReason.EU_NO_ANSWER, redial=policy
    )
    job_id = jobs.JobSpec(jobs.REDIAL_CALL, "demo", call_id, 0).job_id
    assert await redis.zscore("arq:queue", job_id) is not None  # queued with the failure
    # Two "workers" (each its own clients, scripts and caches), each running the job ten times
    # at once, then once more each: a retried job after a crash.
    others = [Redis.from_url(redis_url) for _ in range(2)]
    contexts = [job_context, *[await redial_context(r) for r in others]]
    try:
        runs = await asyncio.gather(
            *(redial_call(ctx, "demo", call_id) for ctx in contexts for _ in range(10))
        )
        again = [await redial_call(ctx, "demo", call_id) for ctx in contexts]
    finally:
        for ctx in contexts[1:]:
            await shutdown(ctx)
        for other in others:
            await other.aclose()
    ids = await call_ids(redis)
    assert len(ids) == 2, runs
    child = ids[1]
    made = [run for run in runs if run.startswith(f"redial {child} in 600 s")]
    assert len(made) >= 1 and set(runs) <= {
        f"redial {child} in 600 s",
        f"redial {child} in 600 s (recovered before)",
        "not failed",
    }
    assert set(again) == {"not failed"}
    parent, _ = await stored(redis, call_id)
    doc, meta = await stored(redis, child)
    assert (parent["status"], doc["parent_id"], meta.campaign_id) == (
        "recovered",
        call_id,
        campaign_id,
    )
    read = await get_json(client, f"{CAMPAIGNS}/{campaign_id}")
    assert (read["total"], read["counts"]) == (2, {"recovered": 1, "scheduled": 1})


async def test_no_redial_to_a_number_now_on_the_dnc_list(
    client: TestClient[Any, Any], redis: Redis, job_context: dict[str, Any]
) -> None:
    await load_tenant(redis)
    policy = {"max_attempts": 3, "after_s": {"eu_busy": 60}}
    _, call_id = await failed_campaign_call(client, job_context, FailReason.EU_BUSY, redial=policy)
    await redis.zadd(TENANT.dnc, {NUMBER: clock.to_ms(clock.now())})
    assert await redial_call(job_context, "demo", call_id) == "on the DNC list: not redialled"
    assert await call_ids(redis) == [call_id]
    parent, _ = await stored(redis, call_id)
    assert parent["status"] == "failed"


@pytest.mark.parametrize(
    ("reason", "policy"),
    [
        (FailReason.EU_REJECTED, {"max_attempts": 3, "after_s": {"eu_busy": 60}}),
        (FailReason.EU_BUSY, {"max_attempts": 3, "after_s": {"eu_no_answer": 60}}),
        (FailReason.EU_BUSY, {"max_attempts": 1, "after_s": {"eu_busy": 60}}),
    ],
    ids=["a rejection", "an outcome not listed", "one attempt allowed"],
)
async def test_no_redial_job_is_queued_when_the_policy_does_not_redial(
    client: TestClient[Any, Any],
    redis: Redis,
    job_context: dict[str, Any],
    reason: FailReason,
    policy: dict[str, Any],
) -> None:
    await load_tenant(redis)
    _, call_id = await failed_campaign_call(client, job_context, reason, redial=policy)
    job_id = jobs.JobSpec(jobs.REDIAL_CALL, "demo", call_id, 0).job_id
    assert await redis.zscore("arq:queue", job_id) is None
    assert await redial_call(job_context, "demo", call_id) == "not redialled"
    assert await call_ids(redis) == [call_id]


async def test_a_cancelled_campaign_redials_nothing(
    client: TestClient[Any, Any], redis: Redis, job_context: dict[str, Any]
) -> None:
    await load_tenant(redis)
    policy = {"max_attempts": 3, "after_s": {"eu_busy": 60}}
    campaign_id, call_id = await failed_campaign_call(
        client, job_context, FailReason.EU_BUSY, redial=policy
    )
    await post_json(client, f"{CAMPAIGNS}/{campaign_id}/cancel")
    assert await redial_call(job_context, "demo", call_id) == "campaign cancelled"
    assert await call_ids(redis) == [call_id]


async def test_a_redial_due_outside_its_window_is_held_until_it_opens(
    client: TestClient[Any, Any], redis: Redis, job_context: dict[str, Any]
) -> None:
    """The campaign's window opens only two days from now (in Alabama, the number's zone):
    the redial is held from its creation until then, as any campaign call due outside it."""
    await load_tenant(redis)
    chicago = ZoneInfo("America/Chicago")
    opening = (clock.now().astimezone(chicago) + timedelta(days=2)).replace(
        hour=9, minute=0, second=0, microsecond=0
    )
    window = {"weekly": {opening.strftime("%a").lower(): ["09:00-17:00"]}}
    policy = {"max_attempts": 2, "after_s": {"eu_busy": 60}}
    created = await create_campaign(client, redial=policy, calling_window=window)
    item = {"end_user_number": NUMBER, "scheduled_at": clock.iso(opening + timedelta(hours=1))}
    answer = await post_json(client, f"{CAMPAIGNS}/{created['id']}/calls/batch", {"calls": [item]})
    call_id = answer["results"][0]["body"]["id"]
    stores = await stores_of(typed(job_context), "demo")
    assert stores is not None
    await end_call(stores, call_id, FailReason.EU_BUSY)
    outcome = await redial_call(job_context, "demo", call_id)
    [_, child] = await call_ids(redis)
    assert outcome == f"redial {child} in 60 s"
    doc, _ = await stored(redis, child)
    assert (doc["status"], doc["held_reason"]) == ("scheduled", "calling_window")
    assert clock.parse_iso(doc["held_until"]) == opening


@pytest.mark.parametrize(
    ("redial", "message"),
    [
        ("soon", "redial must be an object"),
        ({"after_s": {}}, "redial.max_attempts must be an integer from 1 to 20"),
        ({"max_attempts": 0}, "redial.max_attempts must be an integer from 1 to 20"),
        ({"max_attempts": True}, "redial.max_attempts must be an integer from 1 to 20"),
        ({"max_attempts": 21}, "redial.max_attempts must be an integer from 1 to 20"),
        (
            {"max_attempts": 2, "every": 5},
            "redial.every is not a redial setting (max_attempts, after_s)",
        ),
        (
            {"max_attempts": 2, "after_s": [60]},
            "redial.after_s must be an object of outcome: seconds",
        ),
        (
            {"max_attempts": 2, "after_s": {"eu_rejected": 60}},
            "redial.after_s.eu_rejected: a rejected call is never redialled",
        ),
        (
            {"max_attempts": 2, "after_s": {"eu_wrong_number": 60}},
            "redial.after_s.eu_wrong_number: a wrong number is never redialled",
        ),
        (
            {"max_attempts": 2, "after_s": {"voicemail": 60}},
            "redial.after_s.voicemail is not an outcome that is redialled (one of eu_busy,"
            " eu_no_answer, machine, expired, voip_conn_general, voip_conn_timeout)",
        ),
        (
            {"max_attempts": 2, "after_s": {"eu_busy": 0}},
            "redial.after_s.eu_busy must be an integer of seconds from 1 to 2592000",
        ),
        (
            {"max_attempts": 2, "after_s": {"eu_busy": "60"}},
            "redial.after_s.eu_busy must be an integer of seconds from 1 to 2592000",
        ),
        (
            {"max_attempts": 2, "after_s": {"eu_busy": 2592001}},
            "redial.after_s.eu_busy must be an integer of seconds from 1 to 2592000",
        ),
    ],
)
async def test_a_bad_redial_policy_is_refused_naming_its_place(
    client: TestClient[Any, Any], redis: Redis, redial: Any, message: str
) -> None:
    await load_tenant(redis)
    assert await create_campaign(client, status=400, redial=redial) == {"message": message}
    assert await redis.zcard(TENANT.campaigns) == 0


async def test_a_campaign_holds_its_calls_while_its_menus_estimated_wait_is_too_long(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    """No agent of the menu logged in (no estimate): nothing fires, the calls are overdue; an
    agent logs in with a slot free (an estimate of 0 s) and they fire."""
    await load_tenant(redis, menus={LOCK_STAR: STILL})
    await agents(client, "offline")
    pacing = {"calls_per_second": 50, "max_estimated_wait_s": 30}
    created = await post_json(
        client, CAMPAIGNS, {"name": "held", "menu_id": LOCK_STAR, "pacing": pacing}, status=201
    )
    assert created["pacing"] == {
        "calls_per_second": 50.0,
        "max_waiting": None,
        "max_estimated_wait_s": 30,
    }
    due = clock.iso(clock.now() + timedelta(seconds=0.1))
    items = [{"end_user_number": f"+1205555010{i}", "scheduled_at": due} for i in range(3)]
    await post_json(client, f"{CAMPAIGNS}/{created['id']}/calls/batch", {"calls": items})
    await asyncio.sleep(1.2)  # past the due time and a held pump's look again
    read = await get_json(client, f"{CAMPAIGNS}/{created['id']}")
    assert (read["progress"]["fired"], read["progress"]["overdue"]) == (0, 3)
    response = await client.put(
        f"{API}/agents/1/status", json={"status": "available"}, headers=basic()
    )
    assert response.status == 200

    async def fired() -> dict[str, Any] | None:
        read = await get_json(client, f"{CAMPAIGNS}/{created['id']}")
        return read if read["progress"]["fired"] == 3 else None

    read = await eventually(fired, "the held calls fired", timeout=5)
    assert read["counts"] == {"queued": 3}


@pytest.mark.parametrize("value", [-1, 86_401, "30", 2.5, True])
async def test_a_bad_estimated_wait_threshold_is_refused(
    client: TestClient[Any, Any], redis: Redis, value: Any
) -> None:
    await load_tenant(redis)
    pacing = {"max_estimated_wait_s": value}
    body = {"name": "held", "menu_id": LOCK_STAR, "pacing": pacing}
    assert await post_json(client, CAMPAIGNS, body, status=400) == {
        "message": "pacing.max_estimated_wait_s must be an integer of seconds from 0 to 86400,"
        " or null"
    }
