"""The OpenAPI document (dispatcher/http/openapi.yaml) against the code: the router serves
exactly its operations, and real answers of every operation conform to it (status, required
headers, content type and body schema)."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import jsonschema_rs
import orjson
import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web import RouteDef
from redis.asyncio import Redis

from dispatcher.app import create_app
from dispatcher.http import dashboard, openapi, operators, pages
from dispatcher.settings import Settings
from tests.conftest import ADMIN_TOKEN, basic, demo_document, load_directory

DOCUMENT = openapi.document()
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
API = "/apps/api/v1"
OUTBOUND = {
    "call_type": "Voice Outbound (API)",
    "agent_email": "admin@somedomain.com",
    "end_user_number": "+1 628-555-0142",
    "outbound_number": "+1 628-555-0199",
}
INBOUND = {"call_type": "Voice Inbound (API)", "menu_id": 9, "end_user_number": "+1 205-123-4567"}
SCHEDULED = {**INBOUND, "call_type": "Voice Scheduled (API)", "scheduled_at": "2030-06-03T17:00Z"}
SMS = {
    "chat_type": "Messaging (SMS)",
    "end_user_number": "+1 415-555-0100",
    "outbound_number": "+1 628-555-0199",
    "message": "Your order has shipped.",
    "agentEmail": "agent@somedomain.com",
}


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = DOCUMENT
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def _validator(pointer: str) -> jsonschema_rs.Validator:
    """A validator of the schema at `pointer`, with the document as root for its $refs."""
    root = {**DOCUMENT, "$schema": "https://json-schema.org/draft/2020-12/schema", "$ref": pointer}
    return jsonschema_rs.Draft202012Validator(root)


def _pointer(*parts: str) -> str:
    """A JSON pointer as a URI fragment: `~` and `/` escaped, then `{` and `}` percent-encoded."""
    escaped = (part.replace("~", "~0").replace("/", "~1") for part in parts)
    return "#/" + "/".join(quote(part, safe="~") for part in escaped)


async def conforming(response: ClientResponse, template: str) -> Any:
    """The response's JSON body, once its status, headers and body conform to the document's
    answer for this operation (`template` is the path as the document writes it)."""
    method = response.method.lower()
    responses = DOCUMENT["paths"][template][method]["responses"]
    status = str(response.status)
    assert status in responses, f"{method.upper()} {template}: undocumented {status}"
    answer = _resolve(responses[status])
    for name, header in answer.get("headers", {}).items():
        header = _resolve(header)
        if header.get("required"):
            assert name in response.headers, f"{method.upper()} {template} {status}: no {name}"
        if name in response.headers:
            value: Any = response.headers[name]
            if header["schema"].get("type") == "integer":
                value = int(value)
            assert jsonschema_rs.is_valid(header["schema"], value), f"{name}: {value!r}"
    if "content" not in answer:
        assert await response.read() == b"", f"{method.upper()} {template} {status}: a body"
        return None
    media_type = next(iter(answer["content"]))
    assert response.content_type == media_type
    if media_type != "application/json":
        return None
    body = orjson.loads(await response.read())
    content = _pointer("paths", template, method, "responses", status, "content", media_type)
    if "$ref" in responses[status]:
        content = responses[status]["$ref"] + _pointer("content", media_type)[1:]
    errors = [str(e) for e in _validator(content + "/schema").iter_errors(body)]
    assert not errors, f"{method.upper()} {template} {status}: {errors}"
    return body


# The files of the /docs page (Swagger UI's script, styles and icons) are no operation of the
# API: the document describes the page, not the file tree behind it, which changes with the
# Swagger UI package (test_docs.py checks every file the page uses).
NOT_OPERATIONS = {("GET", "/docs/static/{version}/{name}")}
# The browser pages' routes are not API operations: HTML and static files, and the JSON and
# event stream they read with an operator's session cookie (no Basic or Bearer scheme to
# document or fuzz). They are tested in test_pages.py and test_dashboard.py.
PAGE_ROUTES = {
    (route.method, route.path)
    for module in (pages, operators, dashboard)
    for route in module.routes
    if isinstance(route, RouteDef)
}


def test_the_page_routes_stay_out_of_the_api_paths() -> None:
    assert {path for _, path in PAGE_ROUTES} == {
        "/",
        "/docs/",
        "/dashboard",
        "/dashboard/login",
        "/dashboard/logout",
        "/dashboard/session",
        "/dashboard/api/snapshot",
        "/dashboard/api/calls/{id}",
        "/dashboard/api/week",
        "/dashboard/api/campaigns/{id}/report",
        "/dashboard/events",
        "/agent",
        "/static/{name}",
    }


def test_the_router_serves_exactly_the_documented_operations(settings: Settings) -> None:
    # HEAD is aiohttp's automatic twin of every GET.
    served = {
        (route.method, route.resource.canonical)
        for route in create_app(settings).router.routes()
        if route.method != "HEAD" and route.resource is not None
    } - PAGE_ROUTES
    documented = {
        (method.upper(), path)
        for path, item in DOCUMENT["paths"].items()
        for method in item
        if method in {"get", "put", "post", "patch", "delete"}
    }
    assert NOT_OPERATIONS <= served
    assert served - NOT_OPERATIONS == documented


def test_the_document_is_openapi_3_1_with_unique_operation_ids() -> None:
    assert DOCUMENT["openapi"] == "3.1.0"
    ids = [
        operation["operationId"]
        for item in DOCUMENT["paths"].values()
        for method, operation in item.items()
        if method != "parameters"
    ]
    assert len(ids) == len(set(ids))
    links = [
        link["operationId"]
        for item in DOCUMENT["paths"].values()
        for method, operation in item.items()
        if method != "parameters"
        for answer in operation["responses"].values()
        for link in answer.get("links", {}).values()
    ]
    assert set(links) <= set(ids)


async def test_openapi_json_is_served_without_credentials(client: TestClient[Any, Any]) -> None:
    response = await client.get("/openapi.json")
    assert response.status == 200
    assert await conforming(response, "/openapi.json") == DOCUMENT
    health = await client.get("/healthz")
    assert await conforming(health, "/healthz") == {"status": "ok"}


@pytest.fixture
async def demo_without_default(redis: Redis) -> None:
    """The demo tenant without a default outbound number: an outbound call without one is 202."""
    document = demo_document()
    document["tenants"][0]["settings"]["default_outbound_number"] = None
    await load_directory(redis, document)


async def test_calls_answers_conform(
    client: TestClient[Any, Any], demo_without_default: None
) -> None:
    calls = f"{API}/calls"
    created = await client.post(calls, json=OUTBOUND, headers=basic())
    assert created.status == 201
    call = await conforming(created, "/apps/api/v1/calls")
    pending = await client.post(
        calls,
        json={**OUTBOUND, "outbound_number": None, "agent_email": "agent@somedomain.com"},
        headers=basic(),
    )
    assert pending.status == 202
    assert (await conforming(pending, "/apps/api/v1/calls"))["pending_action"] == (
        "select_outbound_number"
    )
    for body in (INBOUND, SCHEDULED):
        queued = await client.post(calls, json=body, headers=basic())
        assert queued.status == 201
        await conforming(queued, "/apps/api/v1/calls")
    refused = await client.post(calls, json={"call_type": "x"}, headers=basic())
    assert await conforming(refused, "/apps/api/v1/calls") == {"message": "Invalid call type"}
    keyed = {**basic(), "Idempotency-Key": "k-1"}
    first = await conforming(await client.post(calls, json=INBOUND, headers=keyed), calls)
    replayed = await client.post(calls, json=INBOUND, headers=keyed)
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert await conforming(replayed, calls) == first
    reused = await client.post(calls, json=SCHEDULED, headers=keyed)
    assert reused.status == 409
    await conforming(reused, "/apps/api/v1/calls")

    listed = await client.get(calls, params={"per": "2"}, headers=basic())
    assert len(await conforming(listed, "/apps/api/v1/calls")) == 2
    bad_page = await client.get(calls, params={"page": "0"}, headers=basic())
    assert bad_page.status == 400
    await conforming(bad_page, "/apps/api/v1/calls")

    one = f"{calls}/{call['id']}"
    assert (await conforming(await client.get(one, headers=basic()), "/apps/api/v1/calls/{id}"))[
        "id"
    ] == call["id"]
    unknown = await client.get(f"{calls}/999", headers=basic())
    assert await conforming(unknown, "/apps/api/v1/calls/{id}") == {"message": "Call not found"}
    flags = await client.get(f"{one}/customer_flag", headers=basic())
    assert await conforming(flags, "/apps/api/v1/calls/{id}/customer_flag") == {
        "verified_customer": False,
        "bad_actor": False,
        "repeat_customer": False,
    }
    flag_path = "/apps/api/v1/calls/{id}/customer_flag"
    patched = await client.patch(f"{one}/customer_flag", json={"bad_actor": True}, headers=basic())
    assert (await conforming(patched, flag_path))["bad_actor"] is True
    not_bool = await client.patch(f"{one}/customer_flag", json={"bad_actor": 1}, headers=basic())
    assert await conforming(not_bool, flag_path) == {"message": "bad_actor must be a boolean"}
    missing = await client.get(f"{calls}/nope/customer_flag", headers=basic())
    assert await conforming(missing, flag_path) == {"message": "Call not found"}

    finished = await client.post(f"{one}/finish", headers=basic())
    assert (await conforming(finished, "/apps/api/v1/calls/{id}/finish"))["status"] == "failed"
    again = await client.post(f"{one}/finish", headers=basic())
    assert await conforming(again, "/apps/api/v1/calls/{id}/finish") == {
        "message": "Call has already ended"
    }


async def test_sms_and_chats_answers_conform(client: TestClient[Any, Any], demo: Any) -> None:
    created = await client.post(f"{API}/sms", json=SMS, headers=basic())
    assert created.status == 200
    chat = await conforming(created, "/apps/api/v1/sms")
    busy = await client.post(f"{API}/sms", json=SMS, headers=basic())
    assert (await conforming(busy, "/apps/api/v1/sms"))["message"].startswith("Outbound SMS")
    listed = await client.get(f"{API}/chats", headers=basic())
    assert [c["id"] for c in await conforming(listed, "/apps/api/v1/chats")] == [chat["id"]]
    for query in ({"status": "nope"}, {"sort_direction": "up"}):
        bad = await client.get(f"{API}/chats", params=query, headers=basic())
        assert bad.status == 400
        await conforming(bad, "/apps/api/v1/chats")
    one = f"{API}/chats/{chat['id']}"
    await conforming(await client.get(one, headers=basic()), "/apps/api/v1/chats/{id}")
    unknown = await client.get(f"{API}/chats/77", headers=basic())
    assert await conforming(unknown, "/apps/api/v1/chats/{id}") == {"message": "Chat not found"}
    inbound = await client.post(
        "/carrier/simulated/sms",
        json={"from": SMS["end_user_number"], "text": "hi"},
        headers=basic(),
    )
    assert await conforming(inbound, "/carrier/simulated/sms") == {
        "chat_id": chat["id"],
        "opted_out": False,
    }
    no_text = await client.post(
        "/carrier/simulated/sms", json={"from": "+1 415-555-0100"}, headers=basic()
    )
    assert await conforming(no_text, "/carrier/simulated/sms") == {"message": "text is required"}
    ended = await client.post(f"{one}/finish", headers=basic())
    assert (await conforming(ended, "/apps/api/v1/chats/{id}/finish"))["status"] == "finished"
    again = await client.post(f"{one}/finish", headers=basic())
    assert await conforming(again, "/apps/api/v1/chats/{id}/finish") == {
        "message": "Chat has already ended"
    }


async def test_agent_side_answers_conform(client: TestClient[Any, Any], demo: Any) -> None:
    agent = f"{API}/agents/2"
    listed = await client.get(f"{API}/agents", params={"per": "3"}, headers=basic())
    assert len(await conforming(listed, "/apps/api/v1/agents")) == 3
    bad_per = await client.get(f"{API}/agents", params={"per": "x"}, headers=basic())
    assert await conforming(bad_per, "/apps/api/v1/agents") == {
        "message": "per must be a positive integer"
    }
    await conforming(await client.get(agent, headers=basic()), "/apps/api/v1/agents/{id}")
    unknown = await client.get(f"{API}/agents/99", headers=basic())
    assert await conforming(unknown, "/apps/api/v1/agents/{id}") == {"message": "Agent not found"}
    status_path = "/apps/api/v1/agents/{id}/status"
    put = await client.put(f"{agent}/status", json={"status": "offline"}, headers=basic())
    assert (await conforming(put, status_path))["status"] == "offline"
    offers = await client.get(f"{agent}/offers", headers=basic())
    assert await conforming(offers, "/apps/api/v1/agents/{id}/offers") == []
    for path in ("accept", "decline"):
        gone = await client.post(f"{API}/offers/12/{path}", headers=basic())
        assert await conforming(gone, f"/apps/api/v1/offers/{{id}}/{path}") == {
            "message": "Offer is no longer available"
        }
    events = "/apps/api/v1/agents/{id}/events"
    no_agent = await client.get(f"{API}/agents/99/events", headers=basic())
    assert await conforming(no_agent, events) == {"message": "Agent not found"}
    stream = await client.get(f"{agent}/events", headers=basic())
    assert stream.status == 200
    await conforming(stream, events)
    assert await asyncio.wait_for(stream.content.readuntil(b"\n\n"), 5) == b": connected\n\n"
    stream.close()


async def test_agent_statuses_answers_conform(client: TestClient[Any, Any], demo: Any) -> None:
    bulk, logout = "/apps/api/v1/agent_statuses", "/apps/api/v1/agent_statuses/force_logout"
    changed = await client.post(
        bulk, json={"status": "Unavailable", "team_ids": [1]}, headers=basic()
    )
    assert len(await conforming(changed, bulk)) == 2
    unknown = await client.post(logout, json={"agent_ids": [99]}, headers=basic())
    assert await conforming(unknown, logout) == {"message": "Agent 99 not found"}
    bad = await client.post(bulk, json={"agent_ids": [1]}, headers=basic())
    assert await conforming(bad, bulk) == {"message": "status is required"}
    agent = await client.post(
        logout, json={"agent_ids": [1]}, headers=basic("demo/1", "demo-agent-1")
    )
    assert (await conforming(agent, logout))["message"].startswith("This route needs")


async def test_manager_answers_conform(client: TestClient[Any, Any], demo: Any) -> None:
    config = "/manager/api/v1/config"
    stored = await client.get(config, headers=ADMIN)
    document = await conforming(stored, config)
    assert [t["subdomain"] for t in document["tenants"]] == ["demo"]
    loaded = await client.put(config, json=demo, headers=ADMIN)
    await conforming(loaded, config)
    refused = await client.put(config, json={"tenants": []}, headers=ADMIN)
    assert refused.status == 400
    await conforming(refused, config)
    for method in ("GET", "PUT"):
        no_token = await client.request(method, config, json={}, headers=basic())
        assert no_token.status == 401
        assert no_token.headers["WWW-Authenticate"] == 'Bearer realm="manager"'
        await conforming(no_token, config)


async def test_manager_without_admin_token_is_404(redis_url: str, redis: Redis) -> None:
    settings = Settings(redis_url=redis_url)
    async with TestClient(TestServer(create_app(settings))) as test_client:
        response = await test_client.get("/manager/api/v1/config", headers=ADMIN)
        assert await conforming(response, "/manager/api/v1/config") == {
            "message": "Resource not found"
        }


async def test_oversize_body_is_413(redis_url: str, demo: Any) -> None:
    settings = Settings(redis_url=redis_url, max_body_bytes=2048)
    async with TestClient(TestServer(create_app(settings))) as test_client:
        body = {**INBOUND, "padding": "x" * 4096}
        response = await test_client.post(f"{API}/calls", json=body, headers=basic())
        assert response.status == 413
        await conforming(response, "/apps/api/v1/calls")


async def test_rate_limited_answers_conform(client: TestClient[Any, Any], redis: Redis) -> None:
    document = demo_document()
    document["tenants"][0]["settings"].update(rate_limit_per_s=0.5, rate_limit_burst=1)
    await load_directory(redis, document)
    await client.get(f"{API}/calls", headers=basic())
    limited = await client.post(f"{API}/calls", json=INBOUND, headers=basic())
    assert limited.status == 429
    await conforming(limited, "/apps/api/v1/calls")


def _tenant_operations() -> list[tuple[str, str]]:
    return [
        (method.upper(), path)
        for path, item in DOCUMENT["paths"].items()
        for method, operation in item.items()
        if method != "parameters"
        and operation.get("security", DOCUMENT["security"]) == [{"tenantBasic": []}]
    ]


@pytest.mark.parametrize(("method", "template"), _tenant_operations())
async def test_every_tenant_operation_refuses_missing_and_wrong_credentials(
    client: TestClient[Any, Any], demo: Any, method: str, template: str
) -> None:
    """What schemathesis's `ignored_auth` would check, as API.md words it: no or a wrong token
    is 401 with a Basic challenge; a user name that is no tenant is 404."""
    path = template.replace("{id}", "1").replace("{call_id}", "1")
    path = path.replace("{phone_number}", "+14155550100")
    cases = [({}, 401), (basic("demo", "wrong"), 401), (basic("nobody", "demo-token"), 404)]
    for headers, status in cases:
        response = await client.request(method, path, json=INBOUND, headers=headers)
        assert response.status == status
        body = await conforming(response, template)
        assert body == {"message": "Unauthorized" if status == 401 else "Resource not found"}
        if status == 401:
            assert response.headers["WWW-Authenticate"] == 'Basic realm="api"'
