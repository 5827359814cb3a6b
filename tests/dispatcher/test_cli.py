"""The `dispatcher` command as a user runs it: up (with its embedded Redis and PostgreSQL),
healthz, load-config, migrate, clean shutdown, the simulated agents of `up`, and --help of every
command."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import orjson
import pytest
import redis
from click.testing import CliRunner

from dispatcher.cli import banner, main
from dispatcher.directory import loader
from dispatcher.history import schema
from dispatcher.postgres_embedded import discover_url as discover_database_url
from dispatcher.store import layout
from dispatcher.store.keys import TENANTS
from tests.conftest import DEMO_FILE, basic, database_in
from tests.ports import free_port
from tests.terminal import drain, frames, pseudo_terminal

BIN = Path(sys.executable).parent / "dispatcher"


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["DISPATCHER_LOG_FORMAT"] = "json"
    return env


INBOUND_CALL = {
    "call_type": "Voice Inbound (API)",
    "menu_id": 9,
    "end_user_number": "+1 205-123-4567",
}


def _api(port: int, path: str, body: Any = None) -> Any:
    """A request of the demo tenant: POST with a body, else GET; the answer's JSON."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=None if body is None else orjson.dumps(body),
        headers={**basic(), "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        return orjson.loads(answer.read())


def _wait_healthy(port: int, process: subprocess.Popen[bytes], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, "dispatcher up exited early"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    raise AssertionError("healthz never answered 200")


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[int, Path, subprocess.Popen[bytes]]]:
    port = free_port()
    log = (tmp_path / "up.log").open("wb")
    process = subprocess.Popen(
        [str(BIN), "up", "--host", "127.0.0.1", "--port", str(port),
         "--config", str(DEMO_FILE), "--data-dir", str(tmp_path)],
        env=_environment(),
        stdout=subprocess.DEVNULL,
        stderr=log,
    )  # fmt: skip
    try:
        _wait_healthy(port, process)
        yield port, tmp_path, process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        log.close()


def _postgres_pid(data_dir: Path) -> int:
    """The embedded PostgreSQL's postmaster, from the first line of its postmaster.pid."""
    return int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])


def _redis_pid(data_dir: Path) -> int:
    found = subprocess.run(
        ["pgrep", "-f", f"redis-server.*{data_dir}"], capture_output=True, text=True, check=False
    ).stdout.split()
    assert len(found) == 1, found
    return int(found[0])


def _gone(pid: int, timeout_s: float = 10) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.subprocess
def test_up_serves_then_stops_cleanly(
    running: tuple[int, Path, subprocess.Popen[bytes]], signum: int
) -> None:
    port, data_dir, process = running
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/apps/api/v1/calls",
        headers={"Authorization": "Basic ZGVtbzpkZW1vLXRva2Vu"},  # demo:demo-token
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert answer.status == 200
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz?exclude=workers") as answer:
        assert orjson.loads(answer.read()) == {
            "status": "ready",
            "checks": {"redis": "ok", "postgres": "ok"},
        }
    url = discover_database_url(data_dir)
    assert url is not None and asyncio.run(schema.current(url)) == schema.HEAD  # up migrated it
    redis_pid, postgres_pid = _redis_pid(data_dir), _postgres_pid(data_dir)
    process.send_signal(signum)
    assert process.wait(timeout=30) == 0
    assert _gone(redis_pid), "redis-server outlived dispatcher up"
    assert _gone(postgres_pid), "postgres outlived dispatcher up"
    assert not (data_dir / "redis.url").exists()
    assert not (data_dir / "postgres.url").exists()


@pytest.mark.subprocess
def test_redis_and_postgres_die_with_a_killed_up(
    running: tuple[int, Path, subprocess.Popen[bytes]],
) -> None:
    _, data_dir, process = running
    redis_pid, postgres_pid = _redis_pid(data_dir), _postgres_pid(data_dir)
    process.kill()
    process.wait()
    assert _gone(redis_pid), "redis-server was orphaned"
    assert _gone(postgres_pid), "postgres was orphaned"


@pytest.mark.subprocess
def test_load_config_against_a_running_up(
    running: tuple[int, Path, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    _, data_dir, _ = running
    loaded = subprocess.run(
        [str(BIN), "load-config", str(DEMO_FILE), "--data-dir", str(data_dir)],
        env=_environment(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout == "loaded demo: 4 agents, 3 menus, 2 numbers, 3 contacts\n"
    assert loaded.stderr == ""  # off a terminal: no progress bars
    broken = tmp_path / "broken.yaml"
    broken.write_text("tenants:\n  - subdomain: Bad Name\n    api_tokens: []\n")
    refused = subprocess.run(
        [str(BIN), "load-config", str(broken), "--data-dir", str(data_dir)],
        env=_environment(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        "error: tenants[0].subdomain: string should match pattern "
        "'^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'",
        "error: tenants[0].api_tokens: list should have at least 1 item after validation, not 0",
    ]


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(child) for child in found.stdout.split()]


@pytest.mark.subprocess
def test_serve_with_workers_shares_the_port_and_stops_them_all(
    redis_url: str, tmp_path: Path
) -> None:
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [str(BIN), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "3"],
        env={**_environment(), "REDIS_URL": redis_url},
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        _wait_healthy(port, process)
        deadline = time.monotonic() + 20
        while len(_children(process.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        siblings = _children(process.pid)
        assert len(siblings) == 2
        # Each sibling binds the same port (SO_REUSEPORT) and answers on it.
        for _ in range(20):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                assert answer.status == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        assert all(_gone(pid) for pid in siblings), "an ingress process outlived serve"
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        log.close()


@pytest.mark.subprocess
def test_up_simulate_agents_answers_calls_through_the_api(tmp_path: Path) -> None:
    """`make run`'s agents: the demo tenant's agents accept offers about 2 s after they ring."""
    port = free_port()
    log = (tmp_path / "up.log").open("wb")
    process = subprocess.Popen(
        [str(BIN), "up", "--host", "127.0.0.1", "--port", str(port),
         "--config", str(DEMO_FILE), "--data-dir", str(tmp_path), "--simulate-agents"],
        env=_environment(),
        stdout=subprocess.DEVNULL,
        stderr=log,
    )  # fmt: skip
    try:
        _wait_healthy(port, process)
        created = _api(port, "/apps/api/v1/calls", INBOUND_CALL)
        deadline = time.monotonic() + 15
        call = created
        while call["assigned_at"] is None:
            assert time.monotonic() < deadline, f"no simulated agent took the call: {call}"
            time.sleep(0.1)
            call = _api(port, f"/apps/api/v1/calls/{created['id']}")
        assert call["agent_info"]["id"] in (1, 2)  # menu 9's first group
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        log.close()
    lines = (tmp_path / "up.log").read_bytes().splitlines()
    events = [orjson.loads(line)["event"] for line in lines if line.startswith(b"{")]
    assert events.count("simulated agent: available") == 4
    assert "simulated agent: accepted" in events


def test_up_simulate_agents_needs_the_tenants_it_signs_in_as(tmp_path: Path) -> None:
    refused = CliRunner().invoke(main, ["up", "--data-dir", str(tmp_path), "--simulate-agents"])
    assert refused.exit_code == 2
    assert refused.stderr.splitlines()[-1] == (
        "Error: --simulate-agents needs --config: the simulated agents sign in with the agent "
        "tokens of the tenants it loads"
    )


def _commands(
    command: click.Command, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name, child in command.commands.items():
            yield from _commands(child, (*path, name))


def test_every_command_and_option_says_what_it_is_for() -> None:
    walked = list(_commands(main))
    assert {" ".join(path) for path, _ in walked} >= {
        "", "up", "serve", "worker", "load-config", "calls", "calls list", "calls show",
        "agents", "agents simulate", "campaign", "campaign import", "dnc", "dnc import",
    }  # fmt: skip
    for path, command in walked:
        shown = CliRunner().invoke(main, [*path, "--help"], prog_name="dispatcher")
        assert shown.exit_code == 0, (path, shown.output)
        assert shown.stdout.startswith(f"Usage: dispatcher {' '.join(path)}".rstrip())
        cut = [line for line in shown.stdout.splitlines()[1:] if line.endswith("...")]
        assert cut == [], "descriptions cut short in the list of commands"
        assert (command.help or "").strip(), f"`dispatcher {' '.join(path)}` has no description"
        for parameter in command.params:
            if isinstance(parameter, click.Option) and not parameter.hidden:
                assert (parameter.help or "").strip(), f"{path}: {parameter.opts} has no help"
                assert parameter.opts[-1] in shown.stdout


def _large_directory(path: Path, tenants: int, agents: int) -> None:
    def tenant(i: int) -> dict[str, Any]:
        return {
            "subdomain": f"t{i:04d}",
            "api_tokens": [f"token-{i}"],
            "outbound_numbers": [{"number": "+1 628-555-0199"}],
            "agents": [
                {"id": a, "email": f"a{a}@t{i}.example", "first_name": "A", "last_name": str(a)}
                for a in range(1, agents + 1)
            ],
            "menus": [{"id": 1, "name": "Main", "type": "ivr_menu", "groups": [[1, 2]]}],
            "contacts": [{"ticket_id": str(c), "id": c} for c in (1, 2)],
        }

    path.write_bytes(orjson.dumps({"tenants": [tenant(i) for i in range(tenants)]}))


def _load_on_a_terminal(
    arguments: list[str], redis_url: str, tmp_path: Path
) -> tuple[int, str, list[str]]:
    """load-config with stderr on a terminal: exit code, stdout, and what it drew there."""
    out = tmp_path / "out.txt"
    with pseudo_terminal() as (terminal, reading), out.open("wb") as stdout:
        process = subprocess.Popen(
            [str(BIN), "load-config", *arguments],
            env={**_environment(), "REDIS_URL": redis_url},
            stdout=stdout,
            stderr=terminal,
        )
        drawn = ""
        while process.poll() is None:  # read as it comes, so the terminal never fills up
            drawn += drain(reading, 0.05)
        drawn += drain(reading)
    return process.returncode, out.read_text(), frames(drawn)


@pytest.mark.subprocess
def test_load_config_of_a_large_directory_shows_its_phases_on_a_terminal(
    redis_url: str, tmp_path: Path
) -> None:
    """2,000 tenants: a bar per phase, each at 100 %, with its rate."""
    big = tmp_path / "tenants.json"
    _large_directory(big, tenants=2000, agents=2)
    store = redis.Redis.from_url(redis_url)
    store.flushdb()
    try:
        code, out, drawn = _load_on_a_terminal([str(big)], redis_url, tmp_path)
        assert code == 0
        assert store.hlen(TENANTS) == 2000
    finally:
        store.flushdb()
        store.close()
    lines = out.splitlines()
    assert (len(lines), lines[0], lines[-1]) == (
        2000,
        "loaded t0000: 2 agents, 1 menus, 1 numbers, 2 contacts",
        "loaded t1999: 2 agents, 1 menus, 1 numbers, 2 contacts",
    )
    size = r"[\d.]+[kM]?"
    took = r"\[\d\d:\d\d<00:00, [^\]]+"
    expected = [
        rf"parse: 100%\|█+\| {size}/{size} {took}char/s\]",
        rf"validate: 100%\|█+\| 2000/2000 {took}tenant/s\]",
        rf"store: 100%\|█+\| 2000/2000 {took}tenant/s, writing\]",
    ]
    assert len(drawn) == 3, drawn
    for line, pattern in zip(drawn, expected, strict=True):
        assert re.fullmatch(pattern, line), (line, pattern)


@pytest.mark.subprocess
def test_load_config_draws_nothing_on_a_terminal_when_asked_not_to(
    redis_url: str, tmp_path: Path
) -> None:
    code, out, drawn = _load_on_a_terminal([str(DEMO_FILE), "--no-progress"], redis_url, tmp_path)
    assert (code, out, drawn) == (0, "loaded demo: 4 agents, 3 menus, 2 numbers, 3 contacts\n", [])


@pytest.mark.subprocess
def test_up_prints_where_everything_is_and_never_a_real_directory_s_tokens(
    running: tuple[int, Path, subprocess.Popen[bytes]],
) -> None:
    port, data_dir, _ = running
    base = f"http://127.0.0.1:{port}"
    printed = (data_dir / "up.log").read_text()
    lines = printed.splitlines()
    first = lines.index("dispatcher is ready; Ctrl-C (or SIGTERM) stops it")
    assert lines[first + 1 : first + 6] == [
        f"  API            {base}/apps/api/v1",
        f"  dashboard      {base}/dashboard",
        f"  agent console  {base}/agent",
        f"  API docs       {base}/docs",
        f"  health         {base}/healthz and {base}/readyz",
    ]
    assert "demo-token" not in printed  # no --simulate-agents: not the demo


def test_the_demo_banner_names_its_credentials_and_simulated_agents() -> None:
    demo = loader.read_file(DEMO_FILE)
    lines = banner("http://127.0.0.1:8080", demo).splitlines()
    assert lines[0] == "dispatcher is ready; Ctrl-C (or SIGTERM) stops it"
    assert lines[6:] == [
        "demo tenant demo: user demo, token demo-token (API, dashboard)",
        "  simulated agents (they accept each offer after ~2 s): 1, 2, 3, 4",
        "  agent console: user demo/<id> and its token (1 demo-agent-1, 2 demo-agent-2,"
        " 3 demo-agent-3, 4 demo-agent-4); the simulated agents leave that agent's menus to you"
        " until the console closes",
    ]


def test_worker_refuses_an_outdated_redis_until_migrate_renames_it(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    store = redis.Redis.from_url(redis_url)
    store.flushdb()
    store.hset("dsp:tenants", "demo", "v1")  # as an older release stored its tenant
    store.set("dsp:t:demo:directory", "{}")
    refused = CliRunner().invoke(main, ["worker"])
    assert (refused.exit_code, refused.stderr) == (
        1,
        "Error: Redis holds keys of layout 1, written by an older release; stop its processes "
        "and run `dispatcher migrate` (this release uses layout 5)\n",
    )
    migrated = CliRunner().invoke(main, ["migrate"])
    assert (migrated.exit_code, migrated.stdout) == (0, "layout 5: 1 key renamed\n")
    assert store.get("dsp:t:{demo}:directory") == b"{}"
    again = CliRunner().invoke(main, ["migrate"])
    assert (again.exit_code, again.stdout) == (0, "layout 5: 0 keys renamed\n")
    store.flushdb()
    store.close()


def test_migrate_applies_the_history_schema_to_database_url(
    redis_url: str, empty_database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    with redis.Redis.from_url(redis_url) as store:
        store.flushdb()
    without = CliRunner().invoke(main, ["migrate", "--data-dir", str(tmp_path)])
    assert (without.exit_code, without.stdout, without.stderr) == (
        0,
        f"layout {layout.CURRENT}: 0 keys renamed\n",
        "schema: no PostgreSQL to migrate (set DATABASE_URL, or point --data-dir at a running "
        "`dispatcher up`)\n",
    )
    monkeypatch.setenv("DATABASE_URL", empty_database_url)
    for _ in range(2):  # the second run finds the schema at HEAD
        migrated = CliRunner().invoke(main, ["migrate"])
        assert (migrated.exit_code, migrated.stdout) == (
            0,
            f"layout {layout.CURRENT}: 0 keys renamed\nschema {schema.HEAD}\n",
        )
    assert asyncio.run(schema.current(empty_database_url)) == schema.HEAD
    monkeypatch.setenv("DATABASE_URL", f"postgresql://dispatcher@127.0.0.1:{free_port()}/x")
    down = CliRunner().invoke(main, ["migrate"])
    assert down.exit_code == 1
    assert down.stderr.startswith("Error: PostgreSQL is unreachable: ")
    gone = urlsplit(empty_database_url).path[1:] + "_gone"
    monkeypatch.setenv("DATABASE_URL", database_in(empty_database_url, gone))
    missing = CliRunner().invoke(main, ["migrate"])
    assert (missing.exit_code, missing.stderr.splitlines()[-1]) == (
        1,
        f'Error: PostgreSQL refused: database "{gone}" does not exist',
    )


@pytest.mark.subprocess
def test_migrate_and_serve_find_the_postgres_of_a_running_up(
    running: tuple[int, Path, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    _, data_dir, _ = running
    migrated = subprocess.run(
        [str(BIN), "migrate", "--data-dir", str(data_dir)],
        env=_environment(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert (migrated.returncode, migrated.stdout) == (
        0,
        f"layout {layout.CURRENT}: 0 keys renamed\nschema {schema.HEAD}\n",
    )
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        serve = subprocess.Popen(
            [str(BIN), "serve", "--host", "127.0.0.1", "--port", str(port),
             "--data-dir", str(data_dir)],
            env=_environment(), stdout=subprocess.DEVNULL, stderr=output,
        )  # fmt: skip
        try:
            _wait_healthy(port, serve)
            ready = f"http://127.0.0.1:{port}/readyz?exclude=workers"
            with urllib.request.urlopen(ready, timeout=5) as answer:
                assert orjson.loads(answer.read())["checks"]["postgres"] == "ok"
        finally:
            serve.send_signal(signal.SIGTERM)
            assert serve.wait(timeout=30) == 0
    assert "no PostgreSQL" not in log.read_text()
