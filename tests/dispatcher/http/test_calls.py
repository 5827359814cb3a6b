"""POST /calls beyond the seed examples: 202 choices, capacity, flags, lists and pagination."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from tests.conftest import basic, demo_document, load_directory

CALLS = "/apps/api/v1/calls"
OUTBOUND = {
    "call_type": "Voice Outbound (API)",
    "agent_email": "admin@somedomain.com",
    "end_user_number": "+1 859-657-9625",
    "lang": "en",
}
INBOUND = {"call_type": "Voice Inbound (API)", "menu_id": 9, "end_user_number": "+1 205-123-4567"}


async def _load(redis: Redis, change: Any) -> None:
    document = demo_document()
    change(document["tenants"][0])
    await load_directory(redis, document)


async def test_agent_must_choose_among_several_outbound_numbers(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    await _load(redis, lambda t: t["settings"].update(default_outbound_number=None))
    response = await client.post(
        CALLS, json={**OUTBOUND, "outbound_number": "+1 760-867-5309"}, headers=basic()
    )
    assert response.status == 202
    body = await response.json()
    assert body == {
        "call_type": "Voice Outbound (API)",
        "agent_email": "admin@somedomain.com",
        "end_user_number": "+18596579625",
        "lang": "en",
        "call_id": 1,
        "pending_action": "select_outbound_number",
        "choices": ["+16285550199", "+13392195276"],
    }
    call = await (await client.get(f"{CALLS}/1", headers=basic())).json()
    assert (call["status"], call["outbound_number"]) == ("assigned", None)


async def test_agent_must_choose_among_the_contacts_numbers(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    def two_numbers(tenant: dict[str, Any]) -> None:
        tenant["contacts"][0]["phone_numbers"] = ["+1 859-657-9625", "+1 859-657-9626"]

    await _load(redis, two_numbers)
    body = {
        "call_type": "Voice Outbound (API)",
        "agent_email": "agent@somedomain.com",
        "ticket_id": 71450,
    }
    response = await client.post(CALLS, json=body, headers=basic())
    assert response.status == 202
    assert await response.json() == {
        "call_type": "Voice Outbound (API)",
        "agent_email": "agent@somedomain.com",
        "ticket_id": "71450",
        "lang": "en",
        "call_id": 1,
        "pending_action": "select_end_user_number",
        "choices": ["+18596579625", "+18596579626"],
    }
    # Naming one of the contact's numbers settles the choice.
    await redis.hset("dsp:t:{demo}:agent:2", "voice", "0")
    settled = await client.post(
        CALLS, json={**body, "end_user_number": "+1 859-657-9626"}, headers=basic()
    )
    assert settled.status == 201


async def test_a_single_managed_number_needs_no_choice(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    def one_number(tenant: dict[str, Any]) -> None:
        tenant["settings"]["default_outbound_number"] = None
        tenant["outbound_numbers"] = tenant["outbound_numbers"][:1]

    await _load(redis, one_number)
    response = await client.post(CALLS, json=OUTBOUND, headers=basic())
    assert response.status == 201
    assert (await response.json())["outbound_number"] == "+16285550199"


async def test_no_voice_number_at_all_is_refused(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    def none(tenant: dict[str, Any]) -> None:
        tenant["settings"]["default_outbound_number"] = None
        tenant["outbound_numbers"] = []

    await _load(redis, none)
    response = await client.post(CALLS, json=OUTBOUND, headers=basic())
    assert response.status == 400
    assert await response.json() == {"message": "No outbound number is available"}


async def test_agent_at_capacity_is_not_available_for_the_next_call(
    client: TestClient[Any, Any], demo: dict[str, Any]
) -> None:
    first = await client.post(CALLS, json=OUTBOUND, headers=basic())
    assert first.status == 201
    second = await client.post(CALLS, json=OUTBOUND, headers=basic())
    assert second.status == 400
    assert await second.json() == {"message": "Agent is not available to take this call"}


async def test_concurrent_outbound_calls_claim_capacity_once(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    await _load(redis, lambda t: t["agents"][0]["capacity"].update(voice=2))
    responses = await asyncio.gather(
        *[client.post(CALLS, json=OUTBOUND, headers=basic()) for _ in range(30)]
    )
    assert sorted(r.status for r in responses) == [201, 201] + [400] * 28
    assert await redis.hget("dsp:t:{demo}:agent:1", "voice") == b"2"
    listed = await client.get(f"{CALLS}?call_type=Voice Outbound (API)", headers=basic())
    assert listed.headers["Total"] == "2"


@pytest.mark.parametrize("status", ["unavailable", "offline"])
async def test_agent_not_in_available_state(
    client: TestClient[Any, Any], demo: dict[str, Any], status: str
) -> None:
    changed = await client.put(
        "/apps/api/v1/agents/1/status", json={"status": status}, headers=basic()
    )
    assert changed.status == 200
    assert (await changed.json())["status"] == status
    response = await client.post(CALLS, json=OUTBOUND, headers=basic())
    assert response.status == 400
    assert await response.json() == {"message": "Agent is not available to take this call"}


async def test_inbound_end_users_keep_their_id(
    client: TestClient[Any, Any], demo: dict[str, Any]
) -> None:
    first = await (await client.post(CALLS, json=INBOUND, headers=basic())).json()
    second = await (await client.post(CALLS, json=INBOUND, headers=basic())).json()
    other = await (
        await client.post(
            CALLS, json={**INBOUND, "end_user_number": "+1 205-123-4568"}, headers=basic()
        )
    ).json()
    assert first["end_user"] == second["end_user"]
    assert first["end_user"]["id"] > 87  # numbered after the CRM's contacts
    assert other["end_user"]["id"] == first["end_user"]["id"] + 1
    assert first["participants"][0]["end_user_id"] == first["end_user"]["id"]


async def test_multicast_offers_every_group_at_creation(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    def multicast(tenant: dict[str, Any]) -> None:
        tenant["menus"][0].update(routing="multicast", groups=[[1], [], [2, 4]])

    await _load(redis, multicast)
    call = await (await client.post(CALLS, json=INBOUND, headers=basic())).json()
    assert call["offer_type"] == "multicast"
    assert [e["group"] for e in call["offer_events"]] == ["Group 1", "Group 3"]
    assert {e["casting_time"] for e in call["offer_events"]} == {call["created_at"]}


async def test_cascade_skips_empty_groups(client: TestClient[Any, Any], redis: Redis) -> None:
    await _load(redis, lambda t: t["menus"][0].update(groups=[[], [2]]))
    call = await (await client.post(CALLS, json=INBOUND, headers=basic())).json()
    assert [e["group"] for e in call["offer_events"]] == ["Group 2"]


@pytest.mark.parametrize(
    ("recording", "given", "stored"),
    [
        ("ask", "recording_permission_granted", "granted"),
        ("ask", "recording_permission_denied", "denied"),
        ("ask", None, "not_asked"),
        ("never", "recording_permission_granted", "not_asked"),
        ("always", "recording_permission_denied", "not_asked"),
    ],
)
async def test_recording_permission_only_honoured_when_the_queue_asks(
    client: TestClient[Any, Any], redis: Redis, recording: str, given: str | None, stored: str
) -> None:
    await _load(redis, lambda t: t["menus"][0].update(recording=recording))
    body = {**INBOUND, "recording_permission": given} if given else INBOUND
    call = await (await client.post(CALLS, json=body, headers=basic())).json()
    assert call["recording_permission"] == stored


async def test_unknown_recording_permission_is_refused(
    client: TestClient[Any, Any], demo: dict[str, Any]
) -> None:
    response = await client.post(
        CALLS, json={**INBOUND, "recording_permission": "yes"}, headers=basic()
    )
    assert response.status == 400
    assert await response.json() == {"message": "recording_permission is not valid"}


async def test_weekly_hours_close_the_menu(client: TestClient[Any, Any], redis: Redis) -> None:
    closed_all_week = {"timezone": "Asia/Tokyo", "weekly": {"mon": ["00:00-00:01"]}}
    await _load(redis, lambda t: t["menus"][0].update(hours=closed_all_week))
    response = await client.post(CALLS, json=INBOUND, headers=basic())
    # Open one minute a week: this run is all but certainly outside it.
    assert response.status == 400
    assert await response.json() == {
        "message": "Menu is in 'after hours' state, can't accept incoming calls"
    }


async def test_open_all_week_hours_accept_calls(client: TestClient[Any, Any], redis: Redis) -> None:
    day = ["00:00-24:00"]
    week = {d: day for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    await _load(redis, lambda t: t["menus"][0].update(hours={"weekly": week}))
    response = await client.post(CALLS, json=INBOUND, headers=basic())
    assert response.status == 201


async def test_customer_flags(client: TestClient[Any, Any], demo: dict[str, Any]) -> None:
    await client.post(CALLS, json=INBOUND, headers=basic())
    url = f"{CALLS}/1/customer_flag"
    fresh = await client.get(url, headers=basic())
    assert await fresh.json() == {
        "verified_customer": False,
        "bad_actor": False,
        "repeat_customer": False,
    }
    patched = await client.patch(
        url, json={"verified_customer": True, "repeat_customers": True, "other": 1}, headers=basic()
    )
    assert patched.status == 200
    expected = {"verified_customer": True, "bad_actor": False, "repeat_customer": True}
    assert await patched.json() == expected
    assert await (await client.get(url, headers=basic())).json() == expected
    bad = await client.patch(url, json={"bad_actor": "yes"}, headers=basic())
    assert bad.status == 400
    assert await bad.json() == {"message": "bad_actor must be a boolean"}


@pytest.mark.parametrize("call_id", ["999", "abc", "-1", "1.5"])
async def test_unknown_call_is_404(
    client: TestClient[Any, Any], demo: dict[str, Any], redis: Redis, call_id: str
) -> None:
    for method, path in [
        ("GET", f"{CALLS}/{call_id}"),
        ("GET", f"{CALLS}/{call_id}/customer_flag"),
        ("PATCH", f"{CALLS}/{call_id}/customer_flag"),
    ]:
        response = await client.request(method, path, json={"bad_actor": True}, headers=basic())
        assert response.status == 404
        assert await response.json() == {"message": "Call not found"}
    assert await redis.keys("dsp:t:{demo}:call:*") == []


async def _create_calls(client: TestClient[Any, Any], count: int) -> list[dict[str, Any]]:
    created = []
    for _ in range(count):
        created.append(await (await client.post(CALLS, json=INBOUND, headers=basic())).json())
    return created


async def test_pagination_headers_and_order(
    client: TestClient[Any, Any], demo: dict[str, Any]
) -> None:
    await _create_calls(client, 5)
    response = await client.get(f"{CALLS}?per=2&page=2", headers=basic())
    assert response.status == 200
    assert [c["id"] for c in await response.json()] == [3, 2]
    assert response.headers["Total"] == "5"
    assert response.headers["Per-Page"] == "2"
    host = f"http://{client.host}:{client.port}"
    assert response.headers["Link"] == ", ".join(
        [
            f'<{host}{CALLS}?per=2&page=1>; rel="first"',
            f'<{host}{CALLS}?per=2&page=3>; rel="last"',
            f'<{host}{CALLS}?per=2&page=3>; rel="next"',
            f'<{host}{CALLS}?per=2&page=1>; rel="prev"',
        ]
    )
    ascending = await client.get(f"{CALLS}?sort_direction=asc&per=3", headers=basic())
    assert [c["id"] for c in await ascending.json()] == [1, 2, 3]
    beyond = await client.get(f"{CALLS}?page=9", headers=basic())
    assert await beyond.json() == []


async def test_list_filters(client: TestClient[Any, Any], demo: dict[str, Any]) -> None:
    await _create_calls(client, 2)
    outbound = await client.post(CALLS, json=OUTBOUND, headers=basic())
    assert outbound.status == 201
    queued = await client.get(f"{CALLS}?status=queued", headers=basic())
    assert [c["id"] for c in await queued.json()] == [2, 1]
    typed = await client.get(f"{CALLS}?call_type=OutboundCall", headers=basic())
    assert [c["id"] for c in await typed.json()] == [3]
    both = await client.get(f"{CALLS}?call_type=IncomingCall&status=assigned", headers=basic())
    assert (await both.json(), both.headers["Total"]) == ([], "0")
    first = await (await client.get(f"{CALLS}/1", headers=basic())).json()
    window = await client.get(
        CALLS,
        params={"created_at[from]": first["created_at"], "created_at[to]": first["created_at"]},
        headers=basic(),
    )
    assert 1 in [c["id"] for c in await window.json()]
    future = await client.get(
        CALLS, params={"created_at[from]": "2999-01-01T00:00:00Z"}, headers=basic()
    )
    assert await future.json() == []


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("page=0", "page must be a positive integer"),
        ("page=x", "page must be a positive integer"),
        ("per=-1", "per must be a positive integer"),
        ("status=dancing", "status is not valid"),
        ("call_type=Fax", "call_type is not valid"),
        ("created_at[from]=yesterday", "created_at[from] is not well formed"),
        ("created_at[to]=2020-13-01", "created_at[to] is not well formed"),
        ("sort_column=rating", "sort_column must be one of id, created_at"),
        ("sort_direction=up", "sort_direction must be asc or desc"),
    ],
)
async def test_bad_list_parameters(
    client: TestClient[Any, Any], demo: dict[str, Any], query: str, message: str
) -> None:
    response = await client.get(f"{CALLS}?{query}", headers=basic())
    assert response.status == 400
    assert await response.json() == {"message": message}


async def test_per_is_capped_at_1000(client: TestClient[Any, Any], demo: dict[str, Any]) -> None:
    response = await client.get(f"{CALLS}?per=5000", headers=basic())
    assert response.headers["Per-Page"] == "1000"


async def test_many_calls_in_one_millisecond_still_list_in_id_order(
    client: TestClient[Any, Any], demo: dict[str, Any]
) -> None:
    responses = await asyncio.gather(
        *[client.post(CALLS, json=INBOUND, headers=basic()) for _ in range(25)]
    )
    assert {r.status for r in responses} == {201}
    for direction, expected in (("asc", list(range(1, 26))), ("desc", list(range(25, 0, -1)))):
        for column in ("id", "created_at"):
            listed = await client.get(
                f"{CALLS}?per=100&sort_column={column}&sort_direction={direction}", headers=basic()
            )
            calls = await listed.json()
            assert [c["id"] for c in calls] == expected
    created = [c["created_at"] for c in calls]
    assert created == sorted(created, reverse=True)
