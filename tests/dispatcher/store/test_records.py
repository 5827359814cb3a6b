"""Each call or chat is written with its indexes and its ARQ job in one atomic step."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiohttp.test_utils import TestClient
from arq.jobs import deserialize_job_raw
from redis.asyncio import Redis

from dispatcher.domain import clock
from dispatcher.store import jobs
from dispatcher.store.keys import TenantKeys
from dispatcher.store.scripts import AllocateIds, Scripts
from tests.conftest import basic

CALLS = "/apps/api/v1/calls"
INBOUND = {"call_type": "Voice Inbound (API)", "menu_id": 9, "end_user_number": "+1 205-123-4567"}
OUTBOUND = {
    "call_type": "Voice Outbound (API)",
    "agent_email": "admin@somedomain.com",
    "end_user_number": "+1 859-657-9625",
}


async def _queued_jobs(redis: Redis) -> dict[str, float]:
    return {k.decode(): s for k, s in await redis.zrange(jobs.QUEUE_NAME, 0, -1, withscores=True)}


async def test_inbound_call_is_stored_indexed_and_enqueued_as_json(
    client: TestClient[Any, Any], redis: Redis, demo: dict[str, Any]
) -> None:
    call = await (await client.post(CALLS, json=INBOUND, headers=basic())).json()
    stored = await redis.hgetall("dsp:t:{demo}:call:1")
    assert orjson.loads(stored[b"doc"]) == call
    assert (stored[b"status"], stored[b"rev"]) == (b"queued", b"1")
    assert orjson.loads(stored[b"meta"])["end_user_number"] == "+12051234567"
    for index in ("calls", "calls:status:queued", "calls:type:inbound"):
        assert await redis.zrange(f"dsp:t:{{demo}}:{index}", 0, -1) == [b"000000000000001"]
    assert list(await _queued_jobs(redis)) == ["route_call:demo:1"]
    raw = await redis.get("arq:job:route_call:demo:1")
    assert raw is not None
    function, args, kwargs, job_try, _ = deserialize_job_raw(raw, deserializer=jobs.deserialize)
    assert (function, list(args), kwargs) == ("route_call", ["demo", 1], {})
    assert job_try is None  # null in JSON: ARQ counts tries elsewhere
    assert 86_000_000 < await redis.pttl("arq:job:route_call:demo:1") <= 86_400_000


async def test_scheduled_call_job_runs_at_scheduled_at(
    client: TestClient[Any, Any], redis: Redis, demo: dict[str, Any]
) -> None:
    at = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    body = {**INBOUND, "call_type": "Voice Scheduled (API)", "scheduled_at": at.isoformat()}
    call = await (await client.post(CALLS, json=body, headers=basic())).json()
    assert (call["status"], call["scheduled_at"], call["queued_at"]) == (
        "scheduled",
        clock.iso(at),
        None,
    )
    assert call["offer_events"] == []
    assert await _queued_jobs(redis) == {"fire_scheduled_call:demo:1": clock.to_ms(at)}
    ttl = await redis.pttl("arq:job:fire_scheduled_call:demo:1")
    assert 3 * 86_400_000 < ttl <= 4 * 86_400_000


async def test_refused_claim_writes_nothing(
    client: TestClient[Any, Any], redis: Redis, demo: dict[str, Any]
) -> None:
    await redis.hset("dsp:t:{demo}:agent:1", "status", "unavailable")
    response = await client.post(CALLS, json=OUTBOUND, headers=basic())
    assert response.status == 400
    assert await redis.keys("dsp:t:{demo}:call:*") == []
    assert await redis.exists("dsp:t:{demo}:calls") == 0
    assert await _queued_jobs(redis) == {}
    assert await redis.hget("dsp:t:{demo}:agent:1", "voice") is None


async def test_outbound_call_waiting_for_a_choice_has_no_job_yet(
    client: TestClient[Any, Any], redis: Redis, demo: dict[str, Any]
) -> None:
    direct = await client.post(CALLS, json=OUTBOUND, headers=basic())
    assert direct.status == 201
    assert list(await _queued_jobs(redis)) == ["dial_outbound:demo:1"]
    assert await redis.hget("dsp:t:{demo}:agent:1", "voice") == b"1"


async def test_a_job_id_already_queued_is_not_queued_twice(
    client: TestClient[Any, Any], redis: Redis, demo: dict[str, Any]
) -> None:
    await redis.set("arq:job:route_call:demo:1", b"earlier")
    await client.post(CALLS, json=INBOUND, headers=basic())
    assert await redis.get("arq:job:route_call:demo:1") == b"earlier"
    assert await _queued_jobs(redis) == {}


async def test_a_batch_s_ids_are_drawn_in_one_step_in_order(redis: Redis) -> None:
    """allocate_ids.lua for a batch: consecutive record ids, each record's participants after
    the one before's, one end-user id per number (a number met twice gets one), and the same
    creation ms for all."""
    keys = TenantKeys("demo")
    await redis.hset(keys.end_users, "+12055550100", "41")  # an end user known already
    scripts = Scripts.register(redis)
    allocate = AllocateIds(
        keys.sequence("call"),
        keys.sequence("participant"),
        keys.sequence("end_user"),
        keys.end_users,
        [
            {"participants": 1, "number": "+12055550199"},
            {"participants": 2},
            {"participants": 1, "number": "+12055550100"},
            {"participants": 1, "number": "+12055550199"},
        ],
    )
    before = clock.to_ms(clock.now())
    drawn = await scripts.run(allocate)
    created = {ms for *_, ms in drawn}
    assert [ids[:3] for ids in drawn] == [(1, 1, 1), (2, 2, 0), (3, 4, 41), (4, 5, 1)]
    assert len(created) == 1 and before - 1 <= created.pop() <= clock.to_ms(clock.now()) + 1
    assert await redis.get(keys.sequence("participant")) == b"5"
    assert await redis.hget(keys.end_users, "+12055550199") == b"1"
