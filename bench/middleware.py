"""What the request metrics cost per request: the API's middleware around a handler that does
nothing, with the real metrics and with metrics that observe nothing; and one observation
alone, in memory and in multiprocess mode (files, as under `serve --workers N`).

    python -m bench.middleware [--requests 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Callable

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from dispatcher import logs, metrics
from dispatcher.app import create_app
from dispatcher.http.appkeys import METRICS
from dispatcher.http.errors import error_middleware
from dispatcher.settings import Settings

ROUTE = "/apps/api/v1/calls/{id}"


class _Unobserved(metrics.Metrics):
    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        return None


async def _ok(request: web.Request) -> web.StreamResponse:
    return web.Response(status=200)


async def _routed_request(observer: metrics.Metrics) -> web.Request:
    """A request for a call routed as aiohttp routes it, on an API app counting in `observer`
    (the mocked request's own route is a Mock)."""
    app = create_app(Settings(redis_url="redis://127.0.0.1:1/0"), observer)
    request = make_mocked_request("GET", "/apps/api/v1/calls/12", app=app)
    match_info = await app.router.resolve(request)
    match_info.add_app(app)
    request._match_info = match_info
    resource = request.match_info.route.resource
    assert app[METRICS] is observer and resource is not None and resource.canonical == ROUTE
    return request


async def _middleware_us(requests: int, rounds: int = 100) -> tuple[float, float]:
    """Best per-request time of the middleware without and with metrics, in alternating
    batches on one event loop: the machine is shared, and noise only ever adds time."""
    plain, counted = await _routed_request(_Unobserved()), await _routed_request(metrics.Metrics())
    best = {id(plain): float("inf"), id(counted): float("inf")}
    batch = max(requests // rounds, 1)
    for _ in range(rounds):
        for request in (plain, counted):
            started = time.perf_counter()
            for _ in range(batch):
                await error_middleware(request, _ok)
            elapsed_us = (time.perf_counter() - started) / batch * 1e6
            best[id(request)] = min(best[id(request)], elapsed_us)
    return best[id(plain)], best[id(counted)]


def _observe_us(observer: metrics.Metrics, requests: int) -> float:
    observe: Callable[[str, str, int, float], None] = observer.observe_request
    started = time.perf_counter()
    for _ in range(requests):
        observe(ROUTE, "GET", 200, 0.0004)
    return (time.perf_counter() - started) / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=150_000)
    args = parser.parse_args()
    logs.configure("warning", "json")  # the request line is filtered out: its cost is not ours
    n = args.requests
    unobserved, observed = asyncio.run(_middleware_us(n))
    in_memory = min(_observe_us(metrics.Metrics(), n) for _ in range(3))
    with tempfile.TemporaryDirectory(prefix="dispatcher-metrics-") as directory:
        metrics.use_multiprocess(directory)
        in_files = min(_observe_us(metrics.Metrics(), n) for _ in range(3))
    print(f"middleware without metrics:  {unobserved:6.2f} us/request")
    print(f"middleware with metrics:     {observed:6.2f} us/request")
    print(f"  metrics' share:            {observed - unobserved:6.2f} us/request")
    print(f"observe_request, in memory:  {in_memory:6.2f} us")
    print(f"observe_request, multiproc:  {in_files:6.2f} us")
    budget_us = 1e6 / 1500  # 1,500 creates/s on one core
    share = (observed - unobserved) / budget_us
    print(f"of a create's {budget_us:.0f} us at 1,500/s per core: {share:.2%}")


if __name__ == "__main__":
    main()
