"""Fixtures: one real embedded Redis for the session, a flushed database for every test; and for
the tests that ask, one real PostgreSQL, a fresh database for every test."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import copy
import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from redis.asyncio import Redis

from dispatcher.app import create_app, redis_client
from dispatcher.directory import loader
from dispatcher.history import partitions, schema
from dispatcher.history.database import connect_pool
from dispatcher.postgres_embedded import EmbeddedPostgres
from dispatcher.redis_embedded import EmbeddedRedis
from dispatcher.settings import Settings
from dispatcher.store import directory
from dispatcher.store.scripts import Scripts

# The tests' webhook receivers listen on 127.0.0.1, which webhooks may not reach by default
# (dispatcher/domain/destinations.py): the suite allows it, in the processes it starts too.
LOCAL_NETWORKS = "127.0.0.0/8,::1/128"
os.environ["DISPATCHER_WEBHOOK_ALLOWED_NETWORKS"] = LOCAL_NETWORKS

# A PostgreSQL the run provides (tests make and drop databases on it), taken out of the
# environment: a test's Settings() has a database only when the test asks for one.
_given = [os.environ.pop(name, "") for name in ("DATABASE_URL", "DISPATCHER_DATABASE_URL")]
GIVEN_DATABASE_URL = next((url for url in _given if url), "")
# The tests' embedded PostgreSQL keeps nothing past the session: no fsync.
TEST_POSTGRES_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
# Whole directories of one nature, marked here rather than module by module (the markers are
# declared in pyproject.toml; `make test-fast` leaves them out).
DIRECTORY_MARKS = {
    HERE / "browser": ("browser",),
    HERE / "chaos": ("chaos", "subprocess"),
}
DEMO_FILE = ROOT / "deploy" / "demo.yaml"
ADMIN_TOKEN = "admin-secret-token"

# Property tests: a fixed, bounded run in CI (derandomized: the same examples every run, no
# example database), a larger random one with HYPOTHESIS_PROFILE=deep. No deadline: two shared
# cores make per-example timings meaningless.
hypothesis_settings.register_profile(
    "ci",
    max_examples=100,
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
hypothesis_settings.register_profile(
    "deep", hypothesis_settings.get_profile("ci"), max_examples=5_000, derandomize=False
)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for folder, marks in DIRECTORY_MARKS.items():
            if folder in item.path.parents:
                for mark in marks:
                    item.add_marker(mark)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The embedded Redis `dispatcher up` uses, or REDIS_URL when a run provides one."""
    given = os.environ.get("REDIS_URL")
    if given:
        yield own_database(given, os.environ.get("PYTEST_XDIST_WORKER", ""))
        return
    with EmbeddedRedis(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


def own_database(url: str, worker: str) -> str:
    """Under pytest-xdist each worker process (gw0, gw1, ...) flushes a database of its own on a
    shared REDIS_URL: the URL's database plus the worker's number. Alone, the URL as it is."""
    if not worker:
        return url
    parts = urlsplit(url)
    offset = int(worker.removeprefix("gw"))
    if parts.scheme == "unix":
        query = dict(parse_qsl(parts.query))
        query["db"] = str(int(query.get("db", 0)) + offset)
        return f"{url.partition('?')[0]}?{urlencode(query)}"
    return urlunsplit(parts._replace(path=f"/{int(parts.path.strip('/') or 0) + offset}"))


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = redis_client(redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


@contextlib.contextmanager
def postgres_directory() -> Iterator[Path]:
    """A directory for an embedded PostgreSQL, removed after. Not under pytest's basetemp: run as
    root the server is another user, who must traverse every directory above its cluster, and
    each pytest session that starts takes that right away from /tmp/pytest-of-<user> again."""
    directory = Path(tempfile.mkdtemp(prefix="dispatcher-pg-"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def pg_dir() -> Iterator[Path]:
    with postgres_directory() as directory:
        yield directory


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server: DATABASE_URL when a run gives one, else an embedded one started the
    first time a test asks (one per pytest-xdist worker process, each its own directory)."""
    if GIVEN_DATABASE_URL:
        yield GIVEN_DATABASE_URL
        return
    with (
        postgres_directory() as directory,
        EmbeddedPostgres(directory, settings=TEST_POSTGRES_SETTINGS) as server,
    ):
        yield server.url


class SpareDatabases:
    """The tests' databases, copied from a template one ahead of need: the copy (CREATE
    DATABASE ... TEMPLATE, 50-190 ms of the server's CPU here, depending on the machine's load)
    runs in a thread of its own while the test before runs, and the drop after a test too."""

    def __init__(self, url: str, template: str) -> None:
        self._url, self._template = url, template
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="databases")
        self._next = self._copy()

    def take(self) -> str:
        """A new database's name, once its copy is done; the next copy starts."""
        name = self._next.result()
        self._next = self._copy()
        return name

    def drop(self, name: str) -> None:
        self._thread.submit(asyncio.run, _drop_database(self._url, name))

    def close(self) -> None:
        self.drop(self._next.result())
        self._thread.shutdown(wait=True)

    def _copy(self) -> concurrent.futures.Future[str]:
        async def copy() -> str:
            name = f"t_{secrets.token_hex(8)}"
            await _create_database(self._url, name, template=self._template)
            return name

        return self._thread.submit(asyncio.run, copy())


@pytest.fixture(scope="session")
def spare_databases(postgres_url: str) -> Iterator[SpareDatabases]:
    """Databases at the schema's HEAD, each copied from one template migrated once a session
    (no migration per test)."""
    template = f"t_template_{secrets.token_hex(4)}"
    _in_a_thread(_create_database(postgres_url, template))
    _in_a_thread(schema.upgrade(database_in(postgres_url, template)))
    spares = SpareDatabases(postgres_url, template)
    yield spares
    spares.close()
    _in_a_thread(_drop_database(postgres_url, template))


@pytest.fixture
def database_url(postgres_url: str, spare_databases: SpareDatabases) -> Iterator[str]:
    """A database of this test's own at HEAD, dropped after it."""
    name = spare_databases.take()
    partitions.forget()  # the partitions this process made were another database's
    yield database_in(postgres_url, name)
    spare_databases.drop(name)


@pytest.fixture
def empty_database_url(postgres_url: str) -> Iterator[str]:
    """A database of this test's own with nothing of the schema in it, dropped after it."""
    name = f"t_empty_{secrets.token_hex(6)}"
    _in_a_thread(_create_database(postgres_url, name))
    yield database_in(postgres_url, name)
    _in_a_thread(_drop_database(postgres_url, name))


@pytest.fixture
async def pg(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the test's database, as the service opens it (dispatcher/history/database.py)."""
    pool = await connect_pool(Settings(database_url=database_url))
    yield pool
    await pool.close()


def database_in(url: str, name: str) -> str:
    """`url` with its database (the URL's path) replaced by `name`."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def _create_database(url: str, name: str, template: str = "template1") -> None:
    admin = await asyncpg.connect(url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await admin.close()


async def _drop_database(url: str, name: str) -> None:
    admin = await asyncpg.connect(url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def _in_a_thread(work: Coroutine[Any, Any, Any]) -> Any:
    """Runs `work` to its end on an event loop of its own in another thread: session fixtures
    are synchronous, and each test has a loop of its own that this one must not disturb."""
    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, work).result()


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return Settings(redis_url=redis_url, admin_token=ADMIN_TOKEN)  # type: ignore[arg-type]


def demo_document() -> dict[str, Any]:
    loaded = yaml.safe_load(DEMO_FILE.read_text())
    assert isinstance(loaded, dict)
    return loaded


async def load_directory(redis: Redis, document: dict[str, Any]) -> None:
    networks = Settings().webhook_allowed_networks
    validated = loader.validate(copy.deepcopy(document), webhook_networks=networks)
    await directory.save(redis, Scripts.register(redis), validated)


@pytest.fixture
async def demo(redis: Redis) -> dict[str, Any]:
    document = demo_document()
    await load_directory(redis, document)
    return document


@pytest.fixture
async def client(settings: Settings, redis: Redis) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(create_app(settings))) as test_client:
        yield test_client


def basic(subdomain: str = "demo", token: str = "demo-token") -> dict[str, str]:
    encoded = base64.b64encode(f"{subdomain}:{token}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}
