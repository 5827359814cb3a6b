"""The dashboard's login, session cookie and data: who may see what, and what they see."""

from __future__ import annotations

import asyncio
import copy
from http.cookies import SimpleCookie
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from dispatcher.domain import clock
from dispatcher.http.appkeys import DIRECTORY
from dispatcher.http.dashboard import SharedReads
from dispatcher.store import operator_sessions
from dispatcher.store.keys import TenantKeys
from tests.conftest import basic, demo_document, load_directory

LOGIN = "/dashboard/login"
DEMO = {"subdomain": "demo", "token": "demo-token"}
ACME = {"subdomain": "acme", "token": "acme-token"}
UNAUTHORIZED = {"message": "Unauthorized"}
WRONG = {"message": "Unknown tenant or wrong token"}
REQUIRED = {"message": "subdomain and token are required"}
INBOUND = {"call_type": "Voice Inbound (API)", "menu_id": 51, "end_user_number": "+1 205-123-4567"}
PROTECTED = [
    "/dashboard/session",
    "/dashboard/api/snapshot",
    "/dashboard/api/calls/1",
    "/dashboard/api/week",
    "/dashboard/api/campaigns/1/report",
]


@pytest.fixture
async def tenants(redis: Redis) -> None:
    """The demo tenant and a second one, acme, with the same directory."""
    document = demo_document()
    acme = copy.deepcopy(document["tenants"][0])
    acme.update(subdomain="acme", api_tokens=["acme-token"])
    document["tenants"].append(acme)
    await load_directory(redis, document)


async def login(client: TestClient[Any, Any], credentials: dict[str, str]) -> str:
    """Signs in (the client keeps the cookie); returns the cookie's value."""
    response = await client.post(LOGIN, json=credentials)
    assert response.status == 200, await response.text()
    cookie = response.cookies["dispatcher_session"].value
    answer = {"tenant": credentials["subdomain"], "csrf_token": csrf_token(cookie)}
    assert await response.json() == answer
    return cookie


def csrf_token(cookie: str) -> str:
    return operator_sessions.csrf_token(cookie.partition(".")[2])


async def create_call(client: TestClient[Any, Any], tenant: str = "demo") -> dict[str, Any]:
    response = await client.post(
        "/apps/api/v1/calls", json=INBOUND, headers=basic(tenant, f"{tenant}-token")
    )
    assert response.status == 201
    call: dict[str, Any] = await response.json()
    return call


async def _refused(client: TestClient[Any, Any], path: str, cookie: str | None = None) -> None:
    client.session.cookie_jar.clear()
    headers = {"Cookie": f"dispatcher_session={cookie}"} if cookie is not None else {}
    response = await client.get(path, headers=headers)
    assert response.status == 401, path
    assert await response.json() == UNAUTHORIZED
    assert response.headers["WWW-Authenticate"] == 'Session realm="dashboard"'


async def test_login_sets_a_strict_http_only_cookie_scoped_to_the_dashboard(
    client: TestClient[Any, Any], tenants: None, redis: Redis
) -> None:
    response = await client.post(LOGIN, json=DEMO)
    assert response.status == 200
    header = response.headers["Set-Cookie"]
    cookie = SimpleCookie(header)["dispatcher_session"]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/dashboard"
    assert cookie["max-age"] == "28800"
    assert not cookie["secure"]  # plain http here
    subdomain, _, secret = cookie.value.partition(".")
    assert subdomain == "demo" and len(secret) == 43  # 256 random bits, base64url
    [key] = [k async for k in redis.scan_iter(TenantKeys("demo").operator_session("*"))]
    assert secret.encode() not in key  # only a digest is stored
    assert 28790 < await redis.ttl(key) <= 28800
    behind_tls = await client.post(LOGIN, json=DEMO, headers={"X-Forwarded-Proto": "https"})
    assert SimpleCookie(behind_tls.headers["Set-Cookie"])["dispatcher_session"]["secure"] is True


@pytest.mark.parametrize(
    ("body", "status", "answer"),
    [
        ({"subdomain": "demo", "token": "wrong"}, 401, WRONG),
        ({"subdomain": "nobody", "token": "demo-token"}, 401, WRONG),
        ({"subdomain": "acme", "token": "demo-token"}, 401, WRONG),
        ({"subdomain": "x" * 64, "token": "demo-token"}, 401, WRONG),
        ({"subdomain": "demo"}, 400, REQUIRED),
        ({"subdomain": "", "token": "demo-token"}, 400, REQUIRED),
        ({"subdomain": 1, "token": "demo-token"}, 400, REQUIRED),
        ([], 400, {"message": "Request body must be a JSON object"}),
    ],
)  # fmt: skip
async def test_bad_credentials_open_no_session(
    client: TestClient[Any, Any], tenants: None, body: Any, status: int, answer: dict[str, str]
) -> None:
    response = await client.post(LOGIN, json=body)
    assert response.status == status
    assert await response.json() == answer
    assert "Set-Cookie" not in response.headers
    await _refused(client, "/dashboard/session")


@pytest.mark.parametrize("path", [*PROTECTED, "/dashboard/events"])
async def test_no_cookie_or_a_forged_one_is_401(
    client: TestClient[Any, Any], tenants: None, path: str
) -> None:
    await _refused(client, path)
    for forged in ["", "demo", "demo.", "demo.not-a-session", ".x", "demo." + "x" * 65]:
        await _refused(client, path, forged)


async def test_a_session_opens_its_own_tenant_only(
    client: TestClient[Any, Any], tenants: None
) -> None:
    demo_call = await create_call(client, "demo")
    acme_cookie = await login(client, ACME)
    snapshot = await (await client.get("/dashboard/api/snapshot")).json()
    assert snapshot["subdomain"] == "acme"
    assert snapshot["latest_calls"] == []
    unknown = await client.get(f"/dashboard/api/calls/{demo_call['id']}")
    assert (unknown.status, await unknown.json()) == (404, {"message": "Call not found"})
    # acme's secret under demo's name is no session of demo's.
    _, _, secret = acme_cookie.partition(".")
    for path in PROTECTED:
        await _refused(client, path, f"demo.{secret}")


async def test_logout_and_a_new_directory_end_the_session(
    client: TestClient[Any, Any], tenants: None, redis: Redis
) -> None:
    cookie = await login(client, DEMO)
    assert (await client.get("/dashboard/session")).status == 200
    response = await client.post("/dashboard/logout", headers={"X-CSRF-Token": csrf_token(cookie)})
    assert response.status == 204
    assert SimpleCookie(response.headers["Set-Cookie"])["dispatcher_session"].value == ""
    await _refused(client, "/dashboard/session", cookie)

    cookie = await login(client, DEMO)
    assert (await client.get("/dashboard/session")).status == 200
    await load_directory(redis, demo_document())  # may have rotated the tokens
    client.app[DIRECTORY].forget()
    await _refused(client, "/dashboard/session", cookie)


async def test_the_snapshot_shows_calls_queues_agents_and_the_latest_calls(
    client: TestClient[Any, Any], tenants: None
) -> None:
    for agent_id, status in [(1, "unavailable"), (3, "offline")]:
        put = await client.put(
            f"/apps/api/v1/agents/{agent_id}/status", json={"status": status}, headers=basic()
        )
        assert put.status == 200
    call = await create_call(client)
    await login(client, DEMO)
    response = await client.get("/dashboard/api/snapshot")
    assert response.status == 200
    snapshot = await response.json()
    assert set(snapshot) == {
        "subdomain", "at_ms", "calls", "queues", "agents", "offers_in_flight", "sms_sessions",
        "scheduled_next_hour", "held", "latest_calls", "calls_per_minute", "timezone",
        "campaigns", "open_sms_sessions",
    }  # fmt: skip
    assert snapshot["calls"]["queued"] == 1
    assert sum(snapshot["calls"].values()) == 1
    assert [(q["menu_id"], q["waiting"]) for q in snapshot["queues"]] == [(9, 0), (50, 0), (51, 1)]
    every = ["Lock Star", "Web Support", "Phone Sales"]
    assert snapshot["agents"] == [
        {"id": 1, "name": "Admin UJET", "status": "unavailable", "active_calls": 0,
         "ringing": 0, "voice_capacity": 1, "queues": ["Lock Star", "Phone Sales"]},
        {"id": 2, "name": "Agent Smith", "status": "available", "active_calls": 0,
         "ringing": 0, "voice_capacity": 1, "queues": every},
        # in no menu's groups: never offered a call, and the page says so
        {"id": 3, "name": "Allen Baker", "status": "offline", "active_calls": 0,
         "ringing": 0, "voice_capacity": 1, "queues": []},
        {"id": 4, "name": "John Doe", "status": "available", "active_calls": 0,
         "ringing": 0, "voice_capacity": 1, "queues": every},
    ]  # fmt: skip
    assert (snapshot["offers_in_flight"], snapshot["sms_sessions"]) == (0, 0)
    assert snapshot["scheduled_next_hour"] == 0
    assert snapshot["latest_calls"] == [
        {
            "id": call["id"],
            "call_type": "Voice Inbound (API)",
            "status": "queued",
            "created_at": call["created_at"],
            "menu": "Phone Sales",
            "agent": None,
            # still waiting: counted up to the picture's moment
            "wait_duration": (snapshot["at_ms"] - _ms(call["queued_at"])) // 1000,
            "scheduled_at": None,
            "call_duration": 0,
            "fail_reason": "nothing",
        }
    ]
    per_minute = snapshot["calls_per_minute"]
    assert len(per_minute) == 30 and sum(per_minute) == 1
    created = clock.parse_iso(call["created_at"])
    assert created is not None
    minutes_ago = snapshot["at_ms"] // 60_000 - clock.to_ms(created) // 60_000
    assert per_minute[29 - minutes_ago] == 1


async def test_the_snapshot_shows_campaigns_and_open_sms_sessions_in_the_tenants_zone(
    client: TestClient[Any, Any], tenants: None
) -> None:
    """Campaigns as the campaign API reads them, with when their calls left are due; SMS
    sessions with the consumer's number masked as in the logs."""
    campaigns = "/apps/api/v1/campaigns"
    body = {"name": "spring", "menu_id": 9, "pacing": {"calls_per_second": 2}}
    created = await client.post(campaigns, json=body, headers=basic())
    assert created.status == 201
    campaign_id = (await created.json())["id"]
    now_ms = clock.to_ms(clock.now())
    due = [clock.iso(clock.from_ms(now_ms - now_ms % 1000 + s * 1000)) for s in (3600, 7200)]
    calls = [{"end_user_number": "+1 205-555-0100", "scheduled_at": at} for at in due]
    batch = await client.post(
        f"{campaigns}/{campaign_id}/calls/batch", json={"calls": calls}, headers=basic()
    )
    assert batch.status == 200
    sms = {
        "chat_type": "Messaging (SMS)",
        "end_user_number": "+1 415-555-0100",
        "outbound_number": "+1 628-555-0199",
        "message": "Your technician is on the way.",
    }
    opened = await client.post("/apps/api/v1/sms", json=sms, headers=basic())
    assert opened.status == 200
    chat = await opened.json()
    await login(client, DEMO)
    snapshot = await (await client.get("/dashboard/api/snapshot")).json()
    assert snapshot["timezone"] == "America/Los_Angeles"
    assert snapshot["campaigns"] == [
        {
            "id": campaign_id,
            "name": "spring",
            "menu_id": 9,
            "menu": "Lock Star",
            "state": "running",
            "pacing": {"calls_per_second": 2.0, "max_waiting": None, "max_estimated_wait_s": None},
            "total": 2,
            "progress": {
                "fired": 0,
                "not_fired": 2,
                "overdue": 0,
                "ended_unfired": 0,
                "held": 0,
                "fired_percent": 0.0,
            },
            "next_due_at": due[0],
            "last_due_at": due[1],
        }
    ]
    assert snapshot["open_sms_sessions"] == [
        {
            "id": chat["id"],
            "status": chat["status"],
            "created_at": chat["created_at"],
            "end_user_number": "+*********00",
            "outbound_number": "+16285550199",
            "agent": None,
            "messages": 0,  # no worker here: the SMS job sends (and records) the first
        }
    ]
    finished = await client.post(f"/apps/api/v1/chats/{chat['id']}/finish", headers=basic())
    assert finished.status == 200
    snapshot = await (await client.get("/dashboard/api/snapshot")).json()
    assert snapshot["open_sms_sessions"] == []


async def test_a_campaign_rows_report_is_the_campaigns_own_and_its_tenants_only(
    client: TestClient[Any, Any], tenants: None
) -> None:
    """The dashboard's campaign rows read GET /campaigns/:id/report through the session; a
    campaign of another tenant, or none, is not found."""
    campaigns = "/apps/api/v1/campaigns"
    body = {"name": "spring", "menu_id": 9}
    created = await client.post(campaigns, json=body, headers=basic())
    campaign_id = (await created.json())["id"]
    calls = [{"end_user_number": "+1 205-555-0100", "scheduled_at": "2030-06-03T17:00:00Z"}]
    batch = await client.post(
        f"{campaigns}/{campaign_id}/calls/batch", json={"calls": calls}, headers=basic()
    )
    assert batch.status == 200
    api = await client.get(f"{campaigns}/{campaign_id}/report", headers=basic())
    await login(client, DEMO)
    response = await client.get(f"/dashboard/api/campaigns/{campaign_id}/report")
    assert response.status == 200
    report = await response.json()
    assert report == await api.json()
    assert (report["contacts"], report["outcomes"]["pending"], report["held"]) == (1, 1, 0)
    for path in ("99", "x"):
        missing = await client.get(f"/dashboard/api/campaigns/{path}/report")
        assert (missing.status, await missing.json()) == (404, {"message": "Campaign not found"})
    await login(client, ACME)
    other = await client.get(f"/dashboard/api/campaigns/{campaign_id}/report")
    assert (other.status, await other.json()) == (404, {"message": "Campaign not found"})


async def test_a_call_detail_is_the_call_and_its_history(
    client: TestClient[Any, Any], tenants: None
) -> None:
    call = await create_call(client)
    await login(client, DEMO)
    response = await client.get(f"/dashboard/api/calls/{call['id']}")
    assert response.status == 200
    created = clock.parse_iso(call["created_at"])
    assert created is not None
    assert await response.json() == {
        "call": call,
        "history": [
            {"at": clock.to_ms(created), "event": "created", "call_type": "Voice Inbound (API)"}
        ],
    }
    for missing in ["999", "x", "-1", "1" * 30]:
        answer = await client.get(f"/dashboard/api/calls/{missing}")
        assert (answer.status, await answer.json()) == (404, {"message": "Call not found"})


async def _next_event(stream: aiohttp.ClientResponse) -> tuple[str, Any]:
    while True:
        block = (await asyncio.wait_for(stream.content.readuntil(b"\n\n"), 5)).decode()
        if block.startswith("event: "):
            name, _, data = block.strip().partition("\ndata: ")
            return name.removeprefix("event: "), orjson.loads(data)


async def test_the_stream_pushes_pictures_names_changed_calls_and_ends_on_logout(
    client: TestClient[Any, Any], tenants: None
) -> None:
    cookie = await login(client, DEMO)
    stream = await client.get("/dashboard/events")
    assert stream.status == 200
    assert stream.headers["Content-Type"] == "text/event-stream"
    kind, first = await _next_event(stream)
    assert (kind, first["subdomain"], first["changed"]) == ("snapshot", "demo", [])
    call = await create_call(client)
    finished = await client.post(f"/apps/api/v1/calls/{call['id']}/finish", headers=basic())
    assert finished.status == 200  # a transition: announced on the tenant's channel
    kind, second = await _next_event(stream)
    while kind == "snapshot" and not second["changed"]:
        kind, second = await _next_event(stream)
    assert (kind, second["changed"]) == ("snapshot", [call["id"]])
    assert second["calls"]["failed"] == 1
    token = {"X-CSRF-Token": csrf_token(cookie)}
    assert (await client.post("/dashboard/logout", headers=token)).status == 204
    kind, _ = await _next_event(stream)
    while kind == "snapshot":
        kind, _ = await _next_event(stream)
    assert kind == "signed_out"
    assert await asyncio.wait_for(stream.content.read(), 5) == b""


CROSS_SITE = {"message": "Cross-site request refused"}
NOT_JSON = {"message": "Content-Type must be application/json"}
BAD_CSRF = {"message": "Missing or wrong X-CSRF-Token"}


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://127.0.0.1.evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
async def test_a_cross_site_login_or_logout_is_refused(
    client: TestClient[Any, Any], tenants: None, headers: dict[str, str]
) -> None:
    """Login CSRF (signing the victim in to the attacker's tenant) and forced logout."""
    response = await client.post(LOGIN, json=ACME, headers=headers)
    assert (response.status, await response.json()) == (403, CROSS_SITE)
    assert "Set-Cookie" not in response.headers
    cookie = await login(client, DEMO)
    token = {"X-CSRF-Token": csrf_token(cookie)}
    response = await client.post("/dashboard/logout", headers={**headers, **token})
    assert (response.status, await response.json()) == (403, CROSS_SITE)
    assert "Set-Cookie" not in response.headers
    assert (await client.get("/dashboard/session")).status == 200


async def test_a_same_origin_browser_signs_in_and_out(
    client: TestClient[Any, Any], tenants: None
) -> None:
    own = {"Origin": f"http://{client.host}:{client.port}", "Sec-Fetch-Site": "same-origin"}
    response = await client.post(LOGIN, json=DEMO, headers=own)
    assert response.status == 200
    cookie = response.cookies["dispatcher_session"].value
    session = await client.get("/dashboard/session")
    assert await session.json() == {"tenant": "demo", "csrf_token": csrf_token(cookie)}
    logout = await client.post(
        "/dashboard/logout", headers={**own, "X-CSRF-Token": csrf_token(cookie)}
    )
    assert logout.status == 204


@pytest.mark.parametrize("token", [None, "", "0" * 64, "é"])
async def test_logout_needs_the_sessions_csrf_token(
    client: TestClient[Any, Any], tenants: None, token: str | None
) -> None:
    await login(client, DEMO)
    headers = {"X-CSRF-Token": token} if token is not None else {}
    response = await client.post("/dashboard/logout", headers=headers)
    assert (response.status, await response.json()) == (
        403,
        {"message": "Missing or wrong X-CSRF-Token"},
    )
    assert "Set-Cookie" not in response.headers
    assert (await client.get("/dashboard/session")).status == 200


async def test_logout_without_a_session_clears_the_cookie(
    client: TestClient[Any, Any], tenants: None
) -> None:
    response = await client.post("/dashboard/logout")
    assert response.status == 204
    assert SimpleCookie(response.headers["Set-Cookie"])["dispatcher_session"].value == ""


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None]
)
async def test_a_login_that_is_not_json_is_415(
    client: TestClient[Any, Any], tenants: None, content_type: str | None
) -> None:
    """A cross-site <form enctype="text/plain"> can send a body that parses as JSON."""
    headers = {"Content-Type": content_type} if content_type else {}
    response = await client.post(LOGIN, data=orjson.dumps(DEMO), headers=headers)
    assert (response.status, await response.json()) == (415, NOT_JSON)
    assert "Set-Cookie" not in response.headers


def _ms(stamp: str) -> int:
    moment = clock.parse_iso(stamp)
    assert moment is not None
    return clock.to_ms(moment)


async def test_a_shared_read_is_kept_for_a_multiple_of_its_own_duration() -> None:
    """A slow read (a large campaign's report) is read again only once `per_read_time` times
    its duration has passed, however often it is asked; concurrent askers share one read."""
    reads = SharedReads(max_age_s=0, per_read_time=4)
    count = 0

    async def read() -> int:
        nonlocal count
        count += 1
        await asyncio.sleep(0.05)
        return count

    assert await asyncio.gather(*(reads.get("t:1", read) for _ in range(3))) == [1, 1, 1]
    assert await reads.get("t:1", read) == 1  # within 4 x its duration
    took = sum(reads._read["t:1"][2])
    await asyncio.sleep(took * 4 + 0.05)
    assert await reads.get("t:1", read) == 2
    assert await SharedReads(max_age_s=0).get("t:1", read) == 3  # no multiple: read each time
