"""ARQ worker settings shared by `dispatcher worker` and `dispatcher up`: the job functions,
their ctx, and the main queue's worker with its webhook lane (the worker: workers/worker.py)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp
import structlog
from arq import Retry
from arq.connections import ArqRedis
from arq.cron import cron
from arq.worker import func

from dispatcher.carriers.base import Resources
from dispatcher.carriers.registry import Carriers
from dispatcher.history.database import close_pool, connect_pool
from dispatcher.metrics import Metrics
from dispatcher.redis_connection import arq_client
from dispatcher.settings import Settings
from dispatcher.store import jobs
from dispatcher.store.directory import DirectoryCache
from dispatcher.store.scripts import Scripts
from workers import archiver, dnc
from workers.campaigns import pump_campaign, sweep_campaign
from workers.choices import expire_choice
from workers.connecting import carrier_result, connect_call, hangup_call, leave_message
from workers.redials import redial_call
from workers.redis_lost import REDIS_RETRY_S, lost_redis
from workers.routing import route_call
from workers.scheduling import fire_scheduled_call
from workers.sms import end_sms_session, send_sms
from workers.webhooks import (
    MAX_TRIES,
    WebhookLane,
    deliver_webhook,
    hand_to_lane,
    webhook_session,
)
from workers.worker import DispatchWorker, LaneWorker

log = structlog.get_logger("workers.worker")

Job = Callable[..., Coroutine[Any, Any, str]]


def retried_when_redis_is_down(job: Job) -> Job:
    """A job that loses Redis midway runs again later (every write of a job is a compare-and-set
    or a script, so a second run changes nothing the first one did); ARQ alone would record it
    as failed and drop it, leaving its call where it stood."""

    @functools.wraps(job)
    async def run(ctx: dict[str, Any], *args: Any) -> str:
        try:
            return await job(ctx, *args)
        except Exception as exc:
            if not lost_redis(exc):
                raise
            raise Retry(defer=REDIS_RETRY_S) from exc

    return run


def measured(name: str, job: Job) -> Job:
    """Counts the job's runs by result (ok, retry, error, cancelled: a timeout or a hand-back
    at shutdown) and the jobs running now."""

    @functools.wraps(job)
    async def run(ctx: dict[str, Any], *args: Any) -> str:
        metrics: Metrics = ctx["metrics"]
        metrics.job_started()
        result = "error"
        try:
            value = await job(ctx, *args)
            result = "ok"
            return value
        except Retry:
            result = "retry"
            raise
        except asyncio.CancelledError:
            result = "cancelled"
            raise
        finally:
            metrics.job_ended(name, result)

    return run


_JOBS: list[tuple[Job, str, int | None]] = [
    (route_call, jobs.ROUTE_CALL, None),
    (fire_scheduled_call, jobs.FIRE_SCHEDULED_CALL, None),
    (connect_call, jobs.DIAL_OUTBOUND, None),
    (connect_call, jobs.CONNECT_CALL, None),
    (carrier_result, jobs.CARRIER_RESULT, None),
    (hangup_call, jobs.HANGUP_CALL, None),
    (leave_message, jobs.LEAVE_MESSAGE, None),
    (send_sms, jobs.SEND_SMS, None),
    (end_sms_session, jobs.END_SMS_SESSION, None),
    (hand_to_lane, jobs.DELIVER_WEBHOOK, None),
    (pump_campaign, jobs.PUMP_CAMPAIGN, None),
    (sweep_campaign, jobs.SWEEP_CAMPAIGN, None),
    (redial_call, jobs.REDIAL_CALL, None),
    (expire_choice, jobs.EXPIRE_CHOICE, None),
]
FUNCTIONS = [
    func(measured(name, retried_when_redis_is_down(job)), name=name, max_tries=max_tries)
    for job, name, max_tries in _JOBS
]
# The webhook lane's one function (ARQ's own limit above MAX_TRIES: the job gives up itself).
WEBHOOK_FUNCTIONS = [
    func(
        measured(jobs.DELIVER_WEBHOOK, retried_when_redis_is_down(deliver_webhook)),
        name=jobs.DELIVER_WEBHOOK,
        max_tries=MAX_TRIES + 1,
    )
]

# The archiver's tick (workers/archiver.py): ARQ names each run after its time, so one worker
# of the fleet runs each tick, and a tick whose worker died is not waited for (the next one has
# an id of its own). Its timeout is the worker's job timeout, which the tick's budget stays
# under: a longer one would raise ARQ's in-progress lease of *every* job (the longest function
# timeout + 10 s), and a job of a SIGKILLed worker would wait that long to run again.
CRON_JOBS = [
    cron(
        measured("archive", retried_when_redis_is_down(archiver.archive)),
        name="archive",
        second=set(range(0, 60, archiver.EVERY_S)),
        max_tries=1,
        keep_result=0,
    ),
    # The company DNC list's expired entries (workers/dnc.py), once a minute, one worker.
    cron(
        measured("sweep_dnc", retried_when_redis_is_down(dnc.sweep_dnc)),
        name="sweep_dnc",
        second=dnc.SECOND,
        max_tries=1,
        keep_result=0,
    ),
]

# Scheduled calls must fire well under ARQ's default 0.5 s poll: poll every 20 ms (one cheap
# ZRANGEBYSCORE on an idle queue), and read many due jobs per poll.
POLL_DELAY_S = 0.02
QUEUE_READ_LIMIT = 1000
MAX_JOBS = 500
# Deliveries are not timed to the millisecond: the webhook lane polls less often.
WEBHOOK_POLL_DELAY_S = 0.05


async def startup(ctx: dict[str, Any]) -> None:
    redis = ctx["redis"]
    scripts = Scripts.register(redis)
    ctx["scripts"] = scripts
    ctx["directory"] = DirectoryCache(redis, ctx.get("directory_ttl_s", 0.0))
    # The carriers' REST calls (webhooks have a session of their own: webhook_startup).
    ctx["http"] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
    settings: Settings = ctx.get("settings") or Settings()
    ctx["settings"] = settings

    async def report(specs: list[jobs.JobSpec]) -> None:
        await jobs.enqueue(scripts, specs)

    ctx["carriers"] = Carriers.build(Resources(settings, ctx["http"], report))
    ctx.setdefault("metrics", Metrics())  # create_worker passes the process's own
    # Connects on demand: a worker starts, and runs every other job, while PostgreSQL is down.
    ctx["database"] = await connect_pool(settings) if settings.database_url is not None else None
    if ctx["database"] is not None:
        ctx["metrics"].pools.append(ctx["database"])
    log.info("worker started", queue=jobs.QUEUE_NAME, carriers=sorted(ctx["carriers"]))


async def shutdown(ctx: dict[str, Any]) -> None:
    session = ctx.get("http")
    if session is not None:
        await session.close()
    pool = ctx.get("database")
    if pool is not None:
        if pool in ctx["metrics"].pools:
            ctx["metrics"].pools.remove(pool)
        await close_pool(pool)


async def webhook_startup(ctx: dict[str, Any]) -> None:
    """The webhook lane's ctx: its own HTTP session and its per-tenant and per-destination
    state, beside the directory and the process's metrics."""
    settings: Settings = ctx["settings"]
    ctx["directory"] = DirectoryCache(ctx["redis"], ctx.get("directory_ttl_s", 0.0))
    ctx["webhook_http"] = webhook_session(settings)
    ctx["webhook_lane"] = WebhookLane(settings, ctx["metrics"])
    log.info("webhook lane started", queue=jobs.WEBHOOK_QUEUE_NAME)


async def webhook_shutdown(ctx: dict[str, Any]) -> None:
    session = ctx.get("webhook_http")
    if session is not None:
        await session.close()


# What every worker of this product's queues runs with: JSON jobs, reads and results kept.
JOB_OPTIONS: dict[str, Any] = {
    "job_serializer": jobs.serialize,
    "job_deserializer": jobs.deserialize,
    "queue_read_limit": QUEUE_READ_LIMIT,
    "keep_result": 60,
}


def webhook_lane(
    redis: ArqRedis, settings: Settings, metrics: Metrics, directory_ttl_s: float, burst: bool
) -> LaneWorker:
    """The worker of the webhook queue, on its worker's client: deliveries have their own job
    slots and HTTP session, so a slow receiver cannot hold routing, firing or dialing up."""
    return LaneWorker(
        **JOB_OPTIONS,
        redis_pool=redis,
        functions=WEBHOOK_FUNCTIONS,
        queue_name=jobs.WEBHOOK_QUEUE_NAME,
        on_startup=webhook_startup,
        on_shutdown=webhook_shutdown,
        burst=burst,
        handle_signals=False,
        poll_delay=WEBHOOK_POLL_DELAY_S,
        max_jobs=settings.webhook_max_jobs,
        job_timeout=int(settings.webhook_timeout_s) + 10,
        ctx={"directory_ttl_s": directory_ttl_s, "settings": settings, "metrics": metrics},
    )


def create_worker(
    redis: str | ArqRedis,
    *,
    burst: bool = False,
    handle_signals: bool = True,
    directory_ttl_s: float = 0.0,
    settings: Settings | None = None,
    metrics: Metrics | None = None,
    **overrides: Any,
) -> DispatchWorker:
    """A worker on `redis`: a URL, or a client from dispatcher.redis_connection (REDIS_URL or
    Sentinel, the same way the ingress connects); `settings` (else read from the environment at
    startup) gives the carriers' configuration. The worker and its lane share the client."""
    options: dict[str, Any] = {
        **JOB_OPTIONS,
        "poll_delay": POLL_DELAY_S,
        "max_jobs": MAX_JOBS,
        **overrides,
    }
    client = arq_client(redis) if isinstance(redis, str) else redis
    # What ARQ's create_pool sets on the pools it makes.
    client.job_serializer, client.job_deserializer = jobs.serialize, jobs.deserialize
    client.default_queue_name = jobs.QUEUE_NAME
    metrics = metrics or Metrics()
    worker = DispatchWorker(
        redis_pool=client,
        functions=FUNCTIONS,
        cron_jobs=CRON_JOBS,
        queue_name=jobs.QUEUE_NAME,
        on_startup=startup,
        on_shutdown=shutdown,
        burst=burst,
        handle_signals=handle_signals,
        ctx={"directory_ttl_s": directory_ttl_s, "settings": settings, "metrics": metrics},
        **options,
    )
    lane_settings = settings or Settings()
    worker.lanes.append(webhook_lane(client, lane_settings, metrics, directory_ttl_s, burst))
    return worker
