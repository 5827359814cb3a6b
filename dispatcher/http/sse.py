"""Server-sent event streams fed by Redis pub/sub (http/subscriber.py), each under caps
(store/stream_leases.py): they end when the client goes away, when Redis does, and at once when
the app shuts down, so none holds the graceful stop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

from aiohttp import web

from dispatcher.http.appkeys import EVENT_STREAMS, REDIS, SCRIPTS, SETTINGS, SUBSCRIBER
from dispatcher.http.errors import lift_deadline
from dispatcher.http.subscriber import Inbox
from dispatcher.store import stream_leases
from dispatcher.store.keys import TenantKeys
from dispatcher.store.stream_leases import StreamCap

HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx: pass events on as they come
}
RETRY_MS = 2000  # how long a browser's EventSource waits before it reconnects
_CHECK_S = 1.0  # how often a waiting stream looks whether its client is still there
TENANT_STREAMS = "Too many event streams open for this tenant (at most {})"


class EventStreams:
    """The open streams of an app. On shutdown each is told to end, so its handler returns
    and the connection closes, instead of being waited for until the grace period is over."""

    def __init__(self) -> None:
        self._inboxes: set[Inbox] = set()
        self.closing = False

    def open(self) -> Inbox:
        inbox: Inbox = asyncio.Queue()
        if self.closing:
            inbox.put_nowait(None)
        self._inboxes.add(inbox)
        return inbox

    def discard(self, inbox: Inbox) -> None:
        self._inboxes.discard(inbox)

    def close_all(self) -> None:
        self.closing = True
        for inbox in self._inboxes:
            inbox.put_nowait(None)

    def __len__(self) -> int:
        return len(self._inboxes)


def tenant_cap(request: web.Request, keys: TenantKeys) -> StreamCap:
    """The cap every stream of a tenant counts against, dashboards' and agents' alike."""
    limit = request.app[SETTINGS].streams_per_tenant
    return StreamCap(keys.streams, limit, TENANT_STREAMS.format(limit))


async def close_event_streams(app: web.Application) -> None:
    """on_shutdown: runs before aiohttp waits for the handlers in flight."""
    app[EVENT_STREAMS].close_all()


class EventStream:
    """One open text/event-stream answer."""

    def __init__(self, request: web.Request, response: web.StreamResponse, inbox: Inbox) -> None:
        self._request = request
        self.response = response
        self._inbox = inbox
        self.open = True

    async def receive(self, timeout: float) -> bytes | None:
        """The next pub/sub message, or None when `timeout` passes without one or when the
        stream has ended (then `open` is False)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.open:
            if self._client_gone():
                self.open = False
                break
            try:
                item = self._inbox.get_nowait()
            except asyncio.QueueEmpty:
                left = deadline - loop.time()
                if left <= 0:
                    return None
                with contextlib.suppress(TimeoutError):
                    item = await asyncio.wait_for(self._inbox.get(), min(_CHECK_S, left))
                    return self._item(item)
                continue
            return self._item(item)
        return None

    def _item(self, item: bytes | None) -> bytes | None:
        if item is None:
            self.open = False
        return item

    def _client_gone(self) -> bool:
        transport = self._request.transport
        return transport is None or transport.is_closing()

    async def send(self, event: str, data: bytes) -> None:
        await self._write(b"event: " + event.encode() + b"\ndata: " + data + b"\n\n")

    async def retry(self, ms: int) -> None:
        await self._write(f"retry: {ms}\n\n".encode())

    async def comment(self, text: str) -> None:
        await self._write(b": " + text.encode() + b"\n\n")

    async def _write(self, chunk: bytes) -> None:
        try:
            await self.response.write(chunk)
        except ConnectionError:  # the client went away (aiohttp's ClientConnectionResetError)
            self.open = False


@contextlib.asynccontextmanager
async def subscribe(
    request: web.Request, channels: list[str], caps: Sequence[StreamCap]
) -> AsyncIterator[EventStream]:
    """Takes a lease under each of `caps` (else 429) and subscribes to `channels` through the
    process's one pub/sub connection, then answers 200 text/event-stream. A Redis failure
    before that is the usual 503; after it, the stream ends and the browser reconnects."""
    app = request.app
    async with stream_leases.leased(app[REDIS], app[SCRIPTS], caps):
        inbox = app[EVENT_STREAMS].open()
        try:
            await app[SUBSCRIBER].join(channels, inbox)
            response = web.StreamResponse(headers=HEADERS)
            await response.prepare(request)
            lift_deadline(request)
            stream = EventStream(request, response, inbox)
            await stream.comment("connected")
            await stream.retry(RETRY_MS)
            yield stream
        finally:
            await app[SUBSCRIBER].leave(channels, inbox)
            app[EVENT_STREAMS].discard(inbox)
