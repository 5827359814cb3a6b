"""Metrics of the processes as a user runs them: `serve --workers 2` counts in multiprocess
mode (any process a scrape lands on sums them all), `worker --metrics-port` serves its own."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from redis.asyncio import Redis

from dispatcher.domain import clock
from dispatcher.store import jobs, keys
from dispatcher.store.scripts import Scripts
from tests.dispatcher.test_cli import BIN, _environment, _wait_healthy
from tests.polling import eventually
from tests.ports import free_port
from tests.scrape import value

pytestmark = pytest.mark.subprocess

HEALTHZ = {"route": "/healthz", "method": "GET", "status": "200"}
SCRAPES = {"route": "/metrics", "method": "GET", "status": "200"}
REQUESTS = "dispatcher_http_requests_total"


def _get(url: str) -> tuple[int, str]:
    """A GET on a connection of its own (the kernel picks the process for each connection)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode()


def _per_process(directory: Path, labels: dict[str, str]) -> dict[int, float]:
    """The request count with `labels` that each process's own file holds, by pid."""
    counts = {}
    for path in directory.glob("counter_*.db"):
        pid = int(path.stem.removeprefix("counter_"))
        for family in MultiProcessCollector.merge([str(path)]):  # type: ignore[no-untyped-call]
            for sample in family.samples:
                if sample.name == REQUESTS and sample.labels == labels:
                    counts[pid] = sample.value
    return counts


@pytest.fixture
def served(redis_url: str, tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [str(BIN), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
        env={**_environment(), "REDIS_URL": redis_url, "TMPDIR": str(tmp_path)},
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        _wait_healthy(port, process)
        yield port, process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        log.close()


def test_two_serving_processes_agree_on_every_count(
    served: tuple[int, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    port, process = served
    [directory] = tmp_path.glob("dispatcher-metrics-*")
    base = f"http://127.0.0.1:{port}"
    sent = 1  # _wait_healthy's
    deadline = time.monotonic() + 20
    while len(_per_process(directory, HEALTHZ)) < 2:  # until both processes have answered
        assert time.monotonic() < deadline, _per_process(directory, HEALTHZ)
        assert _get(f"{base}/healthz")[0] == 200
        sent += 1
    while len(_per_process(directory, SCRAPES)) < 2:  # every scrape, wherever it lands
        assert time.monotonic() < deadline, _per_process(directory, SCRAPES)
        status, text = _get(f"{base}/metrics")
        assert status == 200
        assert value(text, REQUESTS, **HEALTHZ) == sent
    per_process = _per_process(directory, HEALTHZ)
    assert sum(per_process.values()) == sent and all(per_process.values())
    assert process.pid in per_process  # the parent serves too, beside its sibling

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0
    assert not directory.exists()  # made for the run, removed after it


async def test_a_worker_serves_metrics_health_and_readiness_on_its_port(
    redis_url: str, redis: Redis, tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = (tmp_path / "worker.log").open("wb")
    process = subprocess.Popen(
        [str(BIN), "worker", "--metrics-port", str(port)],
        env={**_environment(), "REDIS_URL": redis_url},
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        await asyncio.to_thread(_wait_healthy, port, process)
        ready = await _eventually_status(f"{base}/readyz", 200)  # after its first poll
        assert ready == (
            '{"status":"ready","checks":{"redis":"ok","workers":"ok","postgres":"not configured"}}'
        )
        [worker_id] = await redis.zrange(keys.WORKERS, 0, -1)
        assert worker_id.decode().split(":")[1] == str(process.pid)
        now_ms = clock.to_ms(clock.now())
        spec = jobs.JobSpec(jobs.ROUTE_CALL, "nobody", 7, now_ms)  # a job with nothing to do
        await jobs.enqueue(Scripts.register(redis), [spec])
        deadline = time.monotonic() + 10
        while True:
            status, text = await asyncio.to_thread(_get, f"{base}/metrics")
            counted = value(
                text, "dispatcher_worker_jobs_total", function="route_call", result="ok"
            )
            if counted == 1 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert (status, counted) == (200, 1)
        assert value(text, "dispatcher_worker_jobs_in_progress") == 0
        assert value(text, "dispatcher_calls", tenant="demo", status="queued") is None
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 20) == 0
        assert await redis.zrange(keys.WORKERS, 0, -1) == []  # left on its way out
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        log.close()


async def _eventually_status(url: str, status: int, timeout_s: float = 10) -> str:
    seen: list[tuple[int, str]] = []

    async def probe() -> str | None:
        seen.append(await asyncio.to_thread(_get, url))
        got, body = seen[-1]
        return body if got == status else None

    return await eventually(probe, lambda: f"{status} from {url}, last {seen[-1]}", timeout_s)
