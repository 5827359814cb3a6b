"""`make bench`: every figure beside a floor measured in the same run, on the same Redis.

    python -m bench                      # every part
    python -m bench ingress e2e          # some parts
    python -m bench --quick              # a short run of each part
    python -m bench --smoke e2e          # tiny (the test suite runs it: checks losses only)
    python -m bench --quick campaign     # CSV import, firing on time and at a pace
    python -m bench --quick archive      # calls archived to PostgreSQL, and read back
    python -m bench --quick dnc          # the company DNC list: its check's cost, bytes per entry

Each part starts what it needs (see bench/system.py), drives it from separate processes, and
adds rows to the table printed at the end. Nothing here asserts on time; a part fails only
when a call is lost, fired twice or assigned twice. On a terminal, a progress bar on stderr
names the part and phase running (`--progress` / `--no-progress` to choose).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import platform
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.asyncio import Redis
from tqdm import tqdm

from bench.archive import archive as archive_part
from bench.campaign import campaign as campaign_part
from bench.cpu import PerCall, Window
from bench.dnc import dnc as dnc_part
from bench.loadgen import percentile
from bench.system import AGENTS, MENUS, TENANT, System, free_port, rss_mb
from dispatcher import progress
from dispatcher.domain import clock
from dispatcher.redis_embedded import redis_server_binary
from dispatcher.store import jobs
from dispatcher.store.keys import TenantKeys
from dispatcher.store.scripts import Scripts


@dataclass
class Row:
    figure: str
    value: str
    floor: str
    target: str
    verdict: str = ""


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # The figures that drift least from run to run (ratios to a floor, CPU per call in
    # calibration units), printed again together at the end: compare these across commits.
    drift: list[str] = field(default_factory=list)
    bar: tqdm[Any] | None = None  # the run's progress bar (stderr, on a terminal only)

    def phase(self, text: str) -> None:
        """Names on the progress bar what the part does now."""
        if self.bar is not None:
            self.bar.set_postfix_str(text)

    def add(
        self, figure: str, value: str, floor: str = "", target: str = "", ok: bool | None = None
    ) -> None:
        verdict = "" if ok is None else ("met" if ok else "not met")
        self.rows.append(Row(figure, value, floor, target, verdict))
        say(f"  {figure}: {value}" + (f"  (floor {floor})" if floor else ""))

    def steady(self, figure: str, value: str) -> None:
        """A row that is also one of the drift figures."""
        self.add(figure, value)
        self.drift.append(f"{figure.strip()}: {value}")

    def markdown(self) -> str:
        lines = ["| figure | measured | floor (same run) | target | |", "|---|---|---|---|---|"]
        lines += [
            f"| {r.figure} | {r.value} | {r.floor} | {r.target} | {r.verdict} |" for r in self.rows
        ]
        return "\n".join(lines)


# One worker process per core, as deployed: firing and routing 1,000 calls a second is two
# jobs per call, near one Python process's ARQ ceiling (see the bare ARQ floor).
SCHEDULED_WORKERS = 2


@dataclass(frozen=True)
class Scale:
    seconds: float  # length of each load phase
    scheduled_total: int
    worker_jobs: int
    e2e_rate: int = 1000  # calls per second offered end to end
    size: str = "full"
    archive_calls: int | None = None  # the archive part's steady phase (None: its size's)

    @classmethod
    def of(cls, size: str) -> Scale:
        if size == "smoke":  # the test suite's check that the bench still runs and loses nothing
            return cls(seconds=1, scheduled_total=2_000, worker_jobs=5_000, e2e_rate=100, size=size)
        if size == "quick":
            return cls(seconds=3, scheduled_total=5_000, worker_jobs=20_000, size=size)
        return cls(seconds=10, scheduled_total=100_000, worker_jobs=1_000_000)


def say(line: str) -> None:
    """A line of the report on stdout, drawn above the progress bar when there is one."""
    tqdm.write(line, file=sys.stdout)
    sys.stdout.flush()


def url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def fmt_rate(result: dict[str, Any]) -> str:
    return f"{result['rps']:,.0f}/s, p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms"


def check_statuses(report: Report, what: str, result: dict[str, Any], expected: str) -> None:
    wrong = {k: v for k, v in result["statuses"].items() if k != expected}
    if wrong or result["errors"]:
        report.problems.append(
            f"{what}: answers {wrong} errors {result['errors']} {result['samples'][:2]}"
        )


async def used_memory(redis: Redis) -> int:
    info = await redis.info("memory")
    return int(info["used_memory"])


# Parts ------------------------------------------------------------------------------------


async def ingress(system: System, report: Report, scale: Scale) -> None:
    """POST /calls and POST /sms against the bare-handler floor; and Redis bytes per call."""
    await system.reset()
    report.phase("floor: bare aiohttp and one pipelined write")
    floor_port, port = free_port(), free_port()
    floor = system.floor(floor_port)
    duration = str(scale.seconds)
    redis = system.redis()
    window = Window([floor.pid])
    await window.start(redis)
    floor_result = await system.loadgen_async(
        "--url", url(floor_port), "--duration", duration, "--warmup", "1"
    )
    await window.stop(redis)
    floor_cost = PerCall.of(window, await redis.zcard(b"floor:calls"))
    await redis.aclose()
    system.stop(floor)
    check_statuses(report, "floor", floor_result, "201")
    for processes in (1, 2):
        await system.reset()
        report.phase(f"POST /calls, {processes} process(es)")
        server = system.serve(port, processes)
        redis = system.redis()
        before = await used_memory(redis)
        window = Window([server.pid])
        await window.start(redis)
        calls = await system.loadgen_async(
            "--url", url(port), "--kind", "calls", "--menus", str(MENUS), "--duration", duration,
            "--warmup", "1",
        )  # fmt: skip
        await window.stop(redis)
        check_statuses(report, "POST /calls", calls, "201")
        if processes == 1:
            created = await redis.zcard(TenantKeys(TENANT).calls)
            per_call = (await used_memory(redis) - before) / max(1, created)
            cost = PerCall.of(window, created)
        ratio = calls["rps"] / floor_result["rps"]
        report.add(
            f"ingress POST /calls (inbound), concurrency 64, {processes} process(es)",
            fmt_rate(calls),
            fmt_rate(floor_result),
            "≥ 0.8 × floor",
            ratio >= 0.8,
        )
        report.steady(f"  POST /calls ÷ floor ({processes} process(es))", f"{ratio:.2f}")
        if processes == 1:
            report.steady("  POST /calls, 1 process, per request", cost.text())
            report.add("    its Redis commands", cost.breakdown())
            report.steady("  floor, per request", floor_cost.text())
            report.steady(
                "  POST /calls CPU per request ÷ floor's", f"{cost.cpu_ms / floor_cost.cpu_ms:.2f}"
            )
        report.phase(f"POST /calls at half the rate, {processes} process(es)")
        half = await system.loadgen_async(
            "--url", url(port), "--kind", "calls", "--menus", str(MENUS), "--duration", duration,
            "--rate", str(round(calls["rps"] / 2)), "--first-index", "5000000",
        )  # fmt: skip
        check_statuses(report, "POST /calls at half rate", half, "201")
        report.add(
            f"  p99 at half the max rate ({half['rps']:,.0f}/s open loop, {processes} process(es))",
            f"p50 {half['p50_ms']} ms, p99 {half['p99_ms']} ms",
            "",
            "p99 ≤ 25 ms",
            half["p99_ms"] <= 25,
        )
        await system.reset()
        report.phase(f"POST /sms, {processes} process(es)")
        sms_window = Window([server.pid])
        await sms_window.start(redis)
        sms = await system.loadgen_async(
            "--url", url(port), "--kind", "sms", "--duration", duration
        )
        await sms_window.stop(redis)
        check_statuses(report, "POST /sms", sms, "200")
        sms_ratio = sms["rps"] / floor_result["rps"]
        report.add(
            f"ingress POST /sms (distinct consumers), {processes} process(es)",
            f"{fmt_rate(sms)} ({sms_ratio:.2f} × floor)",
            fmt_rate(floor_result),
            "≥ 0.7 × floor",
            sms_ratio >= 0.7,
        )
        report.drift.append(f"POST /sms ÷ floor ({processes} process(es)): {sms_ratio:.2f}")
        if processes == 1:
            sms_cost = PerCall.of(sms_window, sms["statuses"].get("200", 0))
            report.steady("  POST /sms, 1 process, per request", sms_cost.text())
            report.add("    its Redis commands", sms_cost.breakdown())
        await redis.aclose()
        system.stop(server)
    report.add(
        "Redis bytes per stored queued call (object, meta, indexes, job)", f"{per_call:,.0f} B"
    )
    report.add("load generator CPU share (1.0 = one core)", f"{calls['client_cpu_share']}")


async def _run_e2e(
    system: System, report: Report, workers: int, rate: int, seconds: float
) -> dict[str, Any]:
    await system.reset()
    report.phase(f"end to end, {workers} worker(s), {rate:,} calls/s offered")
    port = free_port()
    server = system.serve(port)
    procs = system.workers(workers)
    agents = system.spawn_agents(url(port))
    redis = system.redis()
    window = Window([server.pid, *(process.pid for process in procs)])
    await window.start(redis)
    result = await system.loadgen_async(
        "--url", url(port), "--kind", "calls", "--menus", str(MENUS), "--duration", str(seconds),
        "--rate", str(rate), "--concurrency", "128",
    )  # fmt: skip
    check_statuses(report, "e2e POST /calls", result, "201")
    try:
        outcome = await _e2e_outcome(redis, result["statuses"].get("201", 0), window)
    finally:
        await redis.aclose()
        for process in procs:
            system.stop(process)
        system.stop(agents)
        system.stop(server)
    outcome["post"] = result
    if outcome["lost"] or outcome["double"] or outcome["slots_held"]:
        report.problems.append(f"e2e with {workers} worker(s): {outcome}")
    return outcome


async def _e2e_outcome(
    redis: Redis, acknowledged: int, window: Window, wait_s: float = 600
) -> dict[str, Any]:
    """Waits for every call to be assigned (then finished), then reads them all back; the
    window of CPU and commands closes before the reading."""
    keys = TenantKeys(TENANT)
    await _wait(lambda: _zcard(redis, keys.calls_by_status("queued")), 0, wait_s, stalls_s=15)
    finished = await _zcard(redis, keys.calls_by_status("finished"))
    await _wait(lambda: _zcard(redis, keys.calls_by_status("finished")), finished, 10, grows=True)
    await window.stop(redis)
    ids = [int(m) for m in await redis.zrange(keys.calls, 0, -1)]
    async with redis.pipeline(transaction=False) as pipe:
        for call_id in ids:
            pipe.hget(keys.call(call_id), "doc")
            pipe.hvals(keys.call_offers(call_id))
        replies = await pipe.execute()
    offer_ids = [[int(o) for o in replies[i + 1]] for i in range(0, len(replies), 2)]
    async with redis.pipeline(transaction=False) as pipe:
        for offers in offer_ids:
            for offer_id in offers:
                pipe.hmget(keys.offer(offer_id), ["offered_at", "state"])
        offer_rows = iter(await pipe.execute())
    created_ms, assigned_ms, to_offer, to_assign = [], [], [], []
    double = lost = 0
    for i, offers in enumerate(offer_ids):
        call = orjson.loads(replies[2 * i])
        made = [next(offer_rows) for _ in offers]
        double += sum(1 for _, state in made if state == b"accepted") > 1
        created = _ms(call["created_at"])
        created_ms.append(created)
        if call.get("assigned_at") is None:
            lost += 1
            continue
        assigned_ms.append(_ms(call["assigned_at"]))
        to_assign.append(float(assigned_ms[-1] - created))
        if made:
            to_offer.append(float(min(int(at) for at, _ in made) - created))
    span_s = (max(assigned_ms, default=0) - min(created_ms, default=0)) / 1000 or 1
    return {
        "acknowledged": acknowledged,
        "calls": len(ids),
        "assigned": len(assigned_ms),
        "assigned_per_s": round(len(assigned_ms) / span_s, 1),
        "p50_offer_ms": percentile(to_offer, 0.5),
        "p99_offer_ms": percentile(to_offer, 0.99),
        "p99_assigned_ms": percentile(to_assign, 0.99),
        "lost": lost + abs(len(ids) - acknowledged),
        "double": double,
        "slots_held": await _slots_held(redis, keys),
        "cost": PerCall.of(window, len(assigned_ms)),
    }


def _ms(stamp: str) -> int:
    moment = clock.parse_iso(stamp)
    assert moment is not None
    return clock.to_ms(moment)


async def _zcard(redis: Redis, key: str) -> int:
    return int(await redis.zcard(key))


async def _wait(
    probe: Callable[[], Awaitable[int]],
    target: int,
    timeout_s: float,
    grows: bool = False,
    stalls_s: float = 0,
) -> None:
    """Until probe() falls to target (or, with grows, stops growing), at most timeout_s, or
    stalls_s without any change."""
    deadline, last, changed = time.monotonic() + timeout_s, None, time.monotonic()
    while time.monotonic() < deadline:
        value = await probe()
        if (not grows and value <= target) or (grows and value == last):
            return
        if value != last:
            last, changed = value, time.monotonic()
        elif stalls_s and time.monotonic() - changed > stalls_s:
            return
        await asyncio.sleep(0.5 if grows else 0.2)


async def _slots_held(redis: Redis, keys: TenantKeys) -> int:
    held = 0
    for agent_id in range(1, AGENTS + 1):
        held += int(await redis.hget(keys.agent(agent_id), "voice") or 0)
    return held


async def e2e(system: System, report: Report, scale: Scale) -> None:
    """POST → offer → accept (500 agents) → assigned, one worker, against bare ARQ no-ops."""
    report.phase("floor: bare ARQ no-op jobs")
    floor = system.arq_floor(
        "--settings", "ours", "--jobs", str(10_000 if scale.seconds > 5 else 2_000)
    )
    outcome = await _run_e2e(system, report, 1, scale.e2e_rate, scale.seconds)
    post = outcome["post"]
    report.add(
        f"end to end POST→assigned, 500 agents, 1 worker (offered {scale.e2e_rate:,}/s)",
        f"{outcome['assigned_per_s']:,.0f} calls/s assigned; POST {post['rps']:,.0f}/s",
        f"bare ARQ no-op {floor['jobs_per_s']:,.0f} jobs/s",
        "≥ 1,000 calls/s",
        outcome["assigned_per_s"] >= 1000,
    )
    report.add(
        "  POST→offer (created_at → offered_at)",
        f"p50 {outcome['p50_offer_ms']:.0f} ms, p99 {outcome['p99_offer_ms']:.0f} ms; "
        f"p99 POST→assigned {outcome['p99_assigned_ms']:.0f} ms",
        "",
        "p99 ≤ 50 ms",
        outcome["p99_offer_ms"] <= 50,
    )
    report.steady(
        "  calls assigned/s ÷ bare ARQ no-op jobs/s",
        f"{outcome['assigned_per_s'] / floor['jobs_per_s']:.3f}",
    )
    report.steady("  per call assigned (ingress and worker)", outcome["cost"].text())
    report.add("    its Redis commands", outcome["cost"].breakdown())
    report.add(
        "  calls lost / assigned twice / agent slots left held",
        f"{outcome['lost']} / {outcome['double']} / {outcome['slots_held']}"
        f" of {outcome['calls']:,}",
    )


async def scale_out(system: System, report: Report, scale: Scale) -> None:
    """The end-to-end run with 1, 2 and 4 worker processes."""
    curve = []
    for workers in (1, 2, 4):
        outcome = await _run_e2e(system, report, workers, scale.e2e_rate, scale.seconds)
        curve.append(
            f"{workers}: {outcome['assigned_per_s']:,.0f}/s"
            f" (p99 offer {outcome['p99_offer_ms']:.0f} ms,"
            f" lost {outcome['lost']}, twice {outcome['double']})"
        )
    report.add(
        "horizontal scale: calls assigned/s by worker processes",
        "; ".join(curve),
        "",
        "no loss, no double",
    )


async def scheduled(system: System, report: Report, scale: Scale) -> None:
    """100,000 scheduled calls; 1,000 due each second for a while, then 2,000 in one second."""
    await system.reset(agents_status="offline")
    report.phase("floor: ARQ defaults, deferred jobs")
    port = free_port()
    server = system.serve(port)
    redis = system.redis()
    floor = system.arq_floor(
        "--settings", "defaults", "--jobs", "200", "--deferred", "--per-second", "50"
    )
    steady_s = int(scale.seconds)
    measured = steady_s * 1000 + 2000
    bulk = max(0, scale.scheduled_total - measured)
    before = await used_memory(redis)
    far = clock.to_ms(clock.now()) + 7 * 86_400_000  # a week ahead: waiting, not firing
    started = time.monotonic()
    report.phase(f"filling the queue: {bulk:,} calls due next week")
    bulk_result = await system.loadgen_async(
        "--url", url(port), "--kind", "scheduled", "--menus", str(MENUS), "--count", str(bulk),
        "--duration", "3600", "--first-due-ms", str(far), "--due-per-second", "100",
        "--first-index", "1000000",
    )  # fmt: skip
    check_statuses(report, "POST /calls scheduled", bulk_result, "201")
    rate = bulk / max(0.001, time.monotonic() - started) if bulk else 2000
    # The measured calls: created now, due from a few seconds after they are all in.
    first_due = clock.to_ms(clock.now()) + int(1000 * (3 + 2 * measured / rate))
    report.phase(f"creating the {measured:,} measured calls")
    steady = await system.loadgen_async(
        "--url", url(port), "--kind", "scheduled", "--menus", str(MENUS), "--count",
        str(steady_s * 1000), "--duration", "3600", "--first-due-ms", str(first_due),
        "--due-per-second", "1000",
    )  # fmt: skip
    burst_due = first_due + steady_s * 1000 + 1000
    burst = await system.loadgen_async(
        "--url", url(port), "--kind", "scheduled", "--menus", str(MENUS), "--count", "2000",
        "--duration", "3600", "--first-due-ms", str(burst_due), "--due-per-second", "2000",
        "--first-index", "500000",
    )  # fmt: skip
    for what, result in (("steady", steady), ("burst", burst)):
        check_statuses(report, f"POST /calls scheduled ({what})", result, "201")
    total = await redis.zcard(TenantKeys(TENANT).calls)
    per_scheduled = (await used_memory(redis) - before) / max(1, total)
    workers = system.workers(SCHEDULED_WORKERS)
    report.phase(f"firing: {SCHEDULED_WORKERS} workers")
    keys = TenantKeys(TENANT)
    window = Window([worker.pid for worker in workers])
    await asyncio.sleep(max(0, first_due - clock.to_ms(clock.now())) / 1000)
    await window.start(redis)
    while clock.to_ms(clock.now()) < burst_due + 2000:
        await asyncio.sleep(0.5)
    # "Never fired" must mean never, not late on a busy machine: wait while firing goes on.
    await _wait(lambda: _unfired(redis, keys, measured), 0, 600, stalls_s=15)
    await window.stop(redis)
    cost = PerCall.of(window, measured - await _unfired(redis, keys, measured))
    late_steady, late_burst, fired_twice, never = await _lateness(redis, keys, burst_due)
    for worker in workers:
        system.stop(worker)
    system.stop(server)
    await redis.aclose()
    report.add(
        f"scheduled firing: {total:,} scheduled, 1,000 due/s for {steady_s} s,"
        f" {SCHEDULED_WORKERS} worker processes",
        _lateness_text(late_steady),
        f"ARQ defaults (50 due/s): p50 {floor['late_p50_ms']:.0f} ms,"
        f" p99 {floor['late_p99_ms']:.0f} ms",
        "p99 ≤ 50 ms",
        percentile(late_steady, 0.99) <= 50,
    )
    report.add(
        "  2,000 due in the same second",
        _lateness_text(late_burst),
    )
    report.add("  fired twice / never fired", f"{fired_twice} / {never} of {measured:,}")
    report.steady("  per fired call (workers)", cost.text())
    report.add("    its Redis commands", cost.breakdown())
    report.add(
        "  POST /calls (scheduled) while filling the queue", fmt_rate(bulk_result) if bulk else "-"
    )
    report.add(
        "Redis bytes per scheduled call (object, meta, indexes, deferred job)",
        f"{per_scheduled:,.0f} B",
    )
    if fired_twice or never:
        report.problems.append(f"scheduled: {fired_twice} fired twice, {never} never fired")


def _lateness_text(late: list[float]) -> str:
    return (
        f"lateness p50 {percentile(late, 0.5):.0f} ms, p99 {percentile(late, 0.99):.0f} ms,"
        f" max {max(late, default=0):.0f} ms"
    )


async def _unfired(redis: Redis, keys: TenantKeys, measured: int) -> int:
    fired = await _zcard(redis, keys.calls) - await _zcard(redis, keys.calls_by_status("scheduled"))
    return measured - fired


async def _lateness(
    redis: Redis, keys: TenantKeys, burst_due: int
) -> tuple[list[float], list[float], int, int]:
    """Lateness of the calls due before next week (the measured ones), from their objects."""
    ids = [int(m) for m in await redis.zrange(keys.calls, 0, -1)]
    async with redis.pipeline(transaction=False) as pipe:
        for call_id in ids:
            pipe.hget(keys.call(call_id), "doc")
            pipe.hget(keys.call(call_id), "rev")
        replies = await pipe.execute()
    horizon = clock.to_ms(clock.now()) + 86_400_000
    steady: list[float] = []
    burst: list[float] = []
    twice = never = 0
    for i in range(0, len(replies), 2):
        call = orjson.loads(replies[i])
        due = clock.to_ms(clock.parse_iso(call["scheduled_at"]))  # type: ignore[arg-type]
        if due > horizon:
            continue
        if call.get("queued_at") is None:
            never += 1
            continue
        # created (rev 1) -> fired (rev 2); a second firing would have written rev 3 or more
        # with a later queued_at; routing alone does not change the revision here (no agents).
        twice += int(replies[i + 1]) > 2
        late = clock.to_ms(clock.parse_iso(call["queued_at"])) - due  # type: ignore[arg-type]
        (burst if due >= burst_due else steady).append(late)
    return steady, burst, twice, never


async def memory(system: System, report: Report, scale: Scale) -> None:
    """One worker runs `worker_jobs` real jobs (routing steps of calls that no longer wait);
    its RSS after warm-up and at the end."""
    await system.reset()
    redis = system.redis()
    scripts = Scripts.register(redis)
    worker = system.workers(1)[0]
    report.phase(f"{scale.worker_jobs:,} jobs through one worker")
    done = 0
    samples: list[tuple[int, float]] = []
    chunk = 20_000
    started = time.monotonic()
    while done < scale.worker_jobs:
        now_ms = clock.to_ms(clock.now())
        specs = [
            jobs.JobSpec(jobs.ROUTE_CALL, TENANT, 10_000_000 + done + i, now_ms)
            for i in range(min(chunk, scale.worker_jobs - done))
        ]
        for i in range(0, len(specs), 500):
            await jobs.enqueue(scripts, specs[i : i + 500])
        done += len(specs)
        while await redis.zcard(jobs.QUEUE_NAME) > chunk // 2:
            await asyncio.sleep(0.05)
        samples.append((done, rss_mb(worker.pid)))
        if done % 100_000 == 0:
            say(f"    {done:,} jobs, worker RSS {samples[-1][1]:.1f} MB")
    while await redis.zcard(jobs.QUEUE_NAME) > 0:
        await asyncio.sleep(0.05)
    elapsed = time.monotonic() - started
    final = rss_mb(worker.pid)
    system.stop(worker)
    await redis.aclose()
    warm = next((rss for count, rss in samples if count >= scale.worker_jobs // 10), samples[0][1])
    report.add(
        f"worker RSS after {scale.worker_jobs:,} jobs",
        f"{final:.1f} MB (after warm-up at {scale.worker_jobs // 10:,} jobs: {warm:.1f} MB;"
        f" growth {final - warm:+.1f} MB); {scale.worker_jobs / elapsed:,.0f} jobs/s",
        "",
        "no growth after warm-up",
        final - warm < max(5.0, warm * 0.05),
    )


async def campaign(system: System, report: Report, scale: Scale) -> None:
    """CSV rows imported through `dispatcher campaign import`, then fired on time and paced."""
    await campaign_part(system, report, scale.size)


async def archive(system: System, report: Report, scale: Scale) -> None:
    """Calls created, ended and archived to PostgreSQL; Redis memory, archiving against a bare
    COPY, reads of live and archived calls, bytes per call."""
    await archive_part(system, report, scale.size, scale.archive_calls)


async def dnc(system: System, report: Report, scale: Scale) -> None:
    """POST /calls with the company DNC list empty and full, alternated; bytes per entry."""
    await dnc_part(system, report, scale.size)


PARTS: dict[str, Callable[[System, Report, Scale], Coroutine[Any, Any, None]]] = {
    "ingress": ingress,
    "e2e": e2e,
    "scheduled": scheduled,
    "scale": scale_out,
    "memory": memory,
    "campaign": campaign,
    "archive": archive,
    "dnc": dnc,
}


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    redis_version = subprocess.run(
        [redis_server_binary(), "--version"], capture_output=True, text=True, check=False
    ).stdout.split()[2:3]
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} cores ({cpu}), {memory_gib:.0f} GiB,"
        f" Python {platform.python_version()}, Redis {' '.join(redis_version).removeprefix('v=')},"
        f" {platform.system()} {platform.release()}"
    )


def commit() -> str:
    """The commit measured (with a mark when the work tree differs from it)."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        head = subprocess.run(
            ["git", "-C", here, "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", here, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{head} (with uncommitted changes)" if dirty else head


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmarks of the dispatcher; see bench/README.")
    parser.add_argument("parts", nargs="*", help=f"some of: {', '.join(PARTS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="short runs of every part")
    parser.add_argument("--smoke", action="store_true", help="tiny runs: checks losses only")
    parser.add_argument(
        "--archive-calls",
        type=int,
        default=None,
        metavar="N",
        help="calls through the archive part's steady phase (default 1,000,000; quick 6,000)",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a progress bar on stderr (default: only when stderr is a terminal)",
    )
    args = parser.parse_args(argv)
    unknown = [part for part in args.parts if part not in PARTS]
    if unknown:
        parser.error(f"unknown part(s): {', '.join(unknown)}")
    scale = Scale.of("smoke" if args.smoke else "quick" if args.quick else "full")
    scale = dataclasses.replace(scale, archive_calls=args.archive_calls)
    parts = args.parts or list(PARTS)
    print(f"machine: {machine()}", flush=True)
    print(
        f"run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {commit()}", flush=True
    )
    with (
        progress.bar("bench", len(parts), unit="part", show=args.progress) as bar,
        System.started() as system,
    ):
        report = Report(bar=bar)
        for name in parts:
            say(f"{name}:")
            bar.set_description_str(f"bench {name}")
            asyncio.run(PARTS[name](system, report, scale))
            bar.update()
    print()
    print(report.markdown())
    if report.drift:
        print("\nDrift figures (ratios to floors; CPU per call in calibration units):")
        for line in report.drift:
            print(f"- {line}")
    if report.problems:
        print("\nPROBLEMS (calls lost, fired twice or assigned twice, or failed requests):")
        for problem in report.problems:
            print(f"- {problem}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
