"""deploy/systemd: `systemd-analyze verify` and `systemd-analyze security` on the units.

systemd-analyze checks that ExecStart's program exists and is executable, so the units are
verified inside a throw-away root (--root): the host's own units (for the dependencies every
service gets: sysinit.target...), these units, an executable stand-in at SYSTEMD_BIN and the
example environment file. What is validated: the unit syntax and every directive's value,
the dependency graph, the instance of the worker template, ExecStart's path; and the
sandboxing's exposure score. Not validated here: that the real venv is installed there."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.files import (
    SYSTEMD,
    SYSTEMD_BIN,
    SYSTEMD_ENV_EXAMPLE,
    WORKER_INSTANCE,
    Unit,
    systemd_units,
)

ANALYZE = shutil.which("systemd-analyze")
HOST_UNITS = next((p for p in map(Path, ["/usr/lib/systemd/system", "/lib/systemd/system"])
                   if (p / "sysinit.target").is_file()), None)  # fmt: skip
needs_systemd = pytest.mark.skipif(
    ANALYZE is None or HOST_UNITS is None,
    reason="NOT VALIDATED: systemd-analyze (or the host's systemd units) is not on this "
    "machine, so deploy/systemd is only checked as text (test_unit_settings)",
)
HARDENING = {
    "DynamicUser": "yes",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "RestrictSUIDSGID": "yes",
    "CapabilityBoundingSet": "",
}
# systemd-analyze security's overall exposure, times ten (0 best, 100 worst): 1.4 when written.
EXPOSURE_THRESHOLD = 20


def _names() -> list[str]:
    names = [p.name.replace("@.", f"@{WORKER_INSTANCE}.") for p in SYSTEMD.glob("*.service")]
    return sorted(names) + [p.name for p in SYSTEMD.glob("*.target")]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert HOST_UNITS is not None
    root = tmp_path_factory.mktemp("systemd-root")
    shutil.copytree(HOST_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    units = root / "etc/systemd/system"
    units.mkdir(parents=True)
    for path in [*SYSTEMD.glob("*.service"), *SYSTEMD.glob("*.target")]:
        shutil.copy(path, units / path.name)
    program = root / SYSTEMD_BIN.lstrip("/")
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    for unit in systemd_units():
        environment = root / unit.value("Service", "EnvironmentFile").lstrip("/")
        environment.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SYSTEMD_ENV_EXAMPLE, environment)
    return root


def _analyze(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    command = [ANALYZE, *args, f"--root={root}"]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


@needs_systemd
def test_systemd_analyze_verify_finds_nothing(root: Path) -> None:
    done = _analyze(root, "verify", "--man=no", *_names())
    # It exits 0 on unknown keys or bad values (it only warns): any output is a failure.
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


@needs_systemd
def test_verify_does_check_the_program_and_the_values(root: Path) -> None:
    units = root / "etc/systemd/system"
    (units / "broken.service").write_text(
        "[Service]\nExecStart=/opt/nowhere/dispatcher serve\nProtectSystem=sometimes\n"
    )
    try:
        done = _analyze(root, "verify", "--man=no", "broken.service")
    finally:
        (units / "broken.service").unlink()
    assert "Failed to parse protect system value" in done.stderr
    assert "Command /opt/nowhere/dispatcher is not executable" in done.stderr


@needs_systemd
@pytest.mark.parametrize("unit", [n for n in _names() if n.endswith(".service")])
def test_the_sandbox_is_tight(root: Path, unit: str) -> None:
    done = _analyze(root, "security", "--offline=yes", f"--threshold={EXPOSURE_THRESHOLD}", unit)
    assert done.returncode == 0, done.stdout[-500:] + done.stderr


def test_unit_settings() -> None:
    units = {unit.path.name: unit for unit in systemd_units()}
    assert set(units) == {
        "dispatcher-migrate.service",
        "dispatcher-ingress.service",
        "dispatcher-worker@.service",
    }
    for name, unit in units.items():
        assert unit.value("Service", "KillSignal") == "SIGTERM", name
        assert unit.value("Service", "Restart") == "on-failure", name
        assert unit.value("Service", "EnvironmentFile") == "/etc/dispatcher/dispatcher.env"
        assert unit.value("Unit", "PartOf") == "dispatcher.target", name
        assert unit.value("Install", "WantedBy") == "dispatcher.target", name
        for key, value in HARDENING.items():
            assert unit.value("Service", key) == value, f"{name}: {key}"
    worker = units["dispatcher-worker@.service"]
    assert worker.value("Service", "ExecStart").endswith("worker --metrics-port %i")


def _names_in(unit: Unit, key: str) -> set[str]:
    return {name for line in unit.values("Unit", key) for name in line.split()}


def test_the_migration_runs_first_without_holding_the_api_back() -> None:
    units = {unit.path.name: unit for unit in systemd_units()}
    migrate = units.pop("dispatcher-migrate.service")
    assert migrate.value("Service", "ExecStart") == f"{SYSTEMD_BIN} migrate"
    assert migrate.value("Service", "Type") == "oneshot"
    assert migrate.value("Service", "RemainAfterExit") == "yes"  # once per start of the target
    for name, unit in units.items():
        # Wanted, not required: a migration waiting for PostgreSQL must not keep the API down.
        assert "dispatcher-migrate.service" in _names_in(unit, "Wants"), name
        assert "dispatcher-migrate.service" in _names_in(unit, "After"), name
        assert not unit.values("Unit", "Requires") and not unit.values("Unit", "BindsTo"), name
    for name, unit in {**units, migrate.path.name: migrate}.items():
        # A PostgreSQL of this machine starts before and stops after every dispatcher unit.
        assert "postgresql.service" in _names_in(unit, "Wants") & _names_in(unit, "After"), name
