"""ARQ worker settings shared by `dispatcher worker` and `dispatcher up`."""

from __future__ import annotations

from typing import Any

from arq import Worker
from arq.connections import RedisSettings

from dispatcher.store import jobs


def create_worker(
    redis_url: str, *, burst: bool = False, handle_signals: bool = True, **overrides: Any
) -> Worker:
    from workers import functions

    return Worker(
        functions=functions.ALL,
        redis_settings=RedisSettings.from_dsn(redis_url),
        queue_name=jobs.QUEUE_NAME,
        job_serializer=jobs.serialize,
        job_deserializer=jobs.deserialize,
        burst=burst,
        handle_signals=handle_signals,
        **overrides,
    )
