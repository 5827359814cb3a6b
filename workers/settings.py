"""ARQ worker settings shared by `dispatcher worker` and `dispatcher up`."""

from __future__ import annotations

from typing import Any

import aiohttp
from arq import Worker
from arq.connections import RedisSettings
from arq.worker import func

from dispatcher.store import jobs
from dispatcher.store.directory import DirectoryCache
from dispatcher.store.scripts import Scripts
from workers.carriers.base import Carrier
from workers.carriers.simulated import SimulatedCarrier
from workers.connecting import carrier_result, connect_call
from workers.routing import route_call
from workers.scheduling import fire_scheduled_call
from workers.sms import end_sms_session, send_sms
from workers.webhooks import MAX_TRIES, deliver_webhook

FUNCTIONS = [
    func(route_call, name=jobs.ROUTE_CALL),
    func(fire_scheduled_call, name=jobs.FIRE_SCHEDULED_CALL),
    func(connect_call, name=jobs.DIAL_OUTBOUND),
    func(connect_call, name=jobs.CONNECT_CALL),
    func(carrier_result, name=jobs.CARRIER_RESULT),
    func(send_sms, name=jobs.SEND_SMS),
    func(end_sms_session, name=jobs.END_SMS_SESSION),
    func(deliver_webhook, name=jobs.DELIVER_WEBHOOK, max_tries=MAX_TRIES + 1),
]

# Scheduled calls must fire well under ARQ's default 0.5 s poll: poll every 20 ms (one cheap
# ZRANGEBYSCORE on an idle queue), and read many due jobs per poll.
POLL_DELAY_S = 0.02
QUEUE_READ_LIMIT = 1000
MAX_JOBS = 500


async def startup(ctx: dict[str, Any]) -> None:
    redis = ctx["redis"]
    scripts = Scripts.register(redis)
    ctx["scripts"] = scripts
    ctx["directory"] = DirectoryCache(redis, ctx.get("directory_ttl_s", 0.0))
    ctx["http"] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))

    async def report(spec: jobs.JobSpec) -> None:
        await jobs.enqueue(scripts, [spec])

    carriers: dict[str, Carrier] = {"simulated": SimulatedCarrier(report)}
    ctx["carriers"] = carriers


async def shutdown(ctx: dict[str, Any]) -> None:
    session = ctx.get("http")
    if session is not None:
        await session.close()


def create_worker(
    redis_url: str,
    *,
    burst: bool = False,
    handle_signals: bool = True,
    directory_ttl_s: float = 0.0,
    **overrides: Any,
) -> Worker:
    options: dict[str, Any] = {
        "poll_delay": POLL_DELAY_S,
        "queue_read_limit": QUEUE_READ_LIMIT,
        "max_jobs": MAX_JOBS,
        "keep_result": 60,
        **overrides,
    }
    return Worker(
        functions=FUNCTIONS,
        redis_settings=RedisSettings.from_dsn(redis_url),
        queue_name=jobs.QUEUE_NAME,
        job_serializer=jobs.serialize,
        job_deserializer=jobs.deserialize,
        on_startup=startup,
        on_shutdown=shutdown,
        burst=burst,
        handle_signals=handle_signals,
        ctx={"directory_ttl_s": directory_ttl_s},
        **options,
    )
