"""Archiving under faults, each against real servers of its own: PostgreSQL stopped, Redis
restarted, and a worker killed with SIGKILL between the copy and the delete. Every record
ends up in PostgreSQL once, reads back the same, and leaves nothing in Redis."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis
from redis.exceptions import RedisError

from dispatcher.app import create_app, redis_client
from dispatcher.directory.tenant import Tenant
from dispatcher.domain.statuses import FailReason
from dispatcher.history import schema
from dispatcher.history.archive import Archive
from dispatcher.metrics import Metrics
from dispatcher.postgres_embedded import EmbeddedPostgres
from dispatcher.redis_embedded import EmbeddedRedis
from dispatcher.settings import Settings
from dispatcher.store.archiving import HotRecords
from dispatcher.store.directory import DirectoryCache
from dispatcher.store.scripts import Scripts
from dispatcher.store.stores import Stores, end_call
from tests.conftest import ADMIN_TOKEN, basic, demo_document, load_directory
from tests.workers.conftest import CALLS, TENANT, inbound_call
from workers.archiver import Archiver, PostgresDown

pytestmark = pytest.mark.subprocess

BIN = Path(sys.executable).parent / "dispatcher"
PHONE_SALES = 51
FAR = 2**62  # a cutoff every ended record is before


@pytest.fixture
def postgres(pg_dir: Path) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(pg_dir)
    server.start()
    asyncio.run(schema.upgrade(server.url))
    yield server
    server.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A Redis of the test's own, every write on disk before it answers (it is restarted)."""
    server = EmbeddedRedis(tmp_path / "redis", appendfsync="always")
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def wired(
    own_redis: EmbeddedRedis, postgres: EmbeddedPostgres
) -> AsyncIterator[tuple[TestClient[Any, Any], Redis, asyncpg.Pool, Settings]]:
    settings = Settings(
        redis_url=own_redis.url,
        admin_token=ADMIN_TOKEN,  # type: ignore[arg-type]
        database_url=postgres.url,
        hot_retention_s=0,
    )
    redis = redis_client(own_redis.url)
    await load_directory(redis, demo_document())
    pool = await asyncpg.create_pool(postgres.url, min_size=0, max_size=2)
    async with TestClient(TestServer(create_app(settings))) as client:
        yield client, redis, pool, settings
    await pool.close()
    await redis.aclose()


async def _tenant(redis: Redis) -> Tenant:
    tenant = await DirectoryCache(redis, 0).tenant("demo")
    assert tenant is not None
    return tenant


async def _ended_calls(client: TestClient[Any, Any], redis: Redis, count: int) -> list[int]:
    stores = Stores.of(redis, Scripts.register(redis), await _tenant(redis))
    ids = []
    for _ in range(count):
        call_id = (await inbound_call(client, PHONE_SALES))["id"]
        assert await end_call(stores, call_id, FailReason.AG_CANCELED) is not None
        ids.append(call_id)
    return ids


async def _objects(client: TestClient[Any, Any], ids: list[int]) -> dict[int, bytes]:
    found = {}
    for call_id in ids:
        response = await client.get(f"{CALLS}/{call_id}", headers=basic())
        assert response.status == 200
        found[call_id] = await response.read()
    return found


async def _restart(server: EmbeddedRedis, redis: Redis) -> None:
    """Stops and starts the server; a client's connections from before fail once, then it
    reconnects."""
    server.stop()
    server.start()
    for _ in range(100):
        try:
            await redis.ping()
            return
        except (RedisError, OSError):
            await asyncio.sleep(0.05)
    raise AssertionError("Redis did not come back")


async def _in_redis(redis: Redis, ids: list[int]) -> list[int]:
    return [call_id for call_id in ids if await redis.exists(TENANT.call(call_id))]


async def test_postgres_stopped_holds_archiving_back_and_nothing_else(
    wired: tuple[TestClient[Any, Any], Redis, asyncpg.Pool, Settings],
    postgres: EmbeddedPostgres,
) -> None:
    client, redis, pool, settings = wired
    ids = await _ended_calls(client, redis, 5)
    objects = await _objects(client, ids)
    archiver = Archiver(redis, Scripts.register(redis), Archive(pool), settings, Metrics())
    postgres.stop()

    with pytest.raises(PostgresDown):
        await archiver.tick(time.monotonic() + 5)
    assert await _in_redis(redis, ids) == ids
    assert await _objects(client, ids) == objects
    assert (await inbound_call(client, PHONE_SALES))["status"] == "queued"  # the API serves
    ready = await client.get("/readyz?exclude=workers")
    assert (ready.status, await ready.json()) == (
        200,
        {"status": "degraded", "checks": {"redis": "ok", "postgres": "unreachable"}},
    )

    postgres.start()
    done = await archiver.tick(time.monotonic() + 30)
    assert done.released == len(ids)
    assert await _in_redis(redis, ids) == []
    assert await _objects(client, ids) == objects
    assert await pool.fetchval("SELECT count(*) FROM calls") == len(ids)


async def test_redis_restarted_between_the_steps_and_during_a_tick_loses_nothing(
    wired: tuple[TestClient[Any, Any], Redis, asyncpg.Pool, Settings],
    own_redis: EmbeddedRedis,
) -> None:
    client, redis, pool, settings = wired
    ids = await _ended_calls(client, redis, 30)
    objects = await _objects(client, ids)
    archiver = Archiver(redis, Scripts.register(redis), Archive(pool), settings, Metrics())
    hot = HotRecords(redis, Scripts.register(redis), "demo")
    seq, records = await hot.begin("call", ids[:10], FAR)
    await archiver._archive.store("call", "demo", seq, records)

    await _restart(own_redis, redis)  # after the copy, before the delete
    assert await _in_redis(redis, ids) == ids  # every record whole, from the append-only file
    assert len(await redis.smembers(TENANT.archiving("call"))) == 10

    ticking = asyncio.create_task(archiver.tick(time.monotonic() + 30))
    await asyncio.sleep(0.01)
    await _restart(own_redis, redis)  # during a tick: it fails, as a job then does (and runs again)
    with contextlib.suppress(RedisError, OSError):
        await ticking
    await archiver.tick(time.monotonic() + 30)

    assert await _in_redis(redis, ids) == []
    assert await redis.smembers(TENANT.archiving("call")) == set()
    assert await redis.zcard(TENANT.ended("call")) == 0
    assert await pool.fetchval("SELECT count(*) FROM calls") == len(ids)
    assert await _objects(client, ids) == objects


def _start_worker(redis_url: str, database_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCHER_")}
    env.update(
        REDIS_URL=redis_url,
        DATABASE_URL=database_url,
        DISPATCHER_HOT_RETENTION_S="0",
        DISPATCHER_LOG_FORMAT="json",
    )
    with log.open("ab") as out:
        return subprocess.Popen([str(BIN), "worker"], env=env, stdout=out, stderr=out)


async def _until(check: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def test_a_worker_killed_between_the_copy_and_the_delete_leaves_it_to_the_next(
    wired: tuple[TestClient[Any, Any], Redis, asyncpg.Pool, Settings],
    own_redis: EmbeddedRedis,
    postgres: EmbeddedPostgres,
    tmp_path: Path,
) -> None:
    client, redis, pool, _ = wired
    ids = await _ended_calls(client, redis, 20)
    objects = await _objects(client, ids)
    log = tmp_path / "worker.log"

    async with pool.acquire() as blocker:
        # The copy waits on the table: the worker has read the records (step 1) by then.
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.execute("LOCK TABLE calls IN ACCESS EXCLUSIVE MODE")
        first = _start_worker(own_redis.url, postgres.url, log)
        try:

            async def begun() -> bool:
                return len(await redis.smembers(TENANT.archiving("call"))) == len(ids)

            await _until(begun, 20, "the worker never began a move")
            await redis.client_pause(60_000, all=False)  # no delete
            await transaction.rollback()

            async def copied() -> bool:
                return bool(await pool.fetchval("SELECT count(*) FROM calls") == len(ids))

            await _until(copied, 20, "the copy never committed")
            await asyncio.sleep(0.2)  # the worker now waits to delete
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait()
            await redis.client_unpause()

    assert await _in_redis(redis, ids) == ids  # killed between the steps: whole in Redis
    listed = await client.get(f"{CALLS}?per=100", headers=basic())
    assert [call["id"] for call in await listed.json()] == sorted(ids, reverse=True)
    assert listed.headers["Total"] == str(len(ids))

    second = _start_worker(own_redis.url, postgres.url, log)
    try:

        async def moved() -> bool:
            return await _in_redis(redis, ids) == []

        await _until(moved, 30, "the next worker never finished the move")
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(20)
    assert await pool.fetchval("SELECT count(*) FROM calls") == len(ids)
    assert await _objects(client, ids) == objects
    assert await redis.smembers(TENANT.archiving("call")) == set()
