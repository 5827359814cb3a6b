"""Basic auth per tenant: 401 with a challenge, 404 for an unknown subdomain, isolation."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from tests.conftest import basic, demo_document, load_directory

UNAUTHORIZED = {"message": "Unauthorized"}


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer demo-token",
        "Basic",
        "Basic not-base64!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b":demo-token").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
        "Basic " + base64.b64encode(b"demo:wrong-token").decode(),
        "Basic " + base64.b64encode(b"demo:").decode(),
    ],
    ids=[
        "none",
        "bearer",
        "empty",
        "not-base64",
        "no-colon",
        "no-user",
        "not-utf8",
        "wrong",
        "blank",
    ],
)
async def test_bad_credentials_are_401_with_challenge(
    client: TestClient[Any, Any], demo: dict[str, Any], header: str | None
) -> None:
    headers = {"Authorization": header} if header is not None else {}
    response = await client.get("/apps/api/v1/calls", headers=headers)
    assert response.status == 401
    assert await response.json() == UNAUTHORIZED
    assert response.headers["WWW-Authenticate"] == 'Basic realm="api"'


async def test_unknown_subdomain_is_404(client: TestClient[Any, Any], demo: dict[str, Any]) -> None:
    response = await client.get("/apps/api/v1/calls", headers=basic("nobody", "demo-token"))
    assert response.status == 404
    assert await response.json() == {"message": "Resource not found"}


async def test_auth_is_checked_before_the_body(
    client: TestClient[Any, Any], demo: dict[str, Any]
) -> None:
    response = await client.post("/apps/api/v1/calls", data=b"{not json")
    assert response.status == 401


async def test_every_listed_token_works(client: TestClient[Any, Any], redis: Redis) -> None:
    document = demo_document()
    document["tenants"][0]["api_tokens"] = ["first-token", "second-token"]
    await load_directory(redis, document)
    for token in ("first-token", "second-token"):
        response = await client.get("/apps/api/v1/calls", headers=basic("demo", token))
        assert response.status == 200
    response = await client.get("/apps/api/v1/calls", headers=basic("demo", "demo-token"))
    assert response.status == 401


async def test_tokens_are_stored_only_as_salted_hashes(redis: Redis, demo: dict[str, Any]) -> None:
    stored = b"".join(
        [await redis.get(key) or b"" for key in await redis.keys("dsp:t:{demo}:directory")]
    )
    assert b"demo-token" not in stored and b"demo-agent-" not in stored
    assert stored.count(b"hmac-sha256$") == 1 + 4  # the tenant's token and its 4 agents'


def _two_tenants() -> dict[str, Any]:
    document = demo_document()
    other = {
        **document["tenants"][0],
        "subdomain": "other",
        "api_tokens": ["other-token"],
    }
    document["tenants"].append(other)
    return document


INBOUND = {
    "call_type": "Voice Inbound (API)",
    "menu_id": 9,
    "end_user_number": "+1 859-657-9625",
}


async def test_tenants_never_see_each_others_calls(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    await load_directory(redis, _two_tenants())
    created = await client.post("/apps/api/v1/calls", json=INBOUND, headers=basic())
    assert created.status == 201
    call_id = (await created.json())["id"]
    other = basic("other", "other-token")
    response = await client.get(f"/apps/api/v1/calls/{call_id}", headers=other)
    assert response.status == 404
    assert await response.json() == {"message": "Call not found"}
    flag = await client.patch(
        f"/apps/api/v1/calls/{call_id}/customer_flag", json={"bad_actor": True}, headers=other
    )
    assert flag.status == 404
    listing = await client.get("/apps/api/v1/calls", headers=other)
    assert await listing.json() == []
    assert listing.headers["Total"] == "0"
    # The other tenant's own counter starts at 1: ids are per tenant.
    own = await client.post("/apps/api/v1/calls", json=INBOUND, headers=other)
    assert (await own.json())["id"] == 1
    mine = await client.get(f"/apps/api/v1/calls/{call_id}", headers=basic())
    assert (await mine.json())["status"] == "queued"


async def test_one_tenants_token_does_not_open_another(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    await load_directory(redis, _two_tenants())
    response = await client.get("/apps/api/v1/calls", headers=basic("other", "demo-token"))
    assert response.status == 401
