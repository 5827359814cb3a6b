"""How every process reaches Redis: REDIS_URL, or the primary that Redis Sentinel names."""

from __future__ import annotations

import socket
import time
from typing import Any, TypeVar, cast

import hiredis
import structlog
from arq.connections import ArqRedis
from pydantic import SecretStr
from redis.asyncio import Redis
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    ConnectionPool,
    SSLConnection,
    UnixDomainSocketConnection,
    parse_url,
)
from redis.asyncio.sentinel import (
    MasterNotFoundError,
    Sentinel,
    SentinelConnectionPool,
    SentinelManagedConnection,
)

from dispatcher.settings import Settings

# No socket timeout on commands: with one, redis-py wraps every write in asyncio.wait_for (a
# task per command) and every read in a timer, a quarter of a worker's CPU per fired call. What
# the timeout was for is kept where it is cheap: a peer that died or a cut network is noticed by
# TCP keepalive (KEEPALIVE, within ~11 s); a Redis that is up but does not answer holds an API
# request at most DISPATCHER_REQUEST_TIMEOUT_S (one timer per request, dispatcher/http/errors.py);
# a job, at most its job timeout. No PING before each command (health_check_interval) either:
# the pool already reconnects a connection that went stale, and no command is retried (a create
# must never run twice).
CLIENT_OPTIONS: dict[str, Any] = {"socket_connect_timeout": 5}
# Probes after 5 s of silence, every 2 s, 3 unanswered: a dead peer fails its reads at ~11 s.
KEEPALIVE: dict[int, int] = {
    option: value
    for name, value in (("TCP_KEEPIDLE", 5), ("TCP_KEEPINTVL", 2), ("TCP_KEEPCNT", 3))
    if (option := getattr(socket, name, None)) is not None
}
TCP_OPTIONS: dict[str, Any] = {"socket_keepalive": True, "socket_keepalive_options": KEEPALIVE}
# A sentinel that does not answer is passed over for the next one: don't wait long on it.
SENTINEL_OPTIONS: dict[str, Any] = {"socket_connect_timeout": 2, "socket_timeout": 2}

# How often a process re-asks Sentinel where the primary is (docs/operations.md: Scaling out).
PRIMARY_CHECK_S = 1.0

R = TypeVar("R", bound=Redis)
log = structlog.get_logger("dispatcher.redis")


class HiredisPacking(AbstractConnection):
    """Commands packed by hiredis (C), as redis-py's sync client does; its asyncio client packs
    them in Python (redis-py issue 4176), byte by byte the same but joining each argument onto
    the growing command: half of a worker's own CPU per fired call went there, most of it on
    the scripts' long key lists. Whatever hiredis refuses (a bool, None, ...) goes to
    redis-py's packer, which raises its own DataError for it."""

    def pack_command(self, *args: Any) -> list[bytes]:
        head = args[0]
        # A command name with a space ("CONFIG GET") is sent as separate words, as redis-py does.
        if isinstance(head, str):
            words = tuple(head.encode().split())
        elif isinstance(head, bytes) and b" " in head:
            words = tuple(head.split())
        else:
            words = (head,)
        try:
            return [hiredis.pack_command(words + args[1:])]
        except TypeError:
            return super().pack_command(*args)


class PackedConnection(HiredisPacking, Connection):
    pass


class PackedUnixConnection(HiredisPacking, UnixDomainSocketConnection):
    pass


class PackedSSLConnection(HiredisPacking, SSLConnection):
    pass


class PackedSentinelConnection(HiredisPacking, SentinelManagedConnection):
    pass


def connection_class(url: str) -> type[AbstractConnection]:
    """The packing connection class for `url`'s scheme (redis-py picks the same three)."""
    if url.startswith("unix:"):
        return PackedUnixConnection
    if url.startswith("rediss:"):
        return PackedSSLConnection
    return PackedConnection


def redis_client(url: str, password: str | None = None) -> Redis:
    """A client of the Redis at `url`; `password` applies when the URL has none."""
    return _client(Redis, _pool(url, password))


def arq_client(url: str) -> ArqRedis:
    """An ARQ client of the Redis at `url`, with the same options."""
    return _client(ArqRedis, _pool(url, None))


def connect(settings: Settings) -> Redis:
    """The client of the ingress and the commands: REDIS_URL's Redis, or Sentinel's primary."""
    return _connect(settings, Redis)


def connect_arq(settings: Settings) -> ArqRedis:
    """The same connection for an ARQ worker (ARQ's own Sentinel support cannot authenticate
    to the sentinels, and ARQ's URL parsing cannot take the password from elsewhere)."""
    return _connect(settings, ArqRedis)


def describe(settings: Settings) -> str:
    """Where Redis is, for logs and errors: no password."""
    if settings.redis_sentinels is not None:
        hosts = ",".join(f"{host}:{port}" for host, port in settings.redis_sentinels)
        return f"sentinel {hosts} master {settings.redis_sentinel_master}"
    url = settings.redis_url or ""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}" if rest else url


def _connect(settings: Settings, redis_class: type[R]) -> R:
    password = _reveal(settings.redis_password)
    if settings.redis_sentinels is None:
        if settings.redis_url is None:
            raise RuntimeError("no Redis: set REDIS_URL or DISPATCHER_REDIS_SENTINELS")
        return _client(redis_class, _pool(settings.redis_url, password))
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(settings.redis_sentinels),
        sentinel_kwargs={**SENTINEL_OPTIONS, "password": _reveal(settings.redis_sentinel_password)},
        db=settings.redis_db,
        password=password,
        connection_class=PackedSentinelConnection,
        **CLIENT_OPTIONS,
        **TCP_OPTIONS,
    )
    primary: R = sentinel.master_for(
        settings.redis_sentinel_master,
        redis_class=redis_class,
        connection_pool_class=_SentinelPrimaryPool,
    )
    return primary


class _SentinelPrimaryPool(SentinelConnectionPool):
    """The primary's connections, following a failover within PRIMARY_CHECK_S.

    redis-py asks Sentinel only when it opens a connection, so pooled connections would keep
    writing to an old primary that is still up (a manual failover, a partition) until Sentinel
    demotes it, 10-20 s later, and those writes are lost when it resyncs. Here the first
    connection taken each PRIMARY_CHECK_S asks again; when the primary moved, the pool drops
    its connections to the old one. The client closing also closes its connections to the
    sentinels (redis-py leaves them open)."""

    _checked_at = 0.0

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        now = time.monotonic()
        if self.master_address is not None and now - self._checked_at >= PRIMARY_CHECK_S:
            self._checked_at = now
            try:
                # When it moved, this drops the idle connections to the old primary.
                await self.get_master_address()  # type: ignore[no-untyped-call]
            except MasterNotFoundError as exc:
                # The sentinels are out of reach; the primary may not be: keep using it.
                log.warning("sentinels unreachable, staying on the last primary", error=str(exc))
        return await super().get_connection(*args, **kwargs)

    async def disconnect(self, inuse_connections: bool = True) -> None:
        await super().disconnect(inuse_connections)
        if inuse_connections:  # closing, not just leaving an old primary
            for sentinel in self.sentinel_manager.sentinels:
                await sentinel.aclose()


def _client(redis_class: type[R], pool: ConnectionPool) -> R:
    """A client that closes `pool` with it (redis-py types from_pool as giving a Redis)."""
    return cast(R, redis_class.from_pool(pool))


def _pool(url: str, password: str | None) -> ConnectionPool:
    """The connections to `url`, of its packing class (redis-py's from_url would put its own
    class back for unix: and rediss: URLs); `password` applies when the URL has none.
    Keepalive applies to TCP only (redis-py's unix socket connection refuses its arguments)."""
    options = {**CLIENT_OPTIONS, "password": password, **parse_url(url)}
    if not url.startswith("unix:"):
        options.update(TCP_OPTIONS)
    options["connection_class"] = connection_class(url)
    return ConnectionPool(**options)


def _reveal(secret: SecretStr | None) -> str | None:
    return None if secret is None else secret.get_secret_value()
