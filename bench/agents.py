"""Simulated agents for the end-to-end bench, in their own process: every agent of the tenant
listens for its offers (one pattern subscription for all of them) and accepts over HTTP at
once, as 500 agent consoles clicking "accept" the moment an offer shows would. For each call
the first offer to arrive is accepted; if that agent turned busy meanwhile (409), the next one.

    python -m bench.agents --url http://127.0.0.1:8080 --redis-url unix:///...
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import signal
import sys
from collections import Counter, defaultdict

import aiohttp
import orjson
import uvloop
from redis.asyncio import Redis

from bench.system import TENANT, TOKEN
from dispatcher.store.keys import TenantKeys


async def main(args: argparse.Namespace) -> dict[str, int]:
    tally: Counter[str] = Counter()
    pending: defaultdict[int, list[int]] = defaultdict(list)  # call id -> offers not yet tried
    busy: set[int] = set()  # calls being accepted right now
    token = base64.b64encode(f"{TENANT}:{TOKEN}".encode()).decode()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    redis = Redis.from_url(args.redis_url)
    connector = aiohttp.TCPConnector(limit=args.connections)
    async with aiohttp.ClientSession(
        base_url=args.url, connector=connector, headers={"Authorization": f"Basic {token}"}
    ) as http:

        async def accept(call_id: int) -> None:
            while pending[call_id]:
                offer_id = pending[call_id].pop(0)
                async with http.post(f"/apps/api/v1/offers/{offer_id}/accept") as answer:
                    await answer.read()
                    tally[str(answer.status)] += 1
                    if answer.status == 200:
                        break
            pending.pop(call_id, None)
            busy.discard(call_id)

        async with redis.pubsub() as pubsub:
            await pubsub.psubscribe(TenantKeys(TENANT).agent_events(0).replace(":0:", ":*:"))
            sys.stdout.write("ready\n")
            sys.stdout.flush()
            tasks: set[asyncio.Task[None]] = set()
            while not stop.is_set():
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
                if message is None:
                    continue
                event = orjson.loads(message["data"])
                if event["event"] != "offer":
                    continue
                tally["offers"] += 1
                call_id = event["data"]["call_id"]
                pending[call_id].append(event["data"]["id"])
                if call_id not in busy:
                    busy.add(call_id)
                    task = asyncio.create_task(accept(call_id))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
            await asyncio.gather(*tasks, return_exceptions=True)
    await redis.aclose()
    return dict(tally)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--connections", type=int, default=64)
    result = uvloop.run(main(parser.parse_args()))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
