"""What a worker takes for Redis going away, and how long it waits before trying again."""

from __future__ import annotations

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.exceptions import WatchError

# Redis unreachable, or back but still loading its AOF (BusyLoadingError is a ConnectionError).
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError)
# What ARQ's own Redis calls raise then: a connection lost under WATCH is a WatchError.
POLL_FAILED = (*REDIS_DOWN, WatchError)
# uvloop's words when redis-py writes to a connection the server reset (Redis restarting
# mid-write): a bare RuntimeError, which redis-py lets through (uvloop has no type of its own
# for it, and asyncio's loop raises a ConnectionError there). The one place the text is read;
# tests/workers/test_redis_lost.py makes the error from a real reset connection on uvloop.
CLOSED_TRANSPORT = "the handler is closed"

# How soon a job that lost Redis midway runs again, and how often a worker waiting for Redis
# tries it; how long a poll that failed waits before the next.
REDIS_RETRY_S = 1
REDIS_POLL_BACKOFF_S = 0.1


def closed_transport(exc: BaseException) -> bool:
    """Whether `exc` is uvloop's write on a transport closed under it."""
    return type(exc) is RuntimeError and str(exc).endswith(CLOSED_TRANSPORT)


def lost_redis(exc: BaseException, errors: tuple[type[Exception], ...] = REDIS_DOWN) -> bool:
    """Whether `exc` says Redis went away: one of `errors`, or uvloop's closed transport."""
    return isinstance(exc, errors) or closed_transport(exc)
