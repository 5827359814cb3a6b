"""ARQ worker settings shared by `dispatcher worker` and `dispatcher up`: the job functions,
and a worker that outlives a Redis outage and stops gracefully."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp
import structlog
from arq import Retry, Worker
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.constants import in_progress_key_prefix
from arq.worker import func
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.exceptions import WatchError

from dispatcher.carriers.base import Resources
from dispatcher.carriers.registry import Carriers
from dispatcher.domain import clock
from dispatcher.metrics import Metrics
from dispatcher.settings import Settings
from dispatcher.store import heartbeats, jobs
from dispatcher.store.directory import DirectoryCache
from dispatcher.store.scripts import Scripts
from workers.campaigns import pump_campaign, sweep_campaign
from workers.connecting import carrier_result, connect_call, hangup_call
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

log = structlog.get_logger("workers.worker")

# How often a stopping worker repeats the cancellation of its poll loop (_end_polling).
END_POLLING_RETRY_S = 1
# Redis unreachable, or back but still loading its AOF (BusyLoadingError is a ConnectionError).
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError)
# What ARQ's own Redis calls raise then: a connection lost under WATCH is a WatchError.
POLL_FAILED = (*REDIS_DOWN, WatchError)
# uvloop raises a RuntimeError, not a ConnectionError, when redis-py writes to a connection that
# closed under it (Redis restarting mid-write), and redis-py lets it through: it killed a worker
# in a Redis restart test ("unable to perform operation on <TCPTransport closed=True ...>; the
# handler is closed").
CLOSED_TRANSPORT = "the handler is closed"


def lost_redis(exc: BaseException, errors: tuple[type[Exception], ...] = REDIS_DOWN) -> bool:
    """Whether `exc` says Redis went away: one of `errors`, or uvloop's closed transport."""
    closed = isinstance(exc, RuntimeError) and CLOSED_TRANSPORT in str(exc)
    return closed or isinstance(exc, errors)


# How soon a job that lost Redis midway runs again, and how long a poll that failed waits.
REDIS_RETRY_S = 1
REDIS_POLL_BACKOFF_S = 0.1

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
    (send_sms, jobs.SEND_SMS, None),
    (end_sms_session, jobs.END_SMS_SESSION, None),
    (hand_to_lane, jobs.DELIVER_WEBHOOK, None),
    (pump_campaign, jobs.PUMP_CAMPAIGN, None),
    (sweep_campaign, jobs.SWEEP_CAMPAIGN, None),
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
    log.info("worker started", queue=jobs.QUEUE_NAME, carriers=sorted(ctx["carriers"]))


async def shutdown(ctx: dict[str, Any]) -> None:
    session = ctx.get("http")
    if session is not None:
        await session.close()


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


class DispatchWorker(Worker):
    """ARQ's worker, kept running through a Redis outage (ARQ's own poll loop would end on the
    first connection error), with a graceful stop (`run_until`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Workers of other queues run inside this one, on its Redis client (create_worker).
        self.lanes: list[DispatchWorker] = []
        super().__init__(*args, **kwargs)
        self.polls = 0
        self.worker_id = heartbeats.worker_id()
        self._next_beat = 0.0
        self._redis_lost_at: float | None = None
        # Jobs whose end could not be recorded because Redis was down, and when: their
        # in-progress keys would hold them back for in_progress_timeout_s.
        self._unrecorded: dict[str, float] = {}

    @property
    def allow_pick_jobs(self) -> bool:
        return self._allow_pick_jobs

    @allow_pick_jobs.setter
    def allow_pick_jobs(self, allowed: bool) -> None:
        """Stopping to take jobs stops the lanes too."""
        self._allow_pick_jobs = allowed
        for lane in self.lanes:
            lane.allow_pick_jobs = allowed

    async def main(self) -> None:
        if self.lanes and self._pool is None:  # the lanes need the client before the poll
            self._pool = await create_pool(
                self.redis_settings,
                job_deserializer=self.job_deserializer,
                job_serializer=self.job_serializer,
                default_queue_name=self.queue_name,
                expires_extra_ms=self.expires_extra_ms,
            )
        await self._wait_for_redis()
        for lane in self.lanes:
            lane._pool = self._pool
        if self.burst:  # the lanes' jobs come from this queue's: they run after it
            await super().main()
            for lane in self.lanes:
                await lane.main()
            return
        await self._main_with_lanes()

    async def _main_with_lanes(self) -> None:
        """This worker's poll loop and its lanes', side by side; one failing ends them all."""
        loops = [asyncio.ensure_future(super().main())]
        loops += [asyncio.ensure_future(lane.main()) for lane in self.lanes]
        try:
            done, _ = await asyncio.wait(loops, return_when=asyncio.FIRST_EXCEPTION)
            for loop in done:
                loop.result()
        finally:
            for loop in loops:
                loop.cancel()
            await asyncio.gather(*loops, return_exceptions=True)

    async def _wait_for_redis(self) -> None:
        """A worker given its client waits for Redis at start, as it does for an outage later
        (ARQ retries only the connections it makes itself, five times)."""
        if self._pool is None:
            return
        while True:
            try:
                await self._pool.ping()
                return
            except REDIS_DOWN as exc:
                if self._redis_lost_at is None:
                    self._redis_lost_at = time.monotonic()
                    log.warning("redis unreachable, worker waiting for it", error=str(exc))
                await asyncio.sleep(REDIS_RETRY_S)

    async def _poll_iteration(self) -> None:
        try:
            if self._redis_lost_at is not None:
                await self.pool.ping()  # back: say so now, not after a backlog's long poll
                down_s = round(time.monotonic() - self._redis_lost_at, 3)
                log.info("redis reachable again, worker resumed", down_s=down_s)
                self._redis_lost_at = None
            if self._unrecorded:
                await self._hand_back_unrecorded()
            await self._beat()
            await super()._poll_iteration()
        except Exception as exc:
            if not lost_redis(exc, POLL_FAILED):
                raise
            if self._redis_lost_at is None:
                self._redis_lost_at = time.monotonic()
                log.warning("redis unreachable, worker waiting for it", error=str(exc))
            await asyncio.sleep(REDIS_POLL_BACKOFF_S)
        finally:
            self.polls += 1

    async def _beat(self) -> None:
        """The heartbeat comes from the poll loop itself: a worker whose loop is stuck or dead
        stops beating, and goes stale within heartbeats.FRESH_MS."""
        if time.monotonic() >= self._next_beat:
            await heartbeats.beat(self.pool, self.worker_id, clock.to_ms(clock.now()))
            self._next_beat = time.monotonic() + heartbeats.BEAT_INTERVAL_S

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        for job_id in job_ids:
            if not self.allow_pick_jobs:
                return  # stopping: the rest of this batch stays queued for other workers
            try:
                await super().start_jobs([job_id])
            except Exception as exc:
                if not lost_redis(exc, POLL_FAILED):
                    raise
                # ARQ took a slot for this job before Redis failed, and would keep it forever
                # (a WatchError that ARQ lets out comes from the connection, not a conflict).
                self._release_sem_dec_counter_on_complete()
                raise

    async def run_job(self, job_id: str, score: int) -> None:
        # Every line logged while the job runs, ARQ's own included, names the job and its
        # record; each job runs in its own task, so the binding ends with it.
        with structlog.contextvars.bound_contextvars(**jobs.log_fields(job_id)):
            try:
                await super().run_job(job_id, score)
            except Exception as exc:
                if not lost_redis(exc, POLL_FAILED):
                    raise
                self._unrecorded[job_id] = time.monotonic()

    async def _hand_back_unrecorded(self) -> None:
        """Once Redis is back, the jobs whose end went unrecorded run again at once (they are
        still queued): their in-progress keys are deleted, unless they expired already and
        another worker may have taken the job since."""
        fresh_after = time.monotonic() - self.in_progress_timeout_s + 1
        ours = [job_id for job_id, at in self._unrecorded.items() if at > fresh_after]
        if ours:
            await self.pool.delete(*(in_progress_key_prefix + job_id for job_id in ours))
        self._unrecorded.clear()

    async def run_until(self, stop: asyncio.Event, grace_s: float) -> None:
        """Runs until `stop` is set (or a burst ends). Then it takes no new job, lets the
        running ones finish for up to `grace_s`, hands back the rest and closes."""
        polling = asyncio.ensure_future(self.async_run())
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({polling, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not polling.done():
                await asyncio.gather(
                    self._drain(grace_s), *(lane._drain(grace_s) for lane in self.lanes)
                )
                await self._end_polling(polling)
            with contextlib.suppress(asyncio.CancelledError):
                await polling
        finally:
            stopping.cancel()
            # Only left after a failure: ARQ's close() would re-raise their cancellations.
            left = [task for task in self.tasks.values() if not task.done()]
            for task in left:
                task.cancel()
            await asyncio.gather(*left, return_exceptions=True)
            self.tasks = {}
            await self.close()

    async def _drain(self, grace_s: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        self.allow_pick_jobs = False
        # A poll that began before the flag may still be starting jobs: wait for it to end
        # (briefly: a worker stopped while still starting up has no poll to wait for).
        polled, settled = self.polls, loop.time() + 2
        while self.polls <= polled and loop.time() < settled:
            await asyncio.sleep(self.poll_delay_s)
        running = [task for task in self.tasks.values() if not task.done()]
        log.info("worker stopping", queue=self.queue_name, running=len(running), grace_s=grace_s)
        if running:
            await asyncio.wait(running, timeout=max(deadline - loop.time(), 0))
        late = [job_id for job_id, task in self.tasks.items() if not task.done()]
        for job_id in late:
            # Cancelling the job itself lets ARQ's run_job record it as "cancelled, will be
            # run again": its in-progress key goes, so any worker runs it again at once.
            job_task = self.job_tasks.get(job_id)
            (job_task or self.tasks[job_id]).cancel()
        if late:
            await asyncio.wait([self.tasks[job_id] for job_id in late], timeout=5)
        finished = len(running) - len(late)
        log.info("worker stopped", queue=self.queue_name, finished=finished, handed_back=len(late))

    async def _end_polling(self, polling: asyncio.Future[None]) -> None:
        """Cancels ARQ's poll loop, again each second until it ends: a cancellation can be
        lost in the Redis client when a socket timeout of its own fires at the same moment
        (seen with Sentinel-managed connections on Python 3.11), and the loop then polls on."""
        tries = 0
        while not polling.done():
            if tries:
                log.warning("worker poll loop still running, cancelling it again", tries=tries)
            if self.main_task is not None:
                self.main_task.cancel()
            await asyncio.wait({polling}, timeout=END_POLLING_RETRY_S)
            tries += 1

    async def close(self) -> None:
        for lane in self.lanes:
            await lane.close()
        if self._pool is not None:
            with contextlib.suppress(*REDIS_DOWN):
                await heartbeats.leave(self._pool, self.worker_id)
        try:
            await super().close()
        except REDIS_DOWN:
            log.warning("redis unreachable while the worker closed")
            if self.on_shutdown:
                await self.on_shutdown(self.ctx)
            if self._pool is not None:
                await self._pool.aclose()
                self._pool = None


class LaneWorker(DispatchWorker):
    """A worker of another queue run inside a DispatchWorker, on its Redis client (closed by
    it): its own job slots, functions and ctx. It takes the same care of Redis outages and
    stops with it; the process's heartbeat is the main worker's."""

    async def _beat(self) -> None:
        return

    async def close(self) -> None:
        for job_task in self.job_tasks.values():
            job_task.cancel()  # ARQ records each as "cancelled, will be run again"
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        self.tasks = {}
        if self._pool is not None:
            with contextlib.suppress(*REDIS_DOWN):
                await self._pool.delete(self.health_check_key)
        if self.on_shutdown:
            await self.on_shutdown(self.ctx)
        self._pool = None


# What every worker of this product's queues runs with: JSON jobs, reads and results kept.
JOB_OPTIONS: dict[str, Any] = {
    "job_serializer": jobs.serialize,
    "job_deserializer": jobs.deserialize,
    "queue_read_limit": QUEUE_READ_LIMIT,
    "keep_result": 60,
}


def webhook_lane(
    settings: Settings, metrics: Metrics, directory_ttl_s: float, burst: bool
) -> LaneWorker:
    """The worker of the webhook queue: deliveries have their own job slots and HTTP session,
    so a slow receiver cannot hold routing, firing or dialing up."""
    return LaneWorker(
        **JOB_OPTIONS,
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
    """A worker on `redis`: a URL (ARQ connects to it), or a client from
    dispatcher.redis_connection (REDIS_URL or Sentinel, the same way the ingress connects);
    `settings` (else read from the environment at startup) gives the carriers' configuration."""
    options: dict[str, Any] = {
        **JOB_OPTIONS,
        "poll_delay": POLL_DELAY_S,
        "max_jobs": MAX_JOBS,
        **overrides,
    }
    if isinstance(redis, str):
        options["redis_settings"] = RedisSettings.from_dsn(redis)
    else:
        # What ARQ's create_pool sets on the pools it makes.
        redis.job_serializer, redis.job_deserializer = jobs.serialize, jobs.deserialize
        redis.default_queue_name = jobs.QUEUE_NAME
        options["redis_pool"] = redis
    metrics = metrics or Metrics()
    worker = DispatchWorker(
        functions=FUNCTIONS,
        queue_name=jobs.QUEUE_NAME,
        on_startup=startup,
        on_shutdown=shutdown,
        burst=burst,
        handle_signals=handle_signals,
        ctx={"directory_ttl_s": directory_ttl_s, "settings": settings, "metrics": metrics},
        **options,
    )
    lane_settings = settings or Settings()
    worker.lanes.append(webhook_lane(lane_settings, metrics, directory_ttl_s, burst))
    return worker
