"""The company DNC list part of the bench (`python -m bench dnc`): what checking the list costs
`POST /calls`, and what an entry on it costs Redis.

1. Load: `entries` numbers added through the list's own API (POST .../outbound_dialer/dnc,
   10,000 contacts a request, two in flight), one in ten with an expiry 30 days ahead, so that
   both of the tenant's sorted sets (store/keys.py's `dnc` and `dnc_expiring`) are as a real
   list has them: contacts/s, and serve's and Redis's CPU per contact.
2. Sizing: Redis `used_memory` before and after the load (after a settle), over the entries;
   and `MEMORY USAGE` (every member counted) of the two keys, over the entries.
3. The check's cost: `POST /calls` of scheduled calls (`Voice Scheduled (API)`, due a week
   ahead; no worker runs, so none fires) to numbers not on the list, the common case, each
   checked against it in the script that stores it (lib.lua's guard_refusal). One `serve`
   process, closed loop, 64 connections; rounds of three configurations alternated in the
   same run (in the six orders of ORDERS, in turn: a drift of the shared machine's speed falls
   on each alike): `listed`, the entries on the list; `empty`, the two keys renamed away (an
   empty list has no keys: the check runs and finds nothing); `off`, the tenant's
   `dnc_call_types` empty (no check at all). Every round calls numbers of its own, never
   called before. Per configuration: requests/s, and per request the CPU of `serve` and of
   Redis and Redis's commands, over the round's calls (its warm-up's included).
4. The check alone, inside Redis: lib.lua's own `on_dnc` in a Lua loop over numbers not on
   the list, against the list and against absent keys, less the same loop calling nothing
   (the fastest of a few runs): what one check costs Redis, beside a request's CPU.
   And the check's Python side, in this process: a create script's inputs made and split into
   keys and its JSON argument (the framework's `parts()`) with the check's Guard and without.
5. Refused: in the `listed` configuration, calls to listed numbers (no warm-up): every one a
   400 with the platform's text, none stored.
"""

from __future__ import annotations

import asyncio
import base64
import re
import statistics
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp
import orjson
from redis.asyncio import Redis

from bench.cpu import Window
from bench.loadgen import end_user_number
from bench.system import MENUS, TENANT, TOKEN, System, bench_directory, cpu_seconds, free_port
from dispatcher.directory import loader
from dispatcher.domain import clock, compliance
from dispatcher.domain import dnc as dnc_requests
from dispatcher.domain.statuses import CallType
from dispatcher.store import directory, jobs, scripting
from dispatcher.store.keys import TenantKeys
from dispatcher.store.scripts import CreateRecord, Guard, Jobs, Scripts

if TYPE_CHECKING:
    from bench.run import Report

KEYS = TenantKeys(TENANT)
# Where the `empty` rounds keep the list (RENAME is O(1): the entries stay in Redis's memory,
# so every configuration runs against the same used memory).
PARKED, PARKED_EXPIRING = "bench:dnc:parked", "bench:dnc:parked:expiring"
LOAD_IN_FLIGHT = 2  # add requests at once
EXPIRING_EVERY = 10  # one entry in ten expires
EXPIRES_IN_MS = 30 * 86_400_000
# Numbers (bench/loadgen.py's end_user_number indices, which wrap at 8 million): the list from
# LISTED on; each round's from ROUNDS_FROM + round * PER_ROUND; the load generator's warm-up
# takes its numbers 7 million further (so 1 million lower, wrapped): none falls on the list.
# The priming round's from PRIMING.
LISTED = 4_000_000
ROUNDS_FROM, PER_ROUND = 1_000_000, 40_000
PRIMING = 3_000_000
UNLISTED = 6_000_000  # the numbers of the Lua loop (section 4)
LOOP_NUMBERS, LOOP_RUNS = 100_000, 7
PYTHON_ROUNDS = 20_000  # creates' inputs made in one timed run
# Times itself with Redis's clock (µs), so that sending the numbers is not counted.
LOOP = """local function micros()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local started = micros()
local now = math.floor(started / 1000)
for i = 1, #ARGV do {}(KEYS[1], KEYS[2], ARGV[i], now) end
return micros() - started"""
CONCURRENCY = 64
CONFIGURATIONS = ("listed", "empty", "off")
# The orders of a repeat's rounds, in turn: each configuration comes first, second and last
# equally often, and after each other one equally often (a Williams design), so that neither
# the machine's drift nor what the round before left (a directory reloaded, the list renamed)
# falls on one configuration more than another.
ORDERS = (
    ("listed", "empty", "off"),
    ("empty", "off", "listed"),
    ("off", "listed", "empty"),
    ("off", "empty", "listed"),
    ("listed", "off", "empty"),
    ("empty", "listed", "off"),
)
MiB = 2**20


@dataclass(frozen=True)
class DncScale:
    entries: int  # numbers on the list
    round_s: float  # length of a measured round
    repeats: int  # rounds of each configuration
    warmup_s: float  # of each round, not counted
    priming_s: float  # a round before the first, not counted: a new `serve` is slower at first

    @classmethod
    def of(cls, size: str) -> DncScale:
        if size == "smoke":
            return cls(entries=2_000, round_s=1, repeats=1, warmup_s=0.5, priming_s=1)
        if size == "quick":
            return cls(entries=200_000, round_s=2, repeats=6, warmup_s=1, priming_s=3)
        return cls(entries=1_000_000, round_s=3, repeats=12, warmup_s=1, priming_s=5)


@dataclass
class Tally:
    """One configuration's rounds, summed."""

    requests: int = 0  # measured (the warm-ups not counted)
    seconds: float = 0.0
    created: int = 0  # calls stored, the warm-ups' included: what the CPU is divided by
    serve_cpu_s: float = 0.0
    redis_cpu_s: float = 0.0
    commands: int = 0
    rates: list[float] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.requests / max(1e-9, self.seconds)

    def per_request(self) -> tuple[float, float, float]:
        """CPU ms of serve, CPU ms of Redis, Redis commands; per call stored."""
        calls = max(1, self.created)
        return (
            self.serve_cpu_s * 1000 / calls,
            self.redis_cpu_s * 1000 / calls,
            self.commands / calls,
        )

    @property
    def cpu_ms(self) -> float:
        """CPU ms of serve and Redis per call stored."""
        return (self.serve_cpu_s + self.redis_cpu_s) * 1000 / max(1, self.created)


async def dnc(system: System, report: Report, size: str) -> None:
    scale = DncScale.of(size)
    await system.reset(agents_status="offline")
    port = free_port()
    server = system.serve(port)
    redis = system.redis()
    try:
        await _load_and_size(system, report, redis, port, server.pid, scale.entries)
        tallies = await _rounds(system, report, redis, port, server.pid, scale)
        _report_rounds(report, tallies, scale)
        await _check_alone(report, redis, tallies["listed"].cpu_ms)
        _python_side(report, tallies["listed"].per_request()[0])
        await _refused(system, report, redis, port, scale)
    finally:
        await redis.aclose()
        system.stop(server)


# 1 and 2. Load and sizing -----------------------------------------------------------------


async def _load_and_size(
    system: System, report: Report, redis: Redis, port: int, server_pid: int, entries: int
) -> None:
    report.phase(f"dnc: adding {entries:,} numbers through the API")
    await asyncio.sleep(1)
    before = await _used_memory(redis)
    cpu = cpu_seconds(server_pid), cpu_seconds(system.redis_pid or 0)
    started = time.monotonic()
    created, problems = await load(port, entries)
    seconds = time.monotonic() - started
    serve_cpu = cpu_seconds(server_pid) - cpu[0]
    redis_cpu = cpu_seconds(system.redis_pid or 0) - cpu[1]
    report.problems += [f"dnc: POST .../dnc answered {problem}" for problem in problems]
    if created != entries:
        report.problems.append(f"dnc: {entries:,} numbers sent, {created:,} created")
    await asyncio.sleep(1)  # the load's client buffers freed
    after = await _used_memory(redis)
    listed = int(await redis.zcard(KEYS.dnc))
    expiring = int(await redis.zcard(KEYS.dnc_expiring))
    if listed != entries:
        report.problems.append(f"dnc: {entries:,} loaded, {listed:,} on the list")
    usage = [
        int(await redis.memory_usage(key, samples=0) or 0) for key in (KEYS.dnc, KEYS.dnc_expiring)
    ]
    per_contact = 1000 / entries
    report.add(
        f"DNC list: {entries:,} numbers added through POST /apps/api/v1/outbound_dialer/dnc"
        f" ({expiring:,} of them with an expiry; {dnc_requests.MAX_CONTACTS:,} contacts a"
        f" request, {LOAD_IN_FLIGHT} in flight)",
        f"{entries / max(1e-9, seconds):,.0f} contacts/s ({seconds:.1f} s); per contact serve"
        f" {serve_cpu * per_contact * 1000:.1f} µs CPU, Redis {redis_cpu * per_contact * 1000:.1f}"
        " µs",
    )
    report.add(
        "Redis bytes per DNC entry (used_memory after the load − before, over the entries)",
        f"{(after - before) / entries:,.0f} B ({(after - before) / MiB:,.1f} MiB)",
    )
    report.add(
        "  MEMORY USAGE of the two keys, over the entries",
        f"{sum(usage) / entries:,.0f} B (the list {usage[0] / MiB:,.1f} MiB,"
        f" {usage[0] / max(1, listed):,.0f} B an entry; the expiring entries"
        f" {usage[1] / MiB:,.1f} MiB, {usage[1] / max(1, expiring):,.0f} B each)",
    )


async def load(port: int, entries: int) -> tuple[int, list[str]]:
    """The list's `entries` numbers through its API, MAX_CONTACTS a request, LOAD_IN_FLIGHT
    requests at once, each body made as it is sent; every EXPIRING_EVERY-th expiring in 30
    days. (Contacts answered `created`, the answers that were not a 200.)"""
    expires = clock.iso(clock.from_ms(clock.to_ms(clock.now()) + EXPIRES_IN_MS))
    token = base64.b64encode(f"{TENANT}:{TOKEN}".encode()).decode()
    headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
    url = f"http://127.0.0.1:{port}/apps/api/v1/outbound_dialer/dnc"
    firsts = iter(range(0, entries, dnc_requests.MAX_CONTACTS))
    created, problems = 0, []

    async def send(session: aiohttp.ClientSession) -> None:
        nonlocal created
        for first in firsts:
            contacts = [
                {"phone_number": end_user_number(LISTED + i)}
                | ({"expires_at": expires} if i % EXPIRING_EVERY == 0 else {})
                for i in range(first, min(entries, first + dnc_requests.MAX_CONTACTS))
            ]
            body = orjson.dumps({"contacts": contacts})
            async with session.post(url, data=body, headers=headers) as answer:
                reply = await answer.read()
            if answer.status != 200:
                problems.append(f"{answer.status} {reply[:200]!r}")
                continue
            created += sum(1 for contact in orjson.loads(reply) if contact["status"] == "created")

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(send(session) for _ in range(LOAD_IN_FLIGHT)))
    return created, problems


# 3. The check's cost ----------------------------------------------------------------------


async def _rounds(
    system: System, report: Report, redis: Redis, port: int, server_pid: int, scale: DncScale
) -> dict[str, Tally]:
    tallies = {name: Tally() for name in CONFIGURATIONS}
    report.phase("dnc: priming serve")
    await system.loadgen_async(*_scheduled_args(port, PRIMING), "--duration", str(scale.priming_s))
    state = "listed"
    round_index = 0
    for repeat in range(scale.repeats):
        for name in ORDERS[repeat % len(ORDERS)]:
            state = await _configure(redis, state, name)
            report.phase(f"dnc: POST /calls, {name} ({repeat + 1}/{scale.repeats})")
            await _round(
                system, report, redis, port, server_pid, scale, name, round_index, tallies[name]
            )
            round_index += 1
    await _configure(redis, state, "listed")
    return tallies


async def _configure(redis: Redis, state: str, name: str) -> str:
    """From configuration `state` to `name`: the list parked or back, the check on or off
    (directory.save; each `serve` process sees the new directory within its cache's second)."""
    if state == name:
        return name
    if (state == "empty") != (name == "empty"):
        moves = [(KEYS.dnc, PARKED), (KEYS.dnc_expiring, PARKED_EXPIRING)]
        for here, there in moves if name == "empty" else [(b, a) for a, b in moves]:
            await redis.rename(here, there)
    if (state == "off") != (name == "off"):
        document = bench_directory(agents_status="offline")
        settings = document["tenants"][0]["settings"]
        settings["dnc_call_types"] = [] if name == "off" else ["outbound", "scheduled"]
        await directory.save(redis, Scripts.register(redis), loader.validate(document))
        await asyncio.sleep(1.2)
    return name


async def _round(
    system: System,
    report: Report,
    redis: Redis,
    port: int,
    server_pid: int,
    scale: DncScale,
    name: str,
    index: int,
    tally: Tally,
) -> None:
    first = await _calls(redis)
    window = Window([server_pid])
    await window.start(redis)
    redis_cpu = cpu_seconds(system.redis_pid or 0)
    result = await system.loadgen_async(
        *_scheduled_args(port, ROUNDS_FROM + index * PER_ROUND),
        "--duration", str(scale.round_s), "--warmup", str(scale.warmup_s),
    )  # fmt: skip
    redis_cpu = cpu_seconds(system.redis_pid or 0) - redis_cpu
    await window.stop(redis)
    created = await _calls(redis) - first
    wrong = {k: v for k, v in result["statuses"].items() if k != "201"}
    if wrong or result["errors"]:
        report.problems.append(
            f"dnc {name}: answers {wrong} errors {result['errors']} {result['samples'][:2]}"
        )
    tally.requests += int(result["requests"])
    tally.seconds += float(result["seconds"])
    tally.created += created
    tally.serve_cpu_s += window.cpu_s
    tally.redis_cpu_s += redis_cpu
    tally.commands += window.commands
    tally.rates.append(float(result["rps"]))


def _scheduled_args(port: int, number_offset: int) -> list[str]:
    """The load generator's arguments for scheduled calls a week ahead, from numbers at
    `number_offset`."""
    week_ahead = clock.to_ms(clock.now()) + 7 * 86_400_000
    return [
        "--url", f"http://127.0.0.1:{port}", "--kind", "scheduled", "--menus", str(MENUS),
        "--concurrency", str(CONCURRENCY), "--first-due-ms", str(week_ahead),
        "--due-per-second", "1000", "--number-offset", str(number_offset),
    ]  # fmt: skip


def _report_rounds(report: Report, tallies: dict[str, Tally], scale: DncScale) -> None:
    listed, empty, off = (tallies[name] for name in CONFIGURATIONS)
    # Round by round (each `listed` beside the `empty` of the same repeat), then the median.
    paired = [a / b for a, b in zip(listed.rates, empty.rates, strict=True)]
    ratio = statistics.median(paired)
    cost = (1 - ratio) * 100
    cpu_cost = (listed.cpu_ms / empty.cpu_ms - 1) * 100
    rounds = f"{scale.repeats} × {scale.round_s:g} s a configuration, alternated"
    report.add(
        f"POST /calls (scheduled, to numbers not listed), 1 process, concurrency {CONCURRENCY}:"
        f" {scale.entries:,} numbers listed, against an empty list ({rounds})",
        f"{listed.rps:,.0f}/s against {empty.rps:,.0f}/s: × {ratio:.3f} (median of the"
        f" rounds' {', '.join(f'{p:.3f}' for p in paired)}): {cost:+.1f} %; CPU per request"
        f" {cpu_cost:+.1f} %",
        f"empty list: {empty.rps:,.0f}/s",
        "cost < 5 % (requests/s and CPU)",
        # one round of each is too short to judge
        None if scale.repeats < 2 else cost < 5 and cpu_cost < 5,
    )
    paired_off = [a / b for a, b in zip(listed.rates, off.rates, strict=True)]
    report.add(
        "  the same with the check off (dnc_call_types [])",
        f"{off.rps:,.0f}/s; listed ÷ off × {statistics.median(paired_off):.3f}"
        f" (rounds {', '.join(f'{p:.3f}' for p in paired_off)})",
    )
    for name, tally in tallies.items():
        serve_ms, redis_ms, commands = tally.per_request()
        report.add(
            f"  per request, {name}",
            f"serve {serve_ms:.3f} ms CPU, Redis {redis_ms:.3f} ms CPU, {commands:.1f} Redis"
            f" commands ({tally.created:,} calls)",
        )
    cpu = {name: tally.cpu_ms for name, tally in tallies.items()}
    report.steady("  POST /calls listed ÷ empty list (requests/s)", f"{ratio:.3f}")
    report.steady(
        "  CPU per POST /calls (serve and Redis), listed ÷ empty / ÷ off",
        f"{cpu['listed'] / cpu['empty']:.3f} / {cpu['listed'] / cpu['off']:.3f}",
    )


# 4. The check alone -----------------------------------------------------------------------


async def _check_alone(report: Report, redis: Redis, request_ms: float) -> None:
    """lib.lua's on_dnc, timed inside Redis over numbers not on the list."""
    report.phase("dnc: the check alone, in Redis")
    lib = scripting.source("lib")
    found = re.search(r"^local function on_dnc\(.*?^end$", lib, re.S | re.M)
    assert found is not None, "lib.lua has no on_dnc"
    numbers = [end_user_number(UNLISTED + i) for i in range(LOOP_NUMBERS)]
    absent = ("bench:dnc:absent", "bench:dnc:absent:expiring")
    listed_us = await _loop_us(redis, found.group(0), (KEYS.dnc, KEYS.dnc_expiring), numbers)
    empty_us = await _loop_us(redis, found.group(0), absent, numbers)
    report.add(
        "  the check alone, in Redis (lib.lua's on_dnc in a Lua loop, numbers not listed)",
        f"{listed_us:.3f} µs against the list, {empty_us:.3f} µs against an empty one:"
        f" {listed_us / (request_ms * 10):.2f} % of a request's CPU (serve and Redis,"
        f" {request_ms:.3f} ms)",
    )


async def _loop_us(redis: Redis, on_dnc: str, keys: tuple[str, str], numbers: list[str]) -> float:
    """µs of one on_dnc call against `keys`, less the loop's own: the fastest of LOOP_RUNS of
    each, the two alternated."""
    checking = f"{on_dnc}\n{LOOP.format('on_dnc')}"
    idle = f"local function idle(a, b, c, d) return false end\n{LOOP.format('idle')}"
    best = {checking: float("inf"), idle: float("inf")}
    for _ in range(LOOP_RUNS):
        for script in best:
            best[script] = min(best[script], int(await redis.eval(script, 2, *keys, *numbers)))
    return (best[checking] - best[idle]) / len(numbers)


def _python_side(report: Report, serve_ms: float) -> None:
    """µs of a create's inputs with the check's Guard, less without: the fastest of
    LOOP_RUNS of each, alternated."""
    now = clock.to_ms(clock.now())
    number = end_user_number(UNLISTED)
    best = {True: float("inf"), False: float("inf")}
    for _ in range(LOOP_RUNS):
        for guarded in best:
            started = time.perf_counter()
            for i in range(PYTHON_ROUNDS):
                guard = (
                    Guard(number, i, now, dnc=KEYS.dnc, dnc_expiring=KEYS.dnc_expiring)
                    if guarded
                    else None
                )
                _create_inputs(i, now, guard).parts()
            best[guarded] = min(best[guarded], time.perf_counter() - started)
    cost_us = (best[True] - best[False]) * 1e6 / PYTHON_ROUNDS
    report.add(
        "  the check's Python side (its Guard made and placed in the create script's inputs)",
        f"{cost_us:.2f} µs a request: {cost_us / (serve_ms * 10):.1f} % of serve's CPU per"
        f" request ({serve_ms:.3f} ms); the whole create's inputs"
        f" {best[False] * 1e6 / PYTHON_ROUNDS:.1f} µs without it",
    )


def _create_inputs(call_id: int, now: int, guard: Guard | None) -> CreateRecord:
    """A scheduled call's create, as store/records.py makes it (a stored call's size)."""
    job = jobs.JobSpec(jobs.FIRE_SCHEDULED_CALL, TENANT, call_id, now + 86_400_000)
    return CreateRecord(
        record=KEYS.call(call_id),
        all=KEYS.calls,
        by_status=KEYS.calls_by_status("scheduled"),
        by_type=KEYS.calls_by_type(CallType.SCHEDULED),
        jobs=Jobs.of([job], now),
        doc="x" * 1_100,
        meta="y" * 200,
        status="scheduled",
        score=now,
        id=call_id,
        lang="en",
        joins=KEYS.scheduled,
        joins_score=now + 86_400_000,
        guard=guard,
    )


# 5. Refused -------------------------------------------------------------------------------


async def _refused(
    system: System, report: Report, redis: Redis, port: int, scale: DncScale
) -> None:
    report.phase("dnc: POST /calls to listed numbers")
    first = await _calls(redis)
    result = await system.loadgen_async(
        *_scheduled_args(port, LISTED),
        "--duration", str(scale.round_s), "--count", str(scale.entries),
    )  # fmt: skip
    stored = await _calls(redis) - first
    expected = orjson.dumps({"message": compliance.ON_DNC_LIST}).decode()
    refused = int(result["statuses"].get("400", 0))
    others = {k: v for k, v in result["statuses"].items() if k != "400"}
    texts = set(result["samples"])
    report.add(
        "  POST /calls to listed numbers (each refused: 400, the platform's text)",
        f"{result['rps']:,.0f}/s; {refused:,} refused, {stored:,} stored",
    )
    if others or result["errors"] or texts != {expected} or stored:
        report.problems.append(
            f"dnc refused: answers {others} errors {result['errors']} bodies {texts},"
            f" {stored} stored"
        )


async def _calls(redis: Redis) -> int:
    return int(await redis.zcard(KEYS.calls))


async def _used_memory(redis: Redis) -> int:
    return int((await redis.info("memory"))["used_memory"])
