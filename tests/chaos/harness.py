"""The chaos harness: the system started as an operator runs it (`dispatcher serve` and
`dispatcher worker` processes on a Redis), a paced load of inbound calls, agents who accept
every offer, and the checks that every call reached one end state, once, and none was lost.

Sizes are small in the test suite and large under `make chaos` (DISPATCHER_CHAOS=1)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from dispatcher.domain.errors import Conflict
from dispatcher.store import jobs
from dispatcher.store.directory import DirectoryCache
from dispatcher.store.keys import TenantKeys
from dispatcher.store.scripts import Scripts
from dispatcher.store.stores import Stores
from tests.polling import POLL_S, eventually
from tests.ports import free_port

CHAOS = os.environ.get("DISPATCHER_CHAOS") == "1"
BIN = Path(sys.executable).parent / "dispatcher"
SUBDOMAIN, TOKEN = "chaos", "chaos-token"
KEYS = TenantKeys(SUBDOMAIN)
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{SUBDOMAIN}:{TOKEN}".encode()).decode()}
CALLS = "/apps/api/v1/calls"
TERMINAL = {"finished", "failed"}
UNAVAILABLE = {"message": "Service unavailable"}
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError)


def sized(normal: int, chaos: int) -> int:
    return chaos if CHAOS else normal


def report(test: str, **figures: Any) -> None:
    """One line of figures per run; `make chaos` shows them (pytest -s)."""
    shown = " ".join(f"{name}={value}" for name, value in figures.items())
    print(f"\nCHAOS {test}: {shown}", flush=True)


def directory(agents: int = 40, per_menu: int = 10, **simulator: float) -> dict[str, Any]:
    """One tenant: `agents` agents (one voice call each) in multicast queues of `per_menu`.
    The simulated carrier answers at once and hangs up 50 ms later unless `simulator` says
    otherwise, so an agent is free again soon after a call is connected."""
    menus = agents // per_menu
    return {
        "tenants": [
            {
                "subdomain": SUBDOMAIN,
                "api_tokens": [TOKEN],
                "settings": {
                    "default_outbound_number": "+1 628-555-0199",
                    "calls_per_second": 100_000,
                    "simulator": {
                        "dial_latency_s": 0,
                        "answer_after_s": 0,
                        # Not 0: the "completed" report must not race the "answer" one.
                        "talk_time_s": 0.05,
                        **simulator,
                    },
                },
                "outbound_numbers": [{"number": "+1 628-555-0199", "voice": True, "sms": True}],
                "agents": [
                    {"id": i, "email": f"agent{i}@chaos.example"} for i in range(1, agents + 1)
                ],
                "menus": [
                    {
                        "id": m,
                        "name": f"Queue {m}",
                        "type": "ivr_menu",
                        "routing": "multicast",
                        "groups": [list(range((m - 1) * per_menu + 1, m * per_menu + 1))],
                        "offer_timeout_s": 30,
                        "max_wait_s": 3_600,
                    }
                    for m in range(1, menus + 1)
                ],
            }
        ]
    }


@dataclass
class System:
    """`dispatcher` processes on one Redis, each logging to `workdir/<name>.log`; whatever is
    still running at the end is killed."""

    workdir: Path
    redis_url: str
    env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCHER_")}
        env.pop("REDIS_URL", None)
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        env.update(
            DISPATCHER_LOG_FORMAT="json",
            DISPATCHER_RATE_LIMIT_PER_S="0",  # the load is the point here, not the limit
            **self.env,
        )
        with (self.workdir / f"{name}.log").open("ab") as log:
            process = subprocess.Popen([str(BIN), *args], env=env, stdout=log, stderr=log)
        self.processes[name] = process
        return process

    async def serve(self, name: str = "serve") -> int:
        """A `dispatcher serve` on a free port; returns the port once /healthz answers."""
        return await self.server(name, "serve", "--host", "127.0.0.1")

    async def server(self, name: str, *args: str) -> int:
        """`dispatcher *args` listening on a free port; returns the port once /healthz answers."""
        port = free_port()
        process = self.spawn(name, *args, "--port", str(port))
        async with aiohttp.ClientSession() as http:

            async def healthy() -> bool:
                assert process.poll() is None, f"{name} exited: see {self.workdir / name}.log"
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as answer:
                        return answer.status == 200
                return False

            await eventually(healthy, f"{name} to answer /healthz", 30)
        return port

    async def worker(self, name: str) -> subprocess.Popen[bytes]:
        """A `dispatcher worker`; returns once it has started (and handles SIGTERM)."""
        log = self.workdir / f"{name}.log"
        seen = log.stat().st_size if log.exists() else 0
        process = self.spawn(name, "worker")

        def started() -> bool:
            assert process.poll() is None, f"{name} exited: see {log}"
            return b'"worker started"' in log.read_bytes()[seen:]

        await eventually(started, f"{name} to start", 30)
        return process

    async def stop(self, name: str, timeout: float = 30) -> int:
        """SIGTERM; returns the exit code."""
        process = self.processes.pop(name)
        process.send_signal(signal.SIGTERM)
        return await asyncio.to_thread(process.wait, timeout)

    async def kill(self, name: str) -> None:
        process = self.processes.pop(name)
        process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(process.wait, 10)

    def close(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
            process.wait()
        self.processes.clear()


@contextlib.asynccontextmanager
async def running(workdir: Path, redis_url: str, **env: str) -> AsyncIterator[System]:
    system = System(workdir, redis_url, env)
    try:
        yield system
    finally:
        await asyncio.to_thread(system.close)


@dataclass
class Answer:
    status: int  # 0: no answer (connection refused or cut)
    body: bytes
    sent_at: float
    answered_at: float


class Load:
    """Inbound calls POSTed at `rate` per second (at most `concurrency` at a time), spread over
    the menus, until `total` were created (201) or `stop()`. Every answer is kept."""

    def __init__(
        self, port: int, *, rate: float, total: int, menus: int = 4, concurrency: int = 32
    ) -> None:
        self.url = f"http://127.0.0.1:{port}{CALLS}"
        self.rate, self.total, self.menus = rate, total, menus
        self.answers: list[Answer] = []
        self.created: list[int] = []
        self._slots = asyncio.Semaphore(concurrency)
        self._stopped = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Load:
        self._session = aiohttp.ClientSession(headers=AUTH, timeout=aiohttp.ClientTimeout(total=30))
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *_: object) -> None:
        self.stop()
        if self._task is not None:
            await self._task
        if self._session is not None:
            await self._session.close()

    def stop(self) -> None:
        self._stopped.set()

    async def done(self, timeout: float = 120) -> None:
        assert self._task is not None
        await asyncio.wait_for(asyncio.shield(self._task), timeout)

    def statuses(self, since: float = 0.0) -> Counter[int]:
        return Counter(a.status for a in self.answers if a.sent_at >= since)

    async def _run(self) -> None:
        pending: set[asyncio.Task[None]] = set()
        interval, due, sent = 1 / self.rate, time.monotonic(), 0
        while not self._stopped.is_set() and len(self.created) < self.total:
            if len(self.created) + len(pending) >= self.total:
                # Enough in flight to reach the total: only send more if some of them fail.
                await asyncio.wait(set(pending), return_when=asyncio.FIRST_COMPLETED)
                continue
            await self._slots.acquire()
            task = asyncio.create_task(self._post(sent))
            pending.add(task)
            task.add_done_callback(pending.discard)
            sent += 1
            due += interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), max(due - time.monotonic(), 0))
        await asyncio.gather(*pending)

    async def _post(self, n: int) -> None:
        assert self._session is not None
        body = {
            "call_type": "Voice Inbound (API)",
            "menu_id": n % self.menus + 1,
            "end_user_number": f"+1 205-555-{n % 10_000:04d}",
        }
        sent_at = time.monotonic()
        try:
            async with self._session.post(self.url, json=body) as answer:
                raw = await answer.read()
                status = answer.status
        except (aiohttp.ClientError, TimeoutError):
            raw, status = b"", 0
        finally:
            self._slots.release()
        self.answers.append(Answer(status, raw, sent_at, time.monotonic()))
        if status == 201:
            self.created.append(int(orjson.loads(raw)["id"]))


@contextlib.asynccontextmanager
async def accepting_agents(redis_url: str, agents: int) -> AsyncIterator[None]:
    """Every agent accepts each offer as soon as it shows (as agent desktops would), through
    the store, on its own connection; a Redis outage only pauses them."""
    redis: Redis = Redis.from_url(redis_url, socket_timeout=5)
    scripts = Scripts.register(redis)
    stop = asyncio.Event()

    async def accept_open_offers() -> None:
        tenant = await DirectoryCache(redis).tenant(SUBDOMAIN)
        assert tenant is not None
        calls = Stores.of(redis, scripts, tenant).agents
        for agent_id in range(1, agents + 1):
            for offer in await calls.open_offers(agent_id):
                with contextlib.suppress(Conflict):
                    await calls.accept(offer.id)

    async def accept() -> None:
        while not stop.is_set():
            with contextlib.suppress(*REDIS_DOWN):
                await accept_open_offers()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), POLL_S)

    task = asyncio.create_task(accept())
    try:
        yield
    finally:
        stop.set()
        await task
        await redis.aclose()


class CallEvents:
    """Counts the announced (call id, status) pairs of the tenant's event channel."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self.seen: Counter[tuple[int, str]] = Counter()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> CallEvents:
        subscribed = asyncio.Event()
        self._task = asyncio.create_task(self._read(subscribed))
        await subscribed.wait()
        return self

    async def __aexit__(self, *_: object) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    async def _read(self, subscribed: asyncio.Event) -> None:
        async with self._redis.pubsub() as pubsub:
            await pubsub.subscribe(KEYS.events)
            subscribed.set()
            quiet_until = None
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
                if message is not None:
                    event = orjson.loads(message["data"])
                    if event.get("type") == "call.updated":
                        self.seen[(event["call"]["id"], event["call"]["status"])] += 1
                    quiet_until = None
                elif self._stop.is_set():
                    # Drain: stop once the channel has been quiet for 0.5 s.
                    quiet_until = quiet_until or time.monotonic() + 0.5
                    if time.monotonic() > quiet_until:
                        break
            await pubsub.unsubscribe()

    def repeated(self) -> dict[tuple[int, str], int]:
        """Statuses announced more than once for one call ("queued" is announced again with
        each new offer group, so it is left out)."""
        return {k: n for k, n in self.seen.items() if n > 1 and k[1] != "queued"}


async def statuses(redis: Redis, call_ids: list[int]) -> list[str]:
    async with redis.pipeline(transaction=False) as pipe:
        for call_id in call_ids:
            pipe.hget(KEYS.call(call_id), "status")
        found = await pipe.execute()
    return [raw.decode() if raw else "missing" for raw in found]


async def all_ended(redis: Redis, call_ids: list[int], timeout: float) -> Counter[str]:
    """Polls until every call is finished or failed; fails with the tally if not in time."""
    tallies: list[Counter[str]] = [Counter()]

    async def probe() -> Counter[str] | None:
        with contextlib.suppress(*REDIS_DOWN):
            tallies.append(Counter(await statuses(redis, call_ids)))
            return tallies[-1] if set(tallies[-1]) <= TERMINAL else None
        return None

    return await eventually(probe, lambda: f"every call to end: {dict(tallies[-1])}", timeout)


async def agents_holding_calls(redis: Redis, agents: int) -> dict[int, int]:
    """Agents still holding a voice slot or a ringing offer (none once every call ended)."""
    held = {}
    for agent_id in range(1, agents + 1):
        voice = int(await redis.hget(KEYS.agent(agent_id), "voice") or 0)
        ringing = await redis.zcard(KEYS.agent_offers(agent_id))
        if voice or ringing:
            held[agent_id] = voice + ringing
    return held


async def assigned_twice(redis: Redis, call_ids: list[int]) -> list[int]:
    """Calls whose stored object has more than one agent participant."""
    twice = []
    for call_id in call_ids:
        doc = orjson.loads(await redis.hget(KEYS.call(call_id), "doc") or b"{}")
        agents = [p for p in doc.get("participants", []) if p["type"] == "agent"]
        if len(agents) > 1:
            twice.append(call_id)
    return twice


async def end_states(redis: Redis, call_ids: list[int]) -> Counter[str]:
    """ "finished", or "failed:<fail_reason>", per call."""
    tally: Counter[str] = Counter()
    for call_id in call_ids:
        doc = orjson.loads(await redis.hget(KEYS.call(call_id), "doc") or b"{}")
        status = doc.get("status", "missing")
        tally[f"failed:{doc['fail_reason']}" if status == "failed" else status] += 1
    return tally


async def stored_call_ids(redis: Redis) -> list[int]:
    return [int(member) for member in await redis.zrange(KEYS.calls, 0, -1)]


JOURNEY = ("assigned", "connecting", "connected", "finished")


def worker_stops(log: Path, queue: str = jobs.QUEUE_NAME) -> list[dict[str, Any]]:
    """The "worker stopped" lines of a worker's JSON log (finished, handed_back) for `queue`
    (the main one by default; the webhook lane stops in the same process with a line of its
    own)."""
    stops = []
    for line in log.read_bytes().splitlines():
        if line.startswith(b"{") and b'"worker stopped"' in line:
            stop = orjson.loads(line)
            if stop["queue"] == queue:
                stops.append(stop)
    return stops


async def check_each_call_ended_once(
    redis: Redis, call_ids: list[int], agents: int, events: CallEvents, *, lossless: bool
) -> Counter[str]:
    """Every call ended (finished or failed), none was assigned twice, no status was announced
    twice, every agent is free. `lossless`: no process died without its chance to finish,
    so every finished call announced each step of its journey exactly once."""
    ended = await end_states(redis, call_ids)
    assert set(ended) - {"finished"} <= {f"failed:{r}" for r in ("expired", "ag_canceled")}
    assert await assigned_twice(redis, call_ids) == []
    assert events.repeated() == {}
    assert await agents_holding_calls(redis, agents) == {}
    if lossless:
        for call_id, status in zip(call_ids, await statuses(redis, call_ids), strict=True):
            if status == "finished":
                journey = [events.seen[(call_id, step)] for step in JOURNEY]
                assert journey == [1, 1, 1, 1], (call_id, journey)
    return ended
