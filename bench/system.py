"""The system under test, started the way an operator would: an embedded Redis (and, for the
parts that want call history, an embedded PostgreSQL with the schema migrated), `dispatcher
serve` and `dispatcher worker` processes, plus the bench's own processes (floor server, load
generator, agents), each a separate OS process, all on this machine."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from redis.asyncio import Redis

from dispatcher.directory import loader
from dispatcher.history import schema
from dispatcher.postgres_embedded import EmbeddedPostgres
from dispatcher.redis_embedded import EmbeddedRedis
from dispatcher.store import directory
from dispatcher.store.scripts import Scripts

TENANT, TOKEN = "bench", "bench-token"
AGENTS, AGENTS_PER_MENU = 500, 10
MENUS = AGENTS // AGENTS_PER_MENU


def bench_directory(agents_status: str = "available", max_wait_s: float = 86_400) -> dict[str, Any]:
    """One tenant: 500 agents (one voice call each) in 50 multicast queues of 10; the simulated
    carrier answers at once and hangs up at once, so an agent is free again right away. A call
    waits `max_wait_s` in its queue before it fails `expired`."""
    return {
        "tenants": [
            {
                "subdomain": TENANT,
                "api_tokens": [TOKEN],
                "settings": {
                    "sms_allowed_regions": ["US"],
                    "sms_session_timeout_s": 3600,
                    "default_outbound_number": "+1 628-555-0199",
                    "calls_per_second": 100_000,
                    # the limiter runs (its cost is measured) but never refuses
                    "rate_limit_per_s": 10_000_000,
                    "rate_limit_burst": 10_000_000,
                    "simulator": {"dial_latency_s": 0, "answer_after_s": 0, "talk_time_s": 0},
                },
                "outbound_numbers": [{"number": "+1 628-555-0199", "voice": True, "sms": True}],
                "agents": [
                    {
                        "id": i,
                        "email": f"agent{i}@bench.example",
                        "languages": ["en"],
                        "status": agents_status,
                        "capacity": {"voice": 1, "chat": 5},
                    }
                    for i in range(1, AGENTS + 1)
                ],
                "menus": [
                    {
                        "id": m,
                        "name": f"Queue {m}",
                        "type": "mobile_menu",  # takes inbound and scheduled calls
                        "routing": "multicast",
                        "languages": ["en"],
                        "groups": [
                            list(range((m - 1) * AGENTS_PER_MENU + 1, m * AGENTS_PER_MENU + 1))
                        ],
                        "offer_timeout_s": 30,
                        "max_wait_s": max_wait_s,
                    }
                    for m in range(1, MENUS + 1)
                ],
            }
        ]
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class System:
    """Owns every process it starts, and stops them all on exit."""

    workdir: Path
    redis_url: str = ""
    database_url: str = ""  # set once a part asks for history (`history`)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _redis: EmbeddedRedis | None = None
    _postgres: EmbeddedPostgres | None = None

    @classmethod
    @contextlib.contextmanager
    def started(cls, keep: bool = False) -> Iterator[System]:
        # A short path: the embedded Redis listens on a unix socket inside it.
        workdir = Path(tempfile.mkdtemp(prefix="dspb-"))
        system = cls(workdir)
        system._redis = EmbeddedRedis(workdir / "redis")
        system.redis_url = system._redis.start()
        try:
            yield system
        finally:
            system.stop_all()
            system._redis.stop()
            if system._postgres is not None:
                system._postgres.stop()
            if not keep:
                shutil.rmtree(workdir, ignore_errors=True)

    async def history(self) -> str:
        """The URL of the embedded PostgreSQL, started (and its schema migrated) the first time
        a part asks; the processes spawned with `history=True` get it as DATABASE_URL. Started
        from the main thread, whatever the event loop: the server dies with the thread that
        started it, and a part's executor threads end with the part."""
        if self._postgres is None:
            self._postgres = EmbeddedPostgres(self.workdir / "pg")
            self.database_url = self._postgres.start()
            await schema.upgrade(self.database_url)
        return self.database_url

    @property
    def redis_pid(self) -> int | None:
        return self._redis.pid if self._redis is not None else None

    @property
    def postgres_pid(self) -> int | None:
        return self._postgres.pid if self._postgres is not None else None

    def env(self, history: bool = False, **extra: str) -> dict[str, str]:
        """A spawned process's environment: the bench's Redis, and its PostgreSQL only when
        asked (its data directory is the bench's own, so no `dispatcher up` running from this
        directory lends it a database)."""
        database = {"DATABASE_URL": self.database_url} if history and self.database_url else {}
        return {
            **os.environ,
            "REDIS_URL": self.redis_url,
            "DISPATCHER_DATA_DIR": str(self.workdir),
            "DISPATCHER_LOG_FORMAT": "json",
            "PYTHONUNBUFFERED": "1",
            **database,
            **extra,
        }

    def spawn(
        self, name: str, *args: str, history: bool = False, **env: str
    ) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, *args], stdout=log, stderr=log, env=self.env(history, **env)
        )
        self.processes.append(process)
        return process

    def serve(
        self, port: int, processes: int = 1, history: bool = False
    ) -> subprocess.Popen[bytes]:
        process = self.spawn(
            f"serve-{port}",
            "-m", "dispatcher.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
            *(["--workers", str(processes)] if processes > 1 else []),
            history=history,
        )  # fmt: skip
        wait_healthy(port, process)
        return process

    def floor(self, port: int) -> subprocess.Popen[bytes]:
        process = self.spawn(
            "floor", "-m", "bench.floor", "--port", str(port), "--redis-url", self.redis_url
        )
        wait_listening(port, process)
        return process

    def workers(
        self, count: int, history: bool = False, **env: str
    ) -> list[subprocess.Popen[bytes]]:
        return [
            self.spawn(f"worker-{i}", "-m", "dispatcher.cli", "worker", history=history, **env)
            for i in range(count)
        ]

    def spawn_agents(self, api_url: str) -> subprocess.Popen[bytes]:
        """The simulated agents, subscribed before this returns."""
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.agents", "--url", api_url, "--redis-url", self.redis_url],
            stdout=subprocess.PIPE,
            stderr=(self.workdir / "agents.log").open("ab"),
            env=self.env(),
        )
        self.processes.append(process)
        assert process.stdout is not None
        if process.stdout.readline().strip() != b"ready":
            raise RuntimeError("the simulated agents did not start")
        return process

    def arq_floor(self, *args: str) -> dict[str, Any]:
        return self.measure("bench.arq_floor", "--redis-url", self.redis_url, *args)

    def measure(self, module: str, *args: str) -> dict[str, Any]:
        """Runs a bench module in its own process; returns the JSON line it printed last."""
        done = subprocess.run(
            [sys.executable, "-m", module, *args], capture_output=True, check=False, env=self.env()
        )
        if done.returncode != 0:
            raise RuntimeError(f"{module} failed: {done.stderr.decode()[-2000:]}")
        result: dict[str, Any] = orjson.loads(done.stdout.splitlines()[-1])
        return result

    def stop(self, process: subprocess.Popen[bytes], timeout_s: float = 15) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process in self.processes:
            self.processes.remove(process)

    def stop_all(self) -> None:
        for process in list(self.processes):
            self.stop(process)

    def redis(self) -> Redis:
        client: Redis = Redis.from_url(self.redis_url)
        return client

    async def reset(self, agents_status: str = "available", max_wait_s: float = 86_400) -> None:
        """An empty Redis holding the bench directory only (and empty history tables, once
        PostgreSQL runs)."""
        redis = self.redis()
        try:
            await redis.flushall()
            document = loader.validate(bench_directory(agents_status, max_wait_s))
            await directory.save(redis, Scripts.register(redis), document)
        finally:
            await redis.aclose()
        if self.database_url:
            connection = await asyncpg.connect(self.database_url)
            try:
                await connection.execute("TRUNCATE calls, chats")
            finally:
                await connection.close()

    def loadgen(self, *args: str) -> dict[str, Any]:
        return self.measure("bench.loadgen", *args)

    async def loadgen_async(self, *args: str) -> dict[str, Any]:
        return await asyncio.to_thread(self.loadgen, *args)


def wait_listening(port: int, process: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode}: {process.args!r}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port} after {timeout_s} s")


def wait_healthy(port: int, process: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    wait_listening(port, process, timeout_s)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as answer:
                if answer.status == 200:
                    return
        time.sleep(0.05)
    raise RuntimeError(f"/healthz on {port} not 200 after {timeout_s} s")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU of a process and of all its descendants, the exited ones included: a server's
    backends (PostgreSQL forks one per connection)."""
    try:
        fields = _stat(pid)
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:  # exited meanwhile: its parent's cutime has it now
        return 0.0
    own = sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return own + sum(tree_cpu_seconds(int(child)) for child in children)
