"""The per-tenant rate limit: a token bucket in Redis shared by every ingress process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from dispatcher.app import create_app
from dispatcher.settings import Settings
from dispatcher.store.buckets import Bucket
from dispatcher.store.keys import TenantKeys
from dispatcher.store.scripts import Scripts, TakeToken
from tests.conftest import basic, demo_document, load_directory

CALLS = "/apps/api/v1/calls"


def limited(per_s: float, burst: int) -> dict[str, Any]:
    """The demo tenant with its own limit, and a second tenant on the process default."""
    document = demo_document()
    demo = document["tenants"][0]
    demo["settings"].update(rate_limit_per_s=per_s, rate_limit_burst=burst)
    other = {**demo_document()["tenants"][0], "subdomain": "other", "api_tokens": ["other-token"]}
    document["tenants"].append(other)
    return document


@pytest.fixture
async def second_client(settings: Settings, redis: Redis) -> AsyncIterator[TestClient[Any, Any]]:
    """Another ingress process's app on the same Redis."""
    async with TestClient(TestServer(create_app(settings))) as test_client:
        yield test_client


async def test_over_the_burst_is_429_with_retry_after(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    await load_directory(redis, limited(per_s=0.5, burst=3))
    statuses = [(await client.get(CALLS, headers=basic())).status for _ in range(3)]
    assert statuses == [200, 200, 200]
    refused = await client.get(CALLS, headers=basic())
    assert refused.status == 429
    assert await refused.json() == {"message": "Too many requests: the limit is 0.5 per second"}
    assert refused.headers["Retry-After"] == "2"
    created = await client.post(
        CALLS, json={"call_type": "Voice Inbound (API)", "menu_id": 9}, headers=basic()
    )
    assert created.status == 429
    assert await redis.zcard(TenantKeys("demo").calls) == 0


async def test_a_rate_too_small_to_refill_waits_a_decade_rather_than_failing(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    await load_directory(redis, limited(per_s=1e-300, burst=1))
    assert (await client.get(CALLS, headers=basic())).status == 200
    refused = await client.get(CALLS, headers=basic())
    assert refused.status == 429
    assert await refused.json() == {"message": "Too many requests: the limit is 1e-300 per second"}
    assert refused.headers["Retry-After"] == "315360000"


async def test_each_tenant_has_its_own_bucket(client: TestClient[Any, Any], redis: Redis) -> None:
    await load_directory(redis, limited(per_s=1, burst=1))
    assert (await client.get(CALLS, headers=basic())).status == 200
    assert (await client.get(CALLS, headers=basic())).status == 429
    others = [(await client.get(CALLS, headers=basic("other", "other-token"))).status]
    others += [(await client.get(CALLS, headers=basic("other", "other-token"))).status]
    assert others == [200, 200]  # the default of the test settings: 200/s, bursts of 400


async def test_the_bucket_is_shared_by_every_ingress_process(
    client: TestClient[Any, Any], second_client: TestClient[Any, Any], redis: Redis
) -> None:
    await load_directory(redis, limited(per_s=1, burst=4))
    statuses = []
    for turn in range(6):
        answering = client if turn % 2 == 0 else second_client
        statuses.append((await answering.get(CALLS, headers=basic())).status)
    assert statuses == [200, 200, 200, 200, 429, 429]


async def test_refused_credentials_take_no_token(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    await load_directory(redis, limited(per_s=1, burst=1))
    for _ in range(5):
        assert (await client.get(CALLS, headers=basic(token="wrong"))).status == 401
    assert (await client.get(CALLS, headers=basic())).status == 200


async def test_the_process_default_applies_when_the_directory_sets_none(
    redis_url: str, redis: Redis
) -> None:
    await load_directory(redis, demo_document())
    settings = Settings(redis_url=redis_url, rate_limit_per_s=2, rate_limit_burst=2)
    async with TestClient(TestServer(create_app(settings))) as limited_client:
        statuses = [(await limited_client.get(CALLS, headers=basic())).status for _ in range(3)]
        refused = await limited_client.get(CALLS, headers=basic())
        message = await refused.json()
    assert statuses == [200, 200, 429]
    assert message == {"message": "Too many requests: the limit is 2 per second"}


async def test_zero_means_no_limit(client: TestClient[Any, Any], redis: Redis) -> None:
    await load_directory(redis, limited(per_s=0, burst=1))
    statuses = {(await client.get(CALLS, headers=basic())).status for _ in range(30)}
    assert statuses == {200}
    assert not await redis.exists(TenantKeys("demo").api_bucket)


async def test_the_bucket_refills_at_its_rate(redis: Redis) -> None:
    """The Lua bucket on a given clock: bursts, exact waits, refill, and no refill past full."""
    scripts = Scripts.register(redis)
    bucket = TenantKeys("demo").api_bucket

    async def at(now_ms: int) -> int:
        return await scripts.run(TakeToken(Bucket(bucket, 4, 2, at_ms=now_ms)))

    assert [await at(1000), await at(1000)] == [0, 0]
    assert await at(1000) == 250  # one token every 250 ms at 4/s
    assert await at(1100) == 150
    assert await at(1250) == 0
    assert await at(1250) == 250
    assert [await at(9000), await at(9000), await at(9000)] == [0, 0, 250]
    assert 0 < await redis.pttl(bucket) <= 500 + 1000  # forgotten once it would be full


REFUSED_LIMIT = {"message": "Too many requests: the limit is 0.01 per second"}
SLOW = 0.01  # a token per 100 s: nothing refills while a test runs


async def test_wrong_logins_and_sessions_spend_no_tenant_token(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    """Tenant names are public (/metrics): refusals are charged to the client's address."""
    await load_directory(redis, limited(per_s=SLOW, burst=2))
    wrong = {"subdomain": "demo", "token": "wrong"}
    for _ in range(8):
        assert (await client.post("/dashboard/login", json=wrong)).status == 401
        assert (await client.get(CALLS, headers=basic(token="wrong"))).status == 401
        forged = {"Cookie": "dispatcher_session=demo.forged"}
        assert (await client.get("/dashboard/api/snapshot", headers=forged)).status == 401
    statuses = [(await client.get(CALLS, headers=basic())).status for _ in range(3)]
    assert statuses == [200, 200, 429]


@pytest.fixture
async def refusing_client(redis_url: str, redis: Redis) -> AsyncIterator[TestClient[Any, Any]]:
    """An app allowing 3 refused credentials per client address, then one per 100 s."""
    await load_directory(redis, demo_document())
    settings = Settings(
        redis_url=redis_url, refused_rate_limit_per_s=SLOW, refused_rate_limit_burst=3
    )
    async with TestClient(TestServer(create_app(settings))) as test_client:
        yield test_client


async def test_refused_credentials_have_a_limit_per_client_address(
    refusing_client: TestClient[Any, Any],
) -> None:
    client = refusing_client
    statuses = [(await client.get(CALLS, headers=basic(token="wrong"))).status for _ in range(3)]
    assert statuses == [401, 401, 401]
    for refused in [
        await client.get(CALLS, headers=basic(token="wrong")),
        await client.get(CALLS, headers=basic("nobody")),
        await client.get(CALLS),
        await client.post("/dashboard/login", json={"subdomain": "demo", "token": "wrong"}),
        await client.get("/dashboard/session"),
    ]:
        assert refused.status == 429
        assert await refused.json() == REFUSED_LIMIT
        assert 90 <= int(refused.headers["Retry-After"]) <= 100
    assert (await client.get(CALLS, headers=basic())).status == 200  # the tenant is not


async def test_x_forwarded_for_is_not_trusted_by_default(
    refusing_client: TestClient[Any, Any],
) -> None:
    statuses = []
    for n in range(5):
        headers = {**basic(token="wrong"), "X-Forwarded-For": f"203.0.113.{n}"}
        statuses.append((await refusing_client.get(CALLS, headers=headers)).status)
    assert statuses == [401, 401, 401, 429, 429]


async def test_behind_trusted_proxies_the_address_is_the_one_they_vouch_for(
    redis_url: str, redis: Redis
) -> None:
    await load_directory(redis, demo_document())
    settings = Settings(
        redis_url=redis_url,
        refused_rate_limit_per_s=SLOW,
        refused_rate_limit_burst=1,
        trusted_proxies=1,
    )
    async with TestClient(TestServer(create_app(settings))) as proxied:

        async def status(forwarded_for: str) -> int:
            headers = {**basic(token="wrong"), "X-Forwarded-For": forwarded_for}
            return (await proxied.get(CALLS, headers=headers)).status

        # What the client wrote (left) is not trusted; what the proxy appended (right) is.
        assert await status("198.51.100.7, 203.0.113.1") == 401
        assert await status("198.51.100.8, 203.0.113.1") == 429
        assert await status("203.0.113.1, 203.0.113.2") == 401
        assert await status("2001:db8::1") == 401
        # Read only for a refusal: an accepted request never needs its address.
        bad = await proxied.get(CALLS, headers={**basic(token="x"), "X-Forwarded-For": "a, b"})
        assert bad.status == 400
        assert await bad.json() == {"message": "X-Forwarded-For must be a list of IP addresses"}


@pytest.mark.parametrize(
    "path",
    [
        "/dashboard/session",
        "/dashboard/api/snapshot",
        "/dashboard/api/calls/1",
        "/dashboard/events",
    ],
)
async def test_dashboard_routes_spend_the_tenants_tokens(
    client: TestClient[Any, Any], redis: Redis, path: str
) -> None:
    await load_directory(redis, limited(per_s=SLOW, burst=3))
    login = await client.post("/dashboard/login", json={"subdomain": "demo", "token": "demo-token"})
    assert login.status == 200  # one token
    assert (await client.get(CALLS, headers=basic())).status == 200  # two
    assert (await client.get("/dashboard/session")).status == 200  # three
    refused = await client.get(path)
    assert refused.status == 429
    assert await refused.json() == {"message": "Too many requests: the limit is 0.01 per second"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/apps/api/v1/agents/2"),
        ("GET", "/apps/api/v1/agents/2/offers"),
        ("GET", "/apps/api/v1/agents/2/events"),
        ("PUT", "/apps/api/v1/agents/2/status"),
        ("POST", "/apps/api/v1/offers/1/accept"),
        ("POST", "/apps/api/v1/calls/1/finish"),
    ],
)
async def test_agent_routes_spend_the_tenants_tokens(
    client: TestClient[Any, Any], redis: Redis, method: str, path: str
) -> None:
    await load_directory(redis, limited(per_s=SLOW, burst=1))
    assert (await client.get(CALLS, headers=basic())).status == 200
    refused = await client.request(method, path, headers=basic(), json={"status": "available"})
    assert refused.status == 429
    assert await refused.json() == {"message": "Too many requests: the limit is 0.01 per second"}


INBOUND = {"call_type": "Voice Inbound (API)", "menu_id": 9, "end_user_number": "+1 205-123-4567"}
SMS = {
    "chat_type": "Messaging (SMS)",
    "end_user_number": "+1 415-555-0100",
    "outbound_number": "+1 628-555-0199",
    "message": "lorem ipsum",
}


async def _evalsha_calls(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def test_a_create_takes_its_token_in_the_script_that_draws_its_ids(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    """The hot path's round trips: the token and the ids in one script, then the record."""
    await load_directory(redis, limited(per_s=1, burst=2))
    await client.post(CALLS, json=INBOUND, headers=basic())  # the scripts are loaded
    before = await _evalsha_calls(redis)
    created = await client.post(CALLS, json=INBOUND, headers=basic())
    assert created.status == 201
    assert await _evalsha_calls(redis) - before == 2
    refused = await client.post(CALLS, json=INBOUND, headers=basic())
    assert refused.status == 429
    assert await refused.json() == {"message": "Too many requests: the limit is 1 per second"}
    assert refused.headers["Retry-After"] == "1"
    # refused before any id was drawn: the next call of the tenant is call 3
    assert await redis.get(TenantKeys("demo").sequence("call")) == b"2"


async def test_a_create_that_ends_without_a_record_still_pays_its_token(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    """A refused body, or a replay, is charged as it ends; over the limit, it is the 429."""
    await load_directory(redis, limited(per_s=0.5, burst=3))
    invalid = {"call_type": "Voice Inbound (API)"}
    first = await client.post(CALLS, json=invalid, headers=basic())
    assert first.status == 400
    once = {**basic(), "Idempotency-Key": "k-1"}
    assert (await client.post("/apps/api/v1/sms", json=SMS, headers=once)).status == 200
    replayed = await client.post("/apps/api/v1/sms", json=SMS, headers=once)
    assert replayed.status == 200
    for path, body in ((CALLS, invalid), ("/apps/api/v1/sms", SMS)):
        over = await client.post(path, json=body, headers=once if body is SMS else basic())
        assert over.status == 429
        assert await over.json() == {"message": "Too many requests: the limit is 0.5 per second"}
    assert await redis.zcard(TenantKeys("demo").calls) == 0
    assert await redis.zcard(TenantKeys("demo").chats) == 1


async def test_wrong_admin_and_metrics_tokens_share_the_address_limit(
    redis_url: str, redis: Redis
) -> None:
    settings = Settings(
        redis_url=redis_url,
        admin_token="admin-secret",  # type: ignore[arg-type]
        metrics_token="metrics-secret",  # type: ignore[arg-type]
        refused_rate_limit_per_s=SLOW,
        refused_rate_limit_burst=2,
    )
    wrong = {"Authorization": "Bearer wrong"}
    async with TestClient(TestServer(create_app(settings))) as client:
        assert (await client.get("/manager/api/v1/config", headers=wrong)).status == 401
        assert (await client.get("/metrics", headers=wrong)).status == 401
        for path in ("/manager/api/v1/config", "/metrics"):
            over = await client.get(path, headers=wrong)
            assert over.status == 429
            assert await over.json() == REFUSED_LIMIT
        right = {"Authorization": "Bearer metrics-secret"}
        assert (await client.get("/metrics", headers=right)).status == 200
