"""GET /apps/api/v1/wait_times: every queue in the platform's shape with its agents counted,
the filters (a menu and the menus under it, menu type, channel, language, the wait range),
bad queries, one tenant's queues apart from another's, no agent token; and the estimate checked
against the waits a queue served by a real worker and a slow agent really shows."""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from arq import Worker
from redis.asyncio import Redis

from dispatcher.domain import clock
from tests.conftest import basic, load_directory
from tests.dispatcher.http.test_openapi import conforming
from tests.workers.conftest import (
    API,
    SOLO_MENU,
    TENANT,
    inbound_call,
    offers_of,
    post_json,
    tenant_document,
    wait_for_offer,
    wait_for_status,
)

WAIT_TIMES = f"{API}/wait_times"
TENANT_ONLY = {"message": "This route needs the tenant's API token, not an agent's"}
SUPPORT, SUBSCRIPTION, RENEWALS = 70, 71, 72
NESTED = [
    {"id": SUPPORT, "name": "Support", "type": "ivr_menu"},
    {"id": SUBSCRIPTION, "name": "Subscription", "type": "ivr_menu", "parent_id": SUPPORT,
     "routing": "cascade", "groups": [[3], [4]]},
    {"id": RENEWALS, "name": "Renewals", "type": "mobile_menu", "parent_id": SUBSCRIPTION,
     "routing": "multicast", "groups": [[10, 11]]},
]  # fmt: skip


def record(
    menu_id: int, menu_type: str, wait: int | None, path: str, agents: tuple[int, int, int]
) -> dict[str, Any]:
    logged_in, available, breakthrough = agents
    return {
        "menu_id": menu_id,
        "menu_type": menu_type,
        "voice_call": wait,
        "materialized_path": path,
        "logged_in_agents": logged_in,
        "available_agents": available,
        "breakthrough_agents": breakthrough,
    }


# Every queue with nobody waiting, agent 4 unavailable (logged in, not taking calls) and agent
# 11 offline. Lock Star cascades to agent 4, Subscription too: their breakthrough agent.
IDLE = {
    9: record(9, "mobile_menu", 0, "Lock Star", (3, 2, 1)),
    50: record(50, "web_menu", 0, "Web Support", (2, 1, 0)),
    51: record(51, "ivr_menu", 0, "Phone Sales", (3, 2, 0)),
    60: record(60, "ivr_menu", 0, "Race", (9, 9, 0)),
    SOLO_MENU: record(SOLO_MENU, "ivr_menu", 0, "Solo", (1, 1, 0)),
    SUPPORT: record(SUPPORT, "ivr_menu", None, "Support", (0, 0, 0)),  # no agent: no estimate
    SUBSCRIPTION: record(SUBSCRIPTION, "ivr_menu", 0, "Support / Subscription", (2, 1, 1)),
    RENEWALS: record(RENEWALS, "mobile_menu", 0, "Support / Subscription / Renewals", (1, 1, 0)),
}


def document(menus: dict[int, dict[str, Any]] | None = None) -> dict[str, Any]:
    built = tenant_document(menus=menus)
    built["tenants"][0]["menus"] += copy.deepcopy(NESTED)
    return built


async def set_status(client: TestClient[Any, Any], agent_id: int, status: str) -> None:
    response = await client.put(
        f"{API}/agents/{agent_id}/status", json={"status": status}, headers=basic()
    )
    assert response.status == 200, await response.text()


async def wait_times(
    client: TestClient[Any, Any], query: str, auth: dict[str, str] | None = None
) -> tuple[int, Any]:
    response = await client.get(f"{WAIT_TIMES}?{query}", headers=auth or basic())
    return response.status, await conforming(response, WAIT_TIMES)


@pytest.fixture
async def directory(client: TestClient[Any, Any], redis: Redis) -> dict[str, Any]:
    loaded = document()
    await load_directory(redis, loaded)
    await set_status(client, 4, "unavailable")
    await set_status(client, 11, "offline")
    return loaded


@pytest.mark.parametrize(
    ("query", "menus"),
    [
        ("lang=en", list(IDLE)),
        ("lang=en&channel_type=voice_call", list(IDLE)),
        ("lang=en&channel_type=chat", []),  # no queue takes chats
        (f"lang=en&menu_id={SUPPORT}", [SUPPORT, SUBSCRIPTION, RENEWALS]),
        (f"lang=en&menu_id={SUBSCRIPTION}", [SUBSCRIPTION, RENEWALS]),
        (f"lang=en&menu_id={SUPPORT}&menu_type=mobile_menu", [RENEWALS]),
        ("lang=en&menu_type=web_menu", [50]),
        ("lang=en&menu_id=51", [51]),
        ("lang=en&wait[to]=1", [m for m in IDLE if m != SUPPORT]),  # null is in no range
        ("lang=en&wait[from]=1", []),
    ],
)
async def test_every_queue_in_the_platforms_shape_and_the_filters(
    client: TestClient[Any, Any], directory: Any, query: str, menus: list[int]
) -> None:
    assert await wait_times(client, query) == (200, [IDLE[menu_id] for menu_id in menus])


async def test_a_language_counts_the_agents_who_speak_it_in_the_menus_offering_it(
    client: TestClient[Any, Any], directory: Any
) -> None:
    # Only Lock Star offers Korean, and only agent 2 of its agents speaks it.
    korean = record(9, "mobile_menu", 0, "Lock Star", (1, 1, 0))
    assert await wait_times(client, "lang=ko") == (200, [korean])


async def queue_behind_a_busy_agent(client: TestClient[Any, Any], redis: Redis) -> None:
    """Three calls waiting in Solo, its one agent unavailable, and a rate learnt of one call
    taken every 2 s (as accept_offer.lua records them): (3 + 1) / 0.5 = an 8 s estimate."""
    await set_status(client, 1, "unavailable")
    for _ in range(3):
        await inbound_call(client, SOLO_MENU)
    now_ms = clock.to_ms(clock.now())
    taken = [f"{now_ms - 2_000 * i} {10_000 - 2_000 * i}" for i in range(4)]
    await redis.rpush(TENANT.recent_waits(SOLO_MENU), *taken)


async def test_a_backlog_gets_its_estimate_and_the_wait_range_selects_it(
    client: TestClient[Any, Any], redis: Redis, directory: Any
) -> None:
    await queue_behind_a_busy_agent(client, redis)
    solo = record(SOLO_MENU, "ivr_menu", 8, "Solo", (1, 0, 0))
    assert await wait_times(client, f"lang=en&menu_id={SOLO_MENU}") == (200, [solo])
    assert await wait_times(client, "lang=en&wait[from]=5") == (200, [solo])
    assert await wait_times(client, "lang=en&wait[from]=8&wait[to]=8") == (200, [solo])
    assert await wait_times(client, "lang=en&wait[from]=9") == (200, [])
    # Lock Star and Phone Sales lost agent 1 as an available agent too.
    status, body = await wait_times(client, "lang=en&wait[to]=7")
    assert (status, [r["menu_id"] for r in body]) == (200, [9, 50, 51, 60, 71, 72])


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "lang is required"),
        ("lang=", "lang is required"),
        ("lang=xy", "Language 'xy' is not found"),
        ("lang=en&menu_id=abc", "menu_id must be a positive integer"),
        ("lang=en&menu_id=0", "menu_id must be a positive integer"),
        ("lang=en&menu_id=999", "menu_id 999 is not found"),
        ("lang=en&channel_type=sms", "channel_type must be voice_call or chat"),
        ("lang=en&menu_type=phone", "menu_type must be one of ivr_menu, mobile_menu, web_menu"),
        ("lang=en&wait[from]=0", "wait[from] must be a positive integer"),
        ("lang=en&wait[to]=-3", "wait[to] must be a positive integer"),
        ("lang=en&wait[from]=5&wait[to]=4", "wait[to] must not be below wait[from]"),
    ],
)
async def test_bad_queries_are_400(
    client: TestClient[Any, Any], directory: Any, query: str, message: str
) -> None:
    assert await wait_times(client, query) == (400, {"message": message})


async def test_an_agent_token_is_refused(client: TestClient[Any, Any], directory: Any) -> None:
    agent = basic("demo/2", "demo-agent-2")
    assert await wait_times(client, "lang=en", agent) == (403, TENANT_ONLY)


async def test_a_tenant_sees_its_own_queues_only(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    both = document()
    other = copy.deepcopy(both["tenants"][0])
    other.update(subdomain="other", api_tokens=["other-token"])
    both["tenants"].append(other)
    await load_directory(redis, both)
    await queue_behind_a_busy_agent(client, redis)
    query = f"lang=en&menu_id={SOLO_MENU}"
    assert await wait_times(client, query) == (
        200,
        [record(SOLO_MENU, "ivr_menu", 8, "Solo", (1, 0, 0))],
    )
    assert await wait_times(client, query, basic("other", "other-token")) == (
        200,
        [record(SOLO_MENU, "ivr_menu", 0, "Solo", (1, 1, 0))],
    )


# The estimate against the real waits: Solo's one agent takes each offer ACCEPT_DELAY_S after
# it rings; the simulated end user talks 0.1 s, then agent 1 is free for the next call.
ACCEPT_DELAY_S = 0.4
WARM_UP, BURST = 3, 5
# Waits are whole seconds on both sides (the estimate's and the call's wait_duration): a
# second of rounding each way, and the first call's ring time the estimate does not count.
MEAN_ERROR_S, WORST_ERROR_S = 1.5, 3


@contextlib.asynccontextmanager
async def slow_agent(client: TestClient[Any, Any]) -> AsyncIterator[None]:
    """Agent 1 accepting each of its offers ACCEPT_DELAY_S after seeing it, until stopped."""

    async def accept_forever() -> None:
        while True:
            offers = await offers_of(client, 1)
            if not offers:
                await asyncio.sleep(0.02)
                continue
            await asyncio.sleep(ACCEPT_DELAY_S)
            await post_json(client, f"{API}/offers/{offers[0]['id']}/accept")

    task = asyncio.create_task(accept_forever())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_the_estimate_follows_the_waits_a_served_queue_really_shows(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    patient = {"offer_timeout_s": 10, "max_wait_s": 60}
    await load_directory(redis, document(menus={SOLO_MENU: patient}))
    query = f"lang=en&menu_id={SOLO_MENU}"
    async with slow_agent(client):
        # A first burst teaches the menu its pace (the gaps between its assignments).
        warm_up = [(await inbound_call(client, SOLO_MENU))["id"] for _ in range(WARM_UP)]
        for call_id in warm_up:
            await wait_for_status(client, call_id, "finished", timeout=30)
        estimates, calls = [], []
        for _ in range(BURST):
            status, [solo] = await wait_times(client, query)
            estimates.append(solo["voice_call"])
            calls.append((await inbound_call(client, SOLO_MENU))["id"])
        waits = [
            (await wait_for_status(client, call_id, "finished", timeout=30))["wait_duration"]
            for call_id in calls
        ]
    errors = [abs(estimate - wait) for estimate, wait in zip(estimates, waits, strict=True)]
    assert estimates == sorted(estimates) and estimates[-1] >= 2, (estimates, waits)
    assert sum(errors) / len(errors) <= MEAN_ERROR_S, (estimates, waits)
    assert max(errors) <= WORST_ERROR_S, (estimates, waits)


async def test_an_accept_records_when_the_call_was_taken_and_how_long_it_waited(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    await load_directory(redis, document(menus={SOLO_MENU: {"offer_timeout_s": 5}}))
    call_id = (await inbound_call(client, SOLO_MENU))["id"]
    offer = await wait_for_offer(client, 1, call_id)
    assigned = await post_json(client, f"{API}/offers/{offer['id']}/accept")
    queued_at = clock.parse_iso(assigned["queued_at"])
    assigned_at = clock.parse_iso(assigned["assigned_at"])
    assert queued_at is not None and assigned_at is not None
    taken_ms = clock.to_ms(assigned_at)
    expected = f"{taken_ms} {taken_ms - clock.to_ms(queued_at)}".encode()
    assert await redis.lrange(TENANT.recent_waits(SOLO_MENU), 0, -1) == [expected]
