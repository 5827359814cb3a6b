"""Worker heartbeats: a sorted set of worker ids scored by their last beat (ms)."""

from __future__ import annotations

import os
import socket
import uuid

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from dispatcher.store import keys

BEAT_INTERVAL_S = 5.0
FRESH_MS = 15_000  # a worker is alive while its last beat is at most this old


def worker_id() -> str:
    """Host and pid say where a worker runs; the suffix tells apart a restart with the same pid."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


async def beat(redis: Redis, worker: str, now_ms: int) -> None:
    """This worker is alive; the workers that stopped beating are forgotten."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zadd(keys.WORKERS, {worker: now_ms})
        pipe.zremrangebyscore(keys.WORKERS, "-inf", f"({now_ms - FRESH_MS}")
        await pipe.execute()


async def leave(redis: Redis, worker: str) -> None:
    await redis.zrem(keys.WORKERS, worker)


def count_alive(pipe: Pipeline, now_ms: int) -> None:
    """Queues the count of fresh heartbeats on `pipe` (read with the pipe's other replies)."""
    pipe.zcount(keys.WORKERS, now_ms - FRESH_MS, "+inf")
