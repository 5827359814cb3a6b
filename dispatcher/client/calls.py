"""`dispatcher calls list|show|export`: the operators' view of calls, through the public API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import orjson

from dispatcher.client.api import Client
from dispatcher.client.exports import download
from dispatcher.client.options import api_options, run
from dispatcher.client.views import SHORT_TYPES, call_detail, calls_table, page_text
from dispatcher.domain.exports import FormatName
from dispatcher.domain.statuses import CallStatus

TYPES = {short: str(call_type) for call_type, short in SHORT_TYPES.items()}


@click.group(short_help="List, show and export calls, through the API.")
def calls() -> None:
    """Read calls through the API (GET /apps/api/v1/calls), as a tenant's client would."""


@calls.command("list", short_help="A page of the tenant's calls, newest first.")
@api_options
@click.option(
    "--status",
    type=click.Choice([str(s) for s in CallStatus]),
    metavar="STATUS",
    help=f"Only calls in this status: {', '.join(CallStatus)}.",
)
@click.option(
    "--type", "call_type", type=click.Choice(list(TYPES)), help="Only calls of this type."
)
@click.option(
    "--from", "created_from", metavar="TIME", help="Only calls created at TIME or later (ISO 8601)."
)
@click.option(
    "--to", "created_to", metavar="TIME", help="Only calls created at TIME or earlier (ISO 8601)."
)
@click.option("--oldest-first", is_flag=True, help="Oldest calls first (default: newest first).")
@click.option("--page", type=click.IntRange(1), default=1, show_default=True, help="Which page.")
@click.option(
    "--per", type=click.IntRange(1, 1000), default=20, show_default=True, help="Calls per page."
)
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON array, for scripts.")
def list_calls(
    url: str,
    tenant: str,
    token: str,
    status: str | None,
    call_type: str | None,
    created_from: str | None,
    created_to: str | None,
    oldest_first: bool,
    page: int,
    per: int,
    as_json: bool,
) -> None:
    """A page of the tenant's calls, newest first: a table, or JSON with --json."""
    query = {
        "status": status,
        "call_type": TYPES[call_type] if call_type else None,
        "created_at[from]": created_from,
        "created_at[to]": created_to,
        "sort_direction": "asc" if oldest_first else None,
        "page": str(page),
        "per": str(per),
    }

    async def fetch() -> Any:
        async with Client(url, tenant, token) as api:
            return await api.calls({k: v for k, v in query.items() if v is not None})

    listed = run(fetch())
    if as_json:
        click.echo(orjson.dumps(listed.items, option=orjson.OPT_INDENT_2).decode())
        return
    click.echo(page_text(listed.items, calls_table, page, listed.per, listed.total, "calls"))


@calls.command("show", short_help="One call, field by field.")
@api_options
@click.argument("call_id", metavar="ID", type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True, help="Print the API's call object, for scripts.")
def show_call(url: str, tenant: str, token: str, call_id: int, as_json: bool) -> None:
    """One call, field by field as the API names them (every field with --json)."""

    async def fetch() -> dict[str, Any]:
        async with Client(url, tenant, token) as api:
            return await api.call(call_id)

    call = run(fetch())
    if as_json:
        click.echo(orjson.dumps(call, option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo("\n".join(call_detail(call)))


@calls.command("export", short_help="Every call of a time range, as CSV or NDJSON.")
@api_options
@click.option(
    "--since", required=True, metavar="TIME", help="Calls created at TIME or later (ISO 8601)."
)
@click.option(
    "--until",
    metavar="TIME",
    help="Calls created at TIME or earlier (ISO 8601; default: now). At most 366 days after "
    "--since.",
)
@click.option(
    "--format",
    "format_name",
    type=click.Choice(["csv", "ndjson"]),
    default="csv",
    show_default=True,
    help="CSV (the columns of docs/api.md) or NDJSON (the API's call objects, one a line).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write to FILE, which appears only once the export is whole (default: standard output).",
)
@click.option(
    "--status",
    type=click.Choice([str(s) for s in CallStatus]),
    metavar="STATUS",
    help=f"Only calls in this status: {', '.join(CallStatus)}.",
)
@click.option(
    "--type", "--call-type", "call_type", type=click.Choice(list(TYPES)), help="Only this type."
)
@click.option("--oldest-first", is_flag=True, help="Oldest calls first (default: newest first).")
@click.option(
    "--progress/--no-progress",
    default=None,
    help="A progress bar counting rows on stderr (default: only when stderr is a terminal).",
)
def export_calls(
    url: str,
    tenant: str,
    token: str,
    since: str,
    until: str | None,
    format_name: FormatName,
    output: Path | None,
    status: str | None,
    call_type: str | None,
    oldest_first: bool,
    progress: bool | None,
) -> None:
    """Every call created from --since to --until (GET /apps/api/v1/calls/export), streamed
    to --output or standard output, gzip on the wire. A transfer cut short exits 1 and
    leaves no --output file."""
    query = {
        "created_at[from]": since,
        "created_at[to]": until,
        "status": status,
        "call_type": TYPES[call_type] if call_type else None,
        "sort_direction": "asc" if oldest_first else None,
        "format": format_name,
    }

    async def fetch() -> int:
        async with Client(url, tenant, token) as api:
            wanted = {k: v for k, v in query.items() if v is not None}
            return await download(api, "calls", wanted, format_name, output, progress)

    rows = run(fetch())
    if output is not None:
        click.echo(f"{rows} calls written to {output}")
