"""Cross-checks that catch drift between the deploy files and the code: the variables they set
are settings, the commands they run exist, their probes are routes, and every orchestrator
waits long enough after SIGTERM for the graceful stop."""

from __future__ import annotations

from typing import Any

import click
import pytest
from aiohttp import web

from dispatcher.app import create_app, create_worker_app
from dispatcher.cli import main
from dispatcher.metrics import Metrics
from dispatcher.settings import Settings
from tests.deploy.files import (
    HAPROXY_FILE,
    K8S_ENV_FILE,
    PENDING_FROM_OPS_METRICS,
    PENDING_FROM_PGBASE,
    SHUTDOWN_MARGIN_S,
    SYSTEMD_BIN,
    SYSTEMD_ENV_EXAMPLE,
    dispatcher_commands,
    dispatcher_services,
    env_file,
    env_file_set,
    interpolate,
    k8s_base_files,
    k8s_containers,
    k8s_raw_documents,
    load_yaml_documents,
    one_shot,
    pod_specs,
    seconds,
    settings_variables,
    systemd_units,
    variables_set,
)

# The roles every deploy flavour runs, by the dispatcher command that runs them.
API, WORKER, MIGRATE = "serve", "worker", "migrate"
FLAVOURS = ["compose", "kubernetes", "systemd"]

GRACE = "DISPATCHER_SHUTDOWN_GRACE_S"


def _pending_variables() -> set[str]:
    ops_metrics = {f"DISPATCHER_{name.upper()}" for name in PENDING_FROM_OPS_METRICS["settings"]}
    return ops_metrics | PENDING_FROM_PGBASE


def test_names_wait_for_the_postgres_code_only_until_it_is_here() -> None:
    """Once Settings reads DATABASE_URL, every PostgreSQL setting the files use is checked
    against it: a name the code spells differently then fails the test above."""
    if "DATABASE_URL" in settings_variables():
        assert PENDING_FROM_PGBASE == set(), "empty PENDING_FROM_PGBASE in tests/deploy/files.py"


def test_every_variable_the_deploy_files_set_is_a_setting() -> None:
    known = settings_variables() | _pending_variables()
    unknown = [(where, name) for where, name in variables_set() if name not in known]
    assert unknown == []


def test_the_variable_check_sees_each_kind_of_file() -> None:
    places = {where.split(":")[0].split(" ")[0] for where, _ in variables_set()}
    assert places == {
        "docker-compose.yml",
        "k8s",
        "dispatcher.env",
        "dispatcher.env.example",
        "Dockerfile",
    }


def _options(command: click.Command) -> set[str]:
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}


def test_every_command_the_deploy_files_run_exists_with_its_flags() -> None:
    commands = dispatcher_commands()
    assert {where.split(" ")[0].split(":")[0] for where, _ in commands} >= {
        "docker-compose.yml",
        "k8s",
        "dispatcher-ingress.service",
        "dispatcher-worker@.service",
        "deploy/README.md",
    }
    for where, (name, *args) in commands:
        assert isinstance(main, click.Group)
        command = main.commands.get(name)
        assert command is not None, f"{where}: no command `dispatcher {name}`"
        for flag in (arg.split("=")[0] for arg in args if arg.startswith("--")):
            if f"{name} {flag}" in PENDING_FROM_OPS_METRICS["flags"]:
                continue
            assert flag in _options(command), f"{where}: `dispatcher {name}` has no {flag}"


def test_probed_paths_are_routes_of_the_app() -> None:
    settings = Settings(redis_url="redis://unused:6379/0")
    routes = _paths(create_app(settings)) | PENDING_FROM_OPS_METRICS["routes"]
    worker_app = create_worker_app(settings, Metrics())
    worker_routes = _paths(worker_app) | PENDING_FROM_OPS_METRICS["worker routes"]
    assert {"/healthz", "/readyz", "/metrics"} <= routes & worker_routes
    probed: list[tuple[str, str, set[str]]] = []
    for name, container in k8s_containers(k8s_raw_documents()):
        for kind in ("readinessProbe", "livenessProbe"):
            if kind not in container:  # the one-shot Jobs
                continue
            path = container[kind]["httpGet"]["path"].split("?")[0]
            on_worker = container["args"][0] == "worker"
            probed.append((f"{name} {kind}", path, worker_routes if on_worker else routes))
    for name, service in dispatcher_services().items():
        if "healthcheck" in service:
            url = service["healthcheck"]["test"][-1].split("'")[1]
            path = "/" + url.split("/", 3)[3]
            on_worker = service["command"][0] == "worker"
            probed.append((f"compose {name}", path, worker_routes if on_worker else routes))
    for line in HAPROXY_FILE.read_text().splitlines():
        if "option httpchk" in line:
            probed.append(("haproxy", line.split()[-1].split("?")[0], routes))
    assert len(probed) == 7
    assert [(where, path) for where, path, known in probed if path not in known] == []


def _paths(app: web.Application) -> set[str]:
    return {resource.canonical for resource in app.router.resources()}


def _grace(environment: dict[str, Any]) -> float:
    return float(environment.get(GRACE, Settings.model_fields["shutdown_grace_s"].default))


def test_orchestrators_wait_longer_than_the_graceful_stop() -> None:
    k8s_grace = _grace(env_file(K8S_ENV_FILE))
    for name, spec in pod_specs(k8s_raw_documents()):
        if one_shot(name):
            continue
        (container,) = spec["containers"]
        pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {})
        pause = float(pre_stop["command"][1]) if pre_stop else 0.0
        needed = pause + k8s_grace + SHUTDOWN_MARGIN_S
        assert spec["terminationGracePeriodSeconds"] >= needed, name
    for name, service in dispatcher_services().items():
        if not one_shot(name):
            needed = _grace(service["environment"]) + SHUTDOWN_MARGIN_S
            assert seconds(service["stop_grace_period"]) >= needed, name
            assert service["stop_signal"] == "SIGTERM"
    systemd_grace = _grace(env_file(SYSTEMD_ENV_EXAMPLE))
    for unit in systemd_units():
        if one_shot(unit.path.name):
            continue
        timeout = float(unit.value("Service", "TimeoutStopSec"))
        assert timeout >= systemd_grace + SHUTDOWN_MARGIN_S, unit.path.name


def test_the_grace_is_the_same_everywhere() -> None:
    graces = {
        "k8s": _grace(env_file(K8S_ENV_FILE)),
        "systemd": _grace(env_file(SYSTEMD_ENV_EXAMPLE)),
        **{f"compose {n}": _grace(s["environment"]) for n, s in dispatcher_services().items()},
    }
    assert set(graces.values()) == {Settings.model_fields["shutdown_grace_s"].default}, graces


@pytest.mark.parametrize("path", [K8S_ENV_FILE, SYSTEMD_ENV_EXAMPLE])
def test_env_files_hold_valid_settings(path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in settings_variables():
        monkeypatch.delenv(name, raising=False)
    for name, value in env_file_set(path).items():
        monkeypatch.setenv(name, value)
    Settings()  # raises when a value is not valid


def test_compose_environment_holds_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in settings_variables():
        monkeypatch.delenv(name, raising=False)
    for service in dispatcher_services().values():
        for name, value in service["environment"].items():
            monkeypatch.setenv(name, interpolate(str(value)))
        Settings()


def _roles(flavour: str) -> dict[str, tuple[str, set[str]]]:
    """(where, the variables it is given) of each dispatcher command a deploy flavour runs,
    by command (`serve`, `worker`, `migrate`, `load-config`)."""
    found: dict[str, tuple[str, set[str]]] = {}
    if flavour == "compose":
        for name, service in dispatcher_services().items():
            found[service["command"][0]] = (name, set(service["environment"]))
    elif flavour == "kubernetes":
        config_map = set(env_file_set(K8S_ENV_FILE))  # every container's envFrom
        for name, container in k8s_containers(k8s_raw_documents()):
            given = config_map | {e["name"] for e in container.get("env", [])}
            found[container["args"][0]] = (name, given)
    else:
        environment_file = set(env_file_set(SYSTEMD_ENV_EXAMPLE))  # every unit's EnvironmentFile
        for unit in systemd_units():
            binary, command, *_ = unit.value("Service", "ExecStart").split()
            assert binary == SYSTEMD_BIN
            found[command] = (unit.path.name, environment_file)
    return found


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_every_flavour_gives_the_api_and_the_workers_database_url(flavour: str) -> None:
    roles = _roles(flavour)
    for command in (API, WORKER, MIGRATE):
        assert command in roles, f"{flavour}: nothing runs `dispatcher {command}`"
        where, given = roles[command]
        assert "DATABASE_URL" in given, f"{flavour} {where}"


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_every_flavour_migrates_before_the_api_and_the_workers_start(flavour: str) -> None:
    roles = _roles(flavour)
    migrate, _ = roles[MIGRATE]
    for command in (API, WORKER):
        where, _ = roles[command]
        if flavour == "compose":
            waits_for = dispatcher_services()[where]["depends_on"]
            assert waits_for[migrate] == {"condition": "service_completed_successfully"}, where
        elif flavour == "systemd":
            (unit,) = [u for u in systemd_units() if u.path.name == where]
            assert migrate in " ".join(unit.values("Unit", "After")).split(), where
    if flavour == "kubernetes":  # kustomize orders nothing: a Job that `apply -k` creates
        base = [doc for path in k8s_base_files() for doc in load_yaml_documents(path)]
        assert migrate in {d["metadata"]["name"] for d in base if d["kind"] == "Job"}
