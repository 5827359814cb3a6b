"""Scheduled calls: fired once at scheduled_at, then routed like inbound calls."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from arq import Worker
from redis.asyncio import Redis

from dispatcher.directory.schema import Menu
from dispatcher.domain import clock, lifecycle
from dispatcher.domain.records import first_groups
from dispatcher.store import jobs
from dispatcher.store.agents import Routing
from dispatcher.store.calls import Change, Snapshot, Then
from dispatcher.store.scripting import Stale
from dispatcher.store.scripts import NO_JOBS, Enqueue
from dispatcher.store.stores import Stores
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
from workers.context import stores_of, typed
from workers.routing import first_offering, read_for_routing
from workers.scheduling import _routed, fire_scheduled_call

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


async def _due(client: TestClient[Any, Any]) -> int:
    """A call scheduled a moment ago, due by the time this returns."""
    call_id: int = (await schedule(client, 0.05))["id"]
    await asyncio.sleep(0.1)
    return call_id


async def _routing_steps(redis: Redis, call_id: int) -> list[str]:
    queued = [m.decode() for m in await redis.zrange(jobs.QUEUE_NAME, 0, -1)]
    return [m for m in queued if m.startswith(f"{jobs.ROUTE_CALL}:demo:{call_id}:")]


async def test_a_fired_call_is_offered_in_the_round_trip_of_its_firing(
    client: TestClient[Any, Any], redis: Redis, job_context: dict[str, Any]
) -> None:
    await load_tenant(redis, menus={LOCK_STAR: STILL})
    call_id = await _due(client)

    done = await fire_scheduled_call(job_context, "demo", call_id)
    assert re.fullmatch(r"fired \d+ ms late; offered to 2 with the firing", done), done
    offers = {agent: await offers_of(client, agent) for agent in (1, 2)}
    assert {agent: [o["call_id"] for o in found] for agent, found in offers.items()} == {
        1: [call_id],
        2: [call_id],
    }
    # The reservation's unused ids went back: the counter stands at the last offer made.
    ids = sorted(found[0]["id"] for found in offers.values())
    assert int(await redis.get(TENANT.sequence("offer"))) == ids[-1] == ids[0] + 1
    # The next step went with the offering: the next group's unlock, 10 s after queueing.
    [step] = await _routing_steps(redis, call_id)
    queued_at = clock.parse_iso((await get_call(client, call_id))["queued_at"])
    assert queued_at is not None
    assert int(step.rsplit(":", 1)[1]) == clock.to_ms(queued_at) + 10_000


async def _read_due(
    client: TestClient[Any, Any], redis: Redis, job_context: dict[str, Any]
) -> tuple[Stores, Routing, Menu]:
    """A due call read as its firing reads it, with the job's stores and the call's menu."""
    await load_tenant(redis, menus={LOCK_STAR: STILL})
    stores = await stores_of(typed(job_context), "demo")
    assert stores is not None
    read = await read_for_routing(stores, await _due(client))
    assert read is not None
    return stores, read, stores.tenant.menus_by_id[LOCK_STAR]


@pytest.mark.parametrize("answer", [None, Stale("make_offers")], ids=["stale write", "stale"])
async def test_a_fired_call_whose_offering_was_not_answered_is_routed_on_a_fresh_read(
    client: TestClient[Any, Any],
    redis: Redis,
    job_context: dict[str, Any],
    answer: Stale | None,
) -> None:
    """An offering sent with a write that came too late (stale: no answer kept), or refused
    as stale itself: the step runs again on a fresh read, not on the ids the firing's read
    reserved (they may have gone back to the counter, and to another call's offers since)."""
    stores, read, menu = await _read_due(client, redis, job_context)
    call_id = read.snapshot.call.id

    def fire(current: Snapshot) -> Change:
        now = clock.now()
        return Change(lifecycle.fired(current.call, first_groups(menu, now), now), waiting="add")

    fired = await stores.calls.apply(call_id, fire)
    assert fired is not None
    taken = await redis.incrby(TENANT.sequence("offer"), read.reserved)  # by another call
    sent = [Then(script=Enqueue(jobs=NO_JOBS), ran=True, answer=answer)]

    assert await _routed(job_context, stores, read, fired, sent) == "offered to 2"
    offers = [o for agent in (1, 2) for o in await offers_of(client, agent)]
    assert [o["call_id"] for o in offers] == [call_id, call_id]
    assert sorted(o["id"] for o in offers) == [taken + 1, taken + 2]


async def test_an_offering_goes_with_one_write_only(
    client: TestClient[Any, Any], redis: Redis, job_context: dict[str, Any]
) -> None:
    """Sent with a write found stale, an offering is not sent again with the write that
    follows (CallStore's Then): it ran on the call still scheduled, made nothing, and gave
    its reserved ids back."""
    stores, read, menu = await _read_due(client, redis, job_context)
    call_id = read.snapshot.call.id
    now = clock.now()
    fired = lifecycle.fired(read.snapshot.call, first_groups(menu, now), now)
    then = first_offering(job_context, stores, read, fired)
    assert then is not None
    # The call changes after the read (a private fact: no client sees it).
    touched = await stores.calls.apply(call_id, lambda s: Change(s.call, announce=False))
    assert touched is not None and touched.rev == read.snapshot.rev + 1

    after = await stores.calls.apply(
        call_id, lambda s: Change(fired, waiting="add", then=then), loaded=read.snapshot
    )
    assert after is not None and after.rev == read.snapshot.rev + 2
    assert (then.ran, then.answer) == (True, None)
    assert await offers_of(client, 1) == await offers_of(client, 2) == []
    assert int(await redis.get(TENANT.sequence("offer")) or 0) == read.first - 1


async def test_a_firing_sent_to_a_redis_that_lost_its_scripts_is_written_then_routed(
    client: TestClient[Any, Any], redis: Redis, job_context: dict[str, Any]
) -> None:
    """A restarted Redis has no scripts: the firing's write, sent with its offering without
    redis-py's check (Scripts.send), is run again alone, and the step routed afresh."""
    await load_tenant(redis, menus={LOCK_STAR: STILL})
    call_id = await _due(client)
    await redis.script_flush()

    done = await fire_scheduled_call(job_context, "demo", call_id)
    assert re.fullmatch(r"fired \d+ ms late; offered to 2", done), done
    assert (await get_call(client, call_id))["status"] == "queued"
    assert [o["call_id"] for agent in (1, 2) for o in await offers_of(client, agent)] == [
        call_id,
        call_id,
    ]
    [_] = await _routing_steps(redis, call_id)
