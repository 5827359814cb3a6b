"""The installed ARQ is the one the workers were written against: the version pyproject.toml
admits (one minor series) and every internal workers/arq_compat.py lists, with its signature.
An ARQ upgrade that changes any of them fails here, not in a worker."""

from __future__ import annotations

import inspect
import tomllib
from importlib.metadata import version
from pathlib import Path

from arq import Worker
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from workers.arq_compat import OVERRIDDEN, USED
from workers.settings import FUNCTIONS
from workers.worker import DispatchWorker, LaneWorker

PYPROJECT = Path(__file__).parents[2] / "pyproject.toml"


def _arq_requirement() -> Requirement:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    found = [Requirement(line) for line in project["dependencies"] if line.startswith("arq")]
    assert [r.name for r in found] == ["arq"]
    return found[0]


def test_pyproject_admits_the_installed_arq_s_minor_series_only() -> None:
    installed = Version(version("arq"))
    admitted = _arq_requirement().specifier
    assert installed in admitted
    major, minor = installed.release[:2]
    assert admitted == SpecifierSet(f">={major}.{minor},<{major}.{minor + 1}")


def test_arq_s_methods_the_workers_rely_on_have_the_expected_signatures() -> None:
    methods = [internal for internal in (*OVERRIDDEN, *USED) if internal.signature]
    seen = {m.name: str(inspect.signature(getattr(Worker, m.name))) for m in methods}
    assert seen == {m.name: m.signature for m in methods}


async def test_arq_s_attributes_the_workers_rely_on_are_set_by_its_constructor() -> None:
    worker = Worker(FUNCTIONS, handle_signals=False)
    attributes = [internal.name for internal in USED if not internal.signature]
    assert [name for name in attributes if name not in vars(worker)] == []


def test_every_method_of_arq_the_workers_override_is_listed_with_its_reason() -> None:
    overridden = {
        name
        for cls in (DispatchWorker, LaneWorker)
        for name in vars(cls)
        if hasattr(Worker, name) and not name.startswith("__")
    }
    assert overridden == {internal.name for internal in OVERRIDDEN}
    assert all(internal.why for internal in (*OVERRIDDEN, *USED))
