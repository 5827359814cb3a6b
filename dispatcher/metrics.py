"""Prometheus metrics: what a process counts as it works, and gauges read from Redis per scrape.

A process's own metrics (requests, accepts, jobs, carrier results, webhook failures) live in
one `Metrics` object per process, shared by its API and its worker. The gauges of the live
picture (calls, queues, ARQ queue, workers alive) are not kept anywhere: scrapes read them from
Redis (`live_families`), so the request path never pays for them; a process reads them at most
once a second, however many scrape it (`LiveGauges`).

Several ingress processes on one port (`serve --workers N`) count in prometheus-client's
multiprocess mode: each writes its values to files in PROMETHEUS_MULTIPROC_DIR, and the
process a scrape lands on sums every process's files, so counters agree across scrapes.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Iterable

import asyncpg
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
    values,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector
from redis.asyncio import Redis

from dispatcher.directory.tenant import Tenant
from dispatcher.domain import clock
from dispatcher.store import heartbeats, jobs, keys
from dispatcher.store.directory import DirectoryCache
from dispatcher.store.stats import TenantStats, tenant_stats

MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SCRAPE_CONCURRENCY = 8  # tenants read at once by a scrape
LIVE_GAUGES_MAX_AGE_S = 1.0  # how long a process answers scrapes with the gauges it last read
UNMATCHED = "unmatched"  # the route of a request no route matched (404, 405)
OTHER = "other"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
CARRIER_OUTCOMES = frozenset(
    {
        "ringing",
        "answer",
        "human",
        "machine",
        "unknown",
        "completed",
        "busy",
        "no_answer",
        "wrong_number",
        "failed",
        "canceled",
    }
)

# Seconds. Requests: from a cache hit to a slow Redis; accepts: people, up to an offer's
# timeout and beyond; lateness: a 20 ms poll, up to a backlog.
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
ACCEPT_BUCKETS = (0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 120.0)
LATENESS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


def use_multiprocess(directory: str) -> None:
    """From now on this process and the processes it starts count in `directory`. Metrics
    made before this call keep counting in memory: call it before `Metrics()`."""
    os.environ[MULTIPROCESS_DIR_ENV] = directory
    if not getattr(values.ValueClass, "_multiprocess", False):
        # prometheus-client picks its value class once, at import; a child process started
        # with the variable set picks the file-backed one by itself.
        values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]


def process_ended(pid: int) -> None:
    """A process of a multiprocess run ended: its live gauges no longer count (its counters
    still do: a counter must never go down)."""
    directory = os.environ.get(MULTIPROCESS_DIR_ENV)
    if directory:
        mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]


class Metrics:
    """The metrics one process counts. Multiprocess mode when PROMETHEUS_MULTIPROC_DIR is set."""

    def __init__(self) -> None:
        self.multiprocess_dir = os.environ.get(MULTIPROCESS_DIR_ENV) or None
        own = None if self.multiprocess_dir else CollectorRegistry()
        self.requests = Counter(
            "dispatcher_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=own,
        )
        self.request_seconds = Histogram(
            "dispatcher_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and method.",
            ["route", "method"],
            buckets=REQUEST_BUCKETS,
            registry=own,
        )
        self.offer_accept_seconds = Histogram(
            "dispatcher_offer_accept_seconds",
            "Time from an offer to its acceptance by the agent.",
            buckets=ACCEPT_BUCKETS,
            registry=own,
        )
        self.fire_lateness_seconds = Histogram(
            "dispatcher_scheduled_fire_lateness_seconds",
            "How long after its scheduled_at a scheduled call fired.",
            buckets=LATENESS_BUCKETS,
            registry=own,
        )
        self.carrier_results = Counter(
            "dispatcher_carrier_results",
            "Results reported by carriers, by carrier and outcome.",
            ["carrier", "outcome"],
            registry=own,
        )
        self.webhook_failures = Counter(
            "dispatcher_webhook_failures",
            "Webhook delivery attempts that failed, by reason.",
            ["reason"],
            registry=own,
        )
        self.archived = Counter(
            "dispatcher_archived_records",
            "Ended records moved from Redis to PostgreSQL, by kind (call, chat).",
            ["kind"],
            registry=own,
        )
        self.archive_failures = Counter(
            "dispatcher_archive_failures",
            "Archiving ticks or batches that failed, by reason (postgres_unreachable, store).",
            ["reason"],
            registry=own,
        )
        self.webhook_deferrals = Counter(
            "dispatcher_webhook_deferrals",
            "Webhook deliveries put off without a try: their tenant had its most in flight "
            "(tenant_busy) or their destination's circuit was open (circuit_open).",
            ["reason"],
            registry=own,
        )
        self.webhook_open_circuits = Gauge(
            "dispatcher_webhook_open_circuits",
            "Webhook destinations (host:port) whose deliveries wait out a cool-down.",
            registry=own,
            multiprocess_mode="livesum",
        )
        self.jobs = Counter(
            "dispatcher_worker_jobs",
            "Jobs run by this worker, by function and result (ok, retry, error, cancelled).",
            ["function", "result"],
            registry=own,
        )
        self.jobs_in_progress = Gauge(
            "dispatcher_worker_jobs_in_progress",
            "Jobs running now in this worker.",
            registry=own,
            multiprocess_mode="livesum",
        )
        if own is not None:
            ProcessCollector(registry=own)
        self._exposed: CollectorRegistry = own or CollectorRegistry()
        if self.multiprocess_dir:
            MultiProcessCollector(self._exposed, self.multiprocess_dir)  # type: ignore[no-untyped-call]
        self.pools: list[asyncpg.Pool] = []  # this process's PostgreSQL pools, for scrapes
        # Children of the labelled metrics by label values: labels() takes a lock and checks
        # its arguments on every call, a dict lookup does not (the request path is hot).
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        children = self._request_children.get((route, method, status))
        if children is None:
            children = self._request_children_for(route, method, status)
        children[0].inc()
        children[1].observe(seconds)

    def _request_children_for(
        self, route: str, method: str, status: int
    ) -> tuple[Counter, Histogram]:
        # Arbitrary methods (a fuzzer's, a scanner's) share one label: the label values of a
        # series must stay few.
        label = method if method in _METHODS else OTHER
        children = (
            self.requests.labels(route, label, str(status)),
            self.request_seconds.labels(route, label),
        )
        if method in _METHODS:
            self._request_children[(route, method, status)] = children
        return children

    def offer_accepted(self, seconds: float) -> None:
        self.offer_accept_seconds.observe(max(seconds, 0.0))

    def scheduled_fired(self, lateness_s: float) -> None:
        self.fire_lateness_seconds.observe(max(lateness_s, 0.0))

    def carrier_result(self, carrier: str, outcome: str) -> None:
        self.carrier_results.labels(
            carrier, outcome if outcome in CARRIER_OUTCOMES else OTHER
        ).inc()

    def webhook_failed(self, reason: str) -> None:
        self.webhook_failures.labels(reason).inc()

    def webhook_deferred(self, reason: str) -> None:
        self.webhook_deferrals.labels(reason).inc()

    def job_started(self) -> None:
        self.jobs_in_progress.inc()

    def job_ended(self, function: str, result: str) -> None:
        self.jobs_in_progress.dec()
        self.jobs.labels(function, result).inc()

    def render(self, extra: Iterable[Metric] = ()) -> bytes:
        """The text exposition of this process's metrics (every process's, in multiprocess
        mode) followed by `extra` families."""
        text = generate_latest(self._exposed)
        families = [*extra, *(pool_families(self.pools) if self.pools else [])]
        if families:
            text += generate_latest(_Families(families))
        return text


class _Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


class LiveGauges:
    """The live picture's gauges of one process, read from Redis at most once per `max_age_s`:
    scrapes meanwhile get the last read, and scrapes during a read share it (single flight),
    so many scrapers cost Redis what one does."""

    def __init__(
        self, max_age_s: float = LIVE_GAUGES_MAX_AGE_S, hot_retention_s: int = 3600
    ) -> None:
        self.max_age_s = max_age_s
        self.hot_retention_s = hot_retention_s
        self._families: list[Metric] = []
        self._read_at = -math.inf
        self._reading: asyncio.Task[list[Metric]] | None = None

    async def families(self, redis: Redis, directory: DirectoryCache) -> list[Metric]:
        if time.monotonic() - self._read_at < self.max_age_s:
            return self._families
        if self._reading is None:
            self._reading = asyncio.create_task(self._read(redis, directory))
            # Retrieved here too, so a failed read whose scrapers all left logs no warning.
            self._reading.add_done_callback(lambda task: task.cancelled() or task.exception())
        # Shielded: a scraper that hangs up does not cancel the read the others wait for.
        return await asyncio.shield(self._reading)

    async def _read(self, redis: Redis, directory: DirectoryCache) -> list[Metric]:
        try:
            self._families = await live_families(redis, directory, self.hot_retention_s)
            self._read_at = time.monotonic()
            return self._families
        finally:
            self._reading = None


async def live_families(
    redis: Redis, directory: DirectoryCache, hot_retention_s: int = 3600
) -> list[Metric]:
    """The gauges of the live picture: one pipelined read per tenant (a few at a time, so a
    scrape of many tenants takes a few connections, not one each), and one for the ARQ queue
    and the workers' heartbeats."""
    now_ms = clock.to_ms(clock.now())
    subdomains = sorted(raw.decode() for raw in await redis.hkeys(keys.TENANTS))  # type: ignore[misc]
    tenants = [await directory.tenant(subdomain) for subdomain in subdomains]
    at_once = asyncio.Semaphore(SCRAPE_CONCURRENCY)

    async def picture(tenant: Tenant) -> TenantStats:
        async with at_once:
            return await tenant_stats(redis, tenant, now_ms)

    pictures = await asyncio.gather(*(picture(t) for t in tenants if t is not None))
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zcard(jobs.QUEUE_NAME)
        pipe.zcount(jobs.QUEUE_NAME, "-inf", now_ms)
        heartbeats.count_alive(pipe, now_ms)
        queued, due, alive = await pipe.execute()
    return [
        *_picture_families(pictures),
        *_archive_families(pictures, hot_retention_s),
        _gauge("dispatcher_arq_queue_jobs", "Jobs in the ARQ queue, deferred included.", queued),
        _gauge("dispatcher_arq_queue_due_jobs", "Jobs in the ARQ queue whose time has come.", due),
        _gauge("dispatcher_workers_alive", "Workers whose heartbeat is fresh.", alive),
    ]


def _picture_families(pictures: list[TenantStats]) -> list[Metric]:
    calls = GaugeMetricFamily(
        "dispatcher_calls", "Calls by tenant and status.", labels=["tenant", "status"]
    )
    waiting = GaugeMetricFamily(
        "dispatcher_queue_waiting_calls",
        "Queued calls waiting for an agent, by tenant and menu id.",
        labels=["tenant", "menu"],
    )
    longest = GaugeMetricFamily(
        "dispatcher_queue_longest_wait_seconds",
        "How long the oldest waiting call of a menu has waited (0 when none waits).",
        labels=["tenant", "menu"],
    )
    held = GaugeMetricFamily(
        "dispatcher_held_calls",
        "Scheduled calls held past their time by their calling window or contact limit.",
        labels=["tenant"],
    )
    for picture in pictures:
        for status, count in picture.calls.items():
            calls.add_metric([picture.subdomain, status], count)
        for queue in picture.queues:
            menu = str(queue.menu_id)
            waiting.add_metric([picture.subdomain, menu], queue.waiting)
            longest.add_metric([picture.subdomain, menu], queue.longest_wait_s)
        held.add_metric([picture.subdomain], picture.held)
    return [calls, waiting, longest, held]


def _archive_families(pictures: list[TenantStats], hot_retention_s: int) -> list[Metric]:
    pending = GaugeMetricFamily(
        "dispatcher_archive_pending_records",
        "Ended records still in Redis (archived once ended for the hot retention), by tenant "
        "and kind.",
        labels=["tenant", "kind"],
    )
    lag = GaugeMetricFamily(
        "dispatcher_archive_lag_seconds",
        "How far archiving is behind: how long past the hot retention the longest-ended "
        "record still in Redis has waited (0 when on time), by tenant and kind.",
        labels=["tenant", "kind"],
    )
    for picture in pictures:
        for kind, count in picture.ended.items():
            pending.add_metric([picture.subdomain, kind], count)
            late = max(picture.longest_ended_s.get(kind, 0.0) - hot_retention_s, 0.0)
            lag.add_metric([picture.subdomain, kind], late)
    return [pending, lag]


def pool_families(pools: Iterable[asyncpg.Pool]) -> list[Metric]:
    """This process's PostgreSQL pools (the API's, a worker's): connections busy and idle,
    and the most it may open."""
    connections = GaugeMetricFamily(
        "dispatcher_postgres_pool_connections",
        "Connections of this process's PostgreSQL pools, by state (busy, idle).",
        labels=["state"],
    )
    most = GaugeMetricFamily(
        "dispatcher_postgres_pool_max_connections",
        "The most connections this process's PostgreSQL pools may open.",
    )
    size = idle = largest = 0
    for pool in pools:
        size, idle, largest = (
            size + pool.get_size(),
            idle + pool.get_idle_size(),
            largest + pool.get_max_size(),
        )
    connections.add_metric(["busy"], size - idle)
    connections.add_metric(["idle"], idle)
    most.add_metric([], largest)
    return [connections, most]


def _gauge(name: str, documentation: str, value: int) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)
