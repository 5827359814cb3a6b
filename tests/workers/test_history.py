"""A call's history: every offer and status change, written in the same atomic step as the
change itself, oldest first, the last 50 kept."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from arq import Worker
from redis.asyncio import Redis

from dispatcher.domain import clock, lifecycle
from dispatcher.domain.statuses import FailReason
from dispatcher.store.calls import CallStore, Change, Snapshot
from dispatcher.store.directory import DirectoryCache
from dispatcher.store.scripts import Scripts
from tests.conftest import basic
from tests.workers.conftest import (
    API,
    TENANT,
    inbound_call,
    load_tenant,
    post_json,
    wait_for_offer,
    wait_for_status,
)

PHONE_SALES = 51  # multicast to agents 1, 2 and 4


async def _calls(redis: Redis) -> CallStore:
    tenant = await DirectoryCache(redis).tenant("demo")
    assert tenant is not None
    return CallStore(redis, Scripts.register(redis), tenant)


def _without_times(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in entry.items() if k != "at"} for entry in entries]


async def test_the_history_tells_offers_decline_accept_and_every_status(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    await load_tenant(redis, menus={PHONE_SALES: {"offer_timeout_s": 5, "max_wait_s": 10}})
    call_id = (await inbound_call(client, PHONE_SALES))["id"]
    offers = {agent: (await wait_for_offer(client, agent, call_id))["id"] for agent in (1, 2, 4)}
    declined = await client.post(f"{API}/offers/{offers[2]}/decline", headers=basic())
    assert declined.status == 200
    await post_json(client, f"{API}/offers/{offers[1]}/accept")
    await wait_for_status(client, call_id, "finished")

    calls = await _calls(redis)
    detail = await calls.detail(call_id)
    assert detail is not None
    call, entries = detail
    assert _without_times(entries) == [
        {"event": "created", "call_type": "Voice Inbound (API)"},
        *({"event": "offered", "agent_id": a, "offer_id": offers[a]} for a in (1, 2, 4)),
        {"event": "declined", "agent_id": 2, "offer_id": offers[2]},
        {"event": "accepted", "agent_id": 1, "offer_id": offers[1]},
        {"event": "withdrawn", "agent_id": 4, "offer_id": offers[4]},
        {"event": "status", "from": "assigned", "to": "connecting"},
        {"event": "status", "from": "connecting", "to": "connected"},
        {
            "event": "status",
            "from": "connected",
            "to": "finished",
            "by": "disconnected_by_end_user",
        },
    ]
    times = [entry["at"] for entry in entries]
    assert times == sorted(times)
    created_at = clock.parse_iso(call.created_at)
    assert created_at is not None and times[0] == clock.to_ms(created_at)


async def test_a_failed_call_says_why_and_only_the_last_50_entries_are_kept(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    await load_tenant(redis)
    call_id = (await inbound_call(client, PHONE_SALES))["id"]
    calls = await _calls(redis)
    now = clock.now()

    def cast(current: Snapshot) -> Change:
        return Change(lifecycle.cast(current.call, ["Group 1"], now))

    for _ in range(60):
        assert await calls.apply(call_id, cast) is not None
    ended = await calls.apply(
        call_id,
        lambda current: Change(lifecycle.failed(current.call, now, FailReason.EXPIRED)),
    )
    assert ended is not None
    stored = await redis.lrange(TENANT.call_history(call_id), 0, -1)
    assert len(stored) == 50
    detail = await calls.detail(call_id)
    assert detail is not None
    entries = detail[1]
    assert _without_times(entries[-2:]) == [
        {"event": "cascade", "groups": ["Group 1"]},
        {"event": "status", "from": "queued", "to": "failed", "reason": "expired"},
    ]
    assert entries[0]["event"] == "created"
    # A stale write (of an older revision) is refused, and writes no history either.
    stale = Snapshot(ended.call, ended.meta, ended.rev - 1)
    assert await calls._write(stale, Change(lifecycle.cast(ended.call, ["Group 2"], now))) == 0
    assert await redis.lrange(TENANT.call_history(call_id), 0, -1) == stored
