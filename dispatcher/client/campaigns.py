"""`dispatcher campaign list|show|pause|resume|cancel`: the operators' hold on campaigns,
through the public API (`campaign import` is in dispatcher/campaign_import.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import click
import orjson

from dispatcher.client.api import Client
from dispatcher.client.options import api_options, run
from dispatcher.client.views import campaign_detail, campaigns_table, page_text

JSON_HELP = "Print the API's JSON, for scripts."


def _answer(
    url: str, tenant: str, token: str, as_json: bool, ask: Callable[[Client], Awaitable[Any]]
) -> None:
    """Prints the campaign the API answered `ask` with, field by field or as JSON."""

    async def send() -> Any:
        async with Client(url, tenant, token) as api:
            return await ask(api)

    found = run(send())
    if as_json:
        click.echo(orjson.dumps(found, option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo("\n".join(campaign_detail(found)))


@click.command("list", short_help="A page of the tenant's campaigns, newest first.")
@api_options
@click.option("--page", type=click.IntRange(1), default=1, show_default=True, help="Which page.")
@click.option(
    "--per", type=click.IntRange(1, 1000), default=20, show_default=True, help="Campaigns a page."
)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def list_campaigns(url: str, tenant: str, token: str, page: int, per: int, as_json: bool) -> None:
    """A page of the tenant's campaigns with their progress: a table, or JSON with --json."""

    async def fetch() -> Any:
        async with Client(url, tenant, token) as api:
            return await api.campaigns({"page": str(page), "per": str(per)})

    listed = run(fetch())
    if as_json:
        click.echo(orjson.dumps(listed.items, option=orjson.OPT_INDENT_2).decode())
        return
    click.echo(
        page_text(listed.items, campaigns_table, page, listed.per, listed.total, "campaigns")
    )


@click.command("show", short_help="One campaign, field by field.")
@api_options
@click.argument("campaign_id", metavar="ID", type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def show_campaign(url: str, tenant: str, token: str, campaign_id: int, as_json: bool) -> None:
    """One campaign: its pace, state, calls by status, progress and lateness."""
    _answer(url, tenant, token, as_json, lambda api: api.campaign(campaign_id))


def _control(action: str, short_help: str, doc: str) -> click.Command:
    @click.command(action, short_help=short_help, help=doc)
    @api_options
    @click.argument("campaign_id", metavar="ID", type=click.IntRange(1))
    @click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
    def command(url: str, tenant: str, token: str, campaign_id: int, as_json: bool) -> None:
        _answer(url, tenant, token, as_json, lambda api: api.control_campaign(campaign_id, action))

    return command


# Beside `campaign import`, in the `campaign` group (dispatcher/cli.py adds them).
COMMANDS = [
    list_campaigns,
    show_campaign,
    _control("pause", "Hold a campaign's calls.", "Hold the campaign: none of its calls fires."),
    _control(
        "resume",
        "Let a held campaign fire again.",
        "Resume the campaign: its overdue calls fire at its pace, then the rest on time.",
    ),
    _control(
        "cancel",
        "End a campaign: its unfired calls fail.",
        "Cancel the campaign: its calls not yet fired end failed; fired ones go on.",
    ),
]
