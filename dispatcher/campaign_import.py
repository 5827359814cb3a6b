"""`dispatcher campaign import FILE.csv --campaign NAME`: a CSV of callbacks into a campaign,
through the HTTP API in batches of 1,000 (a few in flight), with a progress bar, a summary and
the failed rows written beside the file. Running it again creates nothing twice: each row's
client_token is derived from the campaign and the row (see `client_token`). A batch over the
API's body limit (413) is sent again in halves, down to the row too large alone, which fails."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import click

from dispatcher import progress
from dispatcher.client.options import api_options

T = TypeVar("T")
COLUMNS = ("end_user_number", "scheduled_at", "menu_id", "lang", "ticket_id")
REQUIRED = ("end_user_number", "scheduled_at")
ERROR_COLUMNS = ("row", *COLUMNS, "status", "message")
EXIT_ROWS_FAILED = 1
EXIT_INTERRUPTED = 3
RETRIED = {429, 503}  # over the rate limit, or the storage briefly away: wait and send again
MAX_WAITS = 120  # per batch, at Retry-After each (about two minutes of 1 s waits)
REQUEST_TIMEOUT_S = 120
# A longer field fails its row unsent (the csv module's own default limit; no field of a call
# comes near it). The csv module is let read fields up to READ_LIMIT_CHARS, so that such a row
# still ends where it should and the rows after it are read; a field longer still (an unclosed
# quote, most likely) stops the import before anything is sent: the rows after it cannot be
# told apart.
MAX_FIELD_CHARS = 131_072
READ_LIMIT_CHARS = 1_048_576


class Interrupted(Exception):
    """The API could not be reached, or refused the import as a whole."""


class Unreadable(Interrupted):
    """The file cannot be read on past a line (a field over READ_LIMIT_CHARS, not UTF-8)."""


@dataclass(frozen=True)
class Row:
    number: int  # as a spreadsheet numbers it: the header is row 1
    values: dict[str, str]
    token: str
    problem: str | None = None  # why the row is not sent at all; None: it is

    def item(self) -> dict[str, str]:
        """The row as a call joining the campaign (a scheduled call on its menu by default)."""
        item = {name: self.values[name] for name in REQUIRED}
        item.update({name: self.values[name] for name in COLUMNS if self.values[name]})
        item["client_token"] = self.token
        return item


@dataclass
class Tally:
    created: int = 0
    existed: int = 0
    failed: list[tuple[Row, int | None, str]] = field(default_factory=list)  # None: not sent

    def count(self, rows: list[Row], answer: dict[str, Any]) -> None:
        for row, result in zip(rows, answer["results"], strict=True):
            if result["status"] >= 300:
                self.failed.append((row, result["status"], result["body"].get("message", "")))
            elif result["replayed"]:
                self.existed += 1
            else:
                self.created += 1


def client_token(campaign_id: int, values: dict[str, str], occurrence: int) -> str:
    """The same row of the same file into the same campaign gives the same token, wherever it
    stands in the file (rows added, removed or reordered between runs create no duplicate);
    rows identical in every column are told apart by their occurrence (1st, 2nd ...). A row
    changed between runs is a new call."""
    canonical = json.dumps([campaign_id, [values[name] for name in COLUMNS], occurrence])
    return "csv-" + hashlib.sha256(canonical.encode()).hexdigest()[:40]


def read_rows(path: Path, campaign_id: int) -> Iterator[Row]:
    seen: Counter[str] = Counter()
    with csv_reader(path) as reader:
        for number, values in enumerate(csv_records(path, reader), start=2):
            cleaned = {name: (values.get(name) or "").strip() for name in COLUMNS}
            too_long = [name for name in COLUMNS if len(cleaned[name]) > MAX_FIELD_CHARS]
            if too_long:
                yield _refused(number, cleaned, too_long[0])
                continue
            key = json.dumps([cleaned[name] for name in COLUMNS])
            seen[key] += 1
            yield Row(number, cleaned, client_token(campaign_id, cleaned, seen[key]))


def _refused(number: int, values: dict[str, str], name: str) -> Row:
    """A row with a field too long to send; the field is left out of the errors file."""
    problem = f"{name} is over {MAX_FIELD_CHARS} characters ({len(values[name])})"
    return Row(number, {**values, name: ""}, "", problem)


def check_header(path: Path) -> tuple[int, str]:
    """(data rows, the first row's menu_id), or a usage error naming what is missing or the
    line the file cannot be read past (then nothing is sent)."""
    try:
        with csv_reader(path) as reader:
            records = csv_records(path, reader)
            first = next(records, None)
            missing = [name for name in REQUIRED if name not in (reader.fieldnames or [])]
            if missing:
                raise click.UsageError(f"{path}: no column {', '.join(missing)} in the header")
            menu = ((first or {}).get("menu_id") or "").strip()
            return (0 if first is None else 1) + sum(1 for _ in records), menu
    except Unreadable as exc:
        raise click.UsageError(f"{exc}; nothing was imported") from exc


@contextmanager
def csv_reader(path: Path) -> Iterator[csv.DictReader[str]]:
    """The file's reader, with the csv module's field limit raised to READ_LIMIT_CHARS while it
    reads (the limit is the module's, for the whole process)."""
    limit = csv.field_size_limit(READ_LIMIT_CHARS)
    try:
        with path.open(newline="", encoding="utf-8-sig") as source:
            yield csv.DictReader(source)
    finally:
        csv.field_size_limit(limit)


def csv_records(path: Path, reader: csv.DictReader[str]) -> Iterator[dict[str, str]]:
    """The data rows; one the csv module cannot read is an Unreadable naming the line it
    starts on (a quoted field may span lines)."""
    start = 1
    try:
        if reader.fieldnames is None:  # read first, so that line_num counts the header
            return
        start = reader.line_num + 1
        for record in reader:
            yield record
            start = reader.line_num + 1
    except (csv.Error, UnicodeDecodeError) as exc:
        raise _unreadable(path, start, exc) from exc


def _unreadable(path: Path, line: int, exc: Exception) -> Unreadable:
    if isinstance(exc, UnicodeDecodeError):  # decoded in blocks ahead of the rows: no line
        return Unreadable(f"{path}: is not UTF-8 text")
    if "field limit" in str(exc):
        return Unreadable(
            f"{path}: the row from line {line} has a field over {READ_LIMIT_CHARS:,} characters"
            " (an unclosed quote?)"
        )
    return Unreadable(f"{path}: the row from line {line}: {exc}")


class Api:
    """The few API calls the import makes, with the retries it owes to 429 and 503."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.base = url.rstrip("/") + "/apps/api/v1"

    async def request(
        self, method: str, path: str, body: Any = None, query: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        status, payload = 0, None
        for _ in range(MAX_WAITS):
            try:
                async with self.session.request(
                    method, self.base + path, json=body, params=query
                ) as answer:
                    status, retry_after = answer.status, answer.headers.get("Retry-After", "1")
                    payload = await answer.json(content_type=None)
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                raise Interrupted(f"cannot reach {self.base}: {exc or type(exc).__name__}") from exc
            if status not in RETRIED:
                return status, payload
            await asyncio.sleep(float(retry_after) if retry_after.isdigit() else 1.0)
        raise Interrupted(f"the API kept answering {status}: {message_of(payload)}")

    async def campaign(self, name: str, create: dict[str, Any]) -> dict[str, Any]:
        """The campaign of this name, created if there is none."""
        for _ in range(2):
            status, found = await self.request("GET", "/campaigns", query={"name": name})
            expect(status, found, 200)
            if found:
                return dict(found[0])
            status, created = await self.request("POST", "/campaigns", create)
            if status != 409:  # 409: created by someone else meanwhile; read it
                expect(status, created, 201)
                return dict(created)
        raise Interrupted(f"campaign {name!r} could not be created or read")

    async def join(self, campaign_id: int, rows: list[Row]) -> tuple[int, Any]:
        body = {"calls": [row.item() for row in rows]}
        return await self.request("POST", f"/campaigns/{campaign_id}/calls/batch", body)


def expect(status: int, payload: Any, wanted: int) -> None:
    if status != wanted:
        raise Interrupted(f"the API answered {status}: {message_of(payload)}")


def message_of(payload: Any) -> str:
    return str(payload.get("message")) if isinstance(payload, dict) else str(payload)[:200]


@click.group()
def campaign() -> None:
    """Campaigns of scheduled callbacks."""


@campaign.command("import", short_help="Import a CSV of callbacks into a campaign.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--campaign",
    "name",
    required=True,
    help="Campaign name: created when new, else reused (its menu and pace stay).",
)
@click.option("--menu", "menu_id", type=int, help="Menu of a new campaign [first row's menu_id].")
@click.option("--calls-per-second", type=float, help="Pace of a new campaign [API's: 10].")
@click.option("--max-waiting", type=int, help="Queue cap of a new campaign [API's: none].")
@api_options
@click.option(
    "--batch-size",
    type=click.IntRange(1, 1000),
    default=1000,
    show_default=True,
    help="Calls per POST /calls/batch.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 16),
    default=4,
    show_default=True,
    help="Batches in flight at once.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="A progress bar with rate and time left on stderr (default: only when stderr is a "
    "terminal).",
)
def import_csv(
    file: Path,
    name: str,
    menu_id: int | None,
    calls_per_second: float | None,
    max_waiting: int | None,
    url: str,
    tenant: str,
    token: str,
    batch_size: int,
    concurrency: int,
    progress: bool | None,
) -> None:
    """Import FILE.csv (end_user_number,scheduled_at,menu_id,lang,ticket_id) into a campaign.

    Failed rows go to FILE.errors.csv with the API's message. Running it again creates nothing
    twice, so an interrupted import is resumed by running the same command."""
    rows, first_menu = check_header(file)
    menu = menu_id if menu_id is not None else first_menu
    if menu in (None, ""):
        raise click.UsageError("no menu for a new campaign: give --menu, or a first row's menu_id")
    pacing = {"calls_per_second": calls_per_second, "max_waiting": max_waiting}
    create = {
        "name": name,
        "menu_id": menu,
        "pacing": {k: v for k, v in pacing.items() if v is not None},
    }
    auth = aiohttp.BasicAuth(tenant, token)
    plan = Plan(file, rows, create, url, auth, batch_size, concurrency, progress)
    sys.exit(asyncio.run(run(plan)))


@dataclass(frozen=True)
class Plan:
    file: Path
    rows: int
    create: dict[str, Any]  # the campaign to create when none has the name
    url: str
    auth: aiohttp.BasicAuth
    batch_size: int
    concurrency: int
    show_progress: bool | None = None  # None: only on a terminal

    @property
    def errors_file(self) -> Path:
        return self.file.with_name(self.file.stem + ".errors.csv")


async def run(plan: Plan) -> int:
    """The exit status: 0 every row is in, 1 some rows failed, 3 interrupted (run it again)."""
    tally = Tally()
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    connector = aiohttp.TCPConnector(limit=plan.concurrency)
    async with aiohttp.ClientSession(auth=plan.auth, timeout=timeout, connector=connector) as http:
        api = Api(http, plan.url)
        try:
            joined = await api.campaign(plan.create["name"], plan.create)
            click.echo(_described(joined), err=True)
            await _send(api, plan, int(joined["id"]), tally)
        except Interrupted as exc:
            _report(plan, tally)
            click.echo(f"error: {exc}", err=True)
            click.echo(
                "Run the same command again to resume: rows already in are not created twice.",
                err=True,
            )
            return EXIT_INTERRUPTED
    _report(plan, tally)
    return EXIT_ROWS_FAILED if tally.failed else 0


async def _send(api: Api, plan: Plan, campaign_id: int, tally: Tally) -> None:
    """Batches in order, at most `concurrency` in flight; stops at the first interruption."""
    pending: set[asyncio.Task[None]] = set()
    with progress.bar("import", plan.rows, unit="row", show=plan.show_progress) as bar:

        async def one(rows: list[Row]) -> None:
            for row in rows:
                if row.problem is not None:
                    tally.failed.append((row, None, row.problem))
            sent = [row for row in rows if row.problem is None]
            if sent:
                await _deliver(api, campaign_id, sent, tally)
            bar.update(len(rows))

        try:
            for rows in chunks(read_rows(plan.file, campaign_id), plan.batch_size):
                if len(pending) >= plan.concurrency:
                    done, pending = await asyncio.wait(pending, return_when="FIRST_COMPLETED")
                    for task in done:
                        task.result()
                pending.add(asyncio.create_task(one(rows)))
            for finished in asyncio.as_completed(pending):
                await finished
        finally:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)


async def _deliver(api: Api, campaign_id: int, rows: list[Row], tally: Tally) -> None:
    """One batch; a batch over the API's body limit (413) is sent again in halves, down to
    the row too large alone, which fails with the API's message."""
    status, answer = await api.join(campaign_id, rows)
    if status == 413 and len(rows) > 1:
        middle = len(rows) // 2
        await _deliver(api, campaign_id, rows[:middle], tally)
        await _deliver(api, campaign_id, rows[middle:], tally)
    elif status == 413:
        tally.failed.append((rows[0], status, message_of(answer)))
    else:
        expect(status, answer, 200)
        tally.count(rows, answer)


def chunks(rows: Iterator[T], size: int) -> Iterator[list[T]]:
    """The rows in lists of `size` (the last one shorter), for the CSV imports' requests."""
    chunk: list[T] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _described(joined: dict[str, Any]) -> str:
    pacing = joined["pacing"]
    cap = pacing["max_waiting"]
    return (
        f"campaign {joined['id']} {joined['name']!r}: menu {joined['menu_id']}, "
        f"{pacing['calls_per_second']:g} calls/s"
        + (f", at most {cap} waiting" if cap else "")
        + f", {joined['state']}, {joined['total']:,} calls so far"
    )


def _report(plan: Plan, tally: Tally) -> None:
    failed = sorted(tally.failed, key=lambda f: f[0].number)
    summary = (
        f"created {tally.created:,}, already existed {tally.existed:,}, failed {len(failed):,}"
        f" (of {plan.rows:,} rows)"
    )
    lines = [
        [row.number, *(row.values[c] for c in COLUMNS), "" if status is None else status, message]
        for row, status, message in failed
    ]
    report(summary, plan.errors_file, ERROR_COLUMNS, lines)


def report(summary: str, errors_file: Path, header: Sequence[str], failed: list[list[Any]]) -> None:
    """An import's summary, and its failed rows in FILE.errors.csv (an older one is removed
    when no row failed, so that it always speaks of the last run)."""
    if failed:
        with errors_file.open("w", newline="", encoding="utf-8") as sink:
            writer = csv.writer(sink)
            writer.writerow(header)
            writer.writerows(failed)
        summary += f"; failed rows in {errors_file}"
    else:
        errors_file.unlink(missing_ok=True)
    click.echo(summary)
