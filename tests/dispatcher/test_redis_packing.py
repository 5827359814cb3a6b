"""Commands packed by hiredis (dispatcher/redis_connection.py): the same bytes as redis-py's own
packer, the same errors, and every client the product makes uses it, against the real Redis."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

from dispatcher.redis_connection import (
    PackedConnection,
    PackedSentinelConnection,
    PackedSSLConnection,
    PackedUnixConnection,
    arq_client,
    connect,
    connect_arq,
    connection_class,
    redis_client,
)
from dispatcher.settings import Settings

ARGUMENTS: list[tuple[Any, ...]] = [
    ("SET", "a", 1.5),
    ("SET", "a", 10**20),
    ("SET", "a", -3),
    ("SET", "a", 0.1),
    ("SET", "a", float("inf")),
    ("SET", "a", b"\x00\xff\r\n"),
    ("SET", "é", "ü ☎"),
    ("SET", "a", memoryview(b"view")),
    ("SET", "a", "x" * 100_000),  # over redis-py's buffer cutoff: chunked there, joined here
    ("CONFIG GET", "maxmemory"),
    (b"CLIENT SETNAME", b"x"),
    ("EVALSHA", "0" * 40, 3, "k1", "k2", "k3", '{"a": [1, 2]}', 7),
]


@pytest.mark.parametrize("args", ARGUMENTS, ids=[f"command{i}" for i in range(len(ARGUMENTS))])
def test_hiredis_packs_the_same_bytes_as_redis_py(args: tuple[Any, ...]) -> None:
    assert b"".join(PackedConnection().pack_command(*args)) == b"".join(
        Connection().pack_command(*args)
    )


def test_a_pipeline_packs_the_same_bytes() -> None:
    packed = b"".join(PackedConnection().pack_commands(ARGUMENTS))
    assert packed == b"".join(Connection().pack_commands(ARGUMENTS))


@pytest.mark.parametrize("value", [True, None, [1], {"a": 1}], ids=["bool", "none", "list", "dict"])
def test_what_redis_py_refuses_is_refused_with_its_error(value: Any) -> None:
    with pytest.raises(DataError) as packed:
        PackedConnection().pack_command("SET", "a", value)
    with pytest.raises(DataError) as own:
        Connection().pack_command("SET", "a", value)
    assert str(packed.value) == str(own.value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("unix:///tmp/redis.sock", PackedUnixConnection),
        ("redis://localhost:6379/0", PackedConnection),
        ("rediss://localhost:6380/0", PackedSSLConnection),
    ],
)
def test_each_scheme_gets_its_packing_connection(url: str, expected: type[Any]) -> None:
    assert connection_class(url) is expected
    for client in (redis_client(url), arq_client(url)):
        assert client.connection_pool.connection_class is expected


async def test_the_primary_sentinel_names_is_reached_by_packing_connections_too() -> None:
    # Building the clients asks no sentinel: where the primary is, is asked per connection.
    # (No REDIS_URL either, whatever the run's environment gives.)
    settings = Settings(
        redis_url=None, redis_sentinels=(("127.0.0.1", 26379),), redis_sentinel_master="dispatch"
    )
    for client in (connect(settings), connect_arq(settings)):
        assert client.connection_pool.connection_class is PackedSentinelConnection
        await client.aclose()


async def test_commands_and_scripts_round_trip_through_the_real_redis(
    redis_url: str, redis: Redis
) -> None:
    client = arq_client(redis_url)
    try:
        await client.set("packed:text", "ü ☎")
        await client.set("packed:binary", b"\x00\xff\r\n")
        await client.set("packed:float", 0.1)
        keys = [f"packed:key:{i}" for i in range(40)]
        script = "for i, k in ipairs(KEYS) do redis.call('SET', k, ARGV[i]) end return #KEYS"
        assert await client.eval(script, len(keys), *keys, *range(40)) == 40
        async with client.pipeline(transaction=True) as pipe:
            pipe.get("packed:text")
            pipe.get("packed:binary")
            pipe.get("packed:float")
            pipe.mget(keys)
            text, binary, number, values = await pipe.execute()
    finally:
        await client.aclose()
    assert (text.decode(), binary, number) == ("ü ☎", b"\x00\xff\r\n", b"0.1")
    assert values == [str(i).encode() for i in range(40)]
