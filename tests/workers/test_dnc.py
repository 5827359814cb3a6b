"""The company DNC list's sweep (workers/dnc.py): every tenant's expired entries leave Redis,
the rest stay; the job runs once a minute on one worker, in the worker's own lease."""

from __future__ import annotations

import copy

from arq.connections import ArqRedis
from redis.asyncio import Redis

from dispatcher.domain import clock
from dispatcher.store.dnc import PURGE_STEP, DncList
from dispatcher.store.keys import TenantKeys
from dispatcher.store.scripts import Scripts
from tests.conftest import demo_document, load_directory
from workers import dnc
from workers.settings import CRON_JOBS, create_worker


async def test_the_sweep_removes_every_tenants_expired_entries(redis: Redis) -> None:
    document = demo_document()
    rival = copy.deepcopy(document["tenants"][0])
    rival.update(subdomain="rival", api_tokens=["rival-token"])
    document["tenants"].append(rival)
    await load_directory(redis, document)
    scripts = Scripts.register(redis)
    now = clock.to_ms(clock.now())
    expired = [(f"+1628555{n:04d}", now - 1) for n in range(PURGE_STEP + 5)]  # over one step
    for subdomain in ("demo", "rival"):
        listed = DncList(redis, scripts, subdomain)
        await listed.add([*expired, ("+14155550100", None), ("+14155550101", now + 60_000)], 0)
    assert await dnc.sweep_dnc({"redis": redis, "scripts": scripts}) == (
        f"swept {2 * len(expired)} expired DNC entries"
    )
    for subdomain in ("demo", "rival"):
        keys = TenantKeys(subdomain)
        assert await redis.zrange(keys.dnc, 0, -1) == [b"+14155550100", b"+14155550101"]
        assert await redis.zrange(keys.dnc_expiring, 0, -1) == [b"+14155550101"]
    assert await dnc.sweep_dnc({"redis": redis, "scripts": scripts}) == (
        "swept 0 expired DNC entries"
    )


async def test_the_sweep_is_a_cron_job_within_the_workers_lease(redis_url: str) -> None:
    (job,) = [job for job in CRON_JOBS if job.name == "sweep_dnc"]
    assert (job.second, job.minute, job.max_tries) == (dnc.SECOND, None, 1)
    client = ArqRedis.from_url(redis_url)
    try:
        worker = create_worker(client, handle_signals=False, job_timeout=1)
        assert "sweep_dnc" in worker.functions
        assert worker.in_progress_timeout_s == 1 + 10
    finally:
        await client.aclose()
