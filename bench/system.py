"""The system under test, started the way an operator would: an embedded Redis, `dispatcher
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

import orjson
from redis.asyncio import Redis

from dispatcher.directory import loader
from dispatcher.redis_embedded import EmbeddedRedis
from dispatcher.store import directory
from dispatcher.store.scripts import Scripts

TENANT, TOKEN = "bench", "bench-token"
AGENTS, AGENTS_PER_MENU = 500, 10
MENUS = AGENTS // AGENTS_PER_MENU


def bench_directory(agents_status: str = "available") -> dict[str, Any]:
    """One tenant: 500 agents (one voice call each) in 50 multicast queues of 10; the simulated
    carrier answers at once and hangs up at once, so an agent is free again right away."""
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
                        "max_wait_s": 86_400,
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
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _redis: EmbeddedRedis | None = None

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
            if not keep:
                shutil.rmtree(workdir, ignore_errors=True)

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "REDIS_URL": self.redis_url,
            "DISPATCHER_LOG_FORMAT": "json",
            "PYTHONUNBUFFERED": "1",
            **extra,
        }

    def spawn(self, name: str, *args: str, **env: str) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, *args], stdout=log, stderr=log, env=self.env(**env)
        )
        self.processes.append(process)
        return process

    def serve(self, port: int, processes: int = 1) -> subprocess.Popen[bytes]:
        process = self.spawn(
            f"serve-{port}",
            "-m", "dispatcher.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
            *(["--workers", str(processes)] if processes > 1 else []),
        )  # fmt: skip
        wait_healthy(port, process)
        return process

    def floor(self, port: int) -> subprocess.Popen[bytes]:
        process = self.spawn(
            "floor", "-m", "bench.floor", "--port", str(port), "--redis-url", self.redis_url
        )
        wait_listening(port, process)
        return process

    def workers(self, count: int, **env: str) -> list[subprocess.Popen[bytes]]:
        return [
            self.spawn(f"worker-{i}", "-m", "dispatcher.cli", "worker", **env) for i in range(count)
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

    async def reset(self, agents_status: str = "available") -> None:
        """An empty Redis holding the bench directory only."""
        redis = self.redis()
        try:
            await redis.flushall()
            document = loader.validate(bench_directory(agents_status))
            await directory.save(redis, Scripts.register(redis), document)
        finally:
            await redis.aclose()

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


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
