"""Scheduled calls: fired once at scheduled_at, then routed like inbound calls."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from arq import Worker
from redis.asyncio import Redis

from dispatcher.domain import clock
from dispatcher.store import jobs
from tests.conftest import basic
from tests.workers.conftest import (
    API,
    CALLS,
    TENANT,
    get_call,
    load_tenant,
    offers_of,
    post_json,
    wait_for_job,
    wait_for_offer,
    wait_for_status,
)
from workers.scheduling import fire_scheduled_call

LOCK_STAR = 9  # a mobile menu: takes scheduled calls
# Long routing timings: nothing but the firing changes the call while these tests look at it.
STILL = {"cascade_interval_s": 10, "offer_timeout_s": 10, "max_wait_s": 20}


async def schedule(client: TestClient[Any, Any], after_s: float) -> dict[str, Any]:
    scheduled_at = clock.iso(clock.now() + timedelta(seconds=after_s))
    body = {
        "call_type": "Voice Scheduled (API)",
        "menu_id": LOCK_STAR,
        "end_user_number": "+1 205-123-4567",
        "scheduled_at": scheduled_at,
    }
    call: dict[str, Any] = await post_json(client, CALLS, body, status=201)
    assert (call["call_type"], call["status"]) == ("Voice Scheduled (API)", "scheduled")
    assert (call["scheduled_at"], call["queued_at"], call["offer_events"]) == (
        scheduled_at,
        None,
        [],
    )
    return call


async def rev_of(redis: Redis, call_id: int) -> int:
    raw = await redis.hget(TENANT.call(call_id), "rev")
    return int(raw)


async def test_a_scheduled_call_is_queued_at_its_time_and_fires_only_once(
    client: TestClient[Any, Any], redis: Redis, worker: Worker, job_context: dict[str, Any]
) -> None:
    await load_tenant(redis, menus={LOCK_STAR: STILL})
    created = await schedule(client, 0.5)
    call_id = created["id"]
    assert (await get_call(client, call_id))["status"] == "scheduled"

    queued = await wait_for_status(client, call_id, "queued")
    scheduled_at = clock.parse_iso(queued["scheduled_at"])
    queued_at = clock.parse_iso(queued["queued_at"])
    assert scheduled_at is not None and queued_at is not None
    lateness_ms = (queued_at - scheduled_at).total_seconds() * 1000
    # ARQ starts a due job when round(time_ms) reaches its score: up to 0.5 ms early, which
    # the millisecond timestamps can show as -1 ms.
    assert -1 <= lateness_ms < 300
    assert queued["offer_events"] == [{"casting_time": queued["queued_at"], "group": "Group 1"}]
    assert queued["offer_type"] == "cascade"
    await wait_for_offer(client, 1, call_id)
    await wait_for_offer(client, 2, call_id)

    # The same firing again, through the worker (a retried or duplicated job)...
    rev = await rev_of(redis, call_id)
    again = await worker.pool.enqueue_job(
        jobs.FIRE_SCHEDULED_CALL, "demo", call_id, _job_id=f"again:{call_id}"
    )
    assert again is not None
    # It only routes again (what a run cut short by a dead worker had left to do): the
    # agents have their offers already, so nothing changes.
    assert await again.result(timeout=5) == "fired before; offered to 0"
    # ...and called directly with a job context from the worker's startup: nothing changes.
    assert await fire_scheduled_call(job_context, "demo", call_id) == "fired before; offered to 0"
    assert await rev_of(redis, call_id) == rev
    assert await get_call(client, call_id) == queued
    assert [o["call_id"] for o in await offers_of(client, 1)] == [call_id]


async def test_a_scheduled_call_ended_before_its_time_never_fires(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    await load_tenant(redis, menus={LOCK_STAR: STILL})
    call_id = (await schedule(client, 0.3))["id"]
    ended = await post_json(client, f"{CALLS}/{call_id}/finish")
    assert (ended["status"], ended["fail_reason"]) == ("failed", "ag_canceled")
    assert ended["queued_at"] is None

    await wait_for_job(redis, f"{jobs.FIRE_SCHEDULED_CALL}:demo:{call_id}")
    after = await get_call(client, call_id)
    assert (after["status"], after["queued_at"], after["offer_events"]) == ("failed", None, [])
    assert await offers_of(client, 1) == []


async def test_a_fired_call_waits_for_an_agent_who_becomes_available(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    await load_tenant(redis, menus={LOCK_STAR: {**STILL, "groups": [[1]]}})
    away = await client.put(f"{API}/agents/1/status", json={"status": "offline"}, headers=basic())
    assert (away.status, (await away.json())["status"]) == (200, "offline")
    call_id = (await schedule(client, 0.2))["id"]
    await wait_for_status(client, call_id, "queued")
    # Fired and routed in one job: once it has ended, the call was offered to nobody.
    await wait_for_job(redis, f"{jobs.FIRE_SCHEDULED_CALL}:demo:{call_id}")
    assert await offers_of(client, 1) == []

    back = await client.put(f"{API}/agents/1/status", json={"status": "available"}, headers=basic())
    assert back.status == 200
    offer = await wait_for_offer(client, 1, call_id)
    accepted = await post_json(client, f"{API}/offers/{offer['id']}/accept")
    assert (accepted["status"], accepted["agent_info"]["id"]) == ("assigned", 1)
    finished = await wait_for_status(client, call_id, "finished")
    assert finished["connected_at"] is not None
