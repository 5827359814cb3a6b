"""The SMS opt-out list's API (/apps/api/v1/sms/opt_outs): a consumer's STOP puts their number
on it with the time, it pages newest first like the call list, one number is looked up or
removed however it is written, and a removed number may be sent an SMS again."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import pytest
import structlog
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from dispatcher.domain import clock
from dispatcher.store.keys import TenantKeys
from tests.conftest import basic, demo_document, load_directory
from tests.dispatcher.http.test_openapi import conforming

OPT_OUTS = "/apps/api/v1/sms/opt_outs"
ONE = OPT_OUTS + "/{phone_number}"
SMS = {
    "chat_type": "Messaging (SMS)",
    "end_user_number": "+1 415-111-3333",
    "outbound_number": "+1 628-555-0199",
    "message": "Your order has shipped.",
}
NOT_OPTED_OUT = {"message": "Phone number has not opted out"}
INVALID = {"message": "phone_number is invalid"}
OPTED_OUT = {"message": "Outbound SMS failed. Consumer has opted out of SMS."}
TENANT_ONLY = {"message": "This route needs the tenant's API token, not an agent's"}
DEMO = TenantKeys("demo")


def one(number: str) -> str:
    return f"{OPT_OUTS}/{quote(number, safe='')}"


async def text(client: TestClient[Any, Any], sender: str, words: str) -> Any:
    """The consumer's message through the simulated carrier."""
    response = await client.post(
        "/carrier/simulated/sms", json={"from": sender, "text": words}, headers=basic()
    )
    assert response.status == 200
    return await response.json()


async def test_a_stop_text_is_listed_with_its_time_and_a_second_keeps_the_first(
    client: TestClient[Any, Any], demo: Any
) -> None:
    before = clock.to_ms(clock.now())
    assert await text(client, "+1 (415) 111-3333", " stop ") == {
        "chat_id": None,
        "opted_out": True,
    }
    after = clock.to_ms(clock.now())
    found = await client.get(one("+14151113333"), headers=basic())
    entry = await conforming(found, ONE)
    assert (found.status, entry["phone_number"]) == (200, "+14151113333")
    opted_out_at = clock.parse_iso(entry["opted_out_at"])
    assert opted_out_at is not None and before <= clock.to_ms(opted_out_at) <= after

    await asyncio.sleep(0.01)
    assert (await text(client, "+14151113333", "UNSUBSCRIBE"))["opted_out"] is True
    for written in ("+1 (415) 111-3333", "415-111-3333", "4151113333"):
        again = await client.get(one(written), headers=basic())
        assert (again.status, await again.json()) == (200, entry)
    listed = await client.get(OPT_OUTS, headers=basic())
    assert (listed.status, await conforming(listed, OPT_OUTS)) == (200, [entry])
    assert (listed.headers["Total"], listed.headers["Per-Page"]) == ("1", "100")

    assert (await text(client, "+1 415-111-4444", "hello"))["opted_out"] is False
    stranger = await client.get(one("+14151114444"), headers=basic())
    assert (stranger.status, await conforming(stranger, ONE)) == (404, NOT_OPTED_OUT)


async def test_the_list_pages_newest_first_with_the_call_lists_headers(
    client: TestClient[Any, Any], redis: Redis, demo: Any
) -> None:
    base_ms = clock.to_ms(clock.parse_iso("2026-11-21T08:00:00Z"))  # type: ignore[arg-type]
    numbers = [f"+1415111000{n}" for n in range(5)]
    await redis.zadd(DEMO.do_not_contact, {n: base_ms + i * 1000 for i, n in enumerate(numbers)})
    response = await client.get(OPT_OUTS, params={"per": "2", "page": "2"}, headers=basic())
    assert (response.status, await conforming(response, OPT_OUTS)) == (
        200,
        [
            {"phone_number": "+14151110002", "opted_out_at": "2026-11-21T08:00:02.000Z"},
            {"phone_number": "+14151110001", "opted_out_at": "2026-11-21T08:00:01.000Z"},
        ],
    )
    base = f"http://{client.host}:{client.port}{OPT_OUTS}"
    assert (response.headers["Total"], response.headers["Per-Page"]) == ("5", "2")
    assert response.headers["Link"] == ", ".join(
        [
            f'<{base}?per=2&page=1>; rel="first"',
            f'<{base}?per=2&page=3>; rel="last"',
            f'<{base}?per=2&page=3>; rel="next"',
            f'<{base}?per=2&page=1>; rel="prev"',
        ]
    )
    first = await (await client.get(OPT_OUTS, params={"per": "1"}, headers=basic())).json()
    assert [entry["phone_number"] for entry in first] == ["+14151110004"]
    beyond = await client.get(OPT_OUTS, params={"page": "9"}, headers=basic())
    assert (beyond.status, await beyond.json(), beyond.headers["Total"]) == (200, [], "5")
    for query, message in (({"page": "0"}, "page"), ({"per": "x"}, "per")):
        bad = await client.get(OPT_OUTS, params=query, headers=basic())
        assert (bad.status, await conforming(bad, OPT_OUTS)) == (
            400,
            {"message": f"{message} must be a positive integer"},
        )


async def test_a_removed_number_may_be_sent_an_sms_again(
    client: TestClient[Any, Any], demo: Any
) -> None:
    await text(client, SMS["end_user_number"], "STOP")
    refused = await client.post("/apps/api/v1/sms", json=SMS, headers=basic())
    assert (refused.status, await refused.json()) == (400, OPTED_OUT)
    entry = await (await client.get(one("+14151113333"), headers=basic())).json()

    removed = await client.delete(one("+1 (415) 111-3333"), headers=basic())
    assert (removed.status, await conforming(removed, ONE)) == (200, entry)
    gone = await client.get(one("+14151113333"), headers=basic())
    assert (gone.status, await gone.json()) == (404, NOT_OPTED_OUT)
    again = await client.delete(one("+14151113333"), headers=basic())
    assert (again.status, await conforming(again, ONE)) == (404, NOT_OPTED_OUT)
    listed = await client.get(OPT_OUTS, headers=basic())
    assert (await listed.json(), listed.headers["Total"]) == ([], "0")

    sent = await client.post("/apps/api/v1/sms", json=SMS, headers=basic())
    assert sent.status == 200
    assert (await sent.json())["status"] == "selecting"


async def test_two_removals_at_once_answer_the_entry_once(
    client: TestClient[Any, Any], demo: Any
) -> None:
    await text(client, "+14151113333", "STOP")
    answers = await asyncio.gather(
        *[client.delete(one("+14151113333"), headers=basic()) for _ in range(10)]
    )
    assert sorted(answer.status for answer in answers) == [200] + [404] * 9


@pytest.mark.parametrize(
    "written", ["abc", "123", "+", "+1 415", "415-111-3333x9" * 5, " ", "{phone_number}"]
)
@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_a_path_that_is_no_number_is_400(
    client: TestClient[Any, Any], demo: Any, method: str, written: str
) -> None:
    response = await client.request(method, one(written), headers=basic())
    assert (response.status, await conforming(response, ONE)) == (400, INVALID)


async def test_each_tenant_has_its_own_list(
    client: TestClient[Any, Any], redis: Redis, demo: Any
) -> None:
    document = demo_document()
    document["tenants"].append(
        {**document["tenants"][0], "subdomain": "other", "api_tokens": ["other-token"]}
    )
    await load_directory(redis, document)
    await text(client, "+14151113333", "STOP")
    other = basic("other", "other-token")
    listed = await client.get(OPT_OUTS, headers=other)
    assert (listed.status, await listed.json(), listed.headers["Total"]) == (200, [], "0")
    for method in ("GET", "DELETE"):
        response = await client.request(method, one("+14151113333"), headers=other)
        assert (response.status, await response.json()) == (404, NOT_OPTED_OUT)
    mine = await client.get(one("+14151113333"), headers=basic())
    assert mine.status == 200
    theirs = await client.post("/apps/api/v1/sms", json=SMS, headers=other)
    assert theirs.status == 200


@pytest.mark.parametrize(
    ("method", "path", "template"),
    [
        ("GET", OPT_OUTS, OPT_OUTS),
        ("GET", one("+14151113333"), ONE),
        ("DELETE", one("+14151113333"), ONE),
    ],
)
async def test_an_agent_token_is_refused(
    client: TestClient[Any, Any], demo: Any, method: str, path: str, template: str
) -> None:
    await text(client, "+14151113333", "STOP")
    response = await client.request(method, path, headers=basic("demo/2", "demo-agent-2"))
    assert (response.status, await conforming(response, template)) == (403, TENANT_ONLY)
    still = await client.get(one("+14151113333"), headers=basic())
    assert still.status == 200


async def test_the_number_in_the_path_is_masked_in_the_logs_however_written(
    client: TestClient[Any, Any], demo: Any
) -> None:
    await text(client, "+14151113333", "STOP")
    written = ["(415) 111-3333", "415.111.3333", "+1 415 111 3333", "4151113333"]
    with structlog.testing.capture_logs() as logged:
        for number in written:
            assert (await client.get(one(number), headers=basic())).status == 200
        assert (await client.delete(one(written[0]), headers=basic())).status == 200
    paths = [event["path"] for event in logged if event["event"] == "request"]
    masked = ["+********33", "+********33", "+*********33", "+********33", "+********33"]
    assert paths == [f"{OPT_OUTS}/{number}" for number in masked]
    assert "111" not in repr(logged)
