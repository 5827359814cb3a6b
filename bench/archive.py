"""The archive part of the bench (`python -m bench archive`): ended calls leave Redis for
PostgreSQL (workers/archiver.py), and are read back from either.

Every call is an inbound call to a queue whose agents are offline and whose `max_wait_s` is
1 ms: its first routing step fails it `expired`, the cheapest whole life a call has through the
API and a worker (one POST, one job, one transition). One `dispatcher serve` and one
`dispatcher worker` at a time, both with DATABASE_URL, on the bench's Redis and PostgreSQL.

1. Drain: `backlog` calls created as fast as one `serve` takes them (closed loop) and ended,
   held in Redis by a worker with an hour's retention; then a worker with retention 0 archives
   them all: rows/s while the archiver is the bottleneck, beside the floor, a bare COPY
   (asyncpg's copy_records_to_table, in batches of the archiver's size, one transaction each)
   of the same rows, read back from the archive, into a table of the archive's shape
   (partitioned, the same indexes) in the same PostgreSQL; and beside the create rate. The
   Redis memory the drain freed is the bytes an ended call holds there.
2. Steady: `calls` calls created at a fixed rate (open loop) with DISPATCHER_HOT_RETENTION_S=5,
   a third of the rate at which the drain's backlog was created and ended (at most `rate`): a rate
   the worker keeps up with on a machine whose speed swings, so that what piles up in Redis
   is the archiver's doing, not the routing's. Redis used_memory at a tenth, half and all of
   them created (flat is the claim), with the calls and jobs in Redis then, the end-user
   directory's share (it keeps every number ever seen), and the archive's lag: how long past
   its retention the longest-ended call still in Redis has waited.
3. Reads: `LIVE` more calls ended and kept in Redis (a worker with an hour's retention), then
   GET /calls/:id of live and of archived calls, and list pages, one of them spanning the
   boundary (half live, half archived), from the same load generator against the same server.
4. Sizing: PostgreSQL bytes per archived call (its partitions' tables and indexes over their
   rows).
"""

from __future__ import annotations

import asyncio
import base64
import subprocess
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

import asyncpg
import orjson
from redis.asyncio import Redis

from bench.cpu import PerCall, Window
from bench.system import MENUS, TENANT, TOKEN, System, cpu_seconds, free_port, tree_cpu_seconds
from dispatcher.domain import clock
from dispatcher.history.archive import COLUMNS
from dispatcher.store import jobs, keys
from dispatcher.store.keys import TenantKeys
from workers.archiver import BATCH, BUDGET_S, EVERY_S

if TYPE_CHECKING:
    from bench.run import Report

KEYS = TenantKeys(TENANT)
MAX_WAIT_S = 0.001  # a call's first routing step fails it `expired`
HOT_RETENTION_S = 5  # the steady phase's DISPATCHER_HOT_RETENTION_S
KEEP_S = 3600  # a retention nothing reaches within the run: ended calls stay in Redis
# Before Redis holds as much as it will: the job results (ARQ keeps each 60 s) and the calls
# within their retention, twice over.
WARM_S = 60 + 2 * (HOT_RETENTION_S + EVERY_S)
LIVE = 1_050  # live calls of the reads phase: page 11 of 100 is half live, half archived
PER = 100
FLOOR_TABLE = "floor_calls"
MiB = 2**20
# A pause longer than this between two batches leaving Redis is the wait for the next tick.
TICK_GAP_S = 0.6


@dataclass(frozen=True)
class ArchiveScale:
    backlog: int  # ended calls archived in one go (the drain)
    calls: int  # created at `rate` in the steady phase
    rate: int  # at most this many calls/s offered in the steady phase
    read_s: float  # length of each read phase

    @classmethod
    def of(cls, size: str, calls: int | None = None) -> ArchiveScale:
        if size == "smoke":
            scale = cls(backlog=2_000, calls=2_000, rate=500, read_s=1)
        elif size == "quick":
            scale = cls(backlog=5_000, calls=6_000, rate=500, read_s=2)
        else:
            scale = cls(backlog=100_000, calls=1_000_000, rate=500, read_s=10)
        return scale if calls is None else cls(scale.backlog, calls, scale.rate, scale.read_s)


@dataclass
class Run:
    """What every phase works with."""

    system: System
    report: Report
    redis: Redis
    database: asyncpg.Connection
    port: int
    server_pid: int
    scale: ArchiveScale

    def worker(self, retention_s: int) -> subprocess.Popen[bytes]:
        """A worker archiving what ended `retention_s` ago."""
        retention = str(retention_s)
        return self.system.workers(1, history=True, DISPATCHER_HOT_RETENTION_S=retention)[0]

    async def create(self, count: int, rate: int = 0, first_index: int = 0) -> dict[str, Any]:
        """`count` inbound calls through POST /calls (closed loop when `rate` is 0); the load
        generator's figures."""
        args = [
            "--url", f"http://127.0.0.1:{self.port}", "--kind", "calls", "--menus", str(MENUS),
            "--count", str(count), "--first-index", str(first_index), "--concurrency", "32",
        ]  # fmt: skip
        if rate:
            args += ["--rate", str(rate), "--duration", f"{count / rate:.3f}"]
        else:
            args += ["--duration", "3600"]
        result = await self.system.loadgen_async(*args)
        self.check("POST /calls", result)
        return result

    async def get(self, path: str, ids: str = "0") -> dict[str, Any]:
        result = await self.system.loadgen_async(
            "--url", f"http://127.0.0.1:{self.port}", "--kind", "get", "--path", path,
            "--ids", ids, "--duration", str(self.scale.read_s), "--concurrency", "16",
            "--warmup", "1",
        )  # fmt: skip
        self.check(f"GET {path}", result)
        return result

    def check(self, what: str, result: dict[str, Any]) -> None:
        wrong = {k: v for k, v in result["statuses"].items() if not k.startswith("2")}
        if wrong or result["errors"]:
            self.report.problems.append(
                f"archive {what}: answers {wrong} errors {result['errors']} {result['samples'][:2]}"
            )

    async def archived(self, first_id: int) -> int:
        return int(
            await self.database.fetchval(
                "SELECT count(*) FROM calls WHERE tenant = $1 AND id >= $2", TENANT, first_id
            )
        )


async def archive(system: System, report: Report, size: str, calls: int | None = None) -> None:
    scale = ArchiveScale.of(size, calls)
    url = await system.history()
    await system.reset(agents_status="offline", max_wait_s=MAX_WAIT_S)
    port = free_port()
    server = system.serve(port, history=True)
    redis = system.redis()
    database = await asyncpg.connect(url)
    run = Run(system, report, redis, database, port, server.pid, scale)
    try:
        ended_per_s = await _drain_phase(run)
        await _steady_phase(run, min(scale.rate, round(ended_per_s / 3)))
        await _reads_phase(run)
        await _sizing(run)
    finally:
        await database.close()
        await redis.aclose()
        system.stop(server)


# 1. Drain ---------------------------------------------------------------------------------


@dataclass
class Drain:
    """The ended set emptied by the archiver. The rate counts from the moment its first batch
    has left (the wait for the first tick is not counted) to the end; the CPU of the worker
    (`window`), of PostgreSQL and of Redis, per row, from the worker's first heartbeat (its
    start is not counted) to the end; and the pauses between ticks."""

    window: Window
    postgres_pid: int
    redis_pid: int
    rows: int = 0  # left Redis after the first batch, in `seconds`
    seconds: float = 0.0
    between_ticks_s: float = 0.0
    postgres_cpu_s: float = 0.0
    redis_cpu_s: float = 0.0
    total: int = 0

    async def watch(self, redis: Redis, total: int, since_ms: int, timeout_s: float = 1800) -> None:
        await _until(lambda: _beats_since(redis, since_ms), lambda n: n > 0, 60)
        await self._start(redis)
        self.total = total
        began = 0.0
        deadline = time.monotonic() + timeout_s
        last, changed = total, time.monotonic()
        while time.monotonic() < deadline:
            left = await _zcard(redis, KEYS.ended("call"))
            now = time.monotonic()
            if not began and left < total:
                began, self.rows, last, changed = now, left, left, now
            elif left < last:
                if now - changed > TICK_GAP_S:
                    self.between_ticks_s += now - changed
                last, changed = left, now
            elif now - changed > 4 * EVERY_S + (0 if began else EVERY_S):
                raise RuntimeError(f"archiving stalled with {left:,} of {total:,} calls left")
            if left == 0:
                await self._stop(redis)
                self.seconds = now - began
                return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"archiving not done after {timeout_s:.0f} s")

    async def _start(self, redis: Redis) -> None:
        await self.window.start(redis)
        self.postgres_cpu_s = -tree_cpu_seconds(self.postgres_pid)
        self.redis_cpu_s = -cpu_seconds(self.redis_pid)

    async def _stop(self, redis: Redis) -> None:
        self.postgres_cpu_s += tree_cpu_seconds(self.postgres_pid)
        self.redis_cpu_s += cpu_seconds(self.redis_pid)
        await self.window.stop(redis)

    def per_row(self) -> str:
        rows = max(1, self.total)
        worker_ms = self.window.cpu_s * 1000 / rows
        return (
            f"worker {worker_ms:.3f} ms ({worker_ms / self.window.unit_ms:.3f} calibration"
            f" units), Redis {self.redis_cpu_s * 1000 / rows:.3f} ms, PostgreSQL"
            f" {self.postgres_cpu_s * 1000 / rows:.3f} ms; {self.window.commands / rows:.1f}"
            " Redis commands"
        )


async def _drain_phase(run: Run) -> float:
    """The drain's figures; how many calls a second were created and ended (the backlog's
    count over the time until the last had ended)."""
    scale, redis, report = run.scale, run.redis, run.report
    report.phase(f"archive: {scale.backlog:,} ended calls held in Redis")
    holder = run.worker(KEEP_S)
    started = time.monotonic()
    creation = await run.create(scale.backlog)
    created, create_rate = _created(creation), float(creation["rps"])
    await _until(lambda: _zcard(redis, KEYS.ended("call")), lambda n: n >= created, 600)
    ended_per_s = created / (time.monotonic() - started)
    run.system.stop(holder)
    first_id = await _last_call_id(redis) - created + 1
    result_bytes = await _drop_job_results(redis)
    before = await _used_memory(redis)
    report.phase(f"archive: draining {created:,} calls, retention 0")
    spawned_ms = clock.to_ms(clock.now())
    archiver = run.worker(0)
    system = run.system
    drain = Drain(Window([archiver.pid]), system.postgres_pid or 0, system.redis_pid or 0)
    await drain.watch(redis, created, spawned_ms)
    freed = before - await _used_memory(redis)
    system.stop(archiver)
    stored = await run.archived(first_id)
    rate = drain.rows / max(1e-9, drain.seconds)
    in_ticks = drain.rows / max(1e-9, drain.seconds - drain.between_ticks_s)
    report.phase("archive: the floor, bare COPY of the same rows")
    copy = await _copy_floor(run.database, first_id, system.postgres_pid or 0)
    floor = copy.rows_per_s
    report.add(
        f"archiving: {created:,} ended calls drained by 1 worker (retention 0; a tick every"
        f" {EVERY_S} s starts batches of {BATCH:,} for {BUDGET_S:.0f} s)",
        f"{rate:,.0f} rows/s ({rate / floor:.2f} × floor); within ticks {in_ticks:,.0f} rows/s",
        f"bare COPY of the same rows, batches of {BATCH:,}: {floor:,.0f} rows/s",
        "≥ 0.5 × floor",
        rate >= 0.5 * floor,
    )
    report.add(
        "  rows archived/s ÷ calls created/s (POST /calls, 1 serve process, closed loop)",
        f"{rate / create_rate:.1f} ({create_rate:,.0f} created/s)",
        "",
        "≥ 2",
        rate >= 2 * create_rate,
    )
    report.steady("  archiving, CPU per row", drain.per_row())
    report.add(
        "  bare COPY, CPU per row",
        f"copying process {copy.client_ms:.3f} ms, PostgreSQL {copy.postgres_ms:.3f} ms",
    )
    report.steady("  rows archived/s ÷ bare COPY's", f"{rate / floor:.2f}")
    report.add(
        "Redis bytes per ended call (object, meta, history, indexes, ended set: what archiving"
        " frees)",
        f"{freed / max(1, created):,.0f} B; beside it each job's result for 60 s"
        f" ({result_bytes:,.0f} B)",
    )
    if stored != created:
        report.problems.append(f"archive drain: {created:,} ended, {stored:,} rows in PostgreSQL")
    return ended_per_s


async def _drop_job_results(redis: Redis) -> float:
    """Deletes ARQ's job results (kept 60 s), so that the memory the drain frees is the
    records' alone; the mean bytes of one."""
    sizes: list[int] = []
    async for key in redis.scan_iter("arq:result:*", count=10_000):
        if len(sizes) < 100:
            sizes.append(int(await redis.memory_usage(key, samples=0) or 0))
        await redis.unlink(key)
    return sum(sizes) / max(1, len(sizes))


@dataclass(frozen=True)
class Floor:
    rows_per_s: float
    client_ms: float  # CPU per row of the process copying (asyncpg's encoding)
    postgres_ms: float  # CPU per row of PostgreSQL


async def _copy_floor(database: asyncpg.Connection, first_id: int, postgres_pid: int) -> Floor:
    """A bare COPY of the drained rows (read back from the archive) into a table of the
    archive's shape, in batches of the archiver's size, each its own transaction."""
    names = ", ".join(COLUMNS)
    rows = await database.fetch(
        f"SELECT {names} FROM calls WHERE tenant = $1 AND id >= $2 ORDER BY id", TENANT, first_id
    )
    records = [tuple(row) for row in rows]
    months = {date(row["created_at"].year, row["created_at"].month, 1) for row in rows}
    await database.execute(f"DROP TABLE IF EXISTS {FLOOR_TABLE}")
    await database.execute(
        f"CREATE TABLE {FLOOR_TABLE} (LIKE calls INCLUDING ALL) PARTITION BY RANGE (created_at)"
    )
    for month in months:
        await database.execute(
            "SELECT dispatcher_month_partition($1::regclass, $2)", FLOOR_TABLE, month
        )
    server = tree_cpu_seconds(postgres_pid)
    started, client = time.perf_counter(), time.process_time()
    for start in range(0, len(records), BATCH):
        await database.copy_records_to_table(
            FLOOR_TABLE, records=records[start : start + BATCH], columns=COLUMNS
        )
    elapsed = time.perf_counter() - started
    client = time.process_time() - client
    server = tree_cpu_seconds(postgres_pid) - server
    await database.execute(f"DROP TABLE {FLOOR_TABLE}")
    count = max(1, len(records))
    return Floor(count / max(1e-9, elapsed), client * 1000 / count, server * 1000 / count)


# 2. Steady --------------------------------------------------------------------------------


@dataclass
class Sample:
    """The state of Redis when `created` calls had been created."""

    created: int
    used_memory: int
    end_users: int  # bytes of the end-user directory (E.164 -> id)
    live_calls: int
    queued_jobs: int
    lag_s: float  # past its retention, the longest-ended call still in Redis


@dataclass
class Steady:
    """Samples at the checkpoints; the most lag; and the peaks of used_memory without the
    end-user directory over the two halves of the run after its warm-up (peaks: the ended
    calls in Redis swing with the archiver's ticks)."""

    checkpoints: list[int]
    warm: int  # calls created before Redis holds as many calls as it will
    samples: list[Sample] = field(default_factory=list)
    most_lag_s: float = 0.0
    peaks: list[int] = field(default_factory=lambda: [0, 0])

    def note(self, sample: Sample) -> None:
        self.most_lag_s = max(self.most_lag_s, sample.lag_s)
        if sample.created >= self.warm:
            second = sample.created >= (self.warm + self.checkpoints[-1]) // 2
            self.peaks[second] = max(self.peaks[second], sample.used_memory - sample.end_users)
        last = self.samples[-1].created if self.samples else 0
        if any(last < mark <= sample.created for mark in self.checkpoints):
            self.samples.append(sample)


async def _steady_phase(run: Run, rate: int) -> None:
    scale, redis, report = run.scale, run.redis, run.report
    report.phase(f"archive: {scale.calls:,} calls at {rate:,}/s, retention 5 s")
    worker = run.worker(HOT_RETENTION_S)
    first_id = await _last_call_id(redis) + 1
    warm = max(scale.calls // 10, rate * WARM_S)
    judged = warm <= scale.calls // 2  # else too short a run to say whether Redis stays flat
    steady = Steady([scale.calls // 10, scale.calls // 2, scale.calls], min(warm, scale.calls // 2))
    tenths: list[Sample] = []
    window = Window([run.server_pid, worker.pid])
    await window.start(redis)
    creating = asyncio.create_task(run.create(scale.calls, rate, first_index=1_000_000))
    while not creating.done():
        sample = await _sample(redis, first_id)
        steady.note(sample)
        if sample.created >= (len(tenths) + 1) * scale.calls // 10:
            tenths.append(sample)
        await asyncio.sleep(0.25)
    created = _created(await creating)
    steady.checkpoints[-1] = created  # the open loop makes about `calls`, not exactly
    steady.note(await _sample(redis, first_id))
    emptied_s = await _until(lambda: _zcard(redis, KEYS.calls), lambda n: n == 0, 1800)
    await window.stop(redis)
    run.system.stop(worker)
    stored = await run.archived(first_id)
    for sample in steady.samples:
        report.add(
            f"  Redis used_memory at {sample.created:,} created",
            f"{sample.used_memory / MiB:,.1f} MiB, of it the end-user directory"
            f" {sample.end_users / MiB:,.1f} MiB; {sample.live_calls:,} calls and"
            f" {sample.queued_jobs:,} jobs in Redis; archive lag {sample.lag_s:.1f} s",
        )
    # The calls a worker has not routed yet are not the archiver's: when they pile up, the
    # machine could not hold the rate, and Redis grows with them whatever archiving does.
    behind = max(sample.queued_jobs for sample in steady.samples) > rate * EVERY_S
    first, second = steady.peaks
    verdict = second <= 1.1 * first and steady.most_lag_s <= 2 * EVERY_S
    report.add(
        f"steady: {created:,} calls created through the API at {rate:,}/s offered (a third of"
        " the drain's created-and-ended rate), ended by 1 worker at once, archived"
        f" {HOT_RETENTION_S} s later",
        f"peak used_memory but the end-user directory: {first / MiB:,.1f} MiB from"
        f" {steady.warm:,} created, {second / MiB:,.1f} MiB from"
        f" {(steady.warm + created) // 2:,}; most archive lag {steady.most_lag_s:.1f} s;"
        f" no call left in Redis {emptied_s:.0f} s after the last"
        + ("" if judged else "; too short a run to judge (job results are kept 60 s)")
        + ("; the routing fell behind: not judged" if behind else ""),
        "",
        f"flat (≤ +10 %); lag ≤ {2 * EVERY_S} s",
        verdict if judged and not behind else None,
    )
    report.add(
        "  calls / jobs in Redis at each tenth created",
        ", ".join(f"{sample.live_calls:,} / {sample.queued_jobs:,}" for sample in tenths),
    )
    report.steady(
        "  per call created, ended and archived (serve and worker)",
        PerCall.of(window, created).text(),
    )
    head, tail = steady.samples[0], steady.samples[-1]
    per_number = (tail.end_users - head.end_users) / max(1, tail.created - head.created)
    report.add(
        "  the end-user directory (each call here from a new number; kept forever, not archived)",
        f"+{per_number:,.0f} B per new number",
    )
    if stored != created:
        report.problems.append(f"archive steady: {created:,} created, {stored:,} archived")


async def _sample(redis: Redis, first_id: int) -> Sample:
    async with redis.pipeline(transaction=False) as pipe:
        pipe.get(KEYS.sequence("call"))
        pipe.info("memory")
        pipe.memory_usage(KEYS.end_users, samples=0)
        pipe.zcard(KEYS.calls)
        pipe.zcard(jobs.QUEUE_NAME)
        pipe.zrange(KEYS.ended("call"), 0, 0, withscores=True)
        last_id, memory, end_users, live, queued, oldest = await pipe.execute()
    now_ms = clock.to_ms(clock.now())
    lag_s = max(0.0, (now_ms - HOT_RETENTION_S * 1000 - oldest[0][1]) / 1000) if oldest else 0.0
    return Sample(
        created=int(last_id or 0) - first_id + 1,
        used_memory=int(memory["used_memory"]),
        end_users=int(end_users or 0),
        live_calls=int(live),
        queued_jobs=int(queued),
        lag_s=lag_s,
    )


# 3. Reads ---------------------------------------------------------------------------------


async def _reads_phase(run: Run) -> None:
    redis, report = run.redis, run.report
    last_archived = await _last_call_id(redis)
    report.phase(f"archive: {LIVE:,} calls kept live")
    keeper = run.worker(KEEP_S)
    await run.create(LIVE, first_index=3_000_000)
    await _until(lambda: _zcard(redis, KEYS.ended("call")), lambda n: n >= LIVE, 120)
    boundary = LIVE // PER + 1
    mix = await _mix(run.port, boundary, last_archived)
    reads = [
        (
            f"GET /calls/:id, live ({LIVE:,} ended calls in Redis)",
            "/apps/api/v1/calls/{id}",
            f"{last_archived + 1}:{last_archived + LIVE}",
        ),
        (
            f"GET /calls/:id, archived ({last_archived:,} calls in PostgreSQL)",
            "/apps/api/v1/calls/{id}",
            f"1:{last_archived}",
        ),
        (f"GET /calls?per={PER}&page=1 (live only)", f"/apps/api/v1/calls?per={PER}&page=1", "0"),
        (
            f"GET /calls?per={PER}&page={boundary} ({mix})",
            f"/apps/api/v1/calls?per={PER}&page={boundary}",
            "0",
        ),
    ]
    for figure, path, ids in reads:
        report.phase(f"archive: {figure}")
        result = await run.get(path, ids)
        report.add(
            f"  {figure}, concurrency 16",
            f"{result['rps']:,.0f}/s, p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms",
        )
    run.system.stop(keeper)


async def _mix(port: int, page: int, last_archived: int) -> str:
    """What a list page holds: how many of its calls are live and how many archived."""
    body = await asyncio.to_thread(_get, port, f"/apps/api/v1/calls?per={PER}&page={page}")
    ids = [int(call["id"]) for call in orjson.loads(body)]
    live = sum(1 for call_id in ids if call_id > last_archived)
    return f"{live} live, {len(ids) - live} archived"


def _get(port: int, path: str) -> bytes:
    token = base64.b64encode(f"{TENANT}:{TOKEN}".encode()).decode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Basic {token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        body: bytes = answer.read()
        return body


# 4. Sizing --------------------------------------------------------------------------------


async def _sizing(run: Run) -> None:
    row = await run.database.fetchrow(
        "SELECT sum(pg_table_size(relid)) AS tables, sum(pg_indexes_size(relid)) AS indexes"
        " FROM pg_partition_tree('calls') WHERE isleaf"
    )
    assert row is not None
    rows = max(1, int(await run.database.fetchval("SELECT count(*) FROM calls")))
    tables, indexes = int(row["tables"] or 0), int(row["indexes"] or 0)
    run.report.add(
        "PostgreSQL bytes per archived call (its partitions' tables with TOAST, and indexes)",
        f"{(tables + indexes) / rows:,.0f} B ({tables / rows:,.0f} table +"
        f" {indexes / rows:,.0f} indexes; {rows:,} rows)",
    )


# Helpers ----------------------------------------------------------------------------------


def _created(result: dict[str, Any]) -> int:
    return int(result["statuses"].get("201", 0))


async def _until(
    probe: Callable[[], Awaitable[int]], done: Callable[[int], bool], timeout_s: float
) -> float:
    """Seconds until done(probe()); raises after `timeout_s`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if done(await probe()):
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    raise RuntimeError(f"archive: not done after {timeout_s:.0f} s (last {await probe():,})")


async def _zcard(redis: Redis, key: str) -> int:
    return int(await redis.zcard(key))


async def _beats_since(redis: Redis, since_ms: int) -> int:
    """Workers whose heartbeat came at or after `since_ms`."""
    return int(await redis.zcount(keys.WORKERS, since_ms, "+inf"))


async def _used_memory(redis: Redis) -> int:
    return int((await redis.info("memory"))["used_memory"])


async def _last_call_id(redis: Redis) -> int:
    return int(await redis.get(KEYS.sequence("call")) or 0)
