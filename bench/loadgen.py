"""The load generator: a separate process that drives one HTTP endpoint over keep-alive
connections and prints what it measured as one JSON line.

It is lean on purpose (httptools parses the answers, request bytes are built up front) so that
on a 2-core machine the client is not what limits the figures; it reports its own CPU time so
a reader can tell. It POSTs new calls, scheduled calls or SMS sessions, or GETs one path
(`--kind get --path '/apps/api/v1/calls/{id}' --ids 1:5000`: ids drawn at random from the
range, the same draws every run). Two modes:
- closed loop (`--concurrency C`): C connections each send the next request when the last
  answer arrives; gives the maximum rate.
- open loop (`--rate R`): requests are due at a fixed rate; latency counts from the due time,
  so a stalled server is charged for the requests it delayed (no coordinated omission).

    python -m bench.loadgen --url http://127.0.0.1:8080 --kind calls --concurrency 64 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httptools
import orjson
import uvloop

PATHS = {
    "calls": "/apps/api/v1/calls",
    "scheduled": "/apps/api/v1/calls",
    "sms": "/apps/api/v1/sms",
    "get": "/apps/api/v1/calls/{id}",
}


def end_user_number(index: int) -> str:
    """A distinct valid US number per index (8 million of them)."""
    return f"+1205{200 + (index // 10_000) % 800}{index % 10_000:04d}"


def call_body(index: int, menus: int) -> dict[str, object]:
    return {
        "call_type": "Voice Inbound (API)",
        "menu_id": 1 + index % menus,
        "end_user_number": end_user_number(index),
        "lang": "en",
    }


def sms_body(index: int) -> dict[str, object]:
    return {
        "chat_type": "Messaging (SMS)",
        "end_user_number": end_user_number(index),
        "outbound_number": "+1 628-555-0199",
        "message": "Your order has shipped.",
    }


def scheduled_body(
    index: int, menus: int, first_ms: int, per_second: int, number_offset: int = 0
) -> dict[str, object]:
    """Due times spread evenly: `per_second` calls in each second from `first_ms`; the end
    user's number is the one of `index + number_offset` (runs of calls to numbers of their
    own)."""
    due_ms = first_ms + (index // per_second) * 1000 + (index % per_second) * 1000 // per_second
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(due_ms // 1000))
    return {
        "call_type": "Voice Scheduled (API)",
        "menu_id": 1 + index % menus,
        "end_user_number": end_user_number(index + number_offset),
        "scheduled_at": f"{stamp}.{due_ms % 1000:03d}Z",
    }


@dataclass
class Plan:
    host: str
    port: int
    path: str
    authorization: str
    body_of: Callable[[int], dict[str, object]] | None  # None: a GET
    first_index: int
    ids: tuple[int, int] = (0, 0)  # a GET's {id}: drawn from this range, both ends included

    def requests(self) -> Iterator[bytes]:
        index = self.first_index
        draws = random.Random(index)
        while True:
            head = f"Host: {self.host}:{self.port}\r\nAuthorization: {self.authorization}\r\n"
            if self.body_of is None:
                path = self.path.replace("{id}", str(draws.randint(*self.ids)))
                yield f"GET {path} HTTP/1.1\r\n{head}\r\n".encode()
            else:
                body = orjson.dumps(self.body_of(index))
                yield (
                    f"POST {self.path} HTTP/1.1\r\n{head}Content-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n"
                ).encode() + body
            index += 1


@dataclass
class Tally:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    samples: list[bytes] = field(default_factory=list)  # a few non-2xx bodies, for diagnosis


class Connection(asyncio.Protocol):
    """One keep-alive connection; one request in flight at a time."""

    def __init__(self) -> None:
        self.transport: Any = None  # uvloop's transports are not asyncio.Transport
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.body = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((self.parser.get_status_code(), bytes(self.body)))
        self.body = bytearray()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed"))

    async def send(self, request: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter


async def _connect(plan: Plan) -> Connection:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(Connection, plan.host, plan.port)
    return protocol


async def _exchange(plan: Plan, conn: Connection, request: bytes, tally: Tally) -> Connection:
    try:
        status, body = await conn.send(request)
    except ConnectionError:
        tally.errors["connection"] += 1
        return await _connect(plan)
    tally.statuses[status] += 1
    if status >= 300 and len(tally.samples) < 5:
        tally.samples.append(body[:300])
    return conn


async def closed_loop(plan: Plan, concurrency: int, until: float, count: int | None) -> Tally:
    tally = Tally()
    requests = plan.requests()
    left = [count if count is not None else sys.maxsize]

    async def run() -> None:
        conn = await _connect(plan)
        while time.perf_counter() < until and left[0] > 0:
            left[0] -= 1
            started = time.perf_counter()
            conn = await _exchange(plan, conn, next(requests), tally)
            tally.latencies_ms.append((time.perf_counter() - started) * 1000)
        assert conn.transport is not None
        conn.transport.close()

    await asyncio.gather(*(run() for _ in range(concurrency)))
    return tally


async def open_loop(plan: Plan, concurrency: int, rate: float, until: float) -> Tally:
    """Requests due every 1/rate s; up to `concurrency` in flight, the rest wait in line."""
    tally = Tally()
    due: asyncio.Queue[float | None] = asyncio.Queue()
    requests = plan.requests()

    async def run() -> None:
        conn = await _connect(plan)
        while (at := await due.get()) is not None:
            conn = await _exchange(plan, conn, next(requests), tally)
            tally.latencies_ms.append((time.perf_counter() - at) * 1000)
        assert conn.transport is not None
        conn.transport.close()

    runners = [asyncio.create_task(run()) for _ in range(concurrency)]
    start, sent = time.perf_counter(), 0
    while (now := time.perf_counter()) < until:
        target = int((now - start) * rate)
        for i in range(sent, target):
            due.put_nowait(start + i / rate)
        sent = max(sent, target)
        await asyncio.sleep(0.001)
    for _ in runners:
        due.put_nowait(None)
    await asyncio.gather(*runners)
    return tally


def percentile(values: Sequence[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _plan(args: argparse.Namespace) -> Plan:
    url = urlsplit(args.url)
    token = base64.b64encode(args.auth.encode()).decode()
    bodies: dict[str, Callable[[int], dict[str, object]] | None] = {
        "calls": lambda i: call_body(i, args.menus),
        "sms": sms_body,
        "scheduled": lambda i: scheduled_body(
            i - args.first_index,
            args.menus,
            args.first_due_ms,
            args.due_per_second,
            args.number_offset,
        ),
        "get": None,
    }
    low, _, high = args.ids.partition(":")
    return Plan(
        host=url.hostname or "127.0.0.1",
        port=url.port or 80,
        path=args.path or PATHS[args.kind],
        authorization=f"Basic {token}",
        body_of=bodies[args.kind],
        first_index=args.first_index,
        ids=(int(low), int(high or low)),
    )


async def main(args: argparse.Namespace) -> dict[str, object]:
    plan = _plan(args)
    if args.warmup:
        # Connections, pools and caches of both sides get warm; not counted.
        warm = Plan(**{**plan.__dict__, "first_index": plan.first_index + 7_000_000})
        await closed_loop(warm, args.concurrency, time.perf_counter() + args.warmup, None)
    cpu, started = time.process_time(), time.perf_counter()
    until = started + args.duration
    if args.rate:
        tally = await open_loop(plan, args.concurrency, args.rate, until)
    else:
        tally = await closed_loop(plan, args.concurrency, until, args.count)
    elapsed = time.perf_counter() - started
    done = len(tally.latencies_ms)
    return {
        "requests": done,
        "seconds": round(elapsed, 3),
        "rps": round(done / elapsed, 1),
        "p50_ms": round(percentile(tally.latencies_ms, 0.50), 2),
        "p99_ms": round(percentile(tally.latencies_ms, 0.99), 2),
        "max_ms": round(max(tally.latencies_ms, default=0.0), 2),
        "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        "errors": dict(tally.errors),
        "samples": [s.decode(errors="replace") for s in tally.samples],
        "client_cpu_share": round((time.process_time() - cpu) / elapsed, 2),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--kind", choices=sorted(PATHS), default="calls")
    parser.add_argument("--path", default=None, help="POST here instead of the kind's path")
    parser.add_argument("--auth", default="bench:bench-token")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--count", type=int, default=None, help="stop after this many (closed)")
    parser.add_argument("--rate", type=float, default=0.0, help="open loop at this rate")
    parser.add_argument("--first-index", type=int, default=0, help="first end-user index")
    parser.add_argument("--menus", type=int, default=1)
    parser.add_argument("--warmup", type=float, default=0.0, help="seconds of load not counted")
    parser.add_argument("--first-due-ms", type=int, default=0)
    parser.add_argument("--due-per-second", type=int, default=1000)
    parser.add_argument(
        "--number-offset", type=int, default=0, help="scheduled: numbers from this index on"
    )
    parser.add_argument("--ids", default="0", help="a GET's {id}s: FIRST:LAST, drawn at random")
    return parser.parse_args(argv)


if __name__ == "__main__":
    result = uvloop.run(main(parse_args()))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
