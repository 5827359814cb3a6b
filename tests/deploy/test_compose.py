"""deploy/docker-compose.yml: valid against the Compose Specification's JSON schema (as shipped
by check-jsonschema, Apache-2.0, from github.com/compose-spec/compose-spec), and laid out as
the README says. `docker compose config` runs too where a Compose plugin is installed."""

from __future__ import annotations

import copy
import importlib.resources
import json
import re
import shutil
import subprocess
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import check_jsonschema.builtin_schemas.vendor as vendored
import jsonschema
import pytest

from tests.deploy.files import (
    COMPOSE_FILE,
    DEPLOY,
    HAPROXY_FILE,
    compose,
    dispatcher_services,
    interpolate,
)


@cache
def _validator() -> jsonschema.protocols.Validator:
    schema = json.loads((importlib.resources.files(vendored) / "compose-spec.json").read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator: jsonschema.protocols.Validator = validator_class(schema)
    return validator


def _errors(document: dict[str, Any]) -> list[str]:
    errors = _validator().iter_errors(document)
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]


def test_the_file_is_valid_against_the_compose_specification() -> None:
    assert _errors(compose()) == []


def test_the_schema_check_catches_a_wrong_field() -> None:
    broken = copy.deepcopy(compose())
    broken["services"]["worker"]["deploy"]["replica"] = 3
    assert _errors(broken) == [
        "services.worker.deploy: 'replica' does not match any of the regexes: '^x-'"
    ]


def _compose_command() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    docker = shutil.which("docker")
    if docker is None:
        return None
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
    return [docker, "compose"] if probe.returncode == 0 else None


@pytest.mark.skipif(
    _compose_command() is None,
    reason="NOT RUN: no Docker Compose (neither `docker compose` nor `docker-compose`) on this "
    "machine; the file is checked against the Compose JSON schema instead",
)
def test_docker_compose_config_accepts_the_file() -> None:
    command = _compose_command()
    assert command is not None
    done = subprocess.run(
        [*command, "-f", str(COMPOSE_FILE), "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_redis_keeps_an_append_only_file_on_a_volume() -> None:
    redis = compose()["services"]["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    (volume,) = redis["volumes"]
    name, path = volume.split(":")
    assert path == "/data" and name in compose()["volumes"]
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def test_postgres_keeps_its_data_on_a_volume_and_is_probed_over_tcp() -> None:
    postgres = compose()["services"]["postgres"]
    image = re.fullmatch(r"postgres:(\d+)\.(\d+)-\w+", postgres["image"])
    assert image, "pin a minor release, as the other images are"
    assert int(image[1]) == 16  # >= 14 (issue 17); 18 moved the data directory
    (volume,) = postgres["volumes"]
    name, path = volume.split(":")
    assert path == "/var/lib/postgresql/data" and name in compose()["volumes"]
    probe = postgres["healthcheck"]["test"]
    assert probe[:2] == ["CMD", "pg_isready"]
    assert probe[probe.index("--host") + 1] == "127.0.0.1"  # not the init server's socket


def test_dispatcher_logs_in_to_postgres_as_the_server_is_set_up() -> None:
    server = compose()["services"]["postgres"]["environment"]
    for name, service in dispatcher_services().items():
        url = urlsplit(interpolate(service["environment"]["DATABASE_URL"]))
        assert (url.scheme, url.hostname, url.port) == ("postgresql", "postgres", 5432), name
        assert (url.username, url.path) == (server["POSTGRES_USER"], "/" + server["POSTGRES_DB"])
        assert url.password == interpolate(server["POSTGRES_PASSWORD"]), name


def test_without_a_postgres_password_compose_refuses_to_start() -> None:
    """An unset POSTGRES_PASSWORD is an error, not an empty password: the image refuses an
    empty one, and a volume made with one password does not answer to another."""
    server = compose()["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"]
    url = compose()["x-dispatcher"]["environment"]["DATABASE_URL"]
    for value in (server, url):
        assert "${POSTGRES_PASSWORD:?" in value
        with pytest.raises(ValueError, match="^POSTGRES_PASSWORD: see deploy/README.md$"):
            interpolate(value, shell={})


def test_two_ingress_and_three_workers_and_one_shot_steps() -> None:
    services = dispatcher_services()
    assert set(services) == {"ingress", "worker", "migrate", "load-config"}
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["restart"] == "no"
    assert services["ingress"]["deploy"]["replicas"] == 2
    assert services["worker"]["deploy"]["replicas"] == 3
    load = services["load-config"]
    assert load["restart"] == "no"
    command, path = load["command"]
    (mount,) = load["volumes"]
    source, target, mode = mount.split(":")
    assert (command, target, mode) == ("load-config", path, "ro")
    assert (DEPLOY / source).resolve() == DEPLOY / "demo.yaml"


def test_start_order_waits_for_health_the_migration_and_the_load() -> None:
    services = compose()["services"]
    conditions = {
        name: {dep: c["condition"] for dep, c in service.get("depends_on", {}).items()}
        for name, service in services.items()
    }
    stores = {"redis": "service_healthy", "postgres": "service_healthy"}
    migrated = {**stores, "migrate": "service_completed_successfully"}
    assert conditions == {
        "redis": {},
        "postgres": {},
        "migrate": stores,
        "load-config": {"redis": "service_healthy", "migrate": "service_completed_successfully"},
        "ingress": {**migrated, "load-config": "service_completed_successfully"},
        "worker": migrated,
        "lb": {"ingress": "service_healthy"},
    }
    for name in ("redis", "postgres", "ingress", "worker"):
        assert services[name]["healthcheck"]["test"][0] == "CMD", name


def test_healthchecks_probe_the_ports_the_processes_listen_on() -> None:
    services = dispatcher_services()
    ingress_port = services["ingress"]["command"][-1]
    worker_args = services["worker"]["command"]
    worker_port = worker_args[worker_args.index("--metrics-port") + 1]
    for name, port in (("ingress", ingress_port), ("worker", worker_port)):
        check = services[name]["healthcheck"]["test"][-1]
        assert f"http://127.0.0.1:{port}/healthz" in check, name
        assert services[name]["expose"] == [port]


def test_the_balancer_sends_to_every_ingress_that_is_ready() -> None:
    config = HAPROXY_FILE.read_text()
    (template,) = re.findall(r"server-template (\S+) (\d+) (\S+):(\d+) ", config)
    prefix, count, host, port = template
    ingress = dispatcher_services()["ingress"]
    assert (host, port, int(count)) == ("ingress", ingress["command"][-1], 2)
    assert "option httpchk GET /readyz?exclude=workers" in config
    assert compose()["services"]["lb"]["ports"] == ["127.0.0.1:8080:8080"]
    assert re.search(r"^frontend \w+\n    bind :8080$", config, re.M)
