"""The `dispatcher` command: up (all in one), serve (API), worker, load-config; and the API's
clients: calls list|show|export, agents simulate."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import asyncpg
import click
import structlog
import uvloop
from aiohttp import web
from pydantic import AliasChoices, SecretStr, ValidationError
from redis.exceptions import RedisError

from dispatcher import logs, metrics, progress
from dispatcher.app import create_app, create_worker_app
from dispatcher.campaign_import import campaign
from dispatcher.client import campaigns as campaign_commands
from dispatcher.client import simulated_agents
from dispatcher.client.agents import agents
from dispatcher.client.api import ApiError, Client, Unreachable
from dispatcher.client.calls import calls
from dispatcher.directory import loader
from dispatcher.directory.schema import DirectoryFile, TenantFile
from dispatcher.dnc_import import dnc
from dispatcher.embedded import die_with_parent
from dispatcher.history import schema
from dispatcher.http.manager import summary
from dispatcher.metrics import Metrics
from dispatcher.postgres_embedded import EmbeddedPostgres
from dispatcher.postgres_embedded import discover_url as discover_database_url
from dispatcher.redis_connection import connect, connect_arq
from dispatcher.redis_embedded import EmbeddedRedis, discover_url
from dispatcher.settings import Settings
from dispatcher.store import directory, layout
from dispatcher.store.scripts import Scripts

log = structlog.get_logger("dispatcher.cli")

_host = click.option("--host", default=None, help="Address to listen on [DISPATCHER_HOST].")
_port = click.option("--port", type=int, default=None, help="Port to listen on [DISPATCHER_PORT].")
_data_dir = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the embedded Redis and PostgreSQL keep their files [DISPATCHER_DATA_DIR].",
)
_config = click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Directory file (YAML or JSON) to load before serving.",
)


def _run_long(server: Coroutine[Any, Any, None]) -> None:
    """Runs a long-lived server on uvloop. What was loaded at start is never collected again
    (GC freeze), and the youngest generation is collected every 50,000 allocations rather than
    700: fewer pauses (bench/RESULTS.md: p99 and throughput of POST /calls)."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    uvloop.run(server)


def _settings(host: str | None, port: int | None, data_dir: Path | None) -> Settings:
    overrides = {
        key: value
        for key, value in {"host": host, "port": port, "data_dir": data_dir}.items()
        if value is not None
    }
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        for error in exc.errors():
            where = _variable(str(error["loc"][0])) if error["loc"] else "settings"
            click.echo(f"error: {where}: {error['msg']}", err=True)
        raise SystemExit(2) from exc
    logs.configure(settings.log_level, settings.log_format, _secrets(settings))
    return settings


def _secrets(settings: Settings) -> list[str]:
    """Every secret the settings hold, for the logs to redact wherever it shows up."""
    held = [getattr(settings, name) for name in type(settings).model_fields]
    held += [account.auth_token for account in settings.twilio_accounts.values()]
    found = [secret.get_secret_value() for secret in held if isinstance(secret, SecretStr)]
    return found + _url_secrets(settings.database_url)


def _url_secrets(url: str | None) -> list[str]:
    """A URL with a password in it, and the password as written and decoded."""
    password = urlsplit(url).password if url else None
    return [url, password, unquote(password)] if url and password else []


def _variable(field: str) -> str:
    """The environment variable a settings field is read from."""
    if field == "twilio_accounts":
        return "TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN"  # read by a source of their own
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return f"DISPATCHER_{field.upper()}"


def _read_directory(
    path: Path | None, settings: Settings, show: bool | None = False
) -> DirectoryFile | None:
    """The checked directory file; with `show`, a progress bar per phase (parse, validate)."""
    if path is None:
        return None
    try:
        text = loader.read_text(path)
        with progress.bar("parse", len(text), unit="char", unit_scale=True, show=show) as bar:
            raw = loader.load(text, yaml_allowed=loader.is_yaml(path), on_read=bar.update)
        tenants = loader.tenant_count(raw)
        with progress.bar("validate", tenants, unit="tenant", show=show) as bar:
            networks = settings.webhook_allowed_networks
            return loader.validate(raw, on_tenant=bar.update, webhook_networks=networks)
    except loader.DirectoryError as exc:
        for error in exc.errors:
            click.echo(f"error: {error}", err=True)
        raise SystemExit(2) from exc


def _require_redis(settings: Settings) -> Settings:
    if settings.redis_configured:
        return settings
    url = discover_url(settings.data_dir)
    if url is None:
        raise click.UsageError(
            "no Redis: set REDIS_URL (or DISPATCHER_REDIS_SENTINELS), "
            "or point --data-dir at a running `dispatcher up`"
        )
    return settings.model_copy(update={"redis_url": url})


NO_DATABASE = "set DATABASE_URL, or point --data-dir at a running `dispatcher up`"


def _find_database(settings: Settings) -> Settings:
    """DATABASE_URL, else the embedded PostgreSQL of a running `up` in the data directory (the
    settings as they are when there is neither)."""
    if settings.database_url is not None:
        return settings
    url = discover_database_url(settings.data_dir)
    if url is None:
        return settings
    logs.redact_too(_url_secrets(url))
    return settings.model_copy(update={"database_url": url})


def _warn_without_history(settings: Settings) -> None:
    """`serve` and `worker` with no PostgreSQL found run without call history, and say so."""
    if settings.database_url is None:
        log.warning(f"no PostgreSQL: running without call history ({NO_DATABASE})")


@click.group()
def main() -> None:
    """Self-hosted dispatch API for calls and SMS (CCAI Platform compatible).

    \b
    On one machine:  dispatcher up --config deploy/demo.yaml
    On many:         dispatcher serve and dispatcher worker, all with one REDIS_URL
    A running service documents its API at /docs (and /openapi.json).
    """


main.add_command(calls)
main.add_command(agents)


@main.command(short_help="Run everything in one process: Redis, API and a worker.")
@_host
@_port
@_config
@_data_dir
@click.option(
    "--simulate-agents",
    is_flag=True,
    help="Demo: every agent of the --config tenants with api_tokens of its own goes "
    "available, accepts each offer about 2 s after it arrives and finishes the call after the "
    "simulator's talk time, through the API, signed in with its own token (as `dispatcher "
    "agents simulate` does); the simulated end users wait for the agent to finish. A person "
    "signed in at the agent console as one of them gets that agent's menus until the console "
    "closes.",
)
def up(
    host: str | None,
    port: int | None,
    config_file: Path | None,
    data_dir: Path | None,
    simulate_agents: bool,
) -> None:
    """Run everything in one process: embedded Redis (unless REDIS_URL is set) and PostgreSQL
    (unless DATABASE_URL is set), API and worker."""
    if simulate_agents and config_file is None:
        raise click.UsageError(
            "--simulate-agents needs --config: the simulated agents sign in with the agent "
            "tokens of the tenants it loads"
        )
    settings = _settings(host, port, data_dir)
    document = _read_directory(config_file, settings)
    _run_long(_up(settings, document, simulate_agents))


@main.command(short_help="Run the API only (scale out by running several).")
@_host
@_port
@_config
@_data_dir
@click.option(
    "--workers",
    "processes",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Ingress processes sharing the port (SO_REUSEPORT, Linux): about one per core.",
)
@click.option("--reuse-port", is_flag=True, hidden=True)
def serve(
    host: str | None,
    port: int | None,
    config_file: Path | None,
    data_dir: Path | None,
    processes: int,
    reuse_port: bool,
) -> None:
    """Run the API only, against REDIS_URL and DATABASE_URL (scale out by running several)."""
    settings = _find_database(_require_redis(_settings(host, port, data_dir)))
    document = _read_directory(config_file, settings)
    with _shared_metrics(processes):
        _run_long(
            _serve_until_stopped(
                settings, document, processes=processes, reuse_port=reuse_port or processes > 1
            )
        )


@contextlib.contextmanager
def _shared_metrics(processes: int) -> Iterator[None]:
    """Processes sharing a port count in files of one directory (prometheus-client's
    multiprocess mode), so a scrape landing on any of them sees the sum of all. The directory
    is made for this run and removed after it; siblings inherit it through the environment."""
    if processes < 2 or os.environ.get(metrics.MULTIPROCESS_DIR_ENV):
        yield  # one process; or a sibling, or a directory the operator gave (theirs to clean)
        return
    directory = tempfile.mkdtemp(prefix="dispatcher-metrics-")
    metrics.use_multiprocess(directory)
    try:
        yield
    finally:
        os.environ.pop(metrics.MULTIPROCESS_DIR_ENV, None)
        shutil.rmtree(directory, ignore_errors=True)


@main.command(short_help="Run an ARQ worker (scale out by running several).")
@_data_dir
@click.option("--burst", is_flag=True, help="Exit once the queue is empty.")
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve /metrics, /healthz and /readyz on this port [DISPATCHER_METRICS_PORT].",
)
def worker(data_dir: Path | None, burst: bool, metrics_port: int | None) -> None:
    """Run an ARQ worker against REDIS_URL and DATABASE_URL (scale out by running several)."""
    settings = _find_database(_require_redis(_settings(None, None, data_dir)))
    if metrics_port is not None:
        settings = settings.model_copy(update={"metrics_port": metrics_port})
    _run_long(_work_until_stopped(settings, burst))


@main.command("load-config", short_help="Validate a directory file and store its tenants.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_data_dir
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bars on stderr for parsing, validating and storing (default: only when "
    "stderr is a terminal).",
)
def load_config(file: Path, data_dir: Path | None, progress: bool | None) -> None:
    """Validate FILE (YAML or JSON) and replace the directories of its tenants atomically."""
    settings = _require_redis(_settings(None, None, data_dir))
    document = _read_directory(file, settings, show=progress)
    assert document is not None
    asyncio.run(_store_directory(settings, document, show=progress))
    for tenant in summary(document)["tenants"]:  # type: ignore[attr-defined]
        click.echo(
            "loaded {subdomain}: {agents} agents, {menus} menus, "
            "{outbound_numbers} numbers, {contacts} contacts".format(**tenant)
        )


@main.command(short_help="Bring Redis's layout and PostgreSQL's schema to this release's.")
@_data_dir
def migrate(data_dir: Path | None) -> None:
    """Bring what Redis holds to this release's layout (store/layout.py), and the history's
    PostgreSQL (DATABASE_URL, or the `up` running in --data-dir) to this release's schema
    (dispatcher/history/migrations): stop the older release's processes first. Idempotent;
    `dispatcher up` runs both before it serves."""
    settings = _require_redis(_settings(None, None, data_dir))
    renamed = asyncio.run(_migrate(settings))
    click.echo(f"layout {layout.CURRENT}: {renamed} {'key' if renamed == 1 else 'keys'} renamed")
    settings = _find_database(settings)
    if settings.database_url is None:
        click.echo(f"schema: no PostgreSQL to migrate ({NO_DATABASE})", err=True)
        return
    try:
        click.echo(f"schema {asyncio.run(_migrate_history(settings))}")
    except _UNREACHABLE as exc:
        raise click.ClickException(f"PostgreSQL is unreachable: {exc}") from None


async def _migrate(settings: Settings) -> int:
    redis = connect(settings)
    try:
        return await layout.migrate(redis)
    finally:
        await redis.aclose()


# What connecting to a PostgreSQL that is down, or not there, raises.
_UNREACHABLE = (OSError, TimeoutError, asyncpg.CannotConnectNowError)


async def _migrate_history(settings: Settings) -> str:
    """The history schema brought to HEAD; the revision the database is at."""
    assert settings.database_url is not None
    try:
        return await schema.upgrade(settings.database_url)
    except schema.SchemaError as exc:
        raise click.ClickException(str(exc)) from None
    except _UNREACHABLE:
        raise
    except asyncpg.PostgresError as exc:  # a wrong password, a database that is not there
        raise click.ClickException(f"PostgreSQL refused: {exc}") from None


async def _refuse_outdated(settings: Settings) -> None:
    """`serve` and `worker` start only on a Redis of this release's layout. A Redis that cannot
    be reached now is not checked: the process waits for it as it always did."""
    redis = connect(settings)
    try:
        await layout.refuse_outdated(redis)
    except layout.OutdatedLayout as outdated:
        raise click.ClickException(str(outdated)) from None
    except RedisError:
        structlog.get_logger("dispatcher.cli").warning(
            "Redis is unreachable: its key layout was not checked"
        )
    finally:
        await redis.aclose()


async def _store_directory(
    settings: Settings, document: DirectoryFile, show: bool | None = False
) -> None:
    redis = connect(settings)
    try:
        tenants = len(document.tenants)
        with progress.bar("store", tenants, unit="tenant", show=show) as bar:

            def prepared() -> None:
                bar.update()
                if bar.n == tenants:  # all queued: the one transaction is sent now
                    bar.set_postfix_str("writing")

            await directory.save(redis, Scripts.register(redis), document, on_tenant=prepared)
    finally:
        await redis.aclose()


def _stop_on_signals() -> asyncio.Event:
    """SIGTERM (orchestrators) and SIGINT (Ctrl-C) both start a graceful stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return stop


async def _work_until_stopped(settings: Settings, burst: bool) -> None:
    await _refuse_outdated(settings)
    _warn_without_history(settings)
    stop = _stop_on_signals()
    process_metrics = Metrics()
    if settings.metrics_port is None:
        await _run_worker(settings, stop, process_metrics, burst=burst)
        return
    runner = web.AppRunner(
        create_worker_app(settings, process_metrics), access_log=None, handle_signals=False
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host, settings.metrics_port).start()
        click.echo(
            f"worker metrics on http://{settings.host}:{runner.addresses[0][1]}/metrics", err=True
        )
        await _run_worker(settings, stop, process_metrics, burst=burst)
    finally:
        await runner.cleanup()


async def _up(settings: Settings, document: DirectoryFile | None, simulate_agents: bool) -> None:
    async with _redis_for(settings) as settings, _postgres_for(settings) as settings:
        await _migrate(settings)
        try:
            await _migrate_history(settings)
        except _UNREACHABLE as exc:  # a DATABASE_URL that is down: all but history serves
            log.warning("PostgreSQL is unreachable: the history schema is not migrated", error=exc)
        await _serve_until_stopped(
            settings, document, with_worker=True, simulate_agents=simulate_agents
        )


class _Embedded(Protocol):
    """EmbeddedRedis and EmbeddedPostgres, as `up` runs them."""

    def start(self) -> str: ...
    def stop(self) -> None: ...
    def wait(self) -> int | None: ...


@contextlib.asynccontextmanager
async def _redis_for(settings: Settings) -> AsyncIterator[Settings]:
    if settings.redis_configured:
        yield settings
        return
    embedded = EmbeddedRedis(settings.data_dir, appendfsync=settings.redis_appendfsync)
    async with _running(embedded, "redis") as url:
        yield settings.model_copy(update={"redis_url": url})


@contextlib.asynccontextmanager
async def _postgres_for(settings: Settings) -> AsyncIterator[Settings]:
    if settings.database_url is not None:
        yield settings
        return
    async with _running(EmbeddedPostgres(settings.data_dir), "postgres") as url:
        logs.redact_too(_url_secrets(url))  # the loopback fallback's password
        yield settings.model_copy(update={"database_url": url})


@contextlib.asynccontextmanager
async def _running(embedded: _Embedded, name: str) -> AsyncIterator[str]:
    """`embedded` started, kept running while the block runs, and stopped after it."""
    url = await asyncio.to_thread(embedded.start)
    keeper = asyncio.create_task(_keep_running(embedded, name))
    try:
        yield url
    finally:
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper
        await asyncio.to_thread(embedded.stop)


async def _keep_running(embedded: _Embedded, name: str) -> None:
    """An embedded server that dies is started again, at the same address and from its files
    (Redis's AOF, PostgreSQL's WAL); meanwhile the ingress answers 503 without Redis, and
    history waits without PostgreSQL; every client reconnects by itself."""
    while True:
        code = await asyncio.to_thread(embedded.wait)
        log.error(f"embedded {name} exited, restarting it", exit_code=code)
        await asyncio.to_thread(embedded.stop)
        try:
            await asyncio.to_thread(embedded.start)
        except (RuntimeError, OSError):
            log.exception(f"embedded {name} did not restart, trying again in 1 s")
            await asyncio.sleep(1)


async def _serve_until_stopped(
    settings: Settings,
    document: DirectoryFile | None,
    *,
    with_worker: bool = False,
    simulate_agents: bool = False,
    processes: int = 1,
    reuse_port: bool = False,
) -> None:
    if not with_worker:  # serve; up has migrated, and has a database
        await _refuse_outdated(settings)
        _warn_without_history(settings)
    if document is not None:
        await _store_directory(settings, _callers_wait(document) if simulate_agents else document)
    stop = _stop_on_signals()
    # On stop, aiohttp closes the listening socket at once, answers the requests in flight
    # (for up to the grace period) and closes idle keep-alive connections.
    process_metrics = Metrics()
    runner = web.AppRunner(
        create_app(settings, process_metrics),
        access_log=None,
        handle_signals=False,
        shutdown_timeout=settings.shutdown_grace_s,
        keepalive_timeout=settings.keepalive_timeout_s,  # also bounds a slow request's headers
    )
    await runner.setup()
    tasks: list[asyncio.Task[None]] = []
    siblings: list[subprocess.Popen[bytes]] = []
    try:
        site = web.TCPSite(runner, settings.host, settings.port, reuse_port=reuse_port or None)
        await site.start()
        siblings = _start_siblings(settings, runner.addresses[0][1], processes - 1)
        if with_worker:
            tasks.append(asyncio.create_task(_run_worker(settings, stop, process_metrics)))
        if simulate_agents and document is not None:
            url = _local_url(settings.host, runner.addresses[0][1])
            tasks += [
                asyncio.create_task(_simulate_agents(url, tenant, stop))
                for tenant in document.tenants
            ]
        base = _local_url(settings.host, runner.addresses[0][1])
        click.echo(banner(base, document if simulate_agents else None), err=True)
        await stop.wait()
    finally:
        stop.set()  # also when something above failed: the worker drains too
        # The ingress, its sibling processes and the worker wind down side by side, each
        # within the grace period; whatever a worker hands back stays queued in Redis.
        outcomes = await asyncio.gather(
            *tasks,
            asyncio.to_thread(_stop_siblings, siblings, settings.shutdown_grace_s + 5),
            runner.cleanup(),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome


def _start_siblings(settings: Settings, port: int, count: int) -> list[subprocess.Popen[bytes]]:
    """More ingress processes on the same port; the kernel spreads connections among them."""
    command = [sys.executable, "-m", "dispatcher.cli", "serve", "--reuse-port"]
    command += ["--host", settings.host, "--port", str(port)]
    env = dict(os.environ)  # Sentinel settings, if any, come with the environment
    if settings.redis_url is not None:
        env["REDIS_URL"] = settings.redis_url
    if settings.database_url is not None:
        env["DATABASE_URL"] = settings.database_url
    return [
        subprocess.Popen(command, env=env, preexec_fn=die_with_parent)  # noqa: PLW1509
        for _ in range(count)
    ]


def _stop_siblings(siblings: list[subprocess.Popen[bytes]], timeout_s: float = 10) -> None:
    for sibling in siblings:
        sibling.terminate()
    for sibling in siblings:
        try:
            sibling.wait(timeout_s)
        except subprocess.TimeoutExpired:
            sibling.kill()
            sibling.wait()
        metrics.process_ended(sibling.pid)


async def _run_worker(
    settings: Settings, stop: asyncio.Event, process_metrics: Metrics, *, burst: bool = False
) -> None:
    """An ARQ worker until `stop`; then it drains for the grace period (workers/settings.py)."""
    from workers.settings import create_worker

    arq_worker = create_worker(
        connect_arq(settings),
        burst=burst,
        handle_signals=False,
        directory_ttl_s=settings.directory_ttl_s,
        settings=settings,
        metrics=process_metrics,
        job_timeout=settings.job_timeout_s,
    )
    await arq_worker.run_until(stop, settings.shutdown_grace_s)


def banner(base: str, demo: DirectoryFile | None) -> str:
    """What `up` and `serve` print once they listen: where everything is and how to stop; with
    the simulated agents of a demo (`make run`), the demo's credentials too (a real directory's
    tokens are never printed)."""
    lines = [
        "dispatcher is ready; Ctrl-C (or SIGTERM) stops it",
        f"  API            {base}/apps/api/v1",
        f"  dashboard      {base}/dashboard",
        f"  agent console  {base}/agent",
        f"  API docs       {base}/docs",
        f"  health         {base}/healthz and {base}/readyz",
    ]
    for tenant in demo.tenants if demo is not None else []:
        simulated = [agent for agent in tenant.agents if agent.api_tokens]
        sign_ins = ", ".join(f"{agent.id} {agent.api_tokens[0]}" for agent in simulated)
        lines += [
            f"demo tenant {tenant.subdomain}: user {tenant.subdomain}, token"
            f" {tenant.api_tokens[0]} (API, dashboard)",
            "  simulated agents (they accept each offer after ~2 s):"
            f" {', '.join(str(agent.id) for agent in simulated)}",
            f"  agent console: user {tenant.subdomain}/<id> and its token ({sign_ins}); the"
            " simulated agents leave that agent's menus to you until the console closes",
        ]
    return "\n".join(lines)


def _local_url(host: str, port: int) -> str:
    """This process's own API, as a client on this machine reaches it."""
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _callers_wait(document: DirectoryFile) -> DirectoryFile:
    """The directory as `up --simulate-agents` stores it: the simulated carrier's end users
    never hang up, so a call a person accepts at the console lasts until the person finishes
    it; the simulated agents finish theirs after the simulator's talk time instead."""
    tenants = []
    for tenant in document.tenants:
        simulator = tenant.settings.simulator.model_copy(update={"talk_time_s": None})
        settings = tenant.settings.model_copy(update={"simulator": simulator})
        tenants.append(tenant.model_copy(update={"settings": settings}))
    return document.model_copy(update={"tenants": tenants})


async def _simulate_agents(url: str, tenant: TenantFile, stop: asyncio.Event) -> None:
    """`make run`'s agents: those of the tenant's with a token of their own in the directory,
    each signed in with it, through this process's own API; each finishes a call after the
    talk time the directory gives the simulated carrier's end users (who wait for it, see
    _callers_wait). They leave the menus of an agent a person took over to the person. A
    failure is logged and never stops the service."""
    talk_time_s = tenant.settings.simulator.talk_time_s
    timing = simulated_agents.Timing(accept_after_s=2.0, talk_time_s=talk_time_s, jitter_s=0.5)
    tokens = {agent.id: agent.api_tokens[0] for agent in tenant.agents if agent.api_tokens}
    try:
        async with Client(url, tenant.subdomain, tenant.api_tokens[0]) as api:
            listed = await simulated_agents.pick_agents(api, None)
            chosen = [agent for agent in listed if agent["id"] in tokens]
            people = simulated_agents.People(
                _menu_agents(tenant), _menu_reader(api), _held_calls_reader(api)
            )
            async with simulated_agents.desks(url, tenant.subdomain, tokens) as clients:
                await simulated_agents.simulate(
                    clients, chosen, timing, _log_agent, stop, restore=False, people=people
                )
    except (ApiError, Unreachable):
        log.exception("simulated agents stopped", tenant=tenant.subdomain)


def _menu_agents(tenant: TenantFile) -> dict[int, frozenset[int]]:
    return {
        menu.id: frozenset(agent for group in menu.groups for agent in group)
        for menu in tenant.menus
    }


def _menu_reader(api: Client) -> Callable[[int], Awaitable[int | None]]:
    """A call's menu, read with the tenant's token (an agent's reads only its own calls)."""

    async def menu_of(call_id: int) -> int | None:
        menu = (await api.call(call_id)).get("selected_menu")
        return int(menu["id"]) if isinstance(menu, dict) else None

    return menu_of


def _held_calls_reader(api: Client) -> Callable[[int], Awaitable[list[int]]]:
    """The live calls an agent holds, among each live status's newest 100 calls (the demo's
    are few): the list is the tenant's and has no agent filter."""

    async def calls_of(agent_id: int) -> list[int]:
        held = []
        for status in ("assigned", "connecting", "switching", "connected"):
            page = await api.calls({"status": status, "per": "100"})
            held += [call["id"] for call in page.items if _holder(call) == agent_id]
        return held

    return calls_of


def _holder(call: dict[str, Any]) -> int | None:
    agent = call.get("agent_info")
    return int(agent["id"]) if isinstance(agent, dict) else None


def _log_agent(event: str, fields: dict[str, Any]) -> None:
    log.info(f"simulated agent: {event}", **fields)


for command in campaign_commands.COMMANDS:
    campaign.add_command(command)
main.add_command(campaign)
main.add_command(dnc)

if __name__ == "__main__":
    sys.exit(main())
