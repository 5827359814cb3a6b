"""Routing by the worker: cascade and multicast offers, accept races, language, expiry,
declines, capacity, agents becoming available, and the agent's SSE stream."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from arq import Worker
from redis.asyncio import Redis

from dispatcher.domain import clock
from tests.conftest import basic
from tests.workers.conftest import (
    API,
    CALLS,
    EXTRA_AGENTS,
    MULTICAST_MENU,
    OFFER_GONE,
    SOLO_MENU,
    TENANT,
    CallEvents,
    get_call,
    get_json,
    inbound_call,
    load_tenant,
    next_event,
    offers_of,
    outbound_call,
    post_json,
    wait_for_job,
    wait_for_offer,
    wait_for_status,
)

LOCK_STAR = 9  # cascade: Group 1 = agents 1 and 2 (2 speaks ko), Group 2 = agent 4


def groups_of(call: dict[str, Any]) -> list[str]:
    return [event["group"] for event in call["offer_events"]]


async def test_cascade_offers_group_1_then_group_2_and_the_accepted_call_runs_to_its_end(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    slow = {"cascade_interval_s": 0.5, "offer_timeout_s": 3, "max_wait_s": 5}
    await load_tenant(redis, menus={LOCK_STAR: slow})
    async with CallEvents(redis) as events:
        created = await inbound_call(client, LOCK_STAR)
        call_id = created["id"]
        assert (created["offer_type"], groups_of(created)) == ("cascade", ["Group 1"])

        first = await wait_for_offer(client, 1, call_id)
        assert set(first) == {"id", "call_id", "group", "offered_at", "expires_at"}
        assert (first["call_id"], first["group"]) == (call_id, "Group 1")
        offered_at = clock.parse_iso(first["offered_at"])
        expires_at = clock.parse_iso(first["expires_at"])
        assert offered_at is not None and expires_at is not None
        assert (expires_at - offered_at).total_seconds() == 3
        assert (await wait_for_offer(client, 2, call_id))["group"] == "Group 1"
        # Agent 4 (Group 2) has nothing while the call has cast Group 1 only: read in this
        # order, the two answers prove no Group 2 offer existed yet.
        assert await offers_of(client, 4) == []
        assert groups_of(await get_call(client, call_id)) == ["Group 1"]

        second = await wait_for_offer(client, 4, call_id)
        assert (second["call_id"], second["group"]) == (call_id, "Group 2")
        call = await get_call(client, call_id)
        assert groups_of(call) == ["Group 1", "Group 2"]
        assert all(clock.parse_iso(e["casting_time"]) for e in call["offer_events"])

        response = await client.post(f"{API}/offers/{second['id']}/accept", headers=basic())
        assert response.status == 200
        assigned = await response.json()
        assert assigned["id"] == call_id
        assert assigned["status"] == "assigned"
        assert assigned["agent_info"] == {
            "id": 4,
            "name": "John Doe",
            "first_name": "John",
            "last_name": "Doe",
            "agent_number": "9",
            "avatar_url": "https://foobar.com/johndoe",
        }
        assert assigned["assigned_at"] is not None
        assert assigned["wait_duration"] >= 0
        assert [(p["type"], p["user_id"]) for p in assigned["participants"]][0] == ("agent", 4)
        assert [p["type"] for p in assigned["participants"]] == ["agent", "end_user"]
        # The other agents' offers are withdrawn at once.
        assert await offers_of(client, 1) == []
        assert await offers_of(client, 2) == []

        finished = await wait_for_status(client, call_id, "finished")
        assert await events.wait_until(call_id, "finished") == [
            "queued",  # Group 2 cast
            "assigned",
            "connecting",
            "connected",
            "finished",
        ]
    assert finished["connected_at"] is not None
    assert finished["ends_at"] is not None
    assert finished["call_duration"] >= 0
    assert finished["agent_info"]["id"] == 4
    assert finished["fail_reason"] == "nothing"
    assert {p["status"] for p in finished["participants"]} == {"finished"}
    agent = await get_json(client, f"{API}/agents/4")
    assert (agent["id"], agent["status"], agent["active_calls"]) == (4, "available", 0)


async def test_multicast_accept_race_has_exactly_one_winner(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    await load_tenant(redis, menus={MULTICAST_MENU: {"offer_timeout_s": 5, "max_wait_s": 10}})
    async with CallEvents(redis) as events:
        call_id = (await inbound_call(client, MULTICAST_MENU))["id"]
        offers = [await wait_for_offer(client, agent_id, call_id) for agent_id in EXTRA_AGENTS]
        assert {offer["group"] for offer in offers} == {"Group 1"}
        assert len({offer["id"] for offer in offers}) == 10

        responses = await asyncio.gather(
            *[client.post(f"{API}/offers/{o['id']}/accept", headers=basic()) for o in offers]
        )
        assert sorted(r.status for r in responses) == [200] + [409] * 9
        bodies = [await r.json() for r in responses]
        winners = [i for i, r in enumerate(responses) if r.status == 200]
        winner = EXTRA_AGENTS[winners[0]]
        assert bodies[winners[0]]["status"] == "assigned"
        assert bodies[winners[0]]["agent_info"]["id"] == winner
        for response, body in zip(responses, bodies, strict=True):
            if response.status == 409:
                assert body == OFFER_GONE
        for agent_id in EXTRA_AGENTS:
            if agent_id != winner:
                assert await offers_of(client, agent_id) == []

        await wait_for_status(client, call_id, "finished")
        assert (await get_call(client, call_id))["agent_info"]["id"] == winner
        assert (await events.wait_until(call_id, "finished")).count("assigned") == 1
    for agent_id in EXTRA_AGENTS:
        assert (await get_json(client, f"{API}/agents/{agent_id}"))["active_calls"] == 0


async def test_an_agent_without_the_calls_language_is_never_offered_it(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    await load_tenant(redis, menus={LOCK_STAR: {"cascade_interval_s": 0.2, "max_wait_s": 0.8}})
    call_id = (await inbound_call(client, LOCK_STAR, lang="ko"))["id"]
    offer = await wait_for_offer(client, 2, call_id)  # agent 2 speaks ko
    assert offer["group"] == "Group 1"
    assert await offers_of(client, 1) == []

    ended = await wait_for_status(client, call_id, "failed")
    assert ended["fail_reason"] == "expired"
    assert groups_of(ended) == ["Group 1", "Group 2"]  # Group 2 (agent 4, en only) was cast
    # Every offer ever made for the call: agent 2's alone.
    assert await redis.hkeys(TENANT.call_offers(call_id)) == [b"2"]
    for agent_id in (1, 4):
        assert await offers_of(client, agent_id) == []


async def test_a_call_nobody_accepts_expires_and_a_late_accept_conflicts(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    await load_tenant(redis, menus={51: {"offer_timeout_s": 2, "max_wait_s": 0.8}})
    created = await inbound_call(client, 51)  # multicast to agents 1, 2 and 4
    call_id = created["id"]
    offer = await wait_for_offer(client, 1, call_id)

    ended = await wait_for_status(client, call_id, "failed")
    assert ended["fail_reason"] == "expired"
    assert ended["ends_at"] is not None
    assert ended["agent_info"] is None
    queued_at = clock.parse_iso(created["queued_at"])
    ends_at = clock.parse_iso(ended["ends_at"])
    assert queued_at is not None and ends_at is not None
    assert 0.8 <= (ends_at - queued_at).total_seconds() < 0.8 + 0.3
    assert [p["status"] for p in ended["participants"]] == ["failed"]

    # The offer was made for 2 s but the call has ended: accepting it now is a conflict.
    response = await client.post(f"{API}/offers/{offer['id']}/accept", headers=basic())
    assert (response.status, await response.json()) == (409, OFFER_GONE)
    assert (await get_call(client, call_id))["status"] == "failed"


async def test_a_declining_agent_is_skipped_and_a_later_group_is_offered_the_call(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    cascade = {"groups": [[1], [4]], "cascade_interval_s": 0.3, "offer_timeout_s": 5}
    await load_tenant(redis, menus={LOCK_STAR: {**cascade, "max_wait_s": 5}})
    call_id = (await inbound_call(client, LOCK_STAR))["id"]
    offer = await wait_for_offer(client, 1, call_id)

    declined = await post_json(client, f"{API}/offers/{offer['id']}/decline")
    assert declined == {"id": offer["id"], "call_id": call_id, "state": "declined"}
    assert await offers_of(client, 1) == []
    response = await client.post(f"{API}/offers/{offer['id']}/decline", headers=basic())
    assert (response.status, await response.json()) == (409, OFFER_GONE)

    later = await wait_for_offer(client, 4, call_id)
    assert later["group"] == "Group 2"
    # Routing ran again (Group 2 cast), yet agent 1 was not offered the call a second time.
    assert await offers_of(client, 1) == []
    offered = await redis.hgetall(TENANT.call_offers(call_id))
    assert offered == {b"1": str(offer["id"]).encode(), b"4": str(later["id"]).encode()}
    accepted = await post_json(client, f"{API}/offers/{later['id']}/accept")
    assert (accepted["status"], accepted["agent_info"]["id"]) == ("assigned", 4)


async def test_an_agent_at_capacity_is_offered_the_waiting_call_once_free(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    await load_tenant(
        redis,
        settings={"simulator": {"answer_after_s": 0.05, "talk_time_s": 30}},
        menus={SOLO_MENU: {"offer_timeout_s": 5, "max_wait_s": 10}},
    )
    outbound = await outbound_call(client)  # agent 1 (voice capacity 1) holds this call
    assert (outbound["status"], outbound["agent_info"]["id"]) == ("assigned", 1)
    await wait_for_status(client, outbound["id"], "connected")
    assert (await get_json(client, f"{API}/agents/1"))["active_calls"] == 1

    waiting = (await inbound_call(client, SOLO_MENU))["id"]
    await wait_for_job(redis, f"route_call:demo:{waiting}")  # the first routing step ran
    assert await offers_of(client, 1) == []
    assert (await get_call(client, waiting))["status"] == "queued"

    ended = await post_json(client, f"{CALLS}/{outbound['id']}/finish")
    assert (ended["status"], ended["disconnected_by"]) == ("finished", "disconnected_by_agent")
    offer = await wait_for_offer(client, 1, waiting)
    assert offer["group"] == "Group 1"
    accepted = await post_json(client, f"{API}/offers/{offer['id']}/accept")
    assert (accepted["status"], accepted["agent_info"]["id"]) == ("assigned", 1)


async def test_an_agent_becoming_available_is_offered_the_waiting_call(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    await load_tenant(redis, menus={SOLO_MENU: {"offer_timeout_s": 5, "max_wait_s": 10}})
    away = await client.put(
        f"{API}/agents/1/status", json={"status": "unavailable"}, headers=basic()
    )
    assert (away.status, (await away.json())["status"]) == (200, "unavailable")

    call_id = (await inbound_call(client, SOLO_MENU))["id"]
    await wait_for_job(redis, f"route_call:demo:{call_id}")
    assert await offers_of(client, 1) == []

    back = await client.put(f"{API}/agents/1/status", json={"status": "available"}, headers=basic())
    assert back.status == 200
    agent = await back.json()
    assert (agent["id"], agent["email"], agent["status"]) == (
        1,
        "admin@somedomain.com",
        "available",
    )
    offer = await wait_for_offer(client, 1, call_id)
    assert (offer["call_id"], offer["group"]) == (call_id, "Group 1")
    assert (await get_call(client, call_id))["status"] == "queued"


class AgentStream:
    """GET /agents/{id}/events, read line by line with a timeout on every read."""

    def __init__(self, client: TestClient[Any, Any], agent_id: int) -> None:
        self._client = client
        self._agent_id = agent_id
        self._response: ClientResponse | None = None

    async def __aenter__(self) -> AgentStream:
        path = f"{API}/agents/{self._agent_id}/events"
        self._response = await self._client.get(path, headers=basic())
        assert self._response.status == 200
        assert self._response.headers["Content-Type"].startswith("text/event-stream")
        assert await self._line() == ": connected"  # subscribed: nothing can be missed now
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._response is not None:
            self._response.close()

    async def _line(self) -> str:
        assert self._response is not None
        line = await asyncio.wait_for(self._response.content.readline(), timeout=5)
        return line.decode().rstrip("\n")

    async def next_event(self) -> tuple[str, Any]:
        line = await self._line()
        while not line.startswith("event: "):  # blank separators and keep-alive comments
            line = await self._line()
        data = await self._line()
        assert data.startswith("data: ")
        return line.removeprefix("event: "), orjson.loads(data.removeprefix("data: "))


async def test_the_agents_event_stream_carries_the_offer_and_the_assignment(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    await load_tenant(redis, menus={SOLO_MENU: {"offer_timeout_s": 5, "max_wait_s": 10}})
    async with AgentStream(client, 1) as stream:
        call_id = (await inbound_call(client, SOLO_MENU))["id"]
        kind, data = await stream.next_event()
        assert kind == "offer"
        assert data == (await offers_of(client, 1))[0]
        assert set(data) == {"id", "call_id", "group", "offered_at", "expires_at"}
        assert (data["call_id"], data["group"]) == (call_id, "Group 1")

        await post_json(client, f"{API}/offers/{data['id']}/accept")
        assert await stream.next_event() == ("assigned", {"call_id": call_id})
        # Then every change of the call the agent holds, to its end.
        seen: list[str] = []
        while not seen or seen[-1] != "finished":
            kind, call = await stream.next_event()
            assert (kind, call["id"], call["agent_info"]["id"]) == ("call_updated", call_id, 1)
            seen.append(call["status"])
        assert seen == ["assigned", "connecting", "connected", "finished"]


async def test_offers_made_are_announced_on_the_tenants_channel(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    await load_tenant(redis, menus={51: {"offer_timeout_s": 5, "max_wait_s": 10}})
    async with redis.pubsub() as pubsub:
        await pubsub.subscribe(TENANT.events)
        call_id = (await inbound_call(client, 51))["id"]  # multicast: agents 1, 2 and 4
        assert await next_event(pubsub) == {
            "type": "offers.made",
            "call_id": call_id,
            "agent_ids": [1, 2, 4],
        }


async def test_the_losers_event_stream_sees_the_offer_withdrawn(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    await load_tenant(redis, menus={51: {"offer_timeout_s": 5, "max_wait_s": 10}})
    async with AgentStream(client, 2) as stream:
        call_id = (await inbound_call(client, 51))["id"]  # multicast: agents 1, 2 and 4
        kind, mine = await stream.next_event()
        assert (kind, mine["call_id"]) == ("offer", call_id)

        winner = await wait_for_offer(client, 1, call_id)
        await post_json(client, f"{API}/offers/{winner['id']}/accept")
        assert await stream.next_event() == (
            "offer_withdrawn",
            {"id": mine["id"], "call_id": call_id},
        )
    assert await offers_of(client, 2) == []
    late = await client.post(f"{API}/offers/{mine['id']}/accept", headers=basic())
    assert (late.status, await late.json()) == (409, OFFER_GONE)


async def test_an_agent_with_voice_capacity_1_rings_for_one_call_and_never_holds_two(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    await load_tenant(
        redis,
        settings={"simulator": {"answer_after_s": 0.05, "talk_time_s": 0.3}},
        menus={SOLO_MENU: {"offer_timeout_s": 5, "max_wait_s": 10}},
    )
    first = (await inbound_call(client, SOLO_MENU))["id"]
    offer = await wait_for_offer(client, 1, first)
    second = (await inbound_call(client, SOLO_MENU, number="+1 205-123-4568"))["id"]
    await wait_for_job(redis, f"route_call:demo:{second}")
    # Ringing for the first call, the agent is not offered the second one.
    assert [o["call_id"] for o in await offers_of(client, 1)] == [first]

    await post_json(client, f"{API}/offers/{offer['id']}/accept")
    await wait_for_status(client, first, "connected")
    assert (await get_json(client, f"{API}/agents/1"))["active_calls"] == 1
    assert await offers_of(client, 1) == []
    assert (await get_call(client, second))["status"] == "queued"

    # The first call ends: the agent is free, and the waiting call rings for it.
    await wait_for_status(client, first, "finished")
    later = await wait_for_offer(client, 1, second)
    await post_json(client, f"{API}/offers/{later['id']}/accept")
    await wait_for_status(client, second, "connected")
    assert (await get_json(client, f"{API}/agents/1"))["active_calls"] == 1


async def test_offers_of_an_unknown_agent_are_not_found(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    await load_tenant(redis)
    response = await client.get(f"{API}/agents/999/offers", headers=basic())
    assert (response.status, await response.json()) == (404, {"message": "Agent not found"})
    assert await offers_of(client, 1) == []
