"""The operator API: PUT/GET the directory with the admin Bearer token."""

from __future__ import annotations

from typing import Any

import yaml
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from dispatcher.app import create_app
from dispatcher.settings import Settings
from tests.conftest import ADMIN_TOKEN, DEMO_FILE, basic, demo_document

CONFIG = "/manager/api/v1/config"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def test_put_yaml_then_get_without_tokens(client: TestClient[Any, Any], redis: Redis) -> None:
    response = await client.put(
        CONFIG, data=DEMO_FILE.read_bytes(), headers={**ADMIN, "Content-Type": "application/yaml"}
    )
    assert response.status == 200
    assert await response.json() == {
        "tenants": [
            {"subdomain": "demo", "agents": 4, "menus": 3, "outbound_numbers": 2, "contacts": 3}
        ]
    }
    stored = await (await client.get(CONFIG, headers=ADMIN)).json()
    tenant = stored["tenants"][0]
    assert "api_tokens" not in tenant and "token_hashes" not in tenant
    assert tenant["outbound_numbers"][0] == {"number": "+16285550199", "voice": True, "sms": True}
    assert [m["id"] for m in tenant["menus"]] == [9, 50, 51]
    calls = await client.get("/apps/api/v1/calls", headers=basic())
    assert calls.status == 200


async def test_put_json_replaces_only_the_named_tenants(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    document = demo_document()
    other = {**document["tenants"][0], "subdomain": "other", "api_tokens": ["other-token"]}
    await client.put(CONFIG, json={"tenants": [document["tenants"][0], other]}, headers=ADMIN)
    changed = {**other, "api_tokens": ["new-token"]}
    response = await client.put(CONFIG, json={"tenants": [changed]}, headers=ADMIN)
    assert response.status == 200
    stored = await (await client.get(CONFIG, headers=ADMIN)).json()
    assert [t["subdomain"] for t in stored["tenants"]] == ["demo", "other"]
    assert (
        await client.get("/apps/api/v1/calls", headers=basic("other", "new-token"))
    ).status == 200
    assert (
        await client.get("/apps/api/v1/calls", headers=basic("other", "other-token"))
    ).status == 401
    assert (await client.get("/apps/api/v1/calls", headers=basic())).status == 200


async def test_reload_keeps_calls_and_live_agent_status(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    await client.put(CONFIG, json=demo_document(), headers=ADMIN)
    inbound = {
        "call_type": "Voice Inbound (API)",
        "menu_id": 9,
        "end_user_number": "+1 205-123-4567",
    }
    created = await client.post("/apps/api/v1/calls", json=inbound, headers=basic())
    await client.put("/apps/api/v1/agents/2/status", json={"status": "offline"}, headers=basic())
    await client.put(CONFIG, json=demo_document(), headers=ADMIN)
    fetched = await client.get(
        f"/apps/api/v1/calls/{(await created.json())['id']}", headers=basic()
    )
    assert fetched.status == 200
    agent = await (await client.get("/apps/api/v1/agents/2", headers=basic())).json()
    assert agent["status"] == "offline"


async def test_wrong_or_missing_admin_token_is_401(client: TestClient[Any, Any]) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": f"Basic {ADMIN_TOKEN}"},
    ):
        response = await client.get(CONFIG, headers=headers)
        assert response.status == 401
        assert await response.json() == {"message": "Unauthorized"}
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="manager"'


async def test_admin_api_is_absent_without_admin_token(redis_url: str, redis: Redis) -> None:
    settings = Settings(redis_url=redis_url)
    async with TestClient(TestServer(create_app(settings))) as client:
        for method in ("GET", "PUT"):
            response = await client.request(method, CONFIG, headers=ADMIN, data=b"{}")
            assert response.status == 404
            assert await response.json() == {"message": "Resource not found"}


async def test_refused_document_names_the_bad_key(client: TestClient[Any, Any]) -> None:
    document = demo_document()
    document["tenants"][0]["menus"][2]["type"] = "phone_menu"
    response = await client.put(CONFIG, data=yaml.safe_dump(document), headers=ADMIN)
    assert response.status == 400
    body = await response.json()
    assert (
        body["message"]
        == "tenants[0].menus[2].type: must be one of ivr_menu, mobile_menu, web_menu"
    )
    assert body["errors"] == [body["message"]]


async def test_webhook_secret_is_never_read_back(client: TestClient[Any, Any]) -> None:
    document = demo_document()
    document["tenants"][0]["settings"]["webhook_secret"] = "very-secret-value"
    await client.put(CONFIG, json=document, headers=ADMIN)
    response = await client.get(CONFIG, headers=ADMIN)
    assert "very-secret-value" not in await response.text()
    assert (await response.json())["tenants"][0]["settings"]["webhook_secret"] == "[redacted]"
