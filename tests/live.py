"""The app on a real port, and optionally an ARQ worker, in a thread of their own: for tests
whose client must run its own event loop or process (schemathesis, the CLI's API commands)."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import structlog
from aiohttp import web

from dispatcher.app import create_app, redis_client
from dispatcher.settings import Settings
from tests.conftest import demo_document, load_directory
from tests.workers.conftest import stop_worker
from workers.settings import create_worker
from workers.worker import DispatchWorker

T = TypeVar("T")


class LiveService(threading.Thread):
    """The app on a real port, and optionally an ARQ worker, on their own event loop in this
    thread; the test thread reaches that loop through `run_in_loop`."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(name="live-service", daemon=True)
        self.settings = settings
        self.redis_url = settings.redis_url or ""
        self.url = ""
        self.ready = threading.Event()
        self.failed: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._worker: tuple[DispatchWorker, asyncio.Task[None]] | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to the test thread, which waits on `ready`
            self.failed = exc
            self.ready.set()

    async def _serve(self) -> None:
        await self._reset()
        runner = web.AppRunner(create_app(self.settings))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        self._loop, self._stopping = asyncio.get_running_loop(), asyncio.Event()
        self.url = f"http://{host}:{port}"
        self.ready.set()
        try:
            await self._stopping.wait()
        finally:
            await self._stop_worker()
            await runner.cleanup()

    async def _reset(self, document: dict[str, Any] | None = None) -> None:
        """An empty database with the demo directory (or `document`): no calls, chats or live
        agent state."""
        redis = redis_client(self.redis_url)
        await redis.flushdb()
        await load_directory(redis, document or demo_document())
        await redis.aclose()

    async def _start_worker(self) -> None:
        worker = create_worker(self.redis_url, handle_signals=False, poll_delay=0.01)
        self._worker = worker, asyncio.create_task(worker.async_run())

    async def _stop_worker(self) -> None:
        if self._worker is None:
            return
        worker, working = self._worker
        self._worker = None
        await stop_worker(worker, working)

    def run_in_loop(self, coroutine: Coroutine[Any, Any, T]) -> T:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=30)

    def reset(self, document: dict[str, Any] | None = None) -> None:
        self.run_in_loop(self._reset(document))

    def start_worker(self) -> None:
        self.run_in_loop(self._start_worker())

    def stop_worker(self) -> None:
        self.run_in_loop(self._stop_worker())

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self.join(timeout=30)


@contextmanager
def live_service(settings: Settings) -> Iterator[LiveService]:
    """A started service, stopped on exit. Its log lines go to the process's own stderr: by
    default structlog prints to whatever sys.stdout is at the time, which is the output of a
    command under test when click's CliRunner runs it."""
    before = structlog.get_config()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.__stderr__))
    live = LiveService(settings)
    live.start()
    live.ready.wait(timeout=30)
    if live.failed is not None:
        structlog.configure(**before)
        raise live.failed
    try:
        yield live
    finally:
        live.stop()
        structlog.configure(**before)
