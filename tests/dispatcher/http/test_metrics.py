"""GET /metrics: requests by route template, the live picture read from Redis at the scrape,
offer-to-accept time, and the optional token."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from dispatcher.app import create_app
from dispatcher.domain import clock
from dispatcher.http.appkeys import LIVE_GAUGES
from dispatcher.metrics import LiveGauges, live_families
from dispatcher.settings import Settings
from dispatcher.store.directory import DirectoryCache
from dispatcher.store.scripts import Scripts
from dispatcher.store.stores import Stores
from tests.conftest import basic, demo_document, load_directory
from tests.dispatcher.http.test_openapi import conforming
from tests.scrape import families, samples, value

CALLS = "/apps/api/v1/calls"
INBOUND = {"call_type": "Voice Inbound (API)", "menu_id": 9, "end_user_number": "+1 205-555-0101"}
REQUESTS = "dispatcher_http_requests_total"


async def _scrape(client: TestClient[Any, Any], headers: dict[str, str] | None = None) -> str:
    response = await client.get("/metrics", headers=headers)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    await conforming(response, "/metrics")
    return await response.text()


def _requests(text: str, route: str, method: str, status: str) -> float | None:
    return value(text, REQUESTS, route=route, method=method, status=status)


async def test_requests_are_counted_by_route_template_method_and_status(
    client: TestClient[Any, Any], demo: dict[str, Any]
) -> None:
    for number in ("+1 205-555-0101", "+1 205-555-0102"):
        body = {**INBOUND, "end_user_number": number}
        assert (await client.post(CALLS, json=body, headers=basic())).status == 201
    assert (await client.post(CALLS, json={"call_type": "x"}, headers=basic())).status == 400
    for call_id in ("999", "abc"):
        assert (await client.get(f"{CALLS}/{call_id}", headers=basic())).status == 404
    assert (await client.get("/no/such/path")).status == 404
    assert (await client.request("PROPFIND", "/healthz")).status == 405
    assert (await client.delete("/healthz")).status == 405

    text = await _scrape(client)
    assert _requests(text, CALLS, "POST", "201") == 2
    assert _requests(text, CALLS, "POST", "400") == 1
    assert _requests(text, CALLS + "/{id}", "GET", "404") == 2
    assert _requests(text, "unmatched", "GET", "404") == 1
    assert _requests(text, "unmatched", "other", "405") == 1
    assert _requests(text, "unmatched", "DELETE", "405") == 1
    assert _requests(text, "/metrics", "GET", "200") is None  # counted once answered
    assert sum(v for (name, _), v in samples(text).items() if name == REQUESTS) == 8
    duration = "dispatcher_http_request_duration_seconds"
    assert value(text, f"{duration}_count", route=CALLS, method="POST") == 3
    assert value(text, f"{duration}_bucket", route=CALLS, method="POST", le="+Inf") == 3
    assert value(text, f"{duration}_count", route="unmatched", method="other") == 1

    again = await _scrape(client)
    assert _requests(again, "/metrics", "GET", "200") == 1
    assert _requests(again, CALLS, "POST", "201") == 2


async def test_the_live_picture_is_read_from_redis_at_each_scrape(
    client: TestClient[Any, Any], redis: Redis, demo: dict[str, Any]
) -> None:
    _live_gauges(client).max_age_s = 0  # no cache: this test reads what each scrape saw
    empty = await _scrape(client)
    assert value(empty, "dispatcher_calls", tenant="demo", status="queued") == 0
    assert value(empty, "dispatcher_arq_queue_jobs") == 0
    for number in ("+1 205-555-0101", "+1 205-555-0102"):
        body = {**INBOUND, "end_user_number": number}
        assert (await client.post(CALLS, json=body, headers=basic())).status == 201
    later = {
        **INBOUND,
        "call_type": "Voice Scheduled (API)",
        "scheduled_at": "2030-06-03T17:00:00Z",
    }
    assert (await client.post(CALLS, json=later, headers=basic())).status == 201

    other = demo_document()
    other["tenants"][0].update(subdomain="acme", api_tokens=["acme-token"])
    await load_directory(redis, other)  # a second tenant, with nothing going on

    text = await _scrape(client)
    name = "dispatcher_calls"
    calls = [dict(labels) | {"v": v} for (n, labels), v in samples(text).items() if n == name]
    assert {call["tenant"] for call in calls} == {"demo", "acme"}
    assert {call["v"] for call in calls if call["tenant"] == "acme"} == {0}
    by_status = {str(call["status"]): call["v"] for call in calls if call["tenant"] == "demo"}
    assert len(by_status) == 16  # every status, 0 included: series do not come and go
    assert by_status == {**dict.fromkeys(by_status, 0.0), "queued": 2, "scheduled": 1}
    assert value(text, "dispatcher_queue_waiting_calls", tenant="demo", menu="9") == 2
    assert value(text, "dispatcher_queue_waiting_calls", tenant="demo", menu="50") == 0
    assert value(text, "dispatcher_queue_waiting_calls", tenant="acme", menu="9") == 0
    longest = value(text, "dispatcher_queue_longest_wait_seconds", tenant="demo", menu="9")
    assert longest is not None and 0 <= longest < 10
    assert value(text, "dispatcher_queue_longest_wait_seconds", tenant="demo", menu="50") == 0
    assert value(text, "dispatcher_arq_queue_jobs") == 3  # two routings and a firing in 2030
    assert value(text, "dispatcher_arq_queue_due_jobs") == 2
    assert value(text, "dispatcher_workers_alive") == 0
    assert value(text, "dispatcher_held_calls", tenant="demo") == 0
    assert value(text, "dispatcher_held_calls", tenant="acme") == 0


def _live_gauges(client: TestClient[Any, Any]) -> LiveGauges:
    assert client.app is not None
    gauges: LiveGauges | None = client.app[LIVE_GAUGES]
    assert gauges is not None
    return gauges


# Commands every new connection sends, and the counting itself: not reads of the picture.
_NOT_READS = ("client", "hello", "select", "info", "ping", "auth")


async def _commands(redis: Redis) -> dict[str, int]:
    """Calls per command Redis has served (INFO commandstats), reads of data only."""
    stats: dict[str, dict[str, int]] = await redis.info("commandstats")
    return {
        name: int(stat["calls"])
        for name, stat in stats.items()
        if not name.removeprefix("cmdstat_").startswith(_NOT_READS)
    }


def _delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {name: n - before.get(name, 0) for name, n in after.items() if n != before.get(name, 0)}


async def test_concurrent_scrapes_share_one_read_of_the_live_picture(
    client: TestClient[Any, Any], redis: Redis, demo: dict[str, Any]
) -> None:
    # Found by the hardening review: 32 scrapers (69 scrapes a second) each read the whole
    # picture, and another tenant's API p50 went from 2.6 ms to 414 ms.
    _live_gauges(client).max_age_s = 3600  # only the single flight is under test, not a clock
    before = await _commands(redis)
    await live_families(redis, DirectoryCache(redis))
    one_read = _delta(before, await _commands(redis))
    assert one_read.get("cmdstat_hkeys") == 1  # the list of tenants, once per read

    before = await _commands(redis)
    texts = await asyncio.gather(*(_scrape(client) for _ in range(32)))
    assert _delta(before, await _commands(redis)) == one_read
    queued = {value(text, "dispatcher_calls", tenant="demo", status="queued") for text in texts}
    assert queued == {0}

    before = await _commands(redis)
    await _scrape(client)  # within the age: answered from what was read
    assert _delta(before, await _commands(redis)) == {}


async def test_the_live_picture_is_read_again_once_it_is_older_than_its_age(
    client: TestClient[Any, Any], redis: Redis, demo: dict[str, Any]
) -> None:
    gauges = _live_gauges(client)
    gauges.max_age_s = 3600
    await _scrape(client)
    assert (await client.post(CALLS, json=INBOUND, headers=basic())).status == 201
    cached = await _scrape(client)
    assert value(cached, "dispatcher_calls", tenant="demo", status="queued") == 0
    gauges.max_age_s = 0
    fresh = await _scrape(client)
    assert value(fresh, "dispatcher_calls", tenant="demo", status="queued") == 1


async def test_an_accepted_offer_is_timed(
    client: TestClient[Any, Any], redis: Redis, demo: dict[str, Any]
) -> None:
    created = await client.post(CALLS, json=INBOUND, headers=basic())
    call = await created.json()
    tenant = await DirectoryCache(redis).tenant("demo")
    assert tenant is not None
    calls = Stores.of(redis, Scripts.register(redis), tenant).agents
    offered_at = clock.now()
    [offer] = await calls.make_offers(call["id"], [(2, 1, "g1")], offered_at, 30)
    accepted = await client.post(f"/apps/api/v1/offers/{offer.id}/accept", headers=basic())
    assert accepted.status == 200
    waited_s = (clock.now() - offered_at).total_seconds()
    gone = await client.post(f"/apps/api/v1/offers/{offer.id}/accept", headers=basic())
    assert gone.status == 409  # a refused accept is not timed

    text = await _scrape(client)
    assert value(text, "dispatcher_offer_accept_seconds_count") == 1
    observed = value(text, "dispatcher_offer_accept_seconds_sum")
    assert observed is not None and 0 <= observed <= waited_s
    assert value(text, "dispatcher_offer_accept_seconds_bucket", le="0.5") == 1


async def test_a_metrics_token_is_asked_for_when_set(redis_url: str, redis: Redis) -> None:
    settings = Settings(redis_url=redis_url, metrics_token="scrape-secret")  # type: ignore[arg-type]
    async with TestClient(TestServer(create_app(settings))) as test_client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
            refused = await test_client.get("/metrics", headers=headers)
            assert refused.status == 401
            assert refused.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
            assert await conforming(refused, "/metrics") == {"message": "Unauthorized"}
        text = await _scrape(test_client, {"Authorization": "Bearer scrape-secret"})
        assert _requests(text, "/metrics", "GET", "401") == 3
        ready = await test_client.get("/readyz?exclude=workers")  # probes need no token
        assert ready.status == 200


async def test_without_redis_a_scrape_still_has_the_process_metrics(
    unreachable: TestClient[Any, Any],
) -> None:
    assert (await unreachable.get("/healthz")).status == 200
    text = await _scrape(unreachable)
    assert _requests(text, "/healthz", "GET", "200") == 1
    assert "dispatcher_http_requests" in families(text)
    assert "dispatcher_calls" not in families(text)
    assert "dispatcher_workers_alive" not in families(text)
