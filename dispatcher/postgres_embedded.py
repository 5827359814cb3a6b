"""A real PostgreSQL server for one data directory: started, owned and stopped by this process.

The binaries are the ones PyPI's pgserver wheel ships (PostgreSQL 16 in `pgserver/pginstall/bin`;
only the binaries are used, never its Python API), else a `postgres` and `initdb` on PATH or in
`pg_config --bindir`. The cluster lives in `<data_dir>/postgres` (initdb on the first start,
UTF-8, locale C, superuser `dispatcher`, database `dispatcher`), its log in
`<data_dir>/postgres.log`. The `postgres` binary runs as a child of this process, not through
pg_ctl (which daemonizes): it gets SIGINT, PostgreSQL's fast shutdown, when this process dies,
even by SIGKILL.

It listens on a unix socket in `<data_dir>/pgsocket` (mode 0700, no password) when the socket's
path fits in sockaddr_un, otherwise on a free loopback port with a random password (SCRAM), as
the embedded Redis does. Started again after a stop it listens at the same address.

PostgreSQL refuses to run as root. Run as root (containers, CI), the server runs as an
unprivileged system user instead: `postgres` where it exists, else `dispatcher-pg`, created
with useradd. The cluster is chowned to that user, and every directory above the data directory
and above the binaries gets the o+x (traverse) bit where it lacks it, so that user can reach
them; the unix socket stays 0700, which root passes anyway. A directory above made 0700 again
while the server starts (each pytest session does so to /tmp/pytest-of-<user>) cuts it off.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, NamedTuple

from dispatcher.embedded import EmbeddedServer, die_with_parent, discover, free_port

URL_FILE = "postgres.url"
LOG_FILE = "postgres.log"
CLUSTER_DIR = "postgres"
SOCKET_DIR = "pgsocket"
DATABASE = "dispatcher"
SUPERUSER = "dispatcher"
# Run as root, the server runs as the first of these that exists (the second is created).
SERVICE_USERS = ("postgres", "dispatcher-pg")
_SOCKET_NAME = ".s.PGSQL.5432"
_MAX_SOCKET_PATH = 107  # sockaddr_un's sun_path: 108 bytes with the terminating NUL
# Beside initdb's postgresql.conf, given on the command line so that a new release's choice
# applies to an old cluster too. No replica follows an embedded server: minimal WAL.
SERVER_SETTINGS = {
    "max_connections": "200",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "timezone": "UTC",
    "log_timezone": "UTC",
    "jit": "off",  # short OLTP queries: compiling costs more than it saves
    "logging_collector": "off",  # stderr goes to postgres.log
    "log_line_prefix": "%m [%p] ",
}
_HBA = (
    "# Written by dispatcher/postgres_embedded.py at initdb.\n"
    "local all all trust\n"
    "host all all 127.0.0.1/32 scram-sha-256\n"
)


class Binaries(NamedTuple):
    initdb: str
    postgres: str


def postgres_binaries() -> Binaries:
    """pgserver's initdb and postgres, else a PostgreSQL installed on this machine."""
    spec = importlib.util.find_spec("pgserver")  # found, not imported
    if spec is not None and spec.submodule_search_locations:
        bundled = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
        if _runnable(bundled / "postgres") and _runnable(bundled / "initdb"):
            return Binaries(str(bundled / "initdb"), str(bundled / "postgres"))
    for bindir in (_dir_of(shutil.which("postgres")), _pg_config_bindir()):
        if bindir is not None and _runnable(bindir / "postgres") and _runnable(bindir / "initdb"):
            return Binaries(str(bindir / "initdb"), str(bindir / "postgres"))
    raise RuntimeError(
        "no PostgreSQL: install the pgserver package (CPython 3.11 and 3.12), put PostgreSQL's "
        "postgres and initdb on PATH, or set DATABASE_URL"
    )


def _runnable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _dir_of(found: str | None) -> Path | None:
    return Path(found).resolve().parent if found is not None else None


def _pg_config_bindir() -> Path | None:
    if shutil.which("pg_config") is None:
        return None
    answer = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False)
    return Path(answer.stdout.strip()) if answer.returncode == 0 else None


def service_user() -> pwd.struct_passwd | None:
    """Who the server runs as: this process's user, or when that is root (None otherwise) an
    unprivileged system user, created the first time."""
    if os.geteuid() != 0:
        return None
    for name in SERVICE_USERS:
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    name = SERVICE_USERS[-1]
    command = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name]
    try:
        made = subprocess.run(command, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        made = subprocess.CompletedProcess(command, 127, "", "useradd: command not found")
    with contextlib.suppress(KeyError):  # made now, or by a process racing this one
        return pwd.getpwnam(name)
    raise RuntimeError(
        f"PostgreSQL does not run as root and there is no user {name} to run it as: "
        f"{made.stderr.strip() or 'useradd failed'}"
    )


def open_path_to(path: Path) -> None:
    """Gives every directory above `path` the o+x (traverse) bit where it lacks it, so another
    user can reach `path` (pytest's temporary directories are 0700)."""
    for directory in reversed(path.parents):
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            directory.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def _chown_tree(root: Path, user: pwd.struct_passwd) -> None:
    if root.stat().st_uid == user.pw_uid:
        return
    os.chown(root, user.pw_uid, user.pw_gid)
    for parent, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            os.chown(Path(parent) / name, user.pw_uid, user.pw_gid, follow_symlinks=False)


class EmbeddedPostgres(EmbeddedServer):
    """PostgreSQL with its cluster under `data_dir`, on a unix socket when its path fits,
    otherwise on a loopback port with a random password. One server per data directory.

    `settings` are added to (and override) SERVER_SETTINGS: the tests' server turns fsync off.
    Blocking: async code calls start and stop in a thread. The server dies with the thread that
    started it (PR_SET_PDEATHSIG is per thread): asyncio.to_thread's threads live as long as the
    event loop."""

    NAME = "PostgreSQL"
    LOCK_FILE = "postgres.lock"
    URL_FILE = URL_FILE

    def __init__(self, data_dir: Path, settings: Mapping[str, str] | None = None) -> None:
        super().__init__(data_dir)
        self.settings = {**SERVER_SETTINGS, **(settings or {})}
        self._listen: list[str] = []
        self._password: str | None = None
        self._user: pwd.struct_passwd | None = None

    @property
    def cluster(self) -> Path:
        return self.data_dir / CLUSTER_DIR

    def start(self, timeout_s: float = 30.0) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        try:
            binaries = postgres_binaries()
            self._user = service_user()
            if self._user is not None:
                open_path_to(self.cluster)
                open_path_to(Path(binaries.postgres).resolve())
            if not (self.cluster / "PG_VERSION").is_file():
                self._initdb(binaries)
            elif self._user is not None:
                _chown_tree(self.cluster, self._user)
            if not self._listen:
                self._listen, self.url = self._listen_args()
                if self._password is not None:  # a new one for each new owner, as Redis's
                    self._single_user(binaries, [_set_password(self._password)])
            self._spawn(binaries)
            self._wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise
        self._publish_url()
        return self.url

    def stop(self, timeout_s: float = 30.0) -> None:
        """Fast shutdown (SIGINT: sessions ended, a checkpoint written); past `timeout_s` an
        immediate one (SIGQUIT: recovery at the next start), then SIGKILL."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            for signum, wait_s in ((signal.SIGINT, timeout_s), (signal.SIGQUIT, 5.0)):
                process.send_signal(signum)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(wait_s)
                    break
            else:
                process.kill()
                process.wait()
        self._release()

    def _initdb(self, binaries: Binaries) -> None:
        """A new cluster with the database `dispatcher`, made aside and renamed into place: a
        cluster directory, once there, is whole."""
        fresh = self.data_dir / f"{CLUSTER_DIR}.init"
        shutil.rmtree(fresh, ignore_errors=True)
        fresh.mkdir(mode=0o700)
        if self._user is not None:
            os.chown(fresh, self._user.pw_uid, self._user.pw_gid)
        self._run(
            [binaries.initdb, "-D", str(fresh), "--encoding=UTF8", "--locale=C",
             f"--username={SUPERUSER}", "--auth-local=trust", "--auth-host=scram-sha-256",
             "--no-instructions"],
        )  # fmt: skip
        (fresh / "pg_hba.conf").write_text(_HBA)
        self._single_user(binaries, [f"CREATE DATABASE {DATABASE}"], cluster=fresh)
        fresh.rename(self.cluster)

    def _single_user(
        self, binaries: Binaries, statements: Sequence[str], cluster: Path | None = None
    ) -> None:
        """Statements run by a single-user backend, before any server listens: how a new
        cluster gets its database and a new owner its password, with no client at all."""
        command = [binaries.postgres, "--single", "-D", str(cluster or self.cluster)]
        command += ["-c", "exit_on_error=on", "-c", "log_statement=none", "template1"]
        self._run(command, stdin="".join(f"{statement}\n" for statement in statements))

    def _run(self, command: list[str], stdin: str = "") -> None:
        with self._log() as log:
            done = subprocess.run(
                command, input=stdin.encode(), stdout=log, stderr=log, **self._as_server_user()
            )
        if done.returncode != 0:
            name = Path(command[0]).name
            raise RuntimeError(f"{name} failed (exit {done.returncode}): see {self._log_path}")

    def _spawn(self, binaries: Binaries) -> None:
        command = [binaries.postgres, "-D", str(self.cluster), *self._listen]
        for name, value in self.settings.items():
            command += ["-c", f"{name}={value}"]
        with self._log() as log:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                preexec_fn=_dies_with(os.getpid()),  # noqa: PLW1509 - single-threaded here
                # Its own session: a terminal's Ctrl-C reaches this process, which stops the
                # server itself, and not the server too.
                start_new_session=True,
                **self._as_server_user(),
            )

    def _as_server_user(self) -> dict[str, Any]:
        """Popen's arguments for a child of the server's user, with a bare environment: this
        process's holds tokens, and another user could read the child's."""
        options: dict[str, Any] = {
            "cwd": self.data_dir,
            "env": {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"},
            "umask": 0o077,
        }
        if self._user is not None:
            # CPython's child switches groups and user before preexec_fn runs (_posixsubprocess
            # child_exec), so the death signal set there survives: a uid change clears it.
            options.update(user=self._user.pw_uid, group=self._user.pw_gid, extra_groups=[])
        return options

    @property
    def _log_path(self) -> Path:
        return self.data_dir / LOG_FILE

    def _log(self) -> IO[bytes]:
        """The log, readable by this process's user alone (a failed statement is quoted)."""
        descriptor = os.open(self._log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return os.fdopen(descriptor, "ab")

    def _listen_args(self) -> tuple[list[str], str]:
        sockets = self.data_dir / SOCKET_DIR
        if len(str(sockets / _SOCKET_NAME)) <= _MAX_SOCKET_PATH:
            sockets.mkdir(mode=0o700, exist_ok=True)
            if self._user is not None:
                os.chown(sockets, self._user.pw_uid, self._user.pw_gid)
            args = ["-k", str(sockets), "-c", "listen_addresses=", "-c",
                    "unix_socket_permissions=0700"]  # fmt: skip
            return args, f"postgresql://{SUPERUSER}@/{DATABASE}?host={sockets}"
        port, self._password = free_port(), secrets.token_urlsafe(24)
        args = ["-p", str(port), "-c", "listen_addresses=127.0.0.1", "-c",
                "unix_socket_directories="]  # fmt: skip
        return args, f"postgresql://{SUPERUSER}:{self._password}@127.0.0.1:{port}/{DATABASE}"

    def _wait_ready(self, timeout_s: float) -> None:
        """Ready as pg_ctl judges it: postmaster.pid names this process and says `ready`."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"postgres exited: see {self._log_path}")
            if _postmaster_status(self.cluster, self._process.pid) == "ready":
                return
            time.sleep(0.01)
        raise RuntimeError(f"postgres was not ready within {timeout_s} s: see {self._log_path}")


def _postmaster_status(cluster: Path, pid: int) -> str | None:
    """The status line of postmaster.pid (`starting`, `ready`, `stopping`) when it is `pid`'s."""
    try:
        lines = (cluster / "postmaster.pid").read_text().splitlines()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    if len(lines) < 8 or lines[0].strip() != str(pid):
        return None
    return lines[7].strip()


def _set_password(password: str) -> str:
    return f"ALTER ROLE {SUPERUSER} PASSWORD '{password}'"  # token_urlsafe: no quote in it


def _dies_with(parent: int) -> Callable[[], None]:
    """The child's last step before exec: SIGINT (fast shutdown) when its parent dies; and if
    the parent died already, before the signal was armed, the child leaves at once."""

    def arm() -> None:
        die_with_parent(signal.SIGINT)
        if os.getppid() != parent:
            os._exit(1)

    return arm


def discover_url(data_dir: Path) -> str | None:
    """The URL of the embedded PostgreSQL a running `dispatcher up` keeps in `data_dir`."""
    return discover(data_dir, URL_FILE)
