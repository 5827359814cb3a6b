"""The tour's requests give the answers the tour shows, against a real `dispatcher up`.

Every ```sh block of docs/tour.md that holds a `curl` and is followed at once by a block whose
first line is a status line (`HTTP/1.1 201 Created`) is a step: the steps run in order, as curl
would send them, against one fresh `dispatcher up` with the demo directory (deploy/demo.yaml)
and `DISPATCHER_ADMIN_TOKEN=admin-token`. The README's five-request tour is the same steps,
word for word (checked below), so it is covered by this run. docs/api.md's examples with answers
(a batch, a campaign) run the same way, against a server of their own.

How an answer is compared (the rule docs/tour.md states at its top):

- The status line must be the same, exactly.
- Each header line shown must be in the answer with that value; headers not shown are not
  checked. In a header value, `...` stands for any text.
- The body is compared as JSON, structurally, where the tour's text may cut it down with `...`:
  an object with `...` among its members has other members, an object without `...` has exactly
  the members shown; an array with `...` among its elements has other elements there (`[...]` is
  any array), an array without has exactly the elements shown; a string with `...` in it stands
  for any text there. Members are in the order shown. Values are equal with their JSON types
  (`20.0` is not `20`, `1` is not `true`).
- A timestamp (`2026-11-21T08:19:28.101Z`) stands for the run's own time: any timestamp matches
  it, but the same timestamp anywhere in the tour must be one time of the run (a call's
  `created_at` in its `POST` and in a later read), and a time a request names (`scheduled_at`)
  must come back as that time.
- Ids are not exempt: a fresh run draws the same ids, so they must be the tour's.
- `http://127.0.0.1:8080` stands for the address of the server under test.

What the workers do is made deterministic, not tolerated: before each request the test waits
until no job of the workers is due (they have done all they do at once: an outbound call is
dialled, `connecting`), no simulated agents run (no call is accepted), and the demo tenant's
simulated end user answers after an hour (a dialled call stays `connecting`), so nothing that
waits for a time happens during the tour. The manager step loads deploy/demo.yaml itself,
unchanged."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from markdown_it import MarkdownIt
from redis.asyncio import Redis
from yarl import URL

from dispatcher.domain import clock
from dispatcher.redis_connection import redis_client
from dispatcher.redis_embedded import URL_FILE
from dispatcher.store.jobs import QUEUE_NAME, WEBHOOK_QUEUE_NAME
from dispatcher.store.keys import TenantKeys
from tests.conftest import basic
from tests.polling import eventually
from tests.up import dispatcher_up

pytestmark = pytest.mark.subprocess  # a real dispatcher up per file

ROOT = Path(__file__).resolve().parent.parent
TOUR = ROOT / "docs" / "tour.md"
README = ROOT / "README.md"
API_MD = ROOT / "docs" / "api.md"
TOUR_BASE = "http://127.0.0.1:8080"
ADMIN_TOKEN = "admin-token"
PARSER = MarkdownIt("commonmark")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
REQUEST_TIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z")
ELLIPSIS = "..."
QUEUES = (QUEUE_NAME, WEBHOOK_QUEUE_NAME)


@dataclass(frozen=True)
class Step:
    where: str  # file:line of the request
    command: str
    answer: str


@dataclass(frozen=True)
class Tour:
    variables: dict[str, str]
    steps: list[Step]


def read_tour(path: Path) -> Tour:
    """The shell variables (`API=...` blocks) and the curl steps of a Markdown file."""
    fences = [tok for tok in PARSER.parse(path.read_text(encoding="utf-8")) if tok.type == "fence"]
    variables: dict[str, str] = {}
    steps = []
    for block, after in zip(fences, [*fences[1:], None], strict=True):
        if block.info.strip() != "sh":
            continue
        if "curl" not in block.content:
            for name, value in re.findall(r"^([A-Z_]+)=(\S+)$", block.content, re.M):
                variables[name] = value
            continue
        if after is None or not after.content.startswith("HTTP/"):
            continue
        assert block.map is not None and after.map is not None
        if after.map[0] != block.map[1]:
            continue  # not the block right after the request
        where = f"{path.relative_to(ROOT)}:{block.map[0] + 1}"
        steps.append(Step(where, block.content, after.content))
    return Tour(variables, steps)


# -- the request: a curl command line, as curl would send it --------------------------------


@dataclass
class Request:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None


def curl_request(command: str, variables: dict[str, str]) -> Request:
    """The request of a `curl` command line of the tour (the options the tour uses)."""
    text = command.replace("\\\n", " ")
    for name, value in variables.items():
        text = text.replace(f"${name}", value)
    words = shlex.split(text)
    assert words.pop(0) == "curl", command
    request = Request("", "")
    while words:
        word = words.pop(0)
        if word in ("-i", "-s", "-g"):  # headers shown, silent, no globbing: nothing to send
            continue
        if word.startswith("-"):
            _option(request, word, words.pop(0) if words else "")
        else:
            request.url = word
    request.method = request.method or ("POST" if request.body is not None else "GET")
    if request.body is not None:
        request.headers.setdefault("Content-Type", "application/x-www-form-urlencoded")  # curl's
    return request


def _option(request: Request, option: str, value: str) -> None:
    if option == "-u":
        user, _, password = value.partition(":")
        request.headers.update(basic(user, password))
    elif option == "-H":
        name, _, header = value.partition(":")
        request.headers[name.strip()] = header.strip()
    elif option == "-X":
        request.method = value
    elif option == "-d":
        request.body = value.encode()
    elif option == "--data-binary":
        request.body = (ROOT / value[1:]).read_bytes() if value.startswith("@") else value.encode()
    else:
        raise AssertionError(f"the tour uses a curl option this test does not know: {option}")


def named_times(request: Request) -> set[str]:
    """The times a request names, as an answer writes them (milliseconds and Z)."""
    text = (request.body or b"").decode()
    return {f"{m[1]}{(m[2] or '.000')[:4].ljust(4, '0')}Z" for m in REQUEST_TIME.finditer(text)}


# -- the tour's answer: JSON cut down with "..." --------------------------------------------


@dataclass(frozen=True)
class Cut:
    """An object or array of the tour with `...` among its parts (`open`) or without."""

    items: list[Any]  # (key, pattern) pairs of an object; patterns and ELLIPSIS of an array
    open: bool


class CutObject(Cut):
    pass


class CutArray(Cut):
    pass


class _Reader:
    """JSON in which `...` may stand for members of an object or elements of an array."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0
        self.decoder = json.JSONDecoder()

    def skip(self) -> None:
        while self.at < len(self.text) and self.text[self.at].isspace():
            self.at += 1

    def peek(self, token: str) -> bool:
        self.skip()
        return self.text.startswith(token, self.at)

    def take(self, token: str) -> None:
        assert self.peek(token), f"expected {token!r} at {self.text[self.at : self.at + 30]!r}"
        self.at += len(token)

    def value(self) -> Any:
        if self.peek("{"):
            return self.read_object()
        if self.peek("["):
            return self.read_array()
        found, self.at = self.decoder.raw_decode(self.text, self.at)
        return found

    def parts(self, close: str, part: Any) -> tuple[list[Any], bool]:
        items: list[Any] = []
        cut = False
        while not self.peek(close):
            if self.peek(ELLIPSIS):
                self.take(ELLIPSIS)
                items.append(ELLIPSIS)
                cut = True
            else:
                items.append(part())
            if not self.peek(close):
                self.take(",")
        self.take(close)
        return items, cut

    def member(self) -> tuple[str, Any]:
        self.skip()
        key, self.at = self.decoder.raw_decode(self.text, self.at)
        self.take(":")
        return str(key), self.value()

    def read_object(self) -> CutObject:
        self.take("{")
        items, cut = self.parts("}", self.member)
        return CutObject([item for item in items if item != ELLIPSIS], cut)

    def read_array(self) -> CutArray:
        self.take("[")
        items, cut = self.parts("]", self.value)
        return CutArray(items, cut)


def cut_json(text: str) -> Any:
    reader = _Reader(text)
    found = reader.value()
    reader.skip()
    assert reader.at == len(reader.text), f"text after the body: {reader.text[reader.at :]!r}"
    return found


@dataclass
class Matching:
    """A comparison: the times the requests named so far, the tour's timestamps bound to the
    run's (both kept from answer to answer), and the problems found."""

    named_times: set[str] = field(default_factory=set)
    times: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def match_string(self, path: str, shown: str, got: object) -> None:
        if not isinstance(got, str):
            self.problems.append(f"{path}: {got!r} is not a string")
        elif TIMESTAMP.fullmatch(shown) and shown not in self.named_times:
            if not TIMESTAMP.fullmatch(got):
                self.problems.append(f"{path}: {got!r} is not a timestamp")
            elif self.times.setdefault(shown, got) != got:
                self.problems.append(f"{path}: {got!r}, another time than {self.times[shown]!r}")
        elif ELLIPSIS in shown:
            pattern = ".*".join(re.escape(part) for part in shown.split(ELLIPSIS))
            if not re.fullmatch(pattern, got, re.S):
                self.problems.append(f"{path}: {got!r} is not {shown!r}")
        elif shown != got:
            self.problems.append(f"{path}: {got!r}, the tour shows {shown!r}")

    def match_object(self, path: str, shown: CutObject, got: object) -> None:
        if not isinstance(got, dict):
            self.problems.append(f"{path}: {got!r} is not an object")
            return
        keys = [key for key, _ in shown.items]
        missing = [key for key in keys if key not in got]
        if missing:
            self.problems.append(f"{path}: no {', '.join(missing)}")
        if not shown.open and (extra := [key for key in got if key not in keys]):
            self.problems.append(f"{path}: members the tour does not show: {', '.join(extra)}")
        if [key for key in got if key in keys] != [key for key in keys if key in got]:
            self.problems.append(f"{path}: members not in the order shown: {list(got)}")
        for key, pattern in shown.items:
            if key in got:
                self.value(f"{path}.{key}", pattern, got[key])

    def match_array(self, path: str, shown: CutArray, got: object) -> None:
        if not isinstance(got, list):
            self.problems.append(f"{path}: {got!r} is not an array")
        elif not shown.open and len(got) != len(shown.items):
            self.problems.append(f"{path}: {len(got)} elements, the tour shows {len(shown.items)}")
        elif not shown.open:
            for index, (pattern, element) in enumerate(zip(shown.items, got, strict=True)):
                self.value(f"{path}[{index}]", pattern, element)
        elif not self.elements(path, shown.items, got, 0):
            self.problems.append(f"{path}: {len(got)} elements, none in place of the tour's")

    def elements(self, path: str, shown: list[Any], got: list[Any], index: int) -> bool:
        """Whether `got` (from `index` in the answer) matches the elements `shown`, `...`
        standing for any run of elements; the first match found keeps its time bindings."""
        if not shown:
            return not got
        if shown[0] == ELLIPSIS:
            return any(
                self.elements(path, shown[1:], got[skip:], index + skip)
                for skip in range(len(got) + 1)
            )
        if not got:
            return False
        trial = Matching(self.named_times, dict(self.times))
        trial.value(f"{path}[{index}]", shown[0], got[0])
        if trial.problems or not trial.elements(path, shown[1:], got[1:], index + 1):
            return False
        self.times.update(trial.times)
        return True

    def value(self, path: str, shown: Any, got: object) -> None:
        if isinstance(shown, CutObject):
            self.match_object(path, shown, got)
        elif isinstance(shown, CutArray):
            self.match_array(path, shown, got)
        elif isinstance(shown, str):
            self.match_string(path, shown, got)
        elif type(shown) is not type(got) or shown != got:
            self.problems.append(f"{path}: {got!r}, the tour shows {shown!r}")


def header_problems(shown: list[str], got: aiohttp.ClientResponse, base: str) -> list[str]:
    problems = []
    for line in shown:
        name, _, value = line.partition(":")
        value = value.strip().replace(TOUR_BASE, base)
        pattern = ".*".join(re.escape(part) for part in value.split(ELLIPSIS))
        actual = got.headers.get(name)
        if actual is None or not re.fullmatch(pattern, actual):
            problems.append(f"header {name}: {actual!r}, the tour shows {value!r}")
    return problems


def answer_problems(
    answer: str, got: aiohttp.ClientResponse, body: bytes, base: str, matching: Matching
) -> list[str]:
    status, *rest = answer.splitlines()
    assert got.version is not None
    line = f"HTTP/{got.version.major}.{got.version.minor} {got.status} {got.reason}"
    problems = [] if line == status else [f"status {line!r}, the tour shows {status!r}"]
    starts = [i for i, text in enumerate(rest) if text.startswith(("{", "["))]
    headers, shown = (rest[: starts[0]], "\n".join(rest[starts[0] :])) if starts else (rest, "")
    problems += header_problems(headers, got, base)
    if not shown:
        return problems + ([f"a body the tour does not show: {body[:80]!r}"] if body else [])
    matching.problems = []
    matching.value("body", cut_json(shown.replace(TOUR_BASE, base)), json.loads(body))
    return problems + matching.problems


async def run_step(
    session: aiohttp.ClientSession,
    step: Step,
    variables: dict[str, str],
    base: str,
    matching: Matching,
) -> list[str]:
    request = curl_request(step.command.replace(TOUR_BASE, base), variables)
    matching.named_times |= named_times(request)
    async with session.request(
        request.method,
        URL(request.url, encoded=True),  # as curl sends it (with -g, brackets and all)
        headers=request.headers,
        data=request.body,
    ) as got:
        body = await got.read()
        problems = answer_problems(step.answer, got, body, base, matching)
    return [f"{step.where}: {problem}" for problem in problems]


def slow_answering_demo() -> dict[str, Any]:
    """deploy/demo.yaml with its simulated end users answering after an hour."""
    document: dict[str, Any] = yaml.safe_load((ROOT / "deploy" / "demo.yaml").read_text())
    for tenant in document["tenants"]:
        settings = tenant.setdefault("settings", {})
        settings["simulator"] = {**settings.get("simulator", {}), "answer_after_s": 3600}
    return document


async def settle(redis: Redis, timeout_s: float = 60) -> None:
    """Returns once no job of the workers is due: each job stays in its ARQ queue until it has
    run, so every job due now has run, and every job it queued that was due at once too."""

    async def idle() -> bool:
        now_ms = clock.to_ms(clock.now())
        return not any([await redis.zcount(queue, "-inf", now_ms) for queue in QUEUES])

    await eventually(idle, "the workers to have no job due", timeout_s)


@pytest.mark.parametrize("doc", [TOUR, API_MD], ids=lambda path: path.name)
async def test_the_tour_answers_as_it_shows(tmp_path: Path, doc: Path) -> None:
    """Each file's steps against a server of its own; api.md's examples use the tour's `$API`."""
    tour = read_tour(doc)
    known = {**read_tour(TOUR).variables, **tour.variables}
    # Ended records are archived at the worker's next tick (the tour ends none: its last
    # check moves them itself).
    env = {"DISPATCHER_ADMIN_TOKEN": ADMIN_TOKEN, "DISPATCHER_HOT_RETENTION_S": "0"}
    problems: list[str] = []
    matching = Matching()  # one for the whole tour: a timestamp is one time throughout
    async with (
        dispatcher_up(tmp_path, slow_answering_demo(), env) as (base, _),
        aiohttp.ClientSession() as session,
    ):
        redis = redis_client((tmp_path / "data" / URL_FILE).read_text())
        variables = {name: value.replace(TOUR_BASE, base) for name, value in known.items()}
        try:
            for step in tour.steps:
                await settle(redis)
                problems += await run_step(session, step, variables, base, matching)
            if doc == TOUR:
                await settle(redis)
                problems += await archived_problems(session, base, redis)
        finally:
            await redis.aclose()
    assert not problems, "\n".join(problems)


async def archived_problems(session: aiohttp.ClientSession, base: str, redis: Redis) -> list[str]:
    """The tour's calls and chats, moved to PostgreSQL by the server's own worker (put in the
    ended sets as they are: the tour ends none, and the move does not ask why a record is
    there), read back byte for byte as before: each object, its flags, and the lists."""
    api = f"{base}/apps/api/v1"
    lists = [f"{api}/calls?per=100", f"{api}/chats?per=100"]
    before = {path: await _get(session, path) for path in lists}
    paths = [
        *(f"{api}/calls/{call['id']}" for call in json.loads(before[lists[0]])),
        *(f"{api}/calls/{call['id']}/customer_flag" for call in json.loads(before[lists[0]])),
        *(f"{api}/chats/{chat['id']}" for chat in json.loads(before[lists[1]])),
    ]
    before |= {path: await _get(session, path) for path in paths}
    tenant = TenantKeys("demo")
    for kind, records in (("call", lists[0]), ("chat", lists[1])):
        members = {f"{record['id']:015d}": 0 for record in json.loads(before[records])}
        await redis.zadd(tenant.ended(kind), members)

    async def moved() -> bool:
        return not any([await redis.zcard(tenant.ended(kind)) for kind in ("call", "chat")])

    await eventually(moved, "the worker to archive the tour's records", 30)
    owned = [
        key
        for call in json.loads(before[lists[0]])
        for key in (tenant.call(call["id"]), tenant.call_history(call["id"]))
    ]
    owned += [tenant.chat(chat["id"]) for chat in json.loads(before[lists[1]])]
    left = [key for key in owned if await redis.exists(key)]
    problems = [f"left in Redis after archiving: {key!r}" for key in left]
    for path, answer in before.items():
        again = await _get(session, path)
        if again != answer:
            problems.append(f"{path} once archived: {again!r}, before: {answer!r}")
    return problems


async def _get(session: aiohttp.ClientSession, url: str) -> bytes:
    async with session.get(url, headers=basic()) as got:
        assert got.status == 200, url
        return await got.read()


def test_the_tour_has_its_steps() -> None:
    tour = read_tour(TOUR)
    assert tour.variables == {"API": f"{TOUR_BASE}/apps/api/v1"}
    assert len(read_tour(API_MD).steps) == 4  # a batch, a campaign, a DNC add and check
    assert len(tour.steps) == 25


def test_the_readme_tour_is_the_tours() -> None:
    """The README's requests (its five-request tour, and the calls that must not be placed)
    are the tour's, answers included, so the tour test runs them; their ids are the tour's
    run's (its inbound call is call 4), as the README says."""
    readme, tour = read_tour(README), read_tour(TOUR)
    assert readme.variables == tour.variables
    assert len(readme.steps) == 9
    shown = {(step.command, step.answer) for step in tour.steps}
    assert [s.where for s in readme.steps if (s.command, s.answer) not in shown] == []


# -- the comparison itself --------------------------------------------------------------------


def problems_of(shown: str, got: object, request_body: str = "") -> list[str]:
    matching = Matching(named_times(Request("POST", "", body=request_body.encode())))
    matching.value("body", cut_json(shown), got)
    return matching.problems


def test_an_object_without_dots_is_exact() -> None:
    assert problems_of('{"a":1,"b":[true]}', {"a": 1, "b": [True]}) == []
    assert problems_of('{"a":1}', {"a": 1, "b": 2}) == ["body: members the tour does not show: b"]
    assert problems_of('{"a":1,"b":2}', {"b": 2, "a": 1}) == [
        "body: members not in the order shown: ['b', 'a']"
    ]
    assert problems_of('{"a":1}', {"a": True}) == ["body.a: True, the tour shows 1"]
    assert problems_of('{"a":20.0}', {"a": 20}) == ["body.a: 20, the tour shows 20.0"]


def test_dots_stand_for_members_elements_and_text() -> None:
    got = {"id": 4, "lang": "en", "list": [1, 2, 3], "url": "https://x/avatar.jpg"}
    assert problems_of('{"id":4,...,"list":[1,...],"url":"https://...jpg"}', got) == []
    assert problems_of('{...,"list":[...,3]}', got) == []
    assert problems_of('{"id":5,...}', got) == ["body.id: 4, the tour shows 5"]
    assert problems_of('{"id":4,"nope":1,...}', got) == ["body: no nope"]
    assert problems_of('{...,"list":[1,...,4]}', got) == [
        "body.list: 3 elements, none in place of the tour's"
    ]
    assert problems_of('{...,"list":[1,2]}', got) == ["body.list: 3 elements, the tour shows 2"]
    assert problems_of('{...,"list":[1,5,3]}', got) == ["body.list[1]: 2, the tour shows 5"]


def test_timestamps_stand_for_the_runs_times() -> None:
    shown = '{"a":"2026-11-21T08:19:28.101Z","b":"2026-11-21T08:19:28.101Z"}'
    same = {"a": "2026-12-01T10:00:00.000Z", "b": "2026-12-01T10:00:00.000Z"}
    assert problems_of(shown, same) == []
    assert problems_of(shown, {**same, "b": "2026-12-01T10:00:00.001Z"}) == [
        "body.b: '2026-12-01T10:00:00.001Z', another time than '2026-12-01T10:00:00.000Z'"
    ]
    assert problems_of('{"a":"2026-11-21T08:19:28.101Z"}', {"a": None}) == [
        "body.a: None is not a string"
    ]
    named = '{"scheduled_at": "2030-06-03T17:00:00Z"}'
    shown = '{"scheduled_at":"2030-06-03T17:00:00.000Z"}'
    assert problems_of(shown, {"scheduled_at": "2030-06-03T17:00:00.000Z"}, named) == []
    assert problems_of(shown, {"scheduled_at": "2030-06-03T18:00:00.000Z"}, named) == [
        "body.scheduled_at: '2030-06-03T18:00:00.000Z', the tour shows '2030-06-03T17:00:00.000Z'"
    ]


def test_curl_command_lines_become_requests() -> None:
    api = {"API": "http://h:1/apps/api/v1"}
    request = curl_request(
        "curl -i -u demo:demo-token -H 'Content-Type: application/json' -X PATCH \\\n"
        "  $API/calls/4/customer_flag -d '{\"bad_actor\": true}'\n",
        api,
    )
    assert request == Request(
        "PATCH",
        "http://h:1/apps/api/v1/calls/4/customer_flag",
        {**basic("demo", "demo-token"), "Content-Type": "application/json"},
        b'{"bad_actor": true}',
    )
    assert curl_request('curl -i -g "$API/calls?a[b]=1"', api).method == "GET"
    with pytest.raises(AssertionError, match="--compressed"):
        curl_request("curl --compressed http://h:1/", api)
