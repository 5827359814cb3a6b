"""Bare ARQ, the floors the workers are measured against: no-op jobs per second, and how late
a deferred no-op starts, with ARQ's defaults or with the product's worker settings.

    python -m bench.arq_floor --redis-url URL --settings defaults|ours --jobs N [--deferred]
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import orjson
import uvloop
from arq import Worker, create_pool
from arq.connections import RedisSettings

from workers.settings import MAX_JOBS, POLL_DELAY_S, QUEUE_READ_LIMIT

QUEUE = "bench:arq"
LATENESS = "bench:arq:lateness"


async def noop(ctx: dict[str, Any]) -> None:
    return None


async def deferred(ctx: dict[str, Any], due_ms: int) -> None:
    await ctx["redis"].rpush(LATENESS, time.time() * 1000 - due_ms)


SETTINGS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "ours": {
        "poll_delay": POLL_DELAY_S,
        "queue_read_limit": QUEUE_READ_LIMIT,
        "max_jobs": MAX_JOBS,
    },
}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    redis_settings = RedisSettings.from_dsn(args.redis_url)
    pool = await create_pool(redis_settings, default_queue_name=QUEUE)
    await pool.delete(LATENESS)
    first_due = time.time() + 1 + args.jobs / 2000
    for i in range(args.jobs):
        if args.deferred:
            due = first_due + i / args.per_second
            await pool.enqueue_job("deferred", int(due * 1000), _defer_until=_utc(due))
        else:
            await pool.enqueue_job("noop")
    worker = Worker(
        functions=[noop, deferred],
        redis_settings=redis_settings,
        queue_name=QUEUE,
        burst=True,
        handle_signals=False,
        keep_result=60,
        **SETTINGS[args.settings],
    )
    started = time.perf_counter()
    await worker.async_run()
    elapsed = time.perf_counter() - started
    result: dict[str, Any] = {"jobs": worker.jobs_complete, "seconds": round(elapsed, 3)}
    if args.deferred:
        late = sorted(float(x) for x in await pool.lrange(LATENESS, 0, -1))
        result.update(
            late_p50_ms=round(late[len(late) // 2], 1),
            late_p99_ms=round(late[int(len(late) * 0.99)], 1),
            late_max_ms=round(late[-1], 1),
        )
    else:
        result["jobs_per_s"] = round(worker.jobs_complete / elapsed, 1)
    await worker.close()
    await pool.aclose()
    return result


def _utc(epoch_s: float) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch_s, UTC)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--settings", choices=sorted(SETTINGS), default="defaults")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--deferred", action="store_true")
    parser.add_argument("--per-second", type=float, default=1000)
    result = uvloop.run(main(parser.parse_args()))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
