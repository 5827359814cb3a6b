"""Reading and validating a directory document, refusing it whole with path-precise errors."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import phonenumbers
import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from dispatcher.carriers import registry
from dispatcher.directory.schema import (
    CARRIERS,
    ON_TENANT,
    WEBHOOK_NETWORKS,
    DirectoryFile,
    TenantFile,
)
from dispatcher.domain.destinations import Network

Progress = Callable[[int], object]  # told how much more is done


class DirectoryError(ValueError):
    """A refused directory; `errors` lists every problem as 'path: message'."""

    def __init__(self, errors: Sequence[str]) -> None:
        super().__init__(errors[0] if errors else "invalid directory")
        self.errors = list(errors)


def read_file(path: Path, *, webhook_networks: Sequence[Network] = ()) -> DirectoryFile:
    return parse_text(
        read_text(path), yaml_allowed=is_yaml(path), webhook_networks=webhook_networks
    )


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DirectoryError([f"{path}: cannot be read ({exc})"]) from exc


def is_yaml(path: Path) -> bool:
    """A .yaml or .yml file is read as YAML, anything else as JSON."""
    return path.suffix.lower() in {".yaml", ".yml"}


# How many values a document may hold once YAML aliases are expanded: a few kilobytes of
# aliases of aliases ("billion laughs") would otherwise have pydantic walk billions of them.
# A document without aliases needs some 50 MB of text to hold this many.
MAX_VALUES = 5_000_000


def parse_text(
    text: str, *, yaml_allowed: bool = True, webhook_networks: Sequence[Network] = ()
) -> DirectoryFile:
    return validate(load(text, yaml_allowed=yaml_allowed), webhook_networks=webhook_networks)


def load(text: str, *, yaml_allowed: bool = True, on_read: Progress | None = None) -> Any:
    """The document's values, unchecked; `on_read` is told how many characters were parsed
    as the parser goes (it reads YAML in small chunks)."""
    try:
        if not yaml_allowed:
            raw = json.loads(text)
        elif on_read is None:
            raw = yaml.safe_load(text)
        else:
            raw = yaml.safe_load(_ReadCounted(text, on_read))
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise DirectoryError(
            [f"document: is not valid {'YAML' if yaml_allowed else 'JSON'}"]
        ) from exc
    except RecursionError as exc:  # both parsers recurse once per level of nesting
        raise DirectoryError(["document: is nested too deeply"]) from exc
    if on_read is not None and not yaml_allowed:
        on_read(len(text))
    return raw


class _ReadCounted(io.StringIO):
    def __init__(self, text: str, on_read: Progress) -> None:
        super().__init__(text)
        self._on_read = on_read

    def read(self, size: int | None = -1) -> str:
        chunk = super().read(size)
        self._on_read(len(chunk))
        return chunk


def tenant_count(raw: Any) -> int | None:
    """How many tenants a document holds, when it is shaped like one."""
    tenants = raw.get("tenants") if isinstance(raw, dict) else None
    return len(tenants) if isinstance(tenants, list) else None


def validate(
    raw: Any,
    *,
    on_tenant: Callable[[], object] | None = None,
    webhook_networks: Sequence[Network] = (),
) -> DirectoryFile:
    """The checked document; `on_tenant` is called as each tenant passes the schema. A
    webhook_url naming an address must name a public one, or one in `webhook_networks`
    (DISPATCHER_WEBHOOK_ALLOWED_NETWORKS); a tenant's carrier must be a registered adapter."""
    try:
        _count_values(raw, {})
    except _Unreadable as exc:
        raise DirectoryError([f"{format_path(exc.path)}: {exc.problem}"]) from exc
    except RecursionError as exc:
        raise DirectoryError(["document: is nested too deeply"]) from exc
    try:
        context = {
            ON_TENANT: on_tenant,
            WEBHOOK_NETWORKS: tuple(webhook_networks),
            CARRIERS: registry.NAMES,
        }
        document = DirectoryFile.model_validate(raw, context=context)
    except ValidationError as exc:
        raise DirectoryError([_describe(error) for error in exc.errors()]) from exc
    problems = list(_cross_references(document))
    if problems:
        raise DirectoryError(problems)
    return document


class _Unreadable(Exception):
    """What pydantic must not be given; `path` is filled in on the way out."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.path: list[int | str] = []


def _count_values(value: Any, sizes: dict[int, int]) -> int:
    """How many values `value` holds, an alias counted at every use but walked once (sizes are
    kept per shared object), so an alias bomb costs the size of its text; a document that holds
    itself counts as too many. Refuses text that is no unicode too: a lone surrogate, which YAML
    and JSON escapes can spell, breaks pydantic's messages and the stored JSON."""
    if isinstance(value, str):
        if not value.isascii() and _SURROGATES.search(value):
            raise _Unreadable("is not unicode text")
        return 1
    if not isinstance(value, dict | list):
        return 1
    if id(value) in sizes:
        return sizes[id(value)]
    sizes[id(value)] = MAX_VALUES + 1
    total = 1
    for key, child in value.items() if isinstance(value, dict) else enumerate(value):
        try:
            total += _count_values(key, sizes)
        except _Unreadable as exc:
            raise _Unreadable("has a key that is not unicode text") from exc
        try:
            total += _count_values(child, sizes)
        except _Unreadable as exc:
            exc.path.insert(0, key if isinstance(key, int | str) else str(key))
            raise
        if total > MAX_VALUES:
            raise _Unreadable(f"holds more than {MAX_VALUES} values")
    sizes[id(value)] = total
    return total


_SURROGATES = re.compile("[\ud800-\udfff]")


def format_path(loc: Sequence[int | str]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "document"


def _describe(error: ErrorDetails) -> str:
    kind = error["type"]
    if kind == "missing":
        message = "is required"
    elif kind in {"literal_error", "enum"}:
        expected = str((error.get("ctx") or {}).get("expected", ""))
        choices = expected.replace("'", "").replace(" or ", ", ")
        message = f"must be one of {choices}"
    else:
        message = error["msg"]
        message = message.removeprefix("Value error, ")
        message = message[:1].lower() + message[1:]
    return f"{format_path(error['loc'])}: {message}"


def _cross_references(document: DirectoryFile) -> Iterator[str]:
    yield from _duplicates("tenants", [t.subdomain for t in document.tenants], "subdomain")
    for i, tenant in enumerate(document.tenants):
        yield from _tenant_references(f"tenants[{i}]", tenant)


def _tenant_references(at: str, tenant: TenantFile) -> Iterator[str]:
    agent_ids = {agent.id for agent in tenant.agents}
    menu_ids = {menu.id for menu in tenant.menus}
    yield from _duplicates(f"{at}.agents", [a.id for a in tenant.agents], "id")
    yield from _duplicates(f"{at}.agents", [a.email.lower() for a in tenant.agents], "email")
    yield from _duplicates(f"{at}.menus", [m.id for m in tenant.menus], "id")
    yield from _duplicates(
        f"{at}.outbound_numbers", [n.number for n in tenant.outbound_numbers], "number"
    )
    yield from _duplicates(f"{at}.contacts", [c.ticket_id for c in tenant.contacts], "ticket_id")
    yield from _team_references(at, tenant, agent_ids)
    for j, menu in enumerate(tenant.menus):
        if menu.parent_id is not None and menu.parent_id not in menu_ids:
            yield f"{at}.menus[{j}].parent_id: unknown menu {menu.parent_id}"
        for g, group in enumerate(menu.groups):
            for k, agent_id in enumerate(group):
                if agent_id not in agent_ids:
                    yield f"{at}.menus[{j}].groups[{g}][{k}]: unknown agent {agent_id}"
    for r, region in enumerate(tenant.settings.sms_allowed_regions):
        if region not in phonenumbers.SUPPORTED_REGIONS:
            yield f"{at}.settings.sms_allowed_regions[{r}]: '{region}' is not a region code"
    default = tenant.settings.default_outbound_number
    voice_numbers = {n.number for n in tenant.outbound_numbers if n.voice}
    if default is not None and default not in voice_numbers:
        yield f"{at}.settings.default_outbound_number: is not one of the voice outbound_numbers"
    for adapter in registry.ADAPTERS.values():
        yield from adapter.settings_problems(f"{at}.settings", tenant.settings)


def _team_references(at: str, tenant: TenantFile, agent_ids: set[int]) -> Iterator[str]:
    yield from _duplicates(f"{at}.teams", [t.id for t in tenant.teams], "id")
    for t, team in enumerate(tenant.teams):
        for k, agent_id in enumerate(team.agent_ids):
            if agent_id not in agent_ids:
                yield f"{at}.teams[{t}].agent_ids[{k}]: unknown agent {agent_id}"


def _duplicates(at: str, values: Sequence[object], key: str) -> Iterator[str]:
    seen: set[object] = set()
    for index, value in enumerate(values):
        if value in seen:
            yield f"{at}[{index}].{key}: duplicate {key} {value!r}"
        seen.add(value)
