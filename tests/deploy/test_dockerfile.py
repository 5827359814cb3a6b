"""deploy/Dockerfile, parsed (no Docker engine here to build it): what it copies exists and
gets past .dockerignore, the runtime stage has no compilers and runs the installed
`dispatcher` script as a user that is not root."""

from __future__ import annotations

import json
import shlex
import tomllib
from functools import cache
from typing import Any

from dockerfile_parse import DockerfileParser

from tests.deploy.files import DOCKERFILE, DOCKERIGNORE, ROOT

BUILD_TOOLS = ("build-essential", "gcc", "g++", "make", "python3-dev", "libc6-dev")


@cache
def _instructions() -> tuple[dict[str, Any], ...]:
    parser = DockerfileParser(path=str(DOCKERFILE))
    return tuple(parser.structure)


def _stages() -> list[list[dict[str, Any]]]:
    stages: list[list[dict[str, Any]]] = []
    for instruction in _instructions():
        if instruction["instruction"] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def _of(stage: list[dict[str, Any]], name: str) -> list[str]:
    return [i["value"] for i in stage if i["instruction"] == name]


def test_two_stages_on_a_slim_python_3_12() -> None:
    builder, runtime = _stages()
    assert _of(builder, "FROM") == ["${PYTHON_IMAGE} AS wheels"]
    assert _of(runtime, "FROM") == ["${PYTHON_IMAGE}"]
    (default,) = [i["value"] for i in _instructions() if i["instruction"] == "ARG"]
    assert default.startswith("PYTHON_IMAGE=python:3.12-slim")


def test_what_is_copied_exists_and_is_not_ignored() -> None:
    allowed = {line[1:] for line in DOCKERIGNORE.read_text().splitlines() if line.startswith("!")}
    assert "*" in DOCKERIGNORE.read_text().splitlines()  # everything else stays out
    copied: list[str] = []
    for instruction in _instructions():
        if instruction["instruction"] == "COPY":
            *sources, _ = shlex.split(instruction["value"])
            assert not [s for s in sources if s.startswith("--")], "COPY --from: use a mount"
            copied += sources
    assert copied
    for source in copied:
        assert (ROOT / source).exists(), source
        assert source in allowed, f"{source} is excluded by .dockerignore"
    assert set(copied) == allowed  # and nothing is let in that the build does not use


def test_the_project_metadata_it_builds_from_is_copied() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    builder, _ = _stages()
    sources = {source for copy in _of(builder, "COPY") for source in shlex.split(copy)[:-1]}
    assert {"pyproject.toml", project["readme"]} <= sources
    packages = {name.rstrip("*") for name in setuptools["packages"]["find"]["include"]}
    assert packages <= sources


def test_wheels_are_built_first_and_installed_offline_without_build_tools() -> None:
    builder, runtime = _stages()
    assert any("pip wheel" in run and "--wheel-dir /wheels" in run for run in _of(builder, "RUN"))
    (install,) = _of(runtime, "RUN")
    assert "--mount=type=bind,from=wheels,source=/wheels" in install
    assert "pip install --no-cache-dir --no-index --find-links /wheels dispatcher" in install
    for run in _of(runtime, "RUN"):
        assert not [tool for tool in BUILD_TOOLS if tool in run.split()], run
        assert "apt-get install" not in run
    assert _of(runtime, "COPY") == []  # nothing from the build context but through the wheels


def test_it_runs_the_installed_dispatcher_script_as_a_non_root_user() -> None:
    _, runtime = _stages()
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert json.loads(_of(runtime, "ENTRYPOINT")[-1]) == ["dispatcher"]
    assert "dispatcher" in scripts
    assert json.loads(_of(runtime, "CMD")[-1]) == ["serve"]
    user = _of(runtime, "USER")[-1]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0
    assert f"--uid {uid}" in _of(runtime, "RUN")[0]


def test_it_listens_on_all_addresses_and_has_no_healthcheck_by_design() -> None:
    _, runtime = _stages()
    env = " ".join(_of(runtime, "ENV"))
    assert "DISPATCHER_HOST=0.0.0.0" in env
    assert _of(runtime, "EXPOSE") == ["8080 9100"]
    assert _of(runtime, "HEALTHCHECK") == ["NONE"]


def test_every_data_file_the_code_reads_goes_into_the_wheel() -> None:
    """The image holds only what the wheel holds: a file under dispatcher/ or workers/ that is
    not Python must be declared package data, or the container fails where `make run` works."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    declared = {
        path
        for package, globs in setuptools["package-data"].items()
        for glob in globs
        for path in (ROOT / package.replace(".", "/")).glob(glob)
    }
    data = {
        path
        for top in ("dispatcher", "workers")
        for path in (ROOT / top).rglob("*")
        if path.is_file() and path.suffix not in {".py", ".pyc"} and "__pycache__" not in path.parts
    }
    assert sorted(p.relative_to(ROOT) for p in data - declared) == []
    assert data  # the Lua scripts at least
