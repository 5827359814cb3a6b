"""The floor the ingress is measured against: a bare aiohttp handler that parses the JSON body
and stores an object of a call's size with one pipelined Redis write (HSET + ZADD), then
answers 201 with it. Same event loop (uvloop), same Redis client, same Redis as the product;
no authentication, validation, ids, indexes or jobs.

    python -m bench.floor --port 8099 --redis-url unix:///...
"""

from __future__ import annotations

import argparse
import itertools

import orjson
import uvloop
from aiohttp import web
from redis.asyncio import Redis

# About the size of a stored inbound call: its object, its meta and its job (~1.3 kB).
PADDING = "x" * 1000


def create_app(redis_url: str) -> web.Application:
    app = web.Application()
    counter = itertools.count(1)
    redis: Redis = Redis.from_url(redis_url)

    async def create(request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        record_id = next(counter)
        doc = orjson.dumps({"id": record_id, "request": body, "padding": PADDING}).decode()
        async with redis.pipeline(transaction=False) as pipe:
            pipe.hset(f"floor:call:{record_id}", "doc", doc)
            pipe.zadd("floor:calls", {str(record_id): record_id})
            await pipe.execute()
        return web.Response(status=201, body=doc, content_type="application/json")

    async def close(_: web.Application) -> None:
        await redis.aclose()

    app.router.add_post("/{tail:.*}", create)
    app.on_cleanup.append(close)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    args = parser.parse_args()
    web.run_app(
        create_app(args.redis_url),
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        loop=uvloop.new_event_loop(),
    )
