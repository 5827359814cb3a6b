"""The deploy files as data: what each sets, runs and probes, for the checks in tests/deploy."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from dispatcher.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
HAPROXY_FILE = DEPLOY / "compose" / "haproxy.cfg"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
K8S = DEPLOY / "k8s"
K8S_BASE = K8S / "base"
K8S_OVERLAYS = sorted(path.parent for path in (K8S / "overlays").glob("*/kustomization.yaml"))
K8S_SECRET_EXAMPLE = K8S_BASE / "secret.example.yaml"
K8S_ENV_FILE = K8S_BASE / "dispatcher.env"
REDIS_VALUES = K8S / "redis" / "values.yaml"
POSTGRES_CLUSTER = K8S / "postgres" / "cluster.yaml"
ADAPTER_VALUES = K8S / "prometheus-adapter" / "values.yaml"
SYSTEMD = DEPLOY / "systemd"
SYSTEMD_ENV_EXAMPLE = SYSTEMD / "dispatcher.env.example"
DEPLOY_README = DEPLOY / "README.md"

# The Kubernetes version the manifests are validated against (kubernetes-validate's schemas).
K8S_VERSION = "1.32.0"
# The installed `dispatcher` script the systemd units run (a venv at /opt/dispatcher).
SYSTEMD_BIN = "/opt/dispatcher/bin/dispatcher"
# The instance the worker template is checked with: its metrics port.
WORKER_INSTANCE = "9101"
# What a process needs past DISPATCHER_SHUTDOWN_GRACE_S before SIGKILL may come: a worker
# waits up to 5 s for the jobs it hands back (workers/settings.py, _drain), `serve --workers`
# gives its siblings the grace + 5 s (dispatcher/cli.py, _stop_siblings); then closing.
SHUTDOWN_MARGIN_S = 10
# The commands that run once and exit, before the API and the workers (or beside them): no
# graceful stop to wait for, no probes.
ONE_SHOTS = {"migrate", "load-config"}

# Names the deploy files used before branch ops-metrics (interfaces.md) was merged here, to be
# checked once it was: empty since that merge, so every name is checked against the real code.
PENDING_FROM_OPS_METRICS: dict[str, set[str]] = {
    "settings": set(),
    "flags": set(),
    "routes": set(),
    "worker routes": set(),
}
# The settings of the PostgreSQL history store (issue 17) the deploy files set, written while
# that code was on branch pgbase: taken as known until Settings reads DATABASE_URL. From then
# on this set must be empty (test_consistency), so every name is checked against the code.
PENDING_FROM_PGBASE: set[str] = set()
# What the variables docker-compose.yml interpolates hold in the checks: one value for each
# (POSTGRES_PASSWORD as `openssl rand -hex 32` makes it; the admin token left unset).
COMPOSE_SHELL = {"POSTGRES_PASSWORD": "5f0e" * 16}
_INTERPOLATION = r"\$\{(?P<name>\w+)(?:(?P<operator>:-|:\?)(?P<operand>[^}]*))?\}"


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def compose() -> dict[str, Any]:
    document: dict[str, Any] = load_yaml(COMPOSE_FILE)
    return document


def dispatcher_services() -> dict[str, dict[str, Any]]:
    """The compose services that run the dispatcher image (the others: the stores, the balancer)."""
    image = compose()["x-dispatcher"]["image"]
    return {name: s for name, s in compose()["services"].items() if s.get("image") == image}


def interpolate(value: str, shell: Mapping[str, str] = COMPOSE_SHELL) -> str:
    """A compose value with its `${NAME}`, `${NAME:-default}` and `${NAME:?message}` replaced
    as Compose replaces them from the shell (or .env); a required variable unset raises."""

    def replace(match: re.Match[str]) -> str:
        name, operator, operand = match["name"], match["operator"], match["operand"]
        given = shell.get(name, "")
        if given or operator is None:
            return given
        if operator == ":?":
            raise ValueError(f"{name}: {operand}")
        return operand

    return re.sub(_INTERPOLATION, replace, value)


def env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; commented-out assignments count too (they document settings)."""
    pairs = (re.match(r"#?([A-Z][A-Z0-9_]*)=(.*)", line.strip()) for line in _lines(path))
    return {match[1]: match[2] for match in pairs if match}


def env_file_set(path: Path) -> dict[str, str]:
    """The assignments of an environment file that are in force (not commented out)."""
    pairs = (re.match(r"([A-Z][A-Z0-9_]*)=(.*)", line.strip()) for line in _lines(path))
    return {match[1]: match[2] for match in pairs if match}


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def k8s_base_files() -> list[Path]:
    kustomization = load_yaml(K8S_BASE / "kustomization.yaml")
    return [K8S_BASE / name for name in kustomization["resources"]]


def k8s_raw_documents() -> list[dict[str, Any]]:
    """Every manifest as written (before kustomize): the base's resources, the example Secrets
    and the PostgreSQL Cluster (applied on its own)."""
    paths = [*k8s_base_files(), K8S_SECRET_EXAMPLE, POSTGRES_CLUSTER]
    return [doc for path in paths for doc in load_yaml_documents(path)]


def kubectl() -> str | None:
    return shutil.which("kubectl")


@cache
def kustomize(directory: Path) -> tuple[dict[str, Any], ...]:
    """`kubectl kustomize DIR`: the manifests as they would be applied."""
    binary = kubectl()
    assert binary is not None
    done = subprocess.run(
        [binary, "kustomize", str(directory)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def one_shot(workload: str) -> bool:
    """Whether a Deployment, Job, compose service or unit by that name runs one of ONE_SHOTS."""
    return workload.removeprefix("dispatcher-").removesuffix(".service") in ONE_SHOTS


def pod_specs(documents: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(workload name, pod spec) of every Deployment and Job."""
    for doc in documents:
        if doc["kind"] in {"Deployment", "Job"}:
            yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]


def k8s_containers(documents: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, spec in pod_specs(documents):
        for container in spec["containers"]:
            yield name, container


@dataclass(frozen=True)
class Unit:
    path: Path
    sections: dict[str, dict[str, list[str]]]

    def values(self, section: str, key: str) -> list[str]:
        return self.sections.get(section, {}).get(key, [])

    def value(self, section: str, key: str) -> str:
        values = self.values(section, key)
        assert len(values) == 1, f"{self.path.name}: [{section}] {key}= {values}"
        return values[0]


def systemd_units() -> list[Unit]:
    return [_parse_unit(path) for path in sorted(SYSTEMD.glob("*.service"))]


def _parse_unit(path: Path) -> Unit:
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in _lines(path):
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return Unit(path, sections)


def dispatcher_commands() -> list[tuple[str, list[str]]]:
    """(where, arguments after `dispatcher`) of every dispatcher command the deploy files run."""
    found: list[tuple[str, list[str]]] = []
    for name, service in dispatcher_services().items():
        found.append((f"docker-compose.yml: {name}", list(service["command"])))
    for name, container in k8s_containers(k8s_raw_documents()):
        found.append((f"k8s {name}", list(container["args"])))
    for unit in systemd_units():
        binary, *args = shlex.split(unit.value("Service", "ExecStart"))
        assert binary == SYSTEMD_BIN, f"{unit.path.name}: ExecStart runs {binary}"
        found.append((unit.path.name, [arg.replace("%i", WORKER_INSTANCE) for arg in args]))
    for words in readme_commands():
        while words and ("=" in words[0] or words[0] == "sudo"):
            words = words[1:]  # VAR=value and sudo before the command
        if words and words[0] in {"dispatcher", SYSTEMD_BIN}:
            found.append(("deploy/README.md", words[1:]))
    return found


def readme_commands() -> list[list[str]]:
    """The shell commands of deploy/README.md's ```sh blocks, as words (comments dropped)."""
    commands: list[list[str]] = []
    block = re.findall(r"```sh\n(.*?)```", DEPLOY_README.read_text(), re.S)
    for line in "\n".join(block).replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words:
            commands.append(words)
    return commands


def settings_variables() -> set[str]:
    """The environment variables dispatcher.settings.Settings reads."""
    names: set[str] = set()
    for field, info in Settings.model_fields.items():
        choices = getattr(info.validation_alias, "choices", None)
        names.update(map(str, choices) if choices else {f"DISPATCHER_{field.upper()}"})
    return names


def variables_set() -> list[tuple[str, str]]:
    """(where, name) of every DISPATCHER_* / REDIS_* variable, and DATABASE_URL, the deploy
    files set."""
    found: list[tuple[str, str]] = []
    for name, service in dispatcher_services().items():
        found += [(f"docker-compose.yml: {name}", key) for key in service["environment"]]
    for name, container in k8s_containers(k8s_raw_documents()):
        found += [(f"k8s {name}", env["name"]) for env in container.get("env", [])]
    found += [(K8S_ENV_FILE.name, key) for key in env_file(K8S_ENV_FILE)]
    found += [(SYSTEMD_ENV_EXAMPLE.name, key) for key in env_file(SYSTEMD_ENV_EXAMPLE)]
    for unit in systemd_units():
        for assignment in unit.values("Service", "Environment"):
            found += [(unit.path.name, word.split("=")[0]) for word in shlex.split(assignment)]
    dockerfile_env = re.findall(r"\b((?:DISPATCHER|REDIS)_[A-Z0-9_]+)=", DOCKERFILE.read_text())
    found += [("Dockerfile", name) for name in dockerfile_env]
    return [(where, name) for where, name in found if _is_dispatchers(name)]


def _is_dispatchers(variable: str) -> bool:
    return variable.startswith(("DISPATCHER_", "REDIS_")) or variable == "DATABASE_URL"


def seconds(duration: str) -> float:
    """A compose duration ("30s", "1m30s") in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(number) * units[unit] for number, unit in parts)
