"""Calls that must not be placed: the company DNC list and the contact limit, checked in the
same atomic step as the call's write (at creation for outbound calls, as they fire for scheduled
and campaign calls), with real workers on the real Redis."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import time_machine
from aiohttp.test_utils import TestClient
from arq import Worker
from redis.asyncio import Redis

from dispatcher.domain import clock
from dispatcher.domain.compliance import ON_DNC_LIST
from tests.polling import eventually
from tests.workers.conftest import (
    API,
    CALLS,
    MULTICAST_MENU,
    TENANT,
    get_call,
    get_json,
    load_tenant,
    outbound_call,
    post_json,
    stop_worker,
    wait_for_status,
)
from workers.connecting import connect_call
from workers.settings import create_worker

LOCK_STAR = 9  # a mobile menu: takes scheduled calls
CAMPAIGNS = f"{API}/campaigns"
LISTED = {"message": ON_DNC_LIST}
STILL = {"cascade_interval_s": 10, "offer_timeout_s": 10, "max_wait_s": 20}
BIN = Path(sys.executable).parent / "dispatcher"


async def list_number(redis: Redis, number: str, expires_ms: int | None = None) -> None:
    """Adds `number` (E.164) to the tenant's DNC list as the list's own script stores it."""
    now_ms = clock.to_ms(clock.now())
    await redis.zadd(TENANT.dnc, {number: now_ms})
    if expires_ms is not None:
        await redis.zadd(TENANT.dnc_expiring, {number: expires_ms})


async def stored(redis: Redis, ids: list[int]) -> list[dict[str, Any]]:
    """The calls' objects as stored, read in one round trip (polling the API for many calls
    would spend the tenant's rate limit)."""
    async with redis.pipeline(transaction=False) as pipe:
        for call_id in ids:
            pipe.hget(TENANT.call(call_id), "doc")
        return [orjson.loads(doc) for doc in await pipe.execute()]


def scheduled_body(number: str, after_s: float = 60) -> dict[str, Any]:
    return {
        "call_type": "Voice Scheduled (API)",
        "menu_id": LOCK_STAR,
        "end_user_number": number,
        "scheduled_at": clock.iso(clock.now() + timedelta(seconds=after_s)),
    }


async def test_an_outbound_call_to_a_listed_number_is_refused_and_stores_nothing(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    await load_tenant(redis)
    await list_number(redis, "+18596579625")
    refused = await outbound_call(client, number="+1 (859) 657-9625", status=400)
    assert refused == LISTED
    assert await redis.zcard(TENANT.calls) == 0
    # The agent's voice slot was not taken: the same agent places a call to another number.
    placed = await outbound_call(client, number="+1 859-657-9626")
    assert placed["status"] == "assigned"


async def test_an_expired_entry_blocks_nothing_from_its_expiry_on(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    await load_tenant(redis)
    now_ms = clock.to_ms(clock.now())
    await list_number(redis, "+18596579625", expires_ms=now_ms + 60_000)
    assert await outbound_call(client, status=400) == LISTED
    await redis.zadd(TENANT.dnc_expiring, {"+18596579625": now_ms})  # expired at this very ms
    assert (await outbound_call(client))["status"] == "assigned"


async def test_inbound_calls_are_never_blocked(client: TestClient[Any, Any], redis: Redis) -> None:
    await load_tenant(redis)
    await list_number(redis, "+12051234567")
    body = {
        "call_type": "Voice Inbound (API)",
        "menu_id": MULTICAST_MENU,
        "end_user_number": "+12051234567",
    }
    assert (await post_json(client, CALLS, body, status=201))["status"] == "queued"


async def test_a_scheduled_call_to_a_listed_number_is_refused_at_creation(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    await load_tenant(redis)
    await list_number(redis, "+12051234567")
    assert await post_json(client, CALLS, scheduled_body("+1 205-123-4567"), status=400) == LISTED
    assert await redis.zcard(TENANT.calls) == 0


async def test_the_tenant_chooses_the_call_kinds_the_list_blocks(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    await load_tenant(redis, settings={"dnc_call_types": ["scheduled"]})
    await list_number(redis, "+18596579625")
    await list_number(redis, "+12051234567")
    assert (await outbound_call(client))["status"] == "assigned"
    assert await post_json(client, CALLS, scheduled_body("+12051234567"), status=400) == LISTED


async def test_a_batch_refuses_its_listed_items_alone(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    await load_tenant(redis)
    await list_number(redis, "+12051234567")
    items = [scheduled_body("+12051234567"), scheduled_body("+12051234568")]
    answer = await post_json(client, f"{CALLS}/batch", {"calls": items}, status=200)
    refused, created = answer["results"]
    assert (refused["status"], refused["body"], refused["replayed"]) == (400, LISTED, False)
    assert (created["status"], created["body"]["status"]) == (201, "scheduled")
    assert (answer["created"], answer["failed"]) == (1, 1)
    assert await redis.zcard(TENANT.calls) == 1


async def test_a_number_listed_after_its_call_was_scheduled_fails_the_call_when_due(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    await load_tenant(redis, menus={LOCK_STAR: STILL})
    call = await post_json(client, CALLS, scheduled_body("+12051234567", after_s=0.5), status=201)
    await list_number(redis, "+12051234567")
    failed = await wait_for_status(client, call["id"], "failed")
    assert (failed["fail_reason"], failed["fail_details"]) == ("ag_canceled", ON_DNC_LIST)
    assert failed["queued_at"] is None
    assert await redis.zscore(TENANT.scheduled, str(call["id"])) is None


async def test_a_campaign_call_whose_number_was_listed_fails_when_due(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    await load_tenant(redis, menus={LOCK_STAR: STILL})
    body = {"name": "spring", "menu_id": LOCK_STAR, "pacing": {"calls_per_second": 50}}
    campaign = await post_json(client, CAMPAIGNS, body, status=201)
    items = [scheduled_body(f"+1205123456{i}", after_s=0.5) for i in range(4)]
    await list_number(redis, "+12051234561")
    joined = await post_json(
        client, f"{CAMPAIGNS}/{campaign['id']}/calls/batch", {"calls": items}, status=200
    )
    assert [item["status"] for item in joined["results"]] == [201, 400, 201, 201]
    assert joined["results"][1]["body"] == LISTED
    await list_number(redis, "+12051234562")  # after it joined: judged as it fires

    async def settled() -> dict[str, Any] | None:
        read: dict[str, Any] = await get_json(client, f"{CAMPAIGNS}/{campaign['id']}")
        # The failed call's job lets the campaign forget it after failing it.
        released = await redis.zcard(TENANT.campaign_released(campaign["id"]))
        return read if read["progress"]["not_fired"] == 0 and released == 0 else None

    read = await eventually(settled, "the campaign's calls fired or failed", timeout=5)
    assert read["counts"] == {"queued": 2, "failed": 1}
    assert (read["total"], read["progress"]["fired"], read["progress"]["held"]) == (3, 2, 0)
    assert await redis.zcard(TENANT.campaign_due(campaign["id"])) == 0


async def test_a_number_added_while_its_calls_fire_blocks_every_call_fired_after_the_add(
    client: TestClient[Any, Any], redis: Redis, worker: Worker, redis_url: str
) -> None:
    """The add and the fire race: each call either fired before its number's add answered or
    failed for the list; none fired after, none was lost."""
    await load_tenant(redis, menus={LOCK_STAR: STILL})
    numbers = [f"+1205555{i:04d}" for i in range(120)]
    calls = [
        await post_json(client, CALLS, scheduled_body(number, after_s=1), status=201)
        for number in numbers
    ]
    due = clock.parse_iso(calls[0]["scheduled_at"])
    assert due is not None
    await asyncio.sleep(max(0.0, (due - clock.now()).total_seconds()) - 0.05)
    answered: dict[str, int] = {}
    order = random.Random(18).sample(numbers, len(numbers))
    dnc = f"{API}/outbound_dialer/dnc"
    for number in order:
        added = await post_json(client, dnc, {"contacts": [{"phone_number": number}]})
        assert added == [{"phone_number": number, "status": "created"}]
        answered[number] = clock.to_ms(clock.now())

    async def all_settled() -> list[dict[str, Any]] | None:
        seen = await stored(redis, [call["id"] for call in calls])
        return seen if all(c["status"] != "scheduled" for c in seen) else None

    seen = await eventually(all_settled, "every call fired or failed", timeout=10)
    fired = [c for c in seen if c["status"] != "failed"]
    failed = [c for c in seen if c["status"] == "failed"]
    assert len(fired) + len(failed) == len(calls)
    assert all(c["fail_details"] == ON_DNC_LIST for c in failed)
    for call, number in zip(seen, numbers, strict=True):
        if call["status"] != "failed":
            queued = clock.parse_iso(call["queued_at"])
            assert queued is not None and clock.to_ms(queued) <= answered[number]
    assert fired and failed, "the adds did not interleave with the firing"


async def test_an_outbound_call_over_its_numbers_contact_limit_is_refused(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    await load_tenant(redis, settings={"contact_limit_24h": 2})
    first = await outbound_call(client, agent_email="agent10@somedomain.com")
    await outbound_call(client, agent_email="agent11@somedomain.com")
    refused = await outbound_call(client, agent_email="agent12@somedomain.com", status=400)
    created = clock.parse_iso(first["created_at"])
    assert created is not None
    retry = clock.iso(created + timedelta(hours=24))
    assert refused == {
        "message": "This call cannot be placed because the phone number has reached its"
        f" contact limit of 2 calls in 24 hours; it may be called again at {retry}"
    }
    other = await outbound_call(client, agent_email="agent12@somedomain.com", number="+18596579626")
    assert other["status"] == "assigned"


def _start_worker(redis_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCHER_")}
    env.update(REDIS_URL=redis_url, DISPATCHER_LOG_FORMAT="json")
    env.pop("DATABASE_URL", None)
    with log.open("ab") as out:
        return subprocess.Popen([str(BIN), "worker"], env=env, stdout=out, stderr=out)


@pytest.mark.subprocess
async def test_the_contact_limit_holds_under_two_worker_processes(
    client: TestClient[Any, Any], redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    """30 calls to one number come due at once, fired by two worker processes: exactly the
    limit of them fire; the others stay scheduled, held until the first attempt leaves the
    24 hours, each saying so."""
    await load_tenant(redis, settings={"contact_limit_24h": 3}, menus={LOCK_STAR: STILL})
    calls = [
        await post_json(client, CALLS, scheduled_body("+12051234567", after_s=2), status=201)
        for _ in range(30)
    ]
    workers = [_start_worker(redis_url, tmp_path / f"worker{i}.log") for i in range(2)]
    try:

        async def all_judged() -> list[dict[str, Any]] | None:
            seen = await stored(redis, [call["id"] for call in calls])
            judged = all(c["status"] != "scheduled" or "held_until" in c for c in seen)
            return seen if judged else None

        seen = await eventually(all_judged, "every call fired or held", timeout=20)
    finally:
        for process in workers:
            process.send_signal(signal.SIGTERM)
        for process in workers:
            process.wait(timeout=20)
    fired = [c for c in seen if c["status"] != "scheduled"]
    held = [c for c in seen if c["status"] == "scheduled"]
    assert len(fired) == 3
    assert all(c["queued_at"] is not None for c in fired)
    attempts = await redis.zrange(TENANT.attempts("+12051234567"), 0, -1, withscores=True)
    assert sorted(int(member) for member, _ in attempts) == sorted(c["id"] for c in fired)
    retry = clock.iso(clock.from_ms(int(min(score for _, score in attempts)) + 86_400_000))
    assert {(c["held_until"], c["held_reason"]) for c in held} == {(retry, "contact_limit")}
    assert len(held) == 27
    assert await redis.zcard(TENANT.held) == 27
    assert await redis.ttl(TENANT.attempts("+12051234567")) > 86_000


# A number of Birmingham, Alabama (America/Chicago) and a window of 09:00-17:00 on weekdays.
CHICAGO_NUMBER = "+12052345678"
WEEKDAYS_9_TO_5 = {"weekly": {day: ["09:00-17:00"] for day in ("mon", "tue", "wed", "thu", "fri")}}
# Monday 3 June 2030, 08:59:57 in Chicago (CDT, UTC-5): three seconds before the window opens.
BEFORE_OPENING = datetime(2030, 6, 3, 13, 59, 57, tzinfo=UTC)
OPENING = "2030-06-03T14:00:00.000Z"
TUESDAY_NOON = datetime(2030, 6, 4, 19, tzinfo=UTC)  # 12:00 in Los Angeles (PDT)


async def test_a_call_due_before_its_window_opens_is_held_and_fires_once_at_the_opening(
    client: TestClient[Any, Any], redis: Redis, redis_url: str
) -> None:
    """Twenty calls due a second before the window opens at the end user's location, two
    workers: each is held (scheduled, saying until when), then fires exactly once at the
    opening."""
    settings = {"calling_window": WEEKDAYS_9_TO_5}
    await load_tenant(redis, settings=settings, menus={LOCK_STAR: STILL})
    with time_machine.travel(BEFORE_OPENING, tick=True):
        calls = [
            await post_json(client, CALLS, scheduled_body(CHICAGO_NUMBER, after_s=1), status=201)
            for _ in range(20)
        ]
        pollers = [create_worker(redis_url, handle_signals=False, poll_delay=0.01) for _ in "ab"]
        tasks = [asyncio.create_task(w.async_run()) for w in pollers]
        try:

            async def all_held() -> list[dict[str, Any]] | None:
                seen = await stored(redis, [call["id"] for call in calls])
                return seen if all("held_until" in c for c in seen) else None

            held = await eventually(all_held, "every call held", timeout=5)
            assert {(c["status"], c["held_until"], c["held_reason"]) for c in held} == {
                ("scheduled", OPENING, "calling_window")
            }
            assert clock.now() < clock.parse_iso(OPENING)  # type: ignore[operator]
            assert await redis.zcard(TENANT.held) == 20

            async def all_fired() -> list[dict[str, Any]] | None:
                seen = await stored(redis, [call["id"] for call in calls])
                return seen if all(c["status"] != "scheduled" for c in seen) else None

            fired = await eventually(all_fired, "every call fired", timeout=8)
        finally:
            for poller, task in zip(pollers, tasks, strict=True):
                await stop_worker(poller, task)
    for call in fired:
        assert "held_until" not in call and "held_reason" not in call
        assert OPENING <= call["queued_at"] < "2030-06-03T14:00:01"
        history = await redis.lrange(TENANT.call_history(call["id"]), 0, -1)
        queued = [e for e in map(orjson.loads, history) if e.get("to") == "queued"]
        assert len(queued) == 1, history
    assert await redis.zcard(TENANT.held) == 0


async def test_a_campaign_holds_its_calls_to_its_own_window_and_counts_them(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    """A campaign's own window (none for the tenant) holds its calls, back among the calls it
    has not fired, due at the opening; its progress and the campaign object say so. The
    numbers map to no zone: the tenant's (America/Los_Angeles) is theirs."""
    await load_tenant(redis, menus={LOCK_STAR: STILL})
    body = {
        "name": "mondays",
        "menu_id": LOCK_STAR,
        "pacing": {"calls_per_second": 50},
        "calling_window": {"weekly": {"mon": ["09:00-17:00"]}},
        "contact_limit_24h": 5,
    }
    with time_machine.travel(TUESDAY_NOON, tick=True):
        campaign = await post_json(client, CAMPAIGNS, body, status=201)
        assert (campaign["calling_window"], campaign["contact_limit_24h"]) == (
            {"weekly": {"mon": ["09:00-17:00"]}, "restricted_dates": []},
            5,
        )
        items = [scheduled_body(f"+1205123456{i}", after_s=0.3) for i in range(3)]
        await post_json(client, f"{CAMPAIGNS}/{campaign['id']}/calls/batch", {"calls": items})

        async def held() -> dict[str, Any] | None:
            read: dict[str, Any] = await get_json(client, f"{CAMPAIGNS}/{campaign['id']}")
            return read if read["progress"]["held"] == 3 else None

        read = await eventually(held, "the campaign's calls held", timeout=5)
    assert (read["progress"]["fired"], read["progress"]["not_fired"]) == (0, 3)
    due = await redis.zrange(TENANT.campaign_due(campaign["id"]), 0, -1, withscores=True)
    calls = await stored(redis, [int(member) for member, _ in due])
    assert {(c["held_until"], c["held_reason"]) for c in calls} == {
        ("2030-06-10T16:00:00.000Z", "calling_window")  # Monday 09:00 PDT
    }
    assert {int(score) for _, score in due} == {clock.to_ms(datetime(2030, 6, 10, 16, tzinfo=UTC))}
    assert await redis.zcard(TENANT.campaign_released(campaign["id"])) == 0


async def test_an_outbound_call_outside_its_window_is_refused_with_the_opening(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    await load_tenant(redis, settings={"calling_window": WEEKDAYS_9_TO_5})
    with time_machine.travel(datetime(2030, 6, 8, 12, tzinfo=UTC), tick=False):  # a Saturday
        refused = await outbound_call(client, number=CHICAGO_NUMBER, status=400)
    assert refused == {
        "message": "This call cannot be placed now because it is outside the calling window at"
        " the phone number's location; the window opens at 2030-06-10T14:00:00.000Z"
    }
    assert await redis.zcard(TENANT.calls) == 0
    with time_machine.travel(datetime(2030, 6, 10, 14, tzinfo=UTC), tick=False):
        assert (await outbound_call(client, number=CHICAGO_NUMBER))["status"] == "assigned"


async def test_a_call_scheduled_outside_its_window_is_held_from_its_creation(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    """The answer already says when the call will be placed; its job is due then."""
    await load_tenant(redis, settings={"calling_window": WEEKDAYS_9_TO_5})
    body = {**scheduled_body(CHICAGO_NUMBER), "scheduled_at": "2030-06-08T12:00:00Z"}  # Saturday
    call = await post_json(client, CALLS, body, status=201)
    assert (call["status"], call["scheduled_at"]) == ("scheduled", "2030-06-08T12:00:00.000Z")
    assert (call["held_until"], call["held_reason"]) == (
        "2030-06-10T14:00:00.000Z",
        "calling_window",
    )
    opening_ms = clock.to_ms(datetime(2030, 6, 10, 14, tzinfo=UTC))
    assert await redis.zscore(TENANT.held, str(call["id"])) == opening_ms
    text = await (await client.get("/metrics")).text()
    assert 'dispatcher_held_calls{tenant="demo"} 1.0' in text.splitlines()
    assert await redis.zscore(TENANT.scheduled, str(call["id"])) == opening_ms
    job = f"fire_scheduled_call:demo:{call['id']}"
    assert await redis.zscore("arq:queue", job) == opening_ms
    inside = {**body, "scheduled_at": "2030-06-10T15:00:00Z"}
    assert "held_until" not in await post_json(client, CALLS, inside, status=201)


async def test_an_outbound_call_whose_window_closed_before_its_dial_is_not_dialled(
    client: TestClient[Any, Any], redis: Redis, job_context: dict[str, Any]
) -> None:
    """Created a moment before 17:00 in Chicago, dialled (its connect job) after: the call
    fails unplaced, saying why, and the agent is free again."""
    await load_tenant(redis, settings={"calling_window": WEEKDAYS_9_TO_5})
    with time_machine.travel(datetime(2030, 6, 3, 21, 59, 59, tzinfo=UTC), tick=False):
        call = await outbound_call(client, number=CHICAGO_NUMBER)
    with time_machine.travel(datetime(2030, 6, 3, 22, 0, 1, tzinfo=UTC), tick=False):
        assert await connect_call(job_context, "demo", call["id"]) == "outside its calling window"
    failed = await get_call(client, call["id"])
    assert (failed["status"], failed["fail_reason"], failed["fail_details"]) == (
        "failed",
        "ag_canceled",
        "This call cannot be placed now because it is outside the calling window at the phone"
        " number's location; the window opens at 2030-06-04T14:00:00.000Z",
    )
    # The agent is free: another call, inside its window (a real clock may be outside it).
    with time_machine.travel(datetime(2030, 6, 4, 15, 0, tzinfo=UTC), tick=False):
        assert (await outbound_call(client, number="+18596579625"))["status"] == "assigned"


async def test_a_campaigns_own_contact_limit_holds_its_calls_back_in_the_campaign(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    """Three calls of a campaign to one number, its own limit 1: one fires; the two others go
    back among the campaign's calls due, held until the attempt leaves the 24 hours."""
    await load_tenant(redis, menus={LOCK_STAR: STILL})
    body = {"name": "once", "menu_id": LOCK_STAR, "contact_limit_24h": 1}
    campaign = await post_json(client, CAMPAIGNS, body, status=201)
    items = [scheduled_body(CHICAGO_NUMBER, after_s=0.3) for _ in range(3)]
    await post_json(client, f"{CAMPAIGNS}/{campaign['id']}/calls/batch", {"calls": items})

    async def settled() -> dict[str, Any] | None:
        read: dict[str, Any] = await get_json(client, f"{CAMPAIGNS}/{campaign['id']}")
        progress = read["progress"]
        return read if (progress["fired"], progress["held"]) == (1, 2) else None

    read = await eventually(settled, "one call fired and two held", timeout=5)
    assert (read["counts"], read["progress"]["not_fired"]) == ({"queued": 1, "scheduled": 2}, 2)
    attempts = await redis.zrange(TENANT.attempts(CHICAGO_NUMBER), 0, -1, withscores=True)
    assert len(attempts) == 1
    retry_ms = int(attempts[0][1]) + 86_400_000
    due = await redis.zrange(TENANT.campaign_due(campaign["id"]), 0, -1, withscores=True)
    assert [int(score) for _, score in due] == [retry_ms, retry_ms]
    held = await stored(redis, [int(member) for member, _ in due])
    assert {(c["held_until"], c["held_reason"]) for c in held} == {
        (clock.iso(clock.from_ms(retry_ms)), "contact_limit")
    }
    assert await redis.zcard(TENANT.campaign_released(campaign["id"])) == 0
