"""The embedded PostgreSQL: a cluster per data directory, one server on it, gone when stopped or
when its owner dies, at the same address when started again."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pytest

from dispatcher.postgres_embedded import EmbeddedPostgres, discover_url

pytestmark = pytest.mark.subprocess


def _query(url: str, sql: str) -> object:
    async def run() -> object:
        connection = await asyncpg.connect(url)
        try:
            return await connection.fetchval(sql)
        finally:
            await connection.close()

    return asyncio.run(run())


def _gone(pid: int) -> bool:
    """No such process, or only its zombie (reaped by whoever adopted it)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "State:\tZ" in status


def _uid_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    return int(uid_line.split()[1])


def test_start_query_stop_and_restart_at_the_same_url(pg_dir: Path) -> None:
    server = EmbeddedPostgres(pg_dir)
    url = server.start()
    assert url == f"postgresql://dispatcher@/dispatcher?host={pg_dir.resolve()}/pgsocket"
    assert discover_url(pg_dir) == url
    assert oct(os.stat(pg_dir / "postgres.url").st_mode & 0o777) == "0o600"
    facts = (
        "SELECT concat_ws(' ', current_user, current_database(), pg_encoding_to_char(encoding),"
        " datcollate, current_setting('fsync')) FROM pg_database"
        " WHERE datname = current_database()"
    )
    assert _query(url, facts) == "dispatcher dispatcher UTF8 C on"
    _query(url, "CREATE TABLE kept AS SELECT 'yes' AS answer")
    assert server.pid is not None
    if os.geteuid() == 0:  # PostgreSQL runs as an unprivileged user of its own
        assert _uid_of(server.pid) != 0
    process = server._process
    assert process is not None
    server.stop()
    assert process.poll() == 0  # a fast shutdown, not a kill
    assert server.pid is None and discover_url(pg_dir) is None
    assert server.start() == url
    assert _query(url, "SELECT answer FROM kept") == "yes"
    server.stop()
    with EmbeddedPostgres(pg_dir) as again:  # another owner: the same cluster and socket
        assert again.url == url
        assert _query(url, "SELECT answer FROM kept") == "yes"
    log = (pg_dir / "postgres.log").read_text()
    assert "database system is ready to accept connections" in log


def test_one_server_per_data_directory(pg_dir: Path) -> None:
    with EmbeddedPostgres(pg_dir):
        with pytest.raises(RuntimeError, match="is in use by another embedded PostgreSQL"):
            EmbeddedPostgres(pg_dir).start()


def test_long_paths_fall_back_to_a_password_protected_loopback_port(pg_dir: Path) -> None:
    deep = pg_dir / ("d" * 110)
    server = EmbeddedPostgres(deep)
    url = server.start()
    try:
        assert url.startswith("postgresql://dispatcher:") and "@127.0.0.1:" in url
        assert url.endswith("/dispatcher")
        assert _query(url, "SELECT inet_server_addr()::text") == "127.0.0.1/32"
        anonymous = "postgresql://dispatcher@" + url.split("@")[1]
        with pytest.raises(asyncpg.InvalidPasswordError):
            _query(anonymous, "SELECT 1")
        assert not (deep / "pgsocket").exists()
        server.stop()
        assert server.start() == url  # restarted: the same port and password
        assert _query(url, "SELECT 1") == 1
    finally:
        server.stop()
    with EmbeddedPostgres(deep) as again:  # a new owner: a new password, the old one refused
        assert again.url != url
        assert _query(again.url, "SELECT 1") == 1


OWNER = """
import sys, time
from pathlib import Path
from dispatcher.postgres_embedded import EmbeddedPostgres
server = EmbeddedPostgres(Path(sys.argv[1]))
server.start()
print(server.pid, flush=True)
time.sleep(120)
"""


def test_no_server_outlives_an_owner_killed_by_sigkill(pg_dir: Path) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(pg_dir)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert owner.stdout is not None
        pid = int(owner.stdout.readline())
        if os.geteuid() == 0:  # the death signal survived the switch to the server's user
            assert _uid_of(pid) != 0
        owner.send_signal(signal.SIGKILL)
        owner.wait(10)
        deadline = time.monotonic() + 15
        while not _gone(pid):
            assert time.monotonic() < deadline, "postgres outlived its owner"
            time.sleep(0.05)
    finally:
        owner.kill()
        owner.wait()
        if owner.stdout is not None:
            owner.stdout.close()
    assert "received fast shutdown request" in (pg_dir / "postgres.log").read_text()
    with EmbeddedPostgres(pg_dir) as again:  # the lock went with the owner
        assert _query(again.url, "SELECT 1") == 1
