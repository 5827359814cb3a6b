"""The embedded redis-server: AOF on, one per data directory, gone when stopped."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import redis

from dispatcher.redis_embedded import EmbeddedRedis, discover_url

pytestmark = pytest.mark.subprocess


def test_start_persist_and_stop(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path)
    url = server.start()
    assert url == f"unix://{tmp_path.resolve()}/redis.sock"
    assert discover_url(tmp_path) == url
    client = redis.Redis.from_url(url)
    assert client.config_get("appendonly") == {"appendonly": "yes"}
    client.set("kept", "yes")
    client.close()
    process = server._process
    assert process is not None
    server.stop()
    assert process.poll() is not None
    assert discover_url(tmp_path) is None
    with EmbeddedRedis(tmp_path) as again, redis.Redis.from_url(again.url) as reopened:
        assert reopened.get("kept") == b"yes"


def test_one_server_per_data_directory(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path):
        with pytest.raises(RuntimeError, match="is in use by another embedded Redis"):
            EmbeddedRedis(tmp_path).start()


def test_long_paths_fall_back_to_a_password_protected_loopback_port(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 120)
    with EmbeddedRedis(deep) as server, redis.Redis.from_url(server.url) as client:
        assert server.url.startswith("redis://:") and "@127.0.0.1:" in server.url
        assert client.ping()
        bare = server.url.split("@")[1]
        with redis.Redis.from_url(f"redis://{bare}") as anonymous:
            with pytest.raises(redis.AuthenticationError):
                anonymous.get("x")
        assert oct(os.stat(deep / "redis.url").st_mode & 0o777) == "0o600"
