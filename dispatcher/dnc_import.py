"""`dispatcher dnc import FILE.csv`: a CSV of numbers (phone_number[,expires_at]) onto the
company do-not-call list, through the HTTP API in requests of up to 10,000 contacts, with a
progress bar, a summary and the failed rows written beside the file.

Requests go one at a time, in the file's order, so that a number given on several rows ends as
its last row says (as within one request). Running it again adds nothing twice: a number
already on the list is `updated`, its expiry set to the row's again. A request over the API's
body limit (413) is sent again in halves, as the campaign import does."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import click

from dispatcher import progress
from dispatcher.campaign_import import (
    EXIT_INTERRUPTED,
    EXIT_ROWS_FAILED,
    MAX_FIELD_CHARS,
    REQUEST_TIMEOUT_S,
    Api,
    Interrupted,
    Unreadable,
    chunks,
    csv_reader,
    csv_records,
    expect,
    message_of,
    report,
)
from dispatcher.client.options import api_options
from dispatcher.domain.dnc import MAX_CONTACTS

COLUMNS = ("phone_number", "expires_at")
ERROR_COLUMNS = ("row", *COLUMNS, "error")


@dataclass(frozen=True)
class Row:
    number: int  # as a spreadsheet numbers it: the header is row 1
    values: dict[str, str]
    problem: str | None = None  # why the row is not sent at all; None: it is

    def contact(self) -> dict[str, str]:
        """The row as a contact: its expiry only when the column has one."""
        contact = {"phone_number": self.values["phone_number"]}
        if self.values["expires_at"]:
            contact["expires_at"] = self.values["expires_at"]
        return contact


@dataclass
class Tally:
    created: int = 0
    updated: int = 0
    failed: list[tuple[Row, str]] = field(default_factory=list)

    def count(self, rows: list[Row], answer: list[dict[str, Any]]) -> None:
        for row, result in zip(rows, answer, strict=True):
            if result["status"] == "failed":
                self.failed.append((row, str(result.get("error", ""))))
            elif result["status"] == "created":
                self.created += 1
            else:
                self.updated += 1


def read_rows(path: Path) -> Iterator[Row]:
    with csv_reader(path) as reader:
        for number, values in enumerate(csv_records(path, reader), start=2):
            cleaned = {name: (values.get(name) or "").strip() for name in COLUMNS}
            too_long = [name for name in COLUMNS if len(cleaned[name]) > MAX_FIELD_CHARS]
            if too_long:
                name = too_long[0]
                problem = f"{name} is over {MAX_FIELD_CHARS} characters ({len(cleaned[name])})"
                yield Row(number, {**cleaned, name: ""}, problem)
                continue
            yield Row(number, cleaned)


def check_header(path: Path) -> int:
    """The data rows, or a usage error naming what is missing or the line the file cannot be
    read past (then nothing is sent)."""
    try:
        with csv_reader(path) as reader:
            records = csv_records(path, reader)
            first = next(records, None)
            if "phone_number" not in (reader.fieldnames or []):
                raise click.UsageError(f"{path}: no column phone_number in the header")
            return (0 if first is None else 1) + sum(1 for _ in records)
    except Unreadable as exc:
        raise click.UsageError(f"{exc}; nothing was imported") from exc


@click.group()
def dnc() -> None:
    """The company do-not-call list."""


@dnc.command("import", short_help="Put the numbers of a CSV on the company DNC list.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@api_options
@click.option(
    "--batch-size",
    type=click.IntRange(1, MAX_CONTACTS),
    default=MAX_CONTACTS,
    show_default=True,
    help="Contacts per POST /outbound_dialer/dnc.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="A progress bar with rate and time left on stderr (default: only when stderr is a "
    "terminal).",
)
def import_csv(
    file: Path, url: str, tenant: str, token: str, batch_size: int, progress: bool | None
) -> None:
    """Import FILE.csv (phone_number,expires_at) onto the company DNC list.

    expires_at is optional (`2030-10-29 00:00:00 UTC` or ISO 8601; empty: never expires).
    Failed rows go to FILE.errors.csv with the API's error. Running it again adds nothing
    twice."""
    plan = Plan(file, check_header(file), url, aiohttp.BasicAuth(tenant, token), batch_size)
    sys.exit(asyncio.run(run(plan, progress)))


@dataclass(frozen=True)
class Plan:
    file: Path
    rows: int
    url: str
    auth: aiohttp.BasicAuth
    batch_size: int = MAX_CONTACTS

    @property
    def errors_file(self) -> Path:
        return self.file.with_name(self.file.stem + ".errors.csv")


async def run(plan: Plan, show_progress: bool | None = None) -> int:
    """The exit status: 0 every row is in, 1 some rows failed, 3 interrupted (run it again)."""
    tally = Tally()
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(auth=plan.auth, timeout=timeout) as http:
        api = Api(http, plan.url)
        try:
            with progress.bar("import", plan.rows, unit="row", show=show_progress) as bar:
                for rows in chunks(read_rows(plan.file), plan.batch_size):
                    tally.failed += [(row, row.problem) for row in rows if row.problem]
                    sent = [row for row in rows if row.problem is None]
                    if sent:
                        await _deliver(api, sent, tally)
                    bar.update(len(rows))
        except Interrupted as exc:
            _report(plan, tally)
            click.echo(f"error: {exc}", err=True)
            click.echo("Run the same command again to resume: nothing is added twice.", err=True)
            return EXIT_INTERRUPTED
    _report(plan, tally)
    return EXIT_ROWS_FAILED if tally.failed else 0


async def _deliver(api: Api, rows: list[Row], tally: Tally) -> None:
    """One request; one over the API's body limit (413) is sent again in halves, down to the
    row too large alone, which fails with the API's message."""
    body = {"contacts": [row.contact() for row in rows]}
    status, answer = await api.request("POST", "/outbound_dialer/dnc", body)
    if status == 413 and len(rows) > 1:
        middle = len(rows) // 2
        await _deliver(api, rows[:middle], tally)
        await _deliver(api, rows[middle:], tally)
    elif status == 413:
        tally.failed.append((rows[0], message_of(answer)))
    else:
        expect(status, answer, 200)
        tally.count(rows, answer)


def _report(plan: Plan, tally: Tally) -> None:
    failed = sorted(tally.failed, key=lambda f: f[0].number)
    summary = (
        f"created {tally.created:,}, updated {tally.updated:,}, failed {len(failed):,}"
        f" (of {plan.rows:,} rows)"
    )
    lines = [[row.number, *(row.values[c] for c in COLUMNS), error] for row, error in failed]
    report(summary, plan.errors_file, ERROR_COLUMNS, lines)
