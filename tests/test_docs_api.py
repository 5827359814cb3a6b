"""docs/api.md against the code: its route table is the router's routes, every route the docs
name exists, and its tables of values and lists of fields are the code's enums and objects."""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any, get_args

import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token

from dispatcher.app import create_app
from dispatcher.directory.schema import Agent, Menu
from dispatcher.domain import call_requests, objects
from dispatcher.domain.campaigns import CampaignState
from dispatcher.domain.errors import DispatchError
from dispatcher.domain.statuses import (
    CALL_TYPE_ALIASES,
    CHAT_TYPE_ALIASES,
    AgentStatus,
    CallStatus,
    ChatStatus,
    FailReason,
)
from dispatcher.http import openapi
from dispatcher.http.agents import agent_view
from dispatcher.settings import Settings
from dispatcher.store import desks
from tests.conftest import demo_document

ROOT = Path(__file__).resolve().parent.parent
API_MD = ROOT / "docs" / "api.md"
PARSER = MarkdownIt("commonmark").enable("table")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
API_PREFIX = "/apps/api/v1"
# The Markdown the route check reads: the docs and the front page (their code spans that name
# a route must name one the service has).
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])


@cache
def tokens(path: Path) -> list[Token]:
    return PARSER.parse(path.read_text(encoding="utf-8"))


def spans(cell: Token) -> list[str]:
    return [child.content for child in cell.children or [] if child.type == "code_inline"]


def table_after(heading: str, index: int = 0) -> list[list[list[str]]]:
    """The rows of the `index`-th table under `heading` of api.md, each cell as its code spans."""
    toks = tokens(API_MD)
    start = next(
        i
        for i, tok in enumerate(toks)
        if tok.type == "heading_open" and toks[i + 1].content == heading
    )
    tables = 0
    rows: list[list[list[str]]] = []
    in_body = False
    for tok in toks[start + 2 :]:
        if tok.type == "heading_open":
            break
        if tok.type == "tbody_open":
            in_body = tables == index
        elif tok.type == "tbody_close":
            if in_body:
                return rows
            tables += 1
        elif in_body and tok.type == "tr_open":
            rows.append([])
        elif in_body and tok.type == "inline":
            rows[-1].append(spans(tok))
    raise AssertionError(f"no table {index} under {heading!r} in docs/api.md")


def first_column(heading: str, index: int = 0) -> list[str]:
    return [value for row in table_after(heading, index) for value in row[0]]


def row_values(heading: str, field: str) -> list[str]:
    """The values of the row whose first cell is `field` as written (its code spans)."""
    toks = tokens(API_MD)
    for i, tok in enumerate(toks):
        if tok.type == "td_open" and toks[i + 1].content == field:
            return spans(toks[i + 4])
    raise AssertionError(f"no row {field!r} under {heading!r}")


def listed(start: str, end: str) -> list[str]:
    """The code spans of api.md's text from `start` to the next `end` (spaces normalised)."""
    text = " ".join(API_MD.read_text(encoding="utf-8").split())
    found = re.search(re.escape(start) + "(.*?)" + re.escape(end), text)
    assert found, f"docs/api.md no longer says {start!r} ... {end!r}"
    return re.findall(r"`([^`]+)`", found[1])


# -- routes ------------------------------------------------------------------------------------


def router_routes() -> set[tuple[str, str]]:
    app = create_app(Settings())
    return {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }


def route_table() -> list[tuple[str, str]]:
    table = []
    for row in table_after("Every route"):
        method, _, path = row[0][0].partition(" ")
        table.append((method, path))
    return table


def test_the_route_table_is_the_router() -> None:
    table = route_table()
    assert len(table) == len(set(table)), "a route is listed twice"
    routes = router_routes()
    unlisted, unknown = sorted(routes - set(table)), sorted(set(table) - routes)
    assert not unlisted, f"routes docs/api.md does not list: {unlisted}"
    assert not unknown, f"routes docs/api.md lists that do not exist: {unknown}"


def test_every_operation_of_the_openapi_document_is_in_the_table() -> None:
    document = openapi.document()
    operations = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method.upper() in METHODS
    }
    unlisted = sorted(operations - set(route_table()))
    assert not unlisted, f"operations of openapi.yaml docs/api.md does not list: {unlisted}"


def roots(routes: set[tuple[str, str]]) -> set[str]:
    """The first segments of the routes' paths, and of their paths under /apps/api/v1: a bare
    path in a code span is read as a route when it starts like one (`/calls`, `/metrics`), not
    when it is a file or a fragment (`/usr/bin/chromium`, `/events`)."""
    paths = {path for _, path in routes}
    paths |= {path.removeprefix(API_PREFIX) for path in paths if path.startswith(API_PREFIX)}
    return {path.split("/")[1] for path in paths}


def named_routes(path: Path, routes: set[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """(method or "", path, where) of each code span of `path` naming a route: `POST /calls`,
    `GET /calls/:id`, a bare `/calls/{id}/customer_flag`, and a lone `PUT` before one
    (`PUT` / `GET /x`: the method applies to the path after it)."""
    found = []
    starts = roots(routes)
    for tok in tokens(path):
        pending: list[str] = []
        for child in tok.children or []:
            if child.type != "code_inline":
                continue
            text = child.content.strip()
            if text in METHODS:
                pending.append(text)
                continue
            method, _, rest = text.partition(" ")
            if method in METHODS and rest.startswith(("/", ".../")):
                route = rest
            elif re.fullmatch(r"/[\w/{}:.\-]*", text) and text.split("/")[1] in starts:
                method, route = "", text
            else:
                pending = []
                continue
            where = f"{path.relative_to(ROOT)}:{(tok.map or [0])[0] + 1}: `{text}`"
            found += [(m, route, where) for m in [*pending, method]]
            pending = []
    return found


def resolves(method: str, route: str, routes: set[tuple[str, str]]) -> bool:
    """Whether a route the docs name exists: `:id` is `{id}`, a query or `[?...]` is left out,
    `...` and a path the router only has under /apps/api/v1 are that prefix's (api.md's
    shorthand), a path ending in `...` is a family of routes, and with no method any method
    will do."""
    route = re.sub(r"\[?\?.*$", "", route)
    route = re.sub(r":(\w+)", r"{\1}", route)
    family = route.endswith("...")
    route = route.removesuffix("...").replace(".../", f"{API_PREFIX}/", 1)
    for candidate in (route, API_PREFIX + route):
        for known_method, known in routes:
            if method not in ("", known_method):
                continue
            if known == candidate or (family and known.startswith(candidate)):
                return True
            if not method and known.startswith(candidate.rstrip("/") + "/"):
                return True  # a bare prefix, such as /apps/api/v1
    return False


@pytest.mark.parametrize("path", DOCS, ids=lambda path: path.name)
def test_every_route_the_docs_name_exists(path: Path) -> None:
    routes = router_routes()
    named = named_routes(path, routes)
    unknown = [where for method, route, where in named if not resolves(method, route, routes)]
    assert not unknown, "routes named that do not exist:\n" + "\n".join(unknown)


def test_named_routes_are_read_as_the_docs_mean() -> None:
    routes = {("GET", "/apps/api/v1/calls/{id}"), ("PUT", "/manager/api/v1/config")}
    assert resolves("GET", "/calls/:id", routes)
    assert resolves("GET", "/apps/api/v1/calls/{id}?x=1", routes)
    assert resolves("", "/apps/api/v1", routes)
    assert resolves("PUT", "/manager/api/v1/config", routes)
    assert not resolves("POST", "/calls/{id}", routes)
    assert not resolves("GET", "/calls", routes)
    assert not resolves("GET", "/manager/api/v1/config", routes)


# -- values ------------------------------------------------------------------------------------


def test_call_statuses() -> None:
    assert sorted(first_column("Call statuses")) == sorted(CallStatus)


def test_chat_statuses() -> None:
    assert sorted(first_column("Chat statuses")) == sorted(ChatStatus)


def test_fail_reasons() -> None:
    assert sorted(first_column("Fail reasons")) == sorted(FailReason)


def test_call_and_chat_types() -> None:
    for index, aliases in ((0, CALL_TYPE_ALIASES), (1, CHAT_TYPE_ALIASES)):
        shown = {}
        for name, older in table_after("Call and chat types", index):
            shown.update({alias: name[0] for alias in [*name, *older]})
        assert shown == aliases


def test_recording_permissions() -> None:
    rows = table_after("Recording permission")
    assert {given[0]: stored[0] for given, stored in rows} == call_requests.RECORDING_PERMISSIONS


def test_the_other_values() -> None:
    heading = "Agents, offers, participants and campaigns"
    assert row_values(heading, "agent `status`") == list(AgentStatus)
    routing = get_args(Menu.model_fields["routing"].annotation)
    assert row_values(heading, "`offer_type`") == [*routing, "routing", "null"]
    for participant in (objects.CallParticipant, objects.ChatParticipant):
        assert row_values(heading, "participant `type`") == list(
            get_args(participant.model_fields["type"].annotation)
        )
    assert row_values(heading, "campaign `state`") == list(CampaignState)
    assert row_values(heading, "`pending_action` (a `202`)") == [
        call_requests.SELECT_OUTBOUND_NUMBER,
        call_requests.SELECT_END_USER_NUMBER,
    ]
    assert row_values(heading, "`answer_type`") == [
        objects.CallObject.model_fields["answer_type"].default
    ]


def source_literals(pattern: str, suffix: str = "py") -> set[str]:
    found: set[str] = set()
    for folder in ("dispatcher", "workers"):
        for source in (ROOT / folder).rglob(f"*.{suffix}"):
            found.update(re.findall(pattern, source.read_text(encoding="utf-8")))
    return found


def test_values_the_code_spells_as_literals() -> None:
    heading = "Agents, offers, participants and campaigns"
    disconnected = row_values(heading, "`disconnected_by`")
    assert set(disconnected) - {"POST /calls/{id}/finish"} == source_literals(
        r'"(disconnected_by_\w+)"'
    )
    events = source_literals(r'_event\(\s*"(\w+)"')
    events |= source_literals(r'\{"event":"(\w+)"', "lua")  # what the scripts publish
    events.add(desks.SUPERSEDED)
    assert sorted(row_values(heading, "agent event stream")) == sorted(events)


# -- objects -----------------------------------------------------------------------------------


def fields_of(model: type[Any]) -> list[str]:
    return list(model.model_fields)


def always_present(model: type[Any]) -> list[str]:
    """The platform's fields: all but the keys this product adds where they apply."""
    return [name for name, field in model.model_fields.items() if field.exclude_if is None]


def test_the_objects_fields() -> None:
    call = listed("Every field is always present, `null` where unknown:", ". Ids are")
    assert call == always_present(objects.CallObject)
    added = listed("](#calls-that-must-not-be-placed) carries", ", left out")
    assert added == [name for name in fields_of(objects.CallObject) if name not in call]
    assert listed("A participant of a call has", ".") == fields_of(objects.CallParticipant)
    assert listed("The chat object has", "; its") == fields_of(objects.ChatObject)
    assert listed("A participant of a chat has", ".") == fields_of(objects.ChatParticipant)
    chat_agent = set(fields_of(objects.ChatAgentInfo)) - set(fields_of(objects.AgentInfo))
    assert listed("its `agent_info` also carries the agent's", ".") == sorted(chat_agent)
    agent = Agent.model_validate(demo_document()["tenants"][0]["agents"][0])
    shown = listed("The agent object (", "(the voice calls")
    assert shown[shown.index("id") :] == list(agent_view(agent, {}))


def test_the_openapi_documents_enums_are_the_codes() -> None:
    """openapi.yaml is documentation too: its lists of values are the code's."""
    schemas = openapi.document()["components"]["schemas"]

    def enum(name: str, *path: str) -> list[Any]:
        node = schemas[name]
        for part in path:
            node = node["properties"][part] if part != "items" else node["items"]
        return list(node["enum"])

    assert enum("CallStatus") == list(CallStatus)
    assert enum("ChatStatus") == list(ChatStatus)
    assert enum("FailReason") == list(FailReason)
    assert enum("AgentStatus") == list(AgentStatus)
    assert sorted(enum("CallTypeName")) == sorted(CALL_TYPE_ALIASES)
    assert sorted(enum("ChatTypeName")) == sorted(CHAT_TYPE_ALIASES)
    assert enum("RecordingPermission") == [*call_requests.RECORDING_PERMISSIONS, None]
    call = schemas["Call"]["properties"]
    assert call["recording_permission"]["enum"] == list(
        call_requests.RECORDING_PERMISSIONS.values()
    )
    routing = get_args(Menu.model_fields["routing"].annotation)
    assert call["offer_type"]["enum"] == [*routing, None]
    assert enum("Campaign", "state") == list(CampaignState)
    assert enum("PendingCall", "pending_action") == [
        call_requests.SELECT_OUTBOUND_NUMBER,
        call_requests.SELECT_END_USER_NUMBER,
    ]
    for participant in ("CallParticipant", "ChatParticipant"):
        assert enum(participant, "type") == list(
            get_args(objects.CallParticipant.model_fields["type"].annotation)
        )


OBJECT_SCHEMAS = {
    "Call": objects.CallObject,
    "CallParticipant": objects.CallParticipant,
    "Chat": objects.ChatObject,
    "ChatParticipant": objects.ChatParticipant,
    "AgentInfo": objects.AgentInfo,
    "ChatAgentInfo": objects.ChatAgentInfo,
    "EndUser": objects.EndUser,
    "OfferEvent": objects.OfferEvent,
    "SelectedMenu": objects.SelectedMenu,
    "MenuPath": objects.MenuPathInfo,
    "CustomerFlags": objects.CustomerFlags,
}


def members(name: str) -> tuple[list[str], list[str]]:
    """A schema's properties and required members, through `allOf` and `$ref`."""
    schema = openapi.document()["components"]["schemas"][name]
    properties, required = [], []
    for part in schema.get("allOf", [schema]):
        if "$ref" in part:
            inherited = members(part["$ref"].rsplit("/", 1)[1])
            properties += inherited[0]
            required += inherited[1]
        else:
            properties += list(part["properties"])
            required += part.get("required", [])
    return properties, required


@pytest.mark.parametrize("name", sorted(OBJECT_SCHEMAS))
def test_the_openapi_documents_objects_are_the_codes(name: str) -> None:
    model = OBJECT_SCHEMAS[name]
    assert members(name) == (fields_of(model), always_present(model))


def test_the_openapi_documents_agent_is_the_codes() -> None:
    schema = openapi.document()["components"]["schemas"]["Agent"]
    agent = Agent.model_validate(demo_document()["tenants"][0]["agents"][0])
    assert list(schema["properties"]) == list(agent_view(agent, {}))


# -- error messages ----------------------------------------------------------------------------


def error_kinds() -> set[str]:
    kinds, found = [DispatchError], set()
    while kinds:
        kind = kinds.pop()
        found.add(kind.__name__)
        kinds += kind.__subclasses__()
    return found


def message_pattern(argument: ast.expr, module: Any) -> str | None:
    """A regex of the message an error is raised with: a constant, a module's constant, or an
    f-string whose module-level parts are filled in and whose other parts match any short text;
    None for a message held in a local name (a parameter: its callers' constants count)."""
    if isinstance(argument, ast.Constant):
        return re.escape(str(argument.value))
    if isinstance(argument, ast.Name):
        value = getattr(module, argument.id, None)
        return re.escape(value) if isinstance(value, str) else None
    if isinstance(argument, ast.Attribute):  # another module's constant (twilio.SIGNATURE_MISSING)
        value = eval(ast.unparse(argument), vars(module))
        return re.escape(value) if isinstance(value, str) else None
    assert isinstance(argument, ast.JoinedStr), ast.unparse(argument)
    parts = []
    for part in argument.values:
        if isinstance(part, ast.Constant):
            parts.append(re.escape(str(part.value)))
            continue
        assert isinstance(part, ast.FormattedValue)
        spec = ast.unparse(part.format_spec)[2:-1] if part.format_spec else ""
        try:
            parts.append(re.escape(format(eval(ast.unparse(part.value), vars(module)), spec)))
        except NameError:
            parts.append(".{1,40}?")
    return "".join(parts)


def error_messages() -> Iterator[tuple[str, str]]:
    """(where, pattern) of each error the API's handlers and checks raise with a message."""
    kinds = error_kinds()
    for folder in ("domain", "http", "carriers"):
        for source in sorted((ROOT / "dispatcher" / folder).glob("*.py")):
            module = importlib.import_module(f"dispatcher.{folder}.{source.stem}")
            for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                    continue
                if node.func.id in kinds and node.args:
                    pattern = message_pattern(node.args[0], module)
                    if pattern is not None:
                        yield f"{source.relative_to(ROOT)}:{node.lineno}", pattern


def test_every_error_message_is_in_the_docs() -> None:
    """Each message the service can answer with is written somewhere in docs/ (most in
    api.md), so a client can look up any answer it gets."""
    text = " ".join(" ".join(doc.read_text(encoding="utf-8") for doc in DOCS).split())
    messages = list(error_messages())
    assert len(messages) > 100
    missing = [f"{where}: {pattern}" for where, pattern in messages if not re.search(pattern, text)]
    assert not missing, "messages no doc names:\n" + "\n".join(missing)
