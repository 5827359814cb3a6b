"""Archiving against the real servers: an ended call or chat moves from Redis to PostgreSQL
whole, reads back byte for byte the same, leaves nothing in Redis, and is never lost, doubled
or half-moved when the move stops between its steps or a record changes meanwhile."""

from __future__ import annotations

import asyncio
import copy
from datetime import date
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from arq.connections import ArqRedis
from redis.asyncio import Redis

from dispatcher.directory.tenant import Tenant
from dispatcher.domain.statuses import FailReason
from dispatcher.history import partitions
from dispatcher.history.archive import Archive
from dispatcher.http.appkeys import METRICS
from dispatcher.metrics import LIVE_GAUGES_MAX_AGE_S, Metrics
from dispatcher.settings import Settings
from dispatcher.store.archiving import HotRecords
from dispatcher.store.directory import DirectoryCache
from dispatcher.store.keys import TenantKeys
from dispatcher.store.scripts import Scripts
from dispatcher.store.stores import Stores, end_call
from tests.conftest import ADMIN_TOKEN, basic, demo_document, load_directory
from tests.scrape import value
from tests.workers.conftest import (
    API,
    CALLS,
    EXTRA_AGENTS,
    MULTICAST_MENU,
    TENANT,
    inbound_call,
    load_tenant,
    wait_for_offer,
    wait_for_status,
)
from workers.archiver import Archiver, PostgresDown
from workers.settings import create_worker

PHONE_SALES = 51  # a demo menu (multicast to agents 1, 2 and 4)


@pytest.fixture
def settings(redis_url: str, database_url: str) -> Settings:
    """The app reads archived records from the test's own database; records are due for
    archiving as soon as they end."""
    return Settings(
        redis_url=redis_url,
        admin_token=ADMIN_TOKEN,  # type: ignore[arg-type]
        database_url=database_url,
        hot_retention_s=0,
    )


@pytest.fixture
async def archiver(redis: Redis, pg: asyncpg.Pool, settings: Settings) -> Archiver:
    return Archiver(redis, Scripts.register(redis), Archive(pg), settings, Metrics())


async def _tenant(redis: Redis, subdomain: str = "demo") -> Tenant:
    tenant = await DirectoryCache(redis, 0).tenant(subdomain)
    assert tenant is not None
    return tenant


async def _ended_calls(
    client: TestClient[Any, Any], redis: Redis, count: int, tenant: str = "demo"
) -> list[int]:
    """`count` inbound calls created through the API and ended as the API ends them."""
    stores = Stores.of(redis, Scripts.register(redis), await _tenant(redis, tenant))
    body = {"call_type": "Voice Inbound (API)", "menu_id": PHONE_SALES, "lang": "en"}
    body["end_user_number"] = "+1 205-123-4567"
    ids = []
    for _ in range(count):
        response = await client.post(CALLS, json=body, headers=basic(tenant, f"{tenant}-token"))
        assert response.status == 201
        call_id = (await response.json())["id"]
        assert await end_call(stores, call_id, FailReason.AG_CANCELED) is not None
        ids.append(call_id)
    return ids


async def _with_acme(redis: Redis) -> None:
    """The demo tenant and a second one, acme: the same directory, a token of its own."""
    document = demo_document()
    other = copy.deepcopy(document["tenants"][0])
    other.update(subdomain="acme", api_tokens=["acme-token"])
    other["agents"] = [{**agent, "api_tokens": []} for agent in other["agents"]]
    document["tenants"].append(other)
    await load_directory(redis, document)


async def _redis_keys_of(redis: Redis, call_id: int) -> list[bytes]:
    """Every key named after the call (its hash, history, offers)."""
    pattern = TENANT.call(call_id).replace("{", "\\{")
    return [key async for key in redis.scan_iter(match=pattern + "*")]


async def _members_of(redis: Redis, call_id: int) -> list[bytes]:
    """Every sorted set of the tenant that still holds the call as a member."""
    found = []
    async for key in redis.scan_iter(match=TENANT.prefix.replace("{", "\\{") + "*"):
        if await redis.type(key) == b"zset":
            for member in (f"{call_id:015d}", str(call_id)):
                if await redis.zscore(key, member) is not None:
                    found.append(key)
    return found


async def _read(client: TestClient[Any, Any], path: str) -> tuple[int, bytes, dict[str, str]]:
    response = await client.get(path, headers=basic())
    headers = {
        name: response.headers[name] for name in ("Total", "Link") if name in response.headers
    }
    return response.status, await response.read(), headers


async def test_an_ended_call_moves_whole_and_reads_back_the_same(
    client: TestClient[Any, Any], redis: Redis, worker: Any, archiver: Archiver, pg: asyncpg.Pool
) -> None:
    await load_tenant(redis, menus={MULTICAST_MENU: {"offer_timeout_s": 5, "max_wait_s": 10}})
    call_id = (await inbound_call(client, MULTICAST_MENU))["id"]
    offer = await wait_for_offer(client, EXTRA_AGENTS[0], call_id)
    accepted = await client.post(f"{API}/offers/{offer['id']}/accept", headers=basic())
    assert accepted.status == 200
    await wait_for_status(client, call_id, "finished")
    flagged = await client.patch(
        f"{CALLS}/{call_id}/customer_flag", json={"bad_actor": True}, headers=basic()
    )
    assert flagged.status == 200
    paths = [
        f"{CALLS}/{call_id}",
        f"{CALLS}/{call_id}/customer_flag",
        f"{CALLS}?per=5",
        f"{CALLS}?status=finished&call_type=IncomingCall&sort_direction=asc",
    ]
    before = {path: await _read(client, path) for path in paths}
    stores = Stores.of(redis, Scripts.register(redis), await _tenant(redis), archiver._archive)
    detail_before = await stores.calls.detail(call_id)

    done = await archiver.tick(deadline=asyncio.get_running_loop().time() + 30)

    assert (done.moved, done.released) == (1, 1)
    assert await _redis_keys_of(redis, call_id) == []
    assert await _members_of(redis, call_id) == []
    assert await redis.smembers(TENANT.archiving("call")) == set()
    row = await pg.fetchrow("SELECT * FROM calls WHERE tenant = 'demo' AND id = $1", call_id)
    assert row is not None
    assert (row["status"], row["kind"], row["menu_id"]) == (
        "finished",
        "Voice Inbound (API)",
        MULTICAST_MENU,
    )
    assert row["agent_id"] == EXTRA_AGENTS[0]
    assert {path: await _read(client, path) for path in paths} == before
    assert await stores.calls.detail(call_id) == detail_before  # the dashboard's call detail
    flags = await client.patch(
        f"{CALLS}/{call_id}/customer_flag", json={"repeat_customer": True}, headers=basic()
    )
    assert flags.status == 200
    assert await flags.json() == {
        "verified_customer": False,
        "bad_actor": True,
        "repeat_customer": True,
    }


async def test_a_move_stopped_between_its_steps_is_finished_by_the_next_with_one_row(
    client: TestClient[Any, Any], redis: Redis, archiver: Archiver, pg: asyncpg.Pool
) -> None:
    await load_tenant(redis)
    ids = await _ended_calls(client, redis, 3)
    hot = HotRecords(redis, Scripts.register(redis), "demo")
    listed = await _read(client, f"{CALLS}?per=10")

    # Killed after the copy, before the delete: in both places, listed once, read from Redis.
    seq, records = await hot.begin("call", ids, cutoff_ms=2**62)
    await archiver._archive.store("call", "demo", seq, records)
    assert await pg.fetchval("SELECT count(*) FROM calls") == 3
    assert await _read(client, f"{CALLS}?per=10") == listed
    # Killed after the read, before the copy: the next pass reads them again.
    await hot.begin("call", ids, cutoff_ms=2**62)

    done = await archiver.tick(deadline=asyncio.get_running_loop().time() + 30)
    assert (done.moved, done.released) == (3, 3)
    assert await pg.fetchval("SELECT count(*) FROM calls") == 3
    assert await _read(client, f"{CALLS}?per=10") == listed
    for call_id in ids:
        assert await _redis_keys_of(redis, call_id) == []
    again = await archiver.tick(deadline=asyncio.get_running_loop().time() + 30)
    assert (again.moved, again.released) == (0, 0)


async def test_a_call_changed_after_its_copy_stays_and_is_copied_again(
    client: TestClient[Any, Any], redis: Redis, archiver: Archiver, pg: asyncpg.Pool
) -> None:
    await load_tenant(redis)
    [call_id] = await _ended_calls(client, redis, 1)
    hot = HotRecords(redis, Scripts.register(redis), "demo")
    seq, records = await hot.begin("call", [call_id], cutoff_ms=2**62)
    await archiver._archive.store("call", "demo", seq, records)
    flagged = await client.patch(
        f"{CALLS}/{call_id}/customer_flag", json={"verified_customer": True}, headers=basic()
    )
    assert flagged.status == 200

    assert await hot.release("call", records) == 0  # changed: it stays
    assert await _redis_keys_of(redis, call_id) != []
    _, listed, headers = await _read(client, f"{CALLS}?per=10")
    assert headers["Total"] == "1"

    await archiver.tick(deadline=asyncio.get_running_loop().time() + 30)
    assert await _redis_keys_of(redis, call_id) == []
    flags = await pg.fetchval("SELECT flags FROM calls WHERE id = $1", call_id)
    assert flags == '{"verified_customer": true}'


async def test_lists_show_each_record_once_while_records_move(
    client: TestClient[Any, Any], redis: Redis, archiver: Archiver, pg: asyncpg.Pool
) -> None:
    await load_tenant(redis)
    ids = await _ended_calls(client, redis, 40)
    live = (await inbound_call(client, PHONE_SALES))["id"]  # stays in Redis
    expected = sorted([*ids, live], reverse=True)
    hot = HotRecords(redis, Scripts.register(redis), "demo")
    stop = asyncio.Event()

    async def move_in_small_batches() -> None:
        for start in range(0, len(ids), 3):
            seq, records = await hot.begin("call", ids[start : start + 3], cutoff_ms=2**62)
            await asyncio.sleep(0)
            await archiver._archive.store("call", "demo", seq, records)
            await asyncio.sleep(0)
            await hot.release("call", records)
        stop.set()

    mover = asyncio.create_task(move_in_small_batches())
    reads = 0
    while not stop.is_set() or reads == 0:
        for per in (7, 100):
            pages = []
            for page in range(1, -(-len(expected) // per) + 1):
                response = await client.get(f"{CALLS}?per={per}&page={page}", headers=basic())
                assert response.status == 200
                assert response.headers["Total"] == str(len(expected))
                pages += [call["id"] for call in await response.json()]
            assert pages == expected
        reads += 1
    await mover
    assert await pg.fetchval("SELECT count(*) FROM calls") == len(ids)


async def test_an_unreachable_postgres_stops_nothing_but_archiving(
    client: TestClient[Any, Any], redis: Redis, settings: Settings
) -> None:
    await load_tenant(redis)
    [call_id] = await _ended_calls(client, redis, 1)
    nowhere = await asyncpg.create_pool(
        "postgresql://dispatcher@127.0.0.1:1/dispatcher", min_size=0, max_size=1
    )
    archiver = Archiver(redis, Scripts.register(redis), Archive(nowhere), settings, Metrics())
    try:
        with pytest.raises(PostgresDown):
            await archiver.tick(deadline=asyncio.get_running_loop().time() + 5)
    finally:
        await nowhere.close()
    assert await redis.smembers(TENANT.archiving("call")) == set()  # nothing was begun
    status, body, _ = await _read(client, f"{CALLS}/{call_id}")
    assert status == 200


async def test_one_tenants_backlog_does_not_hold_another_up(
    client: TestClient[Any, Any], redis: Redis, pg: asyncpg.Pool, settings: Settings
) -> None:
    await _with_acme(redis)
    busy = await _ended_calls(client, redis, 7)  # demo's backlog
    quiet = await _ended_calls(client, redis, 1, tenant="acme")
    archiver = Archiver(redis, Scripts.register(redis), Archive(pg), settings, Metrics(), batch=2)

    done = await archiver.tick(asyncio.get_running_loop().time() + 30, rounds=1)

    assert done.released == 3  # a batch of demo's, and acme's one
    assert await redis.exists(TenantKeys("acme").call(quiet[0])) == 0
    rows = await pg.fetch("SELECT tenant, id FROM calls ORDER BY tenant, id")
    assert [(row["tenant"], row["id"]) for row in rows] == [
        ("acme", quiet[0]),
        *(("demo", call_id) for call_id in busy[:2]),
    ]
    rest = await archiver.tick(asyncio.get_running_loop().time() + 30)
    assert rest.released == 5


async def test_metrics_tell_the_archives_backlog_its_lag_rows_and_pool(
    client: TestClient[Any, Any], redis: Redis, pg: asyncpg.Pool, settings: Settings
) -> None:
    await load_tenant(redis)
    await _ended_calls(client, redis, 2)
    metrics = client.app[METRICS]
    archiver = Archiver(redis, Scripts.register(redis), Archive(pg), settings, metrics)
    await asyncio.sleep(0.05)  # ended for a while: with no hot retention, late by as much

    before = await _scrape(client)
    assert value(before, "dispatcher_archive_pending_records", tenant="demo", kind="call") == 2
    assert value(before, "dispatcher_archive_pending_records", tenant="demo", kind="chat") == 0
    lag = value(before, "dispatcher_archive_lag_seconds", tenant="demo", kind="call")
    assert lag is not None and lag > 0
    pool_max = value(before, "dispatcher_postgres_pool_max_connections")
    assert pool_max == settings.pg_pool_max
    assert value(before, "dispatcher_postgres_pool_connections", state="idle") is not None

    await archiver.tick(asyncio.get_running_loop().time() + 30)
    await asyncio.sleep(LIVE_GAUGES_MAX_AGE_S)  # the live gauges are read again
    after = await _scrape(client)
    assert value(after, "dispatcher_archive_pending_records", tenant="demo", kind="call") == 0
    assert value(after, "dispatcher_archive_lag_seconds", tenant="demo", kind="call") == 0
    assert value(after, "dispatcher_archived_records_total", kind="call") == 2


async def _scrape(client: TestClient[Any, Any]) -> str:
    response = await client.get("/metrics")
    assert response.status == 200
    return await response.text()


async def test_archived_records_are_read_and_written_only_by_their_own_tenant(
    client: TestClient[Any, Any], redis: Redis, pg: asyncpg.Pool, archiver: Archiver
) -> None:
    await _with_acme(redis)
    demo_ids = await _ended_calls(client, redis, 2)
    acme_ids = await _ended_calls(client, redis, 3, tenant="acme")
    assert acme_ids[:2] == demo_ids  # the same ids: each tenant counts its own
    acme = basic("acme", "acme-token")
    before = await (await client.get(f"{CALLS}?per=10", headers=acme)).read()
    await archiver.tick(asyncio.get_running_loop().time() + 30)
    assert await pg.fetchval("SELECT count(*) FROM calls") == 5

    flagged = await client.patch(
        f"{CALLS}/{demo_ids[0]}/customer_flag", json={"bad_actor": True}, headers=basic()
    )
    assert flagged.status == 200
    acme_flags = await client.get(f"{CALLS}/{demo_ids[0]}/customer_flag", headers=acme)
    assert (await acme_flags.json())["bad_actor"] is False
    assert await (await client.get(f"{CALLS}?per=10", headers=acme)).read() == before
    demo_list = await client.get(f"{CALLS}?per=10", headers=basic())
    assert demo_list.headers["Total"] == "2"
    assert [call["id"] for call in await demo_list.json()] == sorted(demo_ids, reverse=True)
    missing = await client.get(f"{CALLS}/{acme_ids[2]}", headers=basic())
    assert (missing.status, await missing.json()) == (404, {"message": "Call not found"})


async def test_the_archive_tick_leaves_the_in_progress_lease_of_jobs_as_it_was(
    redis_url: str, redis: Redis
) -> None:
    """ARQ leases a running job for its longest function timeout + 10 s: a job of a worker
    killed mid-run waits that long before another worker runs it. The archiver's cron job
    must not lengthen it (it once did, to 40 s, and test_crash's jobs waited)."""
    client = ArqRedis.from_url(redis_url)
    try:
        worker = create_worker(client, handle_signals=False, job_timeout=1)
        assert "archive" in worker.functions
        assert worker.in_progress_timeout_s == 1 + 10
    finally:
        await client.aclose()


async def test_whole_months_older_than_the_retention_are_dropped_once_an_hour(
    redis: Redis, pg: asyncpg.Pool, settings: Settings
) -> None:
    kept = settings.model_copy(update={"archive_retention_days": None})
    keeping = Archiver(redis, Scripts.register(redis), Archive(pg), kept, Metrics())
    async with pg.acquire() as conn:
        await partitions.ensure_months(conn, "calls", {date(2020, 1, 1), date.today()})
    assert await keeping.prune() == []  # no retention: kept forever

    thirty = settings.model_copy(update={"archive_retention_days": 30})
    pruning = Archiver(redis, Scripts.register(redis), Archive(pg), thirty, Metrics())
    assert await pruning.prune() == ["calls_y2020m01"]
    assert await pruning.prune() == []  # another worker, or a later tick: not within the hour
    names = await pg.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'calls'::regclass"
    )
    assert [row["relname"] for row in names] == [f"calls_y{date.today():%Y}m{date.today():%m}"]
