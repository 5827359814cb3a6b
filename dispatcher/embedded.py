"""What the embedded servers (redis_embedded.py, postgres_embedded.py) share: one server per
data directory under a lock, its child process dying with its owner, and its URL written in the
directory for the commands that look for a running `dispatcher up` there."""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import IO, ClassVar, Self


def die_with_parent(signum: int = signal.SIGTERM) -> None:
    """Linux: the server gets `signum` if this process dies, even by SIGKILL (no orphans)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signum)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def discover(data_dir: Path, url_file: str) -> str | None:
    """The URL a running `dispatcher up` keeps in `data_dir` under `url_file`."""
    path = data_dir / url_file
    return path.read_text().strip() if path.is_file() else None


class EmbeddedServer:
    """A server process owned by this one, for one data directory. Subclasses start and stop
    it; this holds the directory's lock, the process and the URL file."""

    NAME: ClassVar[str]  # how errors call it ("Redis", "PostgreSQL")
    LOCK_FILE: ClassVar[str]
    URL_FILE: ClassVar[str]

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.url = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._lock: IO[str] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> str:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def wait(self) -> int | None:
        """Blocks until the server exits; its exit code (None when it is not running)."""
        process = self._process
        return process.wait() if process is not None else None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _take_lock(self) -> None:
        lock = (self.data_dir / self.LOCK_FILE).open("w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            lock.close()
            raise RuntimeError(
                f"{self.data_dir} is in use by another embedded {self.NAME}"
            ) from exc
        self._lock = lock

    def _publish_url(self) -> None:
        """The URL, readable by this user alone (it may hold a password)."""
        url_file = self.data_dir / self.URL_FILE
        url_file.write_text(self.url)
        url_file.chmod(0o600)

    def _release(self) -> None:
        """After the process has ended: the URL file goes, and the directory's lock."""
        with contextlib.suppress(FileNotFoundError):
            (self.data_dir / self.URL_FILE).unlink()
        if self._lock is not None:
            self._lock.close()
            self._lock = None
