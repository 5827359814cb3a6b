"""The company do-not-call list's routes (http/dnc.py): the platform's answers per contact with
its exact texts, bodies refused whole with nothing written, expiry, removal, the check, pages
with their headers, 10,000 contacts at once, tenants apart, agents' tokens refused."""

from __future__ import annotations

import asyncio
import copy
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from dispatcher.domain import clock
from dispatcher.store.keys import TenantKeys
from tests.conftest import basic, demo_document, load_directory
from tests.dispatcher.http.test_openapi import conforming

DNC = "/apps/api/v1/outbound_dialer/dnc"
REMOVE = f"{DNC}/remove"
ONE = DNC + "/{phone_number}"
DEMO = TenantKeys("demo")
NOT_ON_THE_LIST = {"message": "Phone number is not on the DNC list"}
LATER = "2030-10-29 00:00:00 UTC"
ON_THE_LIST = "This call cannot be placed because the phone number is on the Company DNC list"


async def add(client: TestClient[Any, Any], contacts: Any, **auth: str) -> tuple[int, Any]:
    response = await client.post(DNC, json={"contacts": contacts}, headers=basic(**auth))
    return response.status, await conforming(response, DNC)


async def check(client: TestClient[Any, Any], number: str, **auth: str) -> tuple[int, Any]:
    response = await client.get(f"{DNC}/{quote(number)}", headers=basic(**auth))
    return response.status, await conforming(response, ONE)


async def test_the_platforms_example_is_created_then_updated(
    client: TestClient[Any, Any], demo: Any
) -> None:
    contacts = [
        {"phone_number": "+1-7187309219", "expires_at": LATER},
        {"phone_number": "+1-(358)-213-1634"},
    ]
    assert await add(client, contacts) == (
        200,
        [
            {"phone_number": "+1-7187309219", "expires_at": LATER, "status": "created"},
            {"phone_number": "+1-(358)-213-1634", "status": "created"},
        ],
    )
    # The same numbers written otherwise are the same entries; the first no longer expires.
    again = [
        {"phone_number": "+1 718 730 9219"},
        {"phone_number": "+13582131634", "expires_at": None},
    ]
    assert await add(client, again) == (
        200,
        [
            {"phone_number": "+1 718 730 9219", "status": "updated"},
            {"phone_number": "+13582131634", "expires_at": None, "status": "updated"},
        ],
    )
    status, entry = await check(client, "+17187309219")
    assert status == 200
    assert entry["phone_number"] == "+17187309219"
    assert entry["expires_at"] is None
    assert clock.parse_iso(entry["created_at"]) is not None
    for written in ("17187309219", "+1 (718) 730-9219"):
        assert await check(client, written) == (200, entry)
    unquoted = await client.get(f"{DNC}/+17187309219", headers=basic())  # a '+' as it is
    assert await unquoted.json() == entry


async def test_an_expiry_is_set_replaced_and_shown(client: TestClient[Any, Any], demo: Any) -> None:
    await add(client, [{"phone_number": "+1 415-555-0100", "expires_at": "2030-10-29T00:00:00Z"}])
    status, entry = await check(client, "+1 (415) 555-0100")
    assert (status, entry["expires_at"]) == (200, "2030-10-29T00:00:00.000Z")
    await add(client, [{"phone_number": "+14155550100", "expires_at": "2031-01-02T10:30:00+09:00"}])
    _, updated = await check(client, "+14155550100")
    assert updated == {**entry, "expires_at": "2031-01-02T01:30:00.000Z"}  # created_at kept


@pytest.mark.parametrize(
    ("contact", "error"),
    [
        ({"phone_number": "911"}, "emergency phone number is not allowed"),
        ({"phone_number": "9-1-1"}, "emergency phone number is not allowed"),
        ({"phone_number": "112"}, "emergency phone number is not allowed"),
        ({"phone_number": "+1 911"}, "emergency phone number is not allowed"),
        ({"phone_number": "+44 999"}, "emergency phone number is not allowed"),
        ({"phone_number": "911", "expires_at": "nope"}, "emergency phone number is not allowed"),
        ({"phone_number": "12"}, "phone_number is invalid"),
        ({"phone_number": ""}, "phone_number is invalid"),
        ({"phone_number": "call me"}, "phone_number is invalid"),
        ({"phone_number": "+1" + "5" * 80}, "phone_number is invalid"),
        ({"phone_number": "12", "expires_at": "nope"}, "phone_number is invalid"),
        ({"phone_number": "+14155550100", "expires_at": "2001-01-01 00:00:00 UTC"},
         "expires_at cannot be past date/time"),
        ({"phone_number": "+14155550100", "expires_at": "2001-01-01T00:00:00Z"},
         "expires_at cannot be past date/time"),
        ({"phone_number": "+14155550100", "expires_at": "tomorrow"}, "expires_at is invalid"),
        ({"phone_number": "+14155550100", "expires_at": ""}, "expires_at is invalid"),
        ({"phone_number": "+14155550100", "expires_at": "2030-02-30 00:00:00 UTC"},
         "expires_at is invalid"),
        ({"phone_number": "+14155550100", "expires_at": "2030-10-29 00:00:00 CET"},
         "expires_at is invalid"),
    ],
)  # fmt: skip
async def test_a_contact_fails_alone_with_the_platforms_text(
    client: TestClient[Any, Any], demo: Any, redis: Redis, contact: dict[str, Any], error: str
) -> None:
    good = {"phone_number": "+1 628-555-0142"}
    assert await add(client, [good, contact]) == (
        200,
        [{**good, "status": "created"}, {**contact, "status": "failed", "error": error}],
    )
    assert await redis.zrange(DEMO.dnc, 0, -1) == [b"+16285550142"]


async def test_a_past_expiry_is_refused_to_the_millisecond(
    client: TestClient[Any, Any], demo: Any
) -> None:
    just_past = clock.iso(clock.now() - timedelta(milliseconds=1))
    status, answer = await add(client, [{"phone_number": "+14155550100", "expires_at": just_past}])
    assert answer[0]["error"] == "expires_at cannot be past date/time"


async def test_an_entry_is_gone_from_its_expiry_on_and_comes_back_created(
    client: TestClient[Any, Any], demo: Any
) -> None:
    soon = clock.now() + timedelta(milliseconds=300)
    contacts = [{"phone_number": "+14155550100", "expires_at": clock.iso(soon)}]
    assert (await add(client, contacts))[1][0]["status"] == "created"
    assert (await check(client, "+14155550100"))[0] == 200
    await asyncio.sleep(max(0.0, (soon - clock.now()).total_seconds()) + 0.01)
    assert await check(client, "+14155550100") == (404, NOT_ON_THE_LIST)  # not swept yet
    listed = await client.get(DNC, headers=basic())
    assert (listed.headers["Total"], await listed.json()) == ("0", [])
    assert (await add(client, [{"phone_number": "+14155550100"}]))[1][0]["status"] == "created"
    _, entry = await check(client, "+14155550100")
    assert clock.parse_iso(entry["created_at"]) >= soon  # type: ignore[operator]


async def test_a_number_given_twice_is_created_then_updated(
    client: TestClient[Any, Any], demo: Any
) -> None:
    contacts = [
        {"phone_number": "+14155550100", "expires_at": LATER},
        {"phone_number": "+1 415 555 0100"},
    ]
    _, answer = await add(client, contacts)
    assert [entry["status"] for entry in answer] == ["created", "updated"]
    assert (await check(client, "+14155550100"))[1]["expires_at"] is None  # the last one's


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "Request body must be a JSON object"),
        ({}, "contacts is required"),
        ({"contacts": None}, "contacts must be an array"),
        ({"contacts": {"phone_number": "+14155550100"}}, "contacts must be an array"),
        ({"contacts": []}, "contacts must not be empty"),
        ({"contacts": [{"phone_number": "+14155550100"}, "+14155550101"]},
         "contacts[1] must be an object"),
        ({"contacts": [{"phone_number": "+14155550100"}, {"expires_at": LATER}]},
         "contacts[1].phone_number is required"),
        ({"contacts": [{"phone_number": None}]}, "contacts[0].phone_number is required"),
        ({"contacts": [{"phone_number": 14155550100}]},
         "contacts[0].phone_number must be a string"),
        ({"contacts": [{"phone_number": ["+14155550100"]}]},
         "contacts[0].phone_number must be a string"),
        ({"contacts": [{"phone_number": "+14155550100", "expires_at": 1893456000}]},
         "contacts[0].expires_at must be a string or null"),
    ],
)  # fmt: skip
async def test_a_body_of_the_wrong_shape_is_refused_whole(
    client: TestClient[Any, Any], demo: Any, redis: Redis, body: Any, message: str
) -> None:
    response = await client.post(DNC, json=body, headers=basic())
    assert (response.status, await conforming(response, DNC)) == (400, {"message": message})
    assert await redis.exists(DEMO.dnc, DEMO.dnc_expiring) == 0


async def test_ten_thousand_contacts_in_one_request_and_not_one_more(
    client: TestClient[Any, Any], demo: Any, redis: Redis
) -> None:
    numbers = [f"+1628555{n:04d}" for n in range(10_000)]
    contacts = [
        {"phone_number": number, **({"expires_at": LATER} if n % 2 else {})}
        for n, number in enumerate(numbers)
    ]
    too_many = [*contacts, {"phone_number": "+14155550100"}]
    status, refused = await add(client, too_many)
    assert (status, refused) == (
        400,
        {"message": "contacts must hold at most 10000 entries a request"},
    )
    assert await redis.exists(DEMO.dnc) == 0
    status, answer = await add(client, contacts)
    assert status == 200
    assert [entry["status"] for entry in answer] == ["created"] * 10_000
    assert answer[1] == {"phone_number": numbers[1], "expires_at": LATER, "status": "created"}
    assert (await redis.zcard(DEMO.dnc), await redis.zcard(DEMO.dnc_expiring)) == (10_000, 5_000)
    listed = await client.get(DNC, params={"per": "1000", "page": "10"}, headers=basic())
    assert listed.headers["Total"] == "10000"
    assert [entry["phone_number"] for entry in await listed.json()] == numbers[9000:]


async def test_remove_answers_each_number(
    client: TestClient[Any, Any], demo: Any, redis: Redis
) -> None:
    soon = clock.iso(clock.now() + timedelta(milliseconds=200))
    await add(
        client,
        [{"phone_number": "+14155550100"}, {"phone_number": "+14155550101", "expires_at": soon}],
    )
    await asyncio.sleep(0.25)
    body = {"phone_numbers": ["+1 (415) 555-0100", "+14155550101", "+14155550102", "911", ""]}
    response = await client.post(REMOVE, json=body, headers=basic())
    assert await conforming(response, REMOVE) == [
        {"phone_number": "+1 (415) 555-0100", "status": "removed"},
        {"phone_number": "+14155550101", "status": "not_found"},  # it had expired
        {"phone_number": "+14155550102", "status": "not_found"},
        {"phone_number": "911", "status": "failed", "error": "phone_number is invalid"},
        {"phone_number": "", "status": "failed", "error": "phone_number is invalid"},
    ]
    assert await check(client, "+14155550100") == (404, NOT_ON_THE_LIST)
    assert await redis.exists(DEMO.dnc, DEMO.dnc_expiring) == 0
    again = await client.post(REMOVE, json={"phone_numbers": ["+14155550100"]}, headers=basic())
    assert await again.json() == [{"phone_number": "+14155550100", "status": "not_found"}]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("x", "Request body must be a JSON object"),
        ({}, "phone_numbers is required"),
        ({"phone_numbers": "+14155550100"}, "phone_numbers must be an array"),
        ({"phone_numbers": []}, "phone_numbers must not be empty"),
        ({"phone_numbers": ["+14155550100", 14155550101]}, "phone_numbers[1] must be a string"),
        (
            {"phone_numbers": ["+14155550100"] * 10_001},
            "phone_numbers must hold at most 10000 entries a request",
        ),
    ],
)
async def test_a_remove_of_the_wrong_shape_removes_nothing(
    client: TestClient[Any, Any], demo: Any, body: Any, message: str
) -> None:
    await add(client, [{"phone_number": "+14155550100"}])
    response = await client.post(REMOVE, json=body, headers=basic())
    assert (response.status, await conforming(response, REMOVE)) == (400, {"message": message})
    assert (await check(client, "+14155550100"))[0] == 200


@pytest.mark.parametrize("path", ["+14155550100", "not-a-number", "911", "removed", "%2B"])
async def test_a_number_not_on_the_list_is_404(
    client: TestClient[Any, Any], demo: Any, path: str
) -> None:
    response = await client.get(f"{DNC}/{path}", headers=basic())
    assert (response.status, await conforming(response, ONE)) == (404, NOT_ON_THE_LIST)


async def test_the_remove_path_is_the_removes_alone(
    client: TestClient[Any, Any], demo: Any
) -> None:
    response = await client.get(REMOVE, headers=basic())
    assert (response.status, response.headers["Allow"]) == (405, "POST")
    assert await response.json() == {"message": "Method not allowed"}


async def test_the_list_comes_a_page_at_a_time_oldest_first(
    client: TestClient[Any, Any], demo: Any
) -> None:
    await add(client, [{"phone_number": "+14155550102"}, {"phone_number": "+14155550101"}])
    await asyncio.sleep(0.002)
    soon = clock.iso(clock.now() + timedelta(milliseconds=300))
    await add(
        client,
        [{"phone_number": "+14155550100", "expires_at": LATER}, {"phone_number": "+14155550103"}],
    )
    await add(client, [{"phone_number": "+14155550199", "expires_at": soon}])
    response = await client.get(DNC, params={"per": "2", "page": "2"}, headers=basic())
    entries = await conforming(response, DNC)
    assert [entry["phone_number"] for entry in entries] == ["+14155550100", "+14155550103"]
    assert entries[0]["expires_at"] == "2030-10-29T00:00:00.000Z"
    base = f"http://{response.url.host}:{response.url.port}{DNC}"
    assert response.headers["Total"] == "5"
    assert response.headers["Per-Page"] == "2"
    assert response.headers["Link"] == (
        f'<{base}?per=2&page=1>; rel="first", <{base}?per=2&page=3>; rel="last", '
        f'<{base}?per=2&page=3>; rel="next", <{base}?per=2&page=1>; rel="prev"'
    )
    first = await client.get(DNC, params={"per": "2"}, headers=basic())
    # Added in the same millisecond: by number.
    assert [e["phone_number"] for e in await first.json()] == ["+14155550101", "+14155550102"]
    await asyncio.sleep(0.35)
    later = await client.get(DNC, params={"per": "2", "page": "3"}, headers=basic())
    assert (later.headers["Total"], await later.json()) == ("4", [])  # the expired one is gone
    bad = await client.get(DNC, params={"per": "0"}, headers=basic())
    assert await conforming(bad, DNC) == {"message": "per must be a positive integer"}


async def test_tenants_have_lists_of_their_own(client: TestClient[Any, Any], redis: Redis) -> None:
    document = demo_document()
    rival = copy.deepcopy(document["tenants"][0])
    rival.update(subdomain="rival", api_tokens=["rival-token"])
    document["tenants"].append(rival)
    await load_directory(redis, document)
    await add(client, [{"phone_number": "+14155550100"}])
    assert await check(client, "+14155550100", subdomain="rival", token="rival-token") == (
        404,
        NOT_ON_THE_LIST,
    )
    listed = await client.get(DNC, headers=basic("rival", "rival-token"))
    assert (listed.headers["Total"], await listed.json()) == ("0", [])
    removed = await client.post(
        REMOVE, json={"phone_numbers": ["+14155550100"]}, headers=basic("rival", "rival-token")
    )
    assert (await removed.json())[0]["status"] == "not_found"
    assert (await check(client, "+14155550100"))[0] == 200
    _, answer = await add(client, [{"phone_number": "+14155550100"}], subdomain="rival",
                          token="rival-token")  # fmt: skip
    assert answer[0]["status"] == "created"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", DNC, {"contacts": [{"phone_number": "+14155550100"}]}),
        ("POST", REMOVE, {"phone_numbers": ["+14155550100"]}),
        ("GET", DNC, None),
        ("GET", f"{DNC}/+14155550100", None),
    ],
)
async def test_an_agents_token_cannot_read_or_change_the_list(
    client: TestClient[Any, Any], demo: Any, redis: Redis, method: str, path: str, body: Any
) -> None:
    response = await client.request(
        method, path, json=body, headers=basic("demo/1", "demo-agent-1")
    )
    assert response.status == 403
    assert await response.json() == {
        "message": "This route needs the tenant's API token, not an agent's"
    }
    assert await redis.exists(DEMO.dnc) == 0


async def test_an_add_takes_a_token_per_hundred_contacts(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    document = demo_document()
    document["tenants"][0]["settings"].update(rate_limit_per_s=0.001, rate_limit_burst=15)
    await load_directory(redis, document)
    contacts = [{"phone_number": f"+1628555{n:04d}"} for n in range(1_000)]
    assert (await add(client, contacts))[0] == 200  # 10 tokens of 15
    refused = await client.post(DNC, json={"contacts": contacts}, headers=basic())
    assert refused.status == 429
    assert (await refused.json())["message"].startswith("Too many requests")


async def test_the_list_the_api_keeps_is_the_one_calls_are_checked_against(
    client: TestClient[Any, Any], demo: Any
) -> None:
    outbound = {
        "call_type": "Voice Outbound (API)",
        "agent_email": "admin@somedomain.com",
        "end_user_number": "+1 628-555-0142",
        "outbound_number": "+1 628-555-0199",
    }
    soon = clock.now() + timedelta(milliseconds=300)
    await add(client, [{"phone_number": "(628) 555-0142", "expires_at": clock.iso(soon)}])
    refused = await client.post("/apps/api/v1/calls", json=outbound, headers=basic())
    assert (refused.status, await refused.json()) == (400, {"message": ON_THE_LIST})
    await asyncio.sleep(max(0.0, (soon - clock.now()).total_seconds()) + 0.01)
    placed = await client.post("/apps/api/v1/calls", json=outbound, headers=basic())
    assert placed.status == 201  # expired: off the list, unswept
