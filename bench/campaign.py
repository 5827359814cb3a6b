"""The campaign part of the bench (`python -m bench campaign`).

1. Import: a CSV of `rows` callbacks (scheduled a day ahead) through `dispatcher campaign
   import` (its own process, batches of 1,000, 4 in flight) into `dispatcher serve`: rows/s end
   to end, beside the floor, raw pipelined writes of records of the same size to the same Redis
   from one process (HSET + ZADD, 1,000 a round trip).
2. On time: a second CSV whose calls fall due at `due_per_s` for `due_s` seconds, under a pace
   above that (1,000/s): lateness of `queued_at` against `scheduled_at`, two worker processes.
3. Paced: `burst` calls due at the same moment under a pace of `pace` calls/s: the most fired in
   any one second and the mean rate, against the pace.

Agents are offline, so a fired call waits in its queue and is written once (revision 2): a
call written again would show as fired twice."""

from __future__ import annotations

import asyncio
import csv
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
from redis.asyncio import Redis

from bench.loadgen import end_user_number, percentile
from bench.system import TENANT, TOKEN, System, free_port
from dispatcher.domain import clock
from dispatcher.store.keys import TenantKeys

if TYPE_CHECKING:
    from bench.run import Report

KEYS = TenantKeys(TENANT)
MENU = 1
WORKERS = 2
# About the size of a stored scheduled call: its object and its meta (~1.3 kB).
FLOOR_PADDING = "x" * 1200


@dataclass(frozen=True)
class CampaignScale:
    rows: int  # imported
    due_per_s: int  # the on-time phase
    due_s: int
    burst: int  # the paced phase
    pace: int

    @classmethod
    def of(cls, size: str) -> CampaignScale:
        if size == "smoke":
            return cls(rows=2_000, due_per_s=100, due_s=2, burst=200, pace=100)
        if size == "quick":
            return cls(rows=20_000, due_per_s=250, due_s=4, burst=1_000, pace=300)
        return cls(rows=100_000, due_per_s=250, due_s=20, burst=3_000, pace=300)


def write_csv(path: Path, first: int, due_ms: list[int]) -> None:
    with path.open("w", newline="") as sink:
        writer = csv.writer(sink)
        writer.writerow(["end_user_number", "scheduled_at", "menu_id", "lang", "ticket_id"])
        for i, due in enumerate(due_ms):
            at = clock.iso(clock.from_ms(due))
            writer.writerow([end_user_number(first + i), at, MENU, "en", ""])


def run_import(system: System, port: int, path: Path, name: str, pace: int) -> float:
    """Seconds the import took, end to end (its process started to its summary)."""
    env = {**system.env(), "DISPATCHER_TENANT": TENANT, "DISPATCHER_API_TOKEN": TOKEN}
    command = [
        sys.executable, "-m", "dispatcher.cli", "campaign", "import", str(path),
        "--campaign", name, "--url", f"http://127.0.0.1:{port}",
        "--calls-per-second", str(pace),
    ]  # fmt: skip
    started = time.monotonic()
    with (system.workdir / f"import-{name}.log").open("ab") as log:
        done = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=log, check=False)
    elapsed = time.monotonic() - started
    summary = done.stdout.decode().strip()
    if done.returncode != 0 or "already existed 0, failed 0" not in summary:
        raise RuntimeError(f"import of {path.name} failed ({done.returncode}): {summary}")
    return elapsed


async def raw_writes(redis: Redis, rows: int) -> float:
    """Rows/s of the floor: one record of a stored call's size per row, pipelined."""
    started = time.perf_counter()
    for start in range(0, rows, 1000):
        async with redis.pipeline(transaction=False) as pipe:
            for i in range(start, min(rows, start + 1000)):
                doc = orjson.dumps({"id": i, "number": end_user_number(i), "pad": FLOOR_PADDING})
                pipe.hset(f"floor:call:{i}", "doc", doc)  # type: ignore[arg-type]
                pipe.zadd("floor:calls", {str(i): i})
            await pipe.execute()
    rate = rows / (time.perf_counter() - started)
    async for key in redis.scan_iter("floor:*", count=10_000):
        await redis.unlink(key)
    return rate


async def campaign_id(redis: Redis, name: str) -> int:
    return int(await redis.hget(KEYS.campaign_names, name))


async def wait_fired(redis: Redis, campaign: int, count: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if int(await redis.hget(KEYS.campaign(campaign), "fired") or 0) >= count:
            return
        await asyncio.sleep(0.2)


async def firings(redis: Redis, first_id: int, last_id: int) -> tuple[list[int], list[int], int]:
    """(queued ms, lateness ms, fired twice) of the calls first_id..last_id; never fired is
    what is missing from the first list."""
    async with redis.pipeline(transaction=False) as pipe:
        for call_id in range(first_id, last_id + 1):
            pipe.hmget(KEYS.call(call_id), ["doc", "rev"])
        replies = await pipe.execute()
    fired, late, twice = [], [], 0
    for doc, rev in replies:
        call = orjson.loads(doc)
        if call["queued_at"] is None:
            continue
        queued = clock.to_ms(clock.parse_iso(call["queued_at"]))  # type: ignore[arg-type]
        fired.append(queued)
        late.append(queued - clock.to_ms(clock.parse_iso(call["scheduled_at"])))  # type: ignore[arg-type]
        twice += int(rev) > 2
    return sorted(fired), late, twice


async def last_call_id(redis: Redis) -> int:
    return int(await redis.get(KEYS.sequence("call")) or 0)


def busiest_second(fired: list[int]) -> int:
    """The most calls fired within any one second."""
    most, start = 0, 0
    for end, at in enumerate(fired):
        while fired[start] <= at - 1000:
            start += 1
        most = max(most, end - start + 1)
    return most


async def campaign(system: System, report: Report, size: str) -> None:
    scale = CampaignScale.of(size)
    await system.reset(agents_status="offline")
    port = free_port()
    server = system.serve(port)
    workers = system.workers(WORKERS)
    redis = system.redis()
    try:
        await _import_phase(system, report, redis, port, scale)
        await _on_time_phase(system, report, redis, port, scale)
        await _paced_phase(system, report, redis, port, scale)
    finally:
        await redis.aclose()
        for worker in workers:
            system.stop(worker)
        system.stop(server)


async def _import_phase(
    system: System, report: Report, redis: Redis, port: int, scale: CampaignScale
) -> None:
    floor = await raw_writes(redis, scale.rows)
    path = system.workdir / "bulk.csv"
    tomorrow = clock.to_ms(clock.now()) + 86_400_000
    write_csv(path, 0, [tomorrow + i * 10 for i in range(scale.rows)])
    before = await _memory(redis)
    elapsed = await asyncio.to_thread(run_import, system, port, path, "bulk", 100)
    per_call = (await _memory(redis) - before) / scale.rows
    report.add(
        f"campaign import: {scale.rows:,} CSV rows, `dispatcher campaign import` (batches of"
        " 1,000, 4 in flight) into 1 `serve` process",
        f"{scale.rows / elapsed:,.0f} rows/s ({elapsed:.1f} s end to end)",
        f"raw pipelined writes of same-size records, 1 process: {floor:,.0f} rows/s",
        "",
    )
    report.add(
        "  Redis bytes per campaign call (object, meta, indexes, due set, its client_token's"
        " stored answer, its end user's id)",
        f"{per_call:,.0f} B",
    )


async def _on_time_phase(
    system: System, report: Report, redis: Redis, port: int, scale: CampaignScale
) -> None:
    count = scale.due_per_s * scale.due_s
    first_id = await last_call_id(redis) + 1
    start = clock.to_ms(clock.now()) + 3000 + count  # after the import (about 1 ms a row)
    path = system.workdir / "on-time.csv"
    write_csv(path, 1_000_000, [start + i * 1000 // scale.due_per_s for i in range(count)])
    await asyncio.to_thread(run_import, system, port, path, "on-time", 1000)
    cid = await campaign_id(redis, "on-time")
    await wait_fired(redis, cid, count, timeout_s=scale.due_s + 60)
    fired, late, twice = await firings(redis, first_id, first_id + count - 1)
    report.add(
        f"campaign firing on time: {count:,} calls due at {scale.due_per_s}/s for"
        f" {scale.due_s} s, pace 1,000/s, {WORKERS} worker processes",
        f"lateness p50 {percentile(late, 0.5):.0f} ms, p99 {percentile(late, 0.99):.0f} ms,"
        f" max {max(late, default=0):.0f} ms",
        "",
        "p99 ≤ 100 ms",
        percentile(late, 0.99) <= 100,
    )
    report.add("  fired twice / never fired", f"{twice} / {count - len(fired)} of {count:,}")
    if twice or len(fired) != count:
        report.problems.append(f"campaign on time: {twice} fired twice, {count - len(fired)} never")


async def _paced_phase(
    system: System, report: Report, redis: Redis, port: int, scale: CampaignScale
) -> None:
    first_id = await last_call_id(redis) + 1
    due = clock.to_ms(clock.now()) + 3000 + scale.burst
    path = system.workdir / "paced.csv"
    write_csv(path, 2_000_000, [due] * scale.burst)
    await asyncio.to_thread(run_import, system, port, path, "paced", scale.pace)
    cid = await campaign_id(redis, "paced")
    await wait_fired(redis, cid, scale.burst, timeout_s=scale.burst / scale.pace + 60)
    fired, late, twice = await firings(redis, first_id, first_id + scale.burst - 1)
    span_s = (fired[-1] - fired[0]) / 1000 if len(fired) > 1 else 1
    busiest = busiest_second(fired)
    burst_allowance = max(1, scale.pace // 10)
    report.add(
        f"campaign pace: {scale.burst:,} calls due at once, pace {scale.pace}/s,"
        f" {WORKERS} worker processes",
        f"most fired in any second {busiest}; mean {(len(fired) - 1) / span_s:,.0f}/s over"
        f" {span_s:.1f} s; last fired {max(late, default=0) / 1000:.1f} s late",
        f"the pace: {scale.pace}/s (+{burst_allowance} at once)",
        f"≤ {scale.pace + burst_allowance} in any second",
        busiest <= scale.pace + burst_allowance,
    )
    report.add(
        "  fired twice / never fired", f"{twice} / {scale.burst - len(fired)} of {scale.burst:,}"
    )
    if twice or len(fired) != scale.burst:
        report.problems.append(
            f"campaign paced: {twice} fired twice, {scale.burst - len(fired)} never"
        )


async def _memory(redis: Redis) -> int:
    return int((await redis.info("memory"))["used_memory"])
