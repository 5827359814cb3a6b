"""Campaigns: calls joining one fire at their time at the campaign's pace (held by pause,
failed by cancel), with real workers: in-process ones, and `dispatcher worker` processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from arq import Worker
from redis.asyncio import Redis

from dispatcher.domain import clock
from dispatcher.domain.campaigns import CANCELLED_DETAILS
from dispatcher.store import jobs
from dispatcher.store.campaigns import Campaigns
from dispatcher.store.scripts import Scripts
from tests.conftest import basic
from tests.dispatcher.http.test_openapi import conforming
from tests.polling import eventually
from tests.workers.conftest import (
    API,
    CALLS,
    TENANT,
    get_json,
    load_tenant,
    post_json,
    stop_worker,
    wait_for_job,
)
from workers.campaigns import sweep_campaign
from workers.settings import create_worker

CAMPAIGNS = f"{API}/campaigns"
LOCK_STAR = 9  # mobile menu: takes scheduled calls; groups [[1, 2], [4]]
# Long routing timings: fired calls stay queued while the tests look at them.
STILL = {"cascade_interval_s": 10, "offer_timeout_s": 10, "max_wait_s": 60}
ROOT = Path(__file__).resolve().parents[2]


def due_in(seconds: float) -> str:
    return clock.iso(clock.now() + timedelta(seconds=seconds))


def callbacks(count: int, at: str, first: int = 0) -> list[dict[str, Any]]:
    return [
        {"end_user_number": f"+1 205-555-{first + i:04d}", "scheduled_at": at} for i in range(count)
    ]


async def create_campaign(
    client: TestClient[Any, Any], pacing: dict[str, Any], name: str = "spring"
) -> dict[str, Any]:
    body = {"name": name, "menu_id": LOCK_STAR, "pacing": pacing}
    campaign: dict[str, Any] = await post_json(client, CAMPAIGNS, body, status=201)
    return campaign


async def join(
    client: TestClient[Any, Any], campaign_id: int, items: list[Any], status: int = 200
) -> dict[str, Any]:
    answer: dict[str, Any] = await post_json(
        client, f"{CAMPAIGNS}/{campaign_id}/calls/batch", {"calls": items}, status=status
    )
    return answer


async def campaign(client: TestClient[Any, Any], campaign_id: int) -> dict[str, Any]:
    found: dict[str, Any] = await get_json(client, f"{CAMPAIGNS}/{campaign_id}")
    return found


async def stored_calls(redis: Redis, ids: list[int]) -> list[dict[str, Any]]:
    async with redis.pipeline(transaction=False) as pipe:
        for call_id in ids:
            pipe.hget(TENANT.call(call_id), "doc")
        return [orjson.loads(doc) for doc in await pipe.execute()]


def ms(stamp: str | None) -> int:
    moment = clock.parse_iso(stamp)
    assert moment is not None
    return clock.to_ms(moment)


async def all_agents(client: TestClient[Any, Any], status: str) -> None:
    for agent_id in (1, 2, 4):
        await client.put(
            f"{API}/agents/{agent_id}/status", json={"status": status}, headers=basic()
        )


async def test_campaigns_are_created_listed_and_read(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    await load_tenant(redis, menus={LOCK_STAR: STILL})
    refusals = [
        ({}, "name is required"),
        ({"name": "x" * 201}, "name must be 1 to 200 printable characters"),
        ({"name": "a"}, "menu_id is required"),
        ({"name": "a", "menu_id": "nine"}, "menu_id is not well formed"),
        ({"name": "a", "menu_id": 51}, "Only mobile and web menu IDs are permitted"),
        ({"name": "a", "menu_id": 9, "pacing": 5}, "pacing must be an object"),
        *(
            (
                {"name": "a", "menu_id": 9, "pacing": {"calls_per_second": rate}},
                "pacing.calls_per_second must be a number from 0.001 to 10000",
            )
            for rate in (0, 1e-300, 0.0009, 10_001, "5")
        ),
        (
            {"name": "a", "menu_id": 9, "pacing": {"max_waiting": 0}},
            "pacing.max_waiting must be an integer from 1 to 1000000, or null",
        ),
    ]
    for body, message in refusals:
        assert await post_json(client, CAMPAIGNS, body, status=400) == {"message": message}
    created = await create_campaign(client, {"calls_per_second": 5, "max_waiting": 20})
    assert created == {
        "id": 1,
        "name": "spring",
        "menu_id": 9,
        "state": "running",
        "pacing": {"calls_per_second": 5.0, "max_waiting": 20, "max_estimated_wait_s": None},
        "created_at": created["created_at"],
        "paused_at": None,
        "cancelled_at": None,
        "total": 0,
        "counts": {},
        "progress": {
            "fired": 0,
            "not_fired": 0,
            "overdue": 0,
            "ended_unfired": 0,
            "held": 0,
            "fired_percent": 0.0,
        },
        "lateness": {"mean_ms": None, "max_ms": None},
        "calling_window": None,
        "contact_limit_24h": None,
        "redial": None,
        "answering_machine": None,
    }
    taken = await post_json(client, CAMPAIGNS, {"name": "spring", "menu_id": 9}, status=409)
    assert taken == {"message": "A campaign with this name already exists"}
    second = await post_json(client, CAMPAIGNS, {"name": "autumn", "menu_id": 50}, status=201)
    assert second["pacing"] == {
        "calls_per_second": 10.0,
        "max_waiting": None,
        "max_estimated_wait_s": None,
    }

    listed = await client.get(CAMPAIGNS, headers=basic())
    assert [c["name"] for c in await listed.json()] == ["autumn", "spring"]
    assert (listed.headers["Total"], listed.headers["Per-Page"]) == ("2", "100")
    assert await get_json(client, f"{CAMPAIGNS}?name=spring") == [created]
    assert await get_json(client, f"{CAMPAIGNS}?name=winter") == []
    assert await get_json(client, f"{CAMPAIGNS}?per=1&page=2") == [created]
    assert await campaign(client, 1) == created
    for path in ("3", "x"):
        missing = await get_json(client, f"{CAMPAIGNS}/{path}", status=404)
        assert missing == {"message": "Campaign not found"}


async def test_campaign_answers_conform_to_the_document(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    await load_tenant(redis, menus={LOCK_STAR: STILL})
    body = {"name": "conform", "menu_id": 9, "pacing": {"calls_per_second": 2.5}}
    one = "/apps/api/v1/campaigns/{id}"
    created = await conforming(await client.post(CAMPAIGNS, json=body, headers=basic()), CAMPAIGNS)
    taken = await client.post(CAMPAIGNS, json=body, headers=basic())
    assert taken.status == 409
    await conforming(taken, CAMPAIGNS)
    await conforming(await client.post(CAMPAIGNS, json={}, headers=basic()), CAMPAIGNS)
    await conforming(await client.get(CAMPAIGNS, headers=basic()), CAMPAIGNS)
    path = f"{CAMPAIGNS}/{created['id']}"
    batch = f"{path}/calls/batch"
    calls = {"calls": [*callbacks(2, due_in(3600)), {"end_user_number": "1"}]}
    joined = await conforming(
        await client.post(batch, json=calls, headers=basic()), one + "/calls/batch"
    )
    assert [r["status"] for r in joined["results"]] == [201, 201, 400]
    read = await conforming(await client.get(path, headers=basic()), one)
    assert read["counts"] == {"scheduled": 2}
    for action in ("pause", "resume", "cancel"):
        answered = await client.post(f"{path}/{action}", headers=basic())
        assert answered.status == 200
        await conforming(answered, f"{one}/{action}")
    for action in ("pause", "resume"):
        refused = await client.post(f"{path}/{action}", headers=basic())
        assert refused.status == 409
        await conforming(refused, f"{one}/{action}")
    closed = await client.post(batch, json=calls, headers=basic())
    assert closed.status == 409
    await conforming(closed, one + "/calls/batch")
    missing = await client.get(f"{CAMPAIGNS}/99", headers=basic())
    assert await conforming(missing, one) == {"message": "Campaign not found"}


async def test_calls_join_a_campaign_as_scheduled_calls_on_its_menu(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    await load_tenant(redis, menus={LOCK_STAR: STILL})
    later = due_in(3600)
    created = await create_campaign(client, {"calls_per_second": 5})
    answer = await join(
        client,
        created["id"],
        [
            {"end_user_number": "+1 205-555-0100", "scheduled_at": later, "lang": "ko"},
            {
                "call_type": "Voice Inbound (API)",
                "menu_id": 9,
                "end_user_number": "+1 205-555-0109",
            },
            {"end_user_number": "+1 205-555-0101", "scheduled_at": later, "menu_id": 50},
            {"end_user_number": "12", "scheduled_at": later},
            {"end_user_number": "+1 205-555-0102"},
        ],
    )
    assert [(r["status"], r["body"].get("message")) for r in answer["results"]] == [
        (201, None),
        (400, "Only scheduled calls can join a campaign"),
        (400, "menu_id must be the campaign's menu (9)"),
        (400, "end_user_number is not well formed"),
        (400, "scheduled_at is required"),
    ]
    call = answer["results"][0]["body"]
    assert (call["call_type"], call["status"], call["lang"]) == (
        "Voice Scheduled (API)",
        "scheduled",
        "ko",
    )
    assert (call["selected_menu"]["id"], call["scheduled_at"]) == (9, later)
    read = await campaign(client, created["id"])
    assert (read["total"], read["counts"], read["progress"]["not_fired"]) == (
        1,
        {"scheduled": 1},
        1,
    )
    # No fire job of its own: the campaign's pump, due at the call's time, fires it.
    queued = await redis.zrange(jobs.QUEUE_NAME, 0, -1, withscores=True)
    assert queued == [(b"pump_campaign:demo:1:1", float(ms(later)))]

    missing = await post_json(client, f"{CAMPAIGNS}/7/calls/batch", {"calls": [{}]}, status=404)
    assert missing == {"message": "Campaign not found"}


@pytest.mark.parametrize("rate", [3, 0.001])
async def test_the_pump_queues_its_next_run_at_any_pace_it_accepts(
    client: TestClient[Any, Any], redis: Redis, rate: float
) -> None:
    """At 3 calls a second the next firing time has a fraction of a ms (333.3...), at 0.001 it
    is 1,000 s away: the pump's next run is queued all the same (a Redis expiry takes integer
    ms only; the pump failed on it and the campaign stalled after its first call)."""
    await load_tenant(redis, menus={LOCK_STAR: STILL})
    created = await create_campaign(client, {"calls_per_second": rate})
    await join(client, created["id"], callbacks(2, due_in(0.05)))
    await asyncio.sleep(0.1)  # past the calls' time and the pump's: the pump runs as its job
    campaigns = Campaigns(redis, Scripts.register(redis), "demo")
    before = clock.to_ms(clock.now())
    assert await campaigns.release(created["id"], LOCK_STAR) == (1, "running")
    after = clock.to_ms(clock.now())
    # The join queued the pump's first run (at the calls' time); this run queued its second,
    # at the second call's firing time (an interval after the first) less the 100 ms lookahead.
    at = await redis.zscore(jobs.QUEUE_NAME, "pump_campaign:demo:1:2")
    assert at is not None
    assert before + 1000 / rate - 100 <= at <= after + 1000 / rate - 100
    assert await redis.exists("arq:job:pump_campaign:demo:1:2") == 1


async def test_calls_fire_on_time_under_the_pace(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    await load_tenant(redis, menus={LOCK_STAR: STILL})
    created = await create_campaign(client, {"calls_per_second": 100})
    at = due_in(0.4)
    answer = await join(client, created["id"], callbacks(5, at))
    ids = [r["body"]["id"] for r in answer["results"]]

    async def fired() -> dict[str, Any] | None:
        read = await campaign(client, created["id"])
        return read if read["progress"]["fired"] == 5 else None

    read = await eventually(fired, "5 calls fired")
    for call in await stored_calls(redis, ids):
        assert call["status"] == "queued"
        assert -1 <= ms(call["queued_at"]) - ms(at) < 250
    assert read["counts"] == {"queued": 5}
    assert read["progress"] == {
        "fired": 5,
        "not_fired": 0,
        "overdue": 0,
        "ended_unfired": 0,
        "held": 0,
        "fired_percent": 100.0,
    }
    assert 0 <= read["lateness"]["max_ms"] < 250


async def test_a_campaign_reads_completed_once_every_call_ended_and_running_when_one_joins(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    """No write marks it: the state is read from the calls' counts by status, so a batch that
    joins a completed campaign (an import's next chunk) is taken and makes it running again."""
    await load_tenant(redis, menus={LOCK_STAR: STILL})
    created = await create_campaign(client, {"calls_per_second": 100})
    path = f"{CAMPAIGNS}/{created['id']}"

    async def fired(count: int) -> dict[str, Any] | None:
        read = await conforming(await client.get(path, headers=basic()), CAMPAIGNS + "/{id}")
        return read if read["progress"]["fired"] == count else None

    async def finish_all(calls: dict[str, Any]) -> None:
        for result in calls["results"]:
            await post_json(client, f"{CALLS}/{result['body']['id']}/finish")

    first = await join(client, created["id"], callbacks(2, due_in(0.2)))
    assert (await campaign(client, created["id"]))["state"] == "running"
    read = await eventually(lambda: fired(2), "the campaign's calls fired")
    assert read["state"] == "running"  # fired, still queued: not ended
    await finish_all(first)
    read = await campaign(client, created["id"])
    assert (read["state"], read["progress"]["not_fired"]) == ("completed", 0)
    assert [c["state"] for c in await get_json(client, CAMPAIGNS)] == ["completed"]

    later = await join(client, created["id"], callbacks(1, due_in(0.2), first=2))
    assert [r["status"] for r in later["results"]] == [201]
    assert (await campaign(client, created["id"]))["state"] == "running"
    read = await eventually(lambda: fired(3), "the late call fired")
    await finish_all(later)
    read = await campaign(client, created["id"])
    assert (read["state"], read["total"], read["progress"]["fired"]) == ("completed", 3, 3)
    paused = await post_json(client, f"{path}/pause")
    assert paused["state"] == "paused"  # held for calls to come: says so
    resumed = await post_json(client, f"{path}/resume")
    assert resumed["state"] == "completed"


async def test_a_fired_call_is_routed_as_any_other_and_counted_fired_once(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    """After firing, its campaign's gate is behind it: the cascade adds Group 2 (a write of the
    queued call) however slow the campaign's pace, and the call is not counted fired again."""
    cascade = {"cascade_interval_s": 0.2, "offer_timeout_s": 5, "max_wait_s": 10}
    await load_tenant(redis, menus={LOCK_STAR: cascade})
    created = await create_campaign(client, {"calls_per_second": 0.5})
    answer = await join(client, created["id"], callbacks(1, due_in(0.2)))
    call_id = answer["results"][0]["body"]["id"]

    async def cascaded() -> dict[str, Any] | None:
        call = await get_json(client, f"{CALLS}/{call_id}")
        return call if len(call["offer_events"]) == 2 else None

    call = await eventually(cascaded, "Group 2 added by the cascade")
    assert [event["group"] for event in call["offer_events"]] == ["Group 1", "Group 2"]
    read = await campaign(client, created["id"])
    assert (read["progress"]["fired"], read["counts"]) == (1, {"queued": 1})


@pytest.fixture
def worker_processes(redis_url: str, tmp_path: Path) -> Iterator[list[Path]]:
    """Three `dispatcher worker` processes on the test Redis; their logs, to read who fired."""
    logs = [tmp_path / f"worker-{i}.log" for i in range(3)]
    env = {**os.environ, "REDIS_URL": redis_url, "DISPATCHER_LOG_FORMAT": "json"}
    processes = []
    for log in logs:
        with log.open("wb") as sink:  # the child writes to its own copy of the descriptor
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "dispatcher.cli", "worker"],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=sink,
                )
            )
    yield logs
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.subprocess
async def test_the_pace_holds_across_three_worker_processes(
    client: TestClient[Any, Any], redis: Redis, worker_processes: list[Path]
) -> None:
    """20 calls/s and at most 30 waiting, shared in Redis by three worker processes: 60 calls
    due at the same moment fire 20 a second until 30 wait; when they are gone, the rest."""
    await load_tenant(redis, menus={LOCK_STAR: STILL})
    await all_agents(client, "offline")  # fired calls wait in the queue
    created = await create_campaign(client, {"calls_per_second": 20, "max_waiting": 30})
    answer = await join(client, created["id"], callbacks(60, due_in(1.0)))
    ids = [r["body"]["id"] for r in answer["results"]]
    most_waiting = 0

    async def watch(target: int, timeout: float) -> int:
        nonlocal most_waiting
        deadline = time.monotonic() + timeout
        while True:
            most_waiting = max(most_waiting, await redis.zcard(TENANT.waiting(LOCK_STAR)))
            fired = (await campaign(client, created["id"]))["progress"]["fired"]
            if fired >= target or time.monotonic() > deadline:
                return int(fired)
            await asyncio.sleep(0.02)

    assert await watch(30, 15) == 30  # the workers may take a while to start
    assert await watch(31, 0.5) == 30  # held: the queue is full
    first = await stored_calls(redis, ids)
    waiting = [call["id"] for call in first if call["status"] == "queued"]
    assert len(waiting) == 30
    for call_id in waiting:  # the queue empties: the campaign goes on
        await post_json(client, f"{CALLS}/{call_id}/finish")
    assert await watch(60, 10) == 60
    assert most_waiting <= 30

    fired_at = sorted(ms(call["queued_at"]) for call in await stored_calls(redis, ids))
    # Any one second holds at most 20 (+2 of burst, +2 for the edges of the window).
    busiest = max(sum(1 for t in fired_at if start <= t < start + 1000) for start in fired_at)
    assert busiest <= 24, fired_at
    # Past the burst of 2 (fired together), one every 50 ms: 27 intervals from the 3rd to the 30th.
    rate = 27 / ((fired_at[29] - fired_at[2]) / 1000)
    assert 18 <= rate <= 22, fired_at
    firing = [log.read_text().count('"scheduled call fired"') for log in worker_processes]
    assert sum(firing) == 60 and sum(1 for n in firing if n) >= 2, firing


async def test_pause_holds_calls_and_resume_fires_them_late(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    await load_tenant(redis, menus={LOCK_STAR: STILL})
    created = await create_campaign(client, {"calls_per_second": 100})
    campaign_id = created["id"]
    at = due_in(0.3)
    ids = [r["body"]["id"] for r in (await join(client, campaign_id, callbacks(5, at)))["results"]]
    paused = await post_json(client, f"{CAMPAIGNS}/{campaign_id}/pause")
    assert (paused["state"], paused["paused_at"] is not None) == ("paused", True)
    await asyncio.sleep(0.8)
    held = await campaign(client, campaign_id)
    assert (held["progress"]["fired"], held["progress"]["overdue"]) == (0, 5)
    assert {c["status"] for c in await stored_calls(redis, ids)} == {"scheduled"}

    resumed = await post_json(client, f"{CAMPAIGNS}/{campaign_id}/resume")
    assert (resumed["state"], resumed["paused_at"]) == ("running", None)

    async def fired() -> dict[str, Any] | None:
        read = await campaign(client, campaign_id)
        return read if read["progress"]["fired"] == 5 else None

    read = await eventually(fired, "5 calls fired after the resume")
    late = [ms(c["queued_at"]) - ms(at) for c in await stored_calls(redis, ids)]
    assert all(500 <= ms_late < 3000 for ms_late in late), late
    assert read["lateness"]["max_ms"] == max(late)
    assert read["progress"]["overdue"] == 0


async def test_a_call_handed_to_its_fire_job_before_a_pause_waits_for_the_resume(
    client: TestClient[Any, Any], redis: Redis, redis_url: str
) -> None:
    """The race the gate closes: the pump hands a call to its fire job, then the campaign is
    paused before the job runs. The job fires nothing and puts the call back."""
    await load_tenant(redis, menus={LOCK_STAR: STILL})
    created = await create_campaign(client, {"calls_per_second": 100})
    campaign_id = created["id"]
    ids = [
        r["body"]["id"]
        for r in (await join(client, campaign_id, callbacks(3, due_in(0.05))))["results"]
    ]
    campaigns = Campaigns(redis, Scripts.register(redis), "demo")
    assert await campaigns.release(campaign_id, LOCK_STAR) == (3, "running")  # the pump's step
    await post_json(client, f"{CAMPAIGNS}/{campaign_id}/pause")
    started = create_worker(redis_url, handle_signals=False, poll_delay=0.01)
    polling = asyncio.create_task(started.async_run())
    try:

        async def handed_back() -> bool | None:
            due = await redis.zcard(TENANT.campaign_due(campaign_id))
            released = await redis.zcard(TENANT.campaign_released(campaign_id))
            return True if (due, released) == (3, 0) else None

        await eventually(handed_back, "the calls back among those not fired")
        assert {c["status"] for c in await stored_calls(redis, ids)} == {"scheduled"}
        await post_json(client, f"{CAMPAIGNS}/{campaign_id}/resume")

        async def fired() -> bool | None:
            read = await campaign(client, campaign_id)
            return True if read["progress"]["fired"] == 3 else None

        await eventually(fired, "3 calls fired after the resume")
    finally:
        await stop_worker(started, polling)


@pytest.fixture
async def two_workers(redis_url: str, redis: Redis) -> AsyncIterator[None]:
    started = [create_worker(redis_url, handle_signals=False, poll_delay=0.01) for _ in range(2)]
    polling = [asyncio.create_task(w.async_run()) for w in started]
    yield
    for w, task in zip(started, polling, strict=True):
        await stop_worker(w, task)


async def test_no_call_fires_after_the_cancel_answers(
    client: TestClient[Any, Any], redis: Redis, two_workers: None
) -> None:
    await load_tenant(redis, menus={LOCK_STAR: STILL})
    created = await create_campaign(client, {"calls_per_second": 200})
    campaign_id = created["id"]
    ids = [
        r["body"]["id"]
        for r in (await join(client, campaign_id, callbacks(400, due_in(0.3))))["results"]
    ]

    async def firing() -> bool | None:
        read = await campaign(client, campaign_id)
        return True if read["progress"]["fired"] >= 40 else None

    await eventually(firing, "the campaign firing")
    cancelled = await post_json(client, f"{CAMPAIGNS}/{campaign_id}/cancel")
    answered_ms = clock.to_ms(clock.now())
    assert cancelled["state"] == "cancelled"
    fired_before = cancelled["progress"]["fired"]
    assert 40 <= fired_before < 400

    async def swept() -> dict[str, Any] | None:
        read = await campaign(client, campaign_id)
        return read if read["progress"]["not_fired"] == 0 else None

    read = await eventually(swept, "every call not fired failed", timeout=10)
    await asyncio.sleep(0.2)  # a fire job still queued would run by now
    read = await campaign(client, campaign_id)
    assert read["progress"]["fired"] == fired_before
    assert read["progress"]["ended_unfired"] == 400 - fired_before
    assert read["counts"] == {"queued": fired_before, "failed": 400 - fired_before}
    calls = await stored_calls(redis, ids)
    fired = [c for c in calls if c["queued_at"] is not None]
    assert len(fired) == fired_before
    assert max(ms(c["queued_at"]) for c in fired) <= answered_ms
    unfired = [c for c in calls if c["queued_at"] is None]
    assert {(c["status"], c["fail_reason"], c["fail_details"]) for c in unfired} == {
        ("failed", "ag_canceled", CANCELLED_DETAILS)
    }
    assert await redis.zcard(TENANT.campaign_due(campaign_id)) == 0
    assert await redis.zcard(TENANT.campaign_released(campaign_id)) == 0

    refused = {"message": "Campaign is cancelled"}
    assert await join(client, campaign_id, callbacks(1, due_in(60)), status=409) == refused
    for action in ("pause", "resume"):
        assert await post_json(client, f"{CAMPAIGNS}/{campaign_id}/{action}", status=409) == refused
    again = await post_json(client, f"{CAMPAIGNS}/{campaign_id}/cancel")
    assert again["progress"] == read["progress"]


async def test_a_large_cancel_is_swept_in_chunks_once(
    client: TestClient[Any, Any], redis: Redis, worker: Worker, job_context: dict[str, Any]
) -> None:
    await load_tenant(redis, menus={LOCK_STAR: STILL})
    created = await create_campaign(client, {"calls_per_second": 10})
    campaign_id = created["id"]
    later = due_in(3600)
    for first in (0, 1000):
        await join(client, campaign_id, callbacks(1000 if first == 0 else 100, later, first))
    await post_json(client, f"{CAMPAIGNS}/{campaign_id}/cancel")

    async def swept() -> dict[str, Any] | None:
        read = await campaign(client, campaign_id)
        return read if read["progress"]["not_fired"] == 0 else None

    read = await eventually(swept, "1,100 calls failed", timeout=20)
    assert read["counts"] == {"failed": 1100}
    for chunk in ("", ":1", ":2", ":3"):
        await wait_for_job(redis, f"{jobs.SWEEP_CAMPAIGN}:demo:{campaign_id}{chunk}")
    # Run again (a retried job): nothing left, nothing changed.
    assert await sweep_campaign(job_context, "demo", campaign_id) == "failed 0 of 0"
    assert (await campaign(client, campaign_id))["counts"] == {"failed": 1100}
