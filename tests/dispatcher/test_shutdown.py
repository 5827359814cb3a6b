"""`dispatcher serve` on SIGTERM: it stops accepting connections at once, still answers the
request in flight, and exits 0."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import aiohttp
import pytest
from redis.asyncio import Redis

from tests.chaos.harness import AUTH, CALLS, KEYS, directory, running
from tests.conftest import demo_document, load_directory
from tests.polling import eventually
from tests.up import dispatcher_up

pytestmark = pytest.mark.subprocess


async def _refused(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return True
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()
    return False


async def _blocked_on_redis(redis: Redis) -> bool:
    return int((await redis.info("clients"))["blocked_clients"]) > 0


async def test_sigterm_answers_the_request_in_flight_and_accepts_no_more(
    redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    await load_directory(redis, directory())
    body = {"call_type": "Voice Inbound (API)", "menu_id": 1, "end_user_number": "+1 205-555-0100"}
    async with (
        running(tmp_path, redis_url, DISPATCHER_SHUTDOWN_GRACE_S="10") as system,
        aiohttp.ClientSession(headers=AUTH) as http,
    ):
        port = await system.serve()
        process = system.processes["serve"]

        async def create() -> tuple[int, dict[str, object]]:
            async with http.post(f"http://127.0.0.1:{port}{CALLS}", json=body) as answer:
                return answer.status, await answer.json()

        # Redis holds back writes, so the create waits inside its handler: in flight.
        await redis.client_pause(10_000, all=False)  # writes only
        try:
            in_flight = asyncio.create_task(create())
            await eventually(lambda: _blocked_on_redis(redis), "the create to reach Redis", 10)
            process.terminate()
            await eventually(lambda: _refused(port), "the listening socket to close", 10)
            assert process.poll() is None  # still answering the request in flight
        finally:
            await redis.client_unpause()
        status, call = await in_flight
        assert status == 201
        assert call["status"] == "queued"
        assert await asyncio.to_thread(process.wait, 20) == 0
    assert await redis.hget(KEYS.call(int(str(call["id"]))), "status") == b"queued"


async def test_ctrl_c_stops_up_and_its_redis_without_a_restart(tmp_path: Path) -> None:
    """A terminal's Ctrl-C signals the whole foreground group: the embedded Redis, in a session
    of its own, is stopped by `dispatcher up` and is not taken for one that died."""
    async with dispatcher_up(tmp_path, demo_document(), ctrl_c=True) as (base, log_file):
        async with aiohttp.ClientSession() as session, session.get(f"{base}/healthz") as answer:
            assert answer.status == 200
    log = log_file.read_text()
    assert "embedded redis exited" not in log
    assert '"worker stopped"' in log
