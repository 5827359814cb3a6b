"""The process's one Redis pub/sub connection, shared by all its event streams: a channel is
subscribed while a local stream wants it, and each message is copied into every such stream's
inbox. One connection per process, not one per stream (1,500 streams were 1,500 clients)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Sequence
from typing import Any

import structlog
from aiohttp import web
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from dispatcher.http.appkeys import REDIS, SUBSCRIBER

log = structlog.get_logger("dispatcher.http.subscriber")

BACKLOG = 1000  # messages a stream may hold unsent; a client this far behind is dropped
_READ_S = 1.0  # a bounded wait, so the reader notices being cancelled or closed promptly
_LOST = (RedisError, ConnectionError, OSError)

Inbox = asyncio.Queue[bytes | None]  # None: the stream is to end


class Subscriber:
    """Joins streams' inboxes to channels. Redis lost ends every stream (their browsers
    reconnect); the next stream to join opens a new connection."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._connecting = asyncio.Lock()
        self._inboxes: dict[bytes, set[Inbox]] = {}  # channel -> the local streams on it
        # channel -> whether its SUBSCRIBE was answered (True) or the connection lost (False)
        self._ready: dict[bytes, asyncio.Future[bool]] = {}
        # SUBSCRIBEs sent and not yet answered, by channel, in the order Redis answers them
        # (a channel left and joined again has two).
        self._unanswered: dict[bytes, deque[asyncio.Future[bool]]] = {}

    async def join(self, channels: Sequence[str], inbox: Inbox) -> None:
        """Returns once Redis has `inbox`'s channels subscribed: whatever is published from
        then on reaches it. A Redis failure raises (the request's 503)."""
        pubsub = await self._connected()
        waits = [await self._add(pubsub, channel.encode(), inbox) for channel in channels]
        try:
            # bounded by the request's deadline: the stream has not begun yet
            answered = await asyncio.gather(*waits)
        except BaseException:
            await self.leave(channels, inbox)
            raise
        if not all(answered):
            raise RedisConnectionError("the pub/sub connection was lost")

    async def leave(self, channels: Sequence[str], inbox: Inbox) -> None:
        for channel in (name.encode() for name in channels):
            inboxes = self._inboxes.get(channel)
            if inboxes is None:
                continue
            inboxes.discard(inbox)
            if not inboxes:
                del self._inboxes[channel], self._ready[channel]
                await self._unsubscribe(channel)

    async def close(self) -> None:
        await self._lost()

    async def _connected(self) -> PubSub:
        async with self._connecting:
            if self._pubsub is None:
                pubsub = self._redis.pubsub()
                await pubsub.connect()  # type: ignore[no-untyped-call]
                self._pubsub = pubsub
                self._reader = asyncio.create_task(self._read(pubsub))
            return self._pubsub

    async def _add(self, pubsub: PubSub, channel: bytes, inbox: Inbox) -> asyncio.Future[bool]:
        inboxes = self._inboxes.setdefault(channel, set())
        inboxes.add(inbox)
        if channel not in self._ready:
            ready = self._ready[channel] = asyncio.get_running_loop().create_future()
            self._unanswered.setdefault(channel, deque()).append(ready)
            try:
                await pubsub.subscribe(channel)
            except _LOST:
                await self._lost()
                raise
        return self._ready[channel]

    async def _unsubscribe(self, channel: bytes) -> None:
        if self._pubsub is not None:
            try:
                await self._pubsub.unsubscribe(channel)
            except _LOST:
                await self._lost()

    async def _read(self, pubsub: PubSub) -> None:
        try:
            while True:
                message = await pubsub.get_message(timeout=_READ_S)
                if message is not None:
                    self._deliver(message)
        except _LOST:
            log.warning("event streams ended: Redis is unavailable", exc_info=True)
            await self._lost()

    def _deliver(self, message: dict[str, Any]) -> None:
        channel = message["channel"]
        if message["type"] == "subscribe":
            unanswered = self._unanswered.get(channel)
            if unanswered:
                _settle(unanswered.popleft(), True)
                if not unanswered:
                    del self._unanswered[channel]
        elif message["type"] == "message":
            for inbox in list(self._inboxes.get(channel, ())):
                self._put(channel, inbox, message["data"])

    def _put(self, channel: bytes, inbox: Inbox, data: bytes) -> None:
        if inbox.qsize() < BACKLOG:
            inbox.put_nowait(data)
            return
        log.warning("event stream dropped: the client lags", backlog=BACKLOG)
        self._inboxes[channel].discard(inbox)  # it gets nothing more; its leave() unsubscribes
        inbox.put_nowait(None)

    async def _lost(self) -> None:
        """Ends every stream, fails every join waiting, and drops the connection."""
        pubsub, reader = self._pubsub, self._reader
        self._pubsub = self._reader = None
        for inbox in {inbox for inboxes in self._inboxes.values() for inbox in inboxes}:
            inbox.put_nowait(None)
        for unanswered in self._unanswered.values():
            for ready in unanswered:
                _settle(ready, False)
        self._inboxes.clear()
        self._ready.clear()
        self._unanswered.clear()
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        if pubsub is not None:
            with contextlib.suppress(*_LOST):
                await pubsub.aclose()  # type: ignore[no-untyped-call]


def _settle(ready: asyncio.Future[bool], subscribed: bool) -> None:
    if not ready.done():  # a join that timed out cancelled it
        ready.set_result(subscribed)


async def subscriber_context(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx (after the Redis client's): the connection opens with the first stream."""
    app[SUBSCRIBER] = Subscriber(app[REDIS])
    yield
    await app[SUBSCRIBER].close()
