"""What every command that talks to the API shares: where it is, whose credentials, and
failures as one line (the API's own message) with exit status 1, never a traceback."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click
from yarl import URL

from dispatcher.client.api import ApiError, CutShort, Unreachable

DEFAULT_URL = "http://127.0.0.1:8080"
T = TypeVar("T")
Command = TypeVar("Command", bound=Callable[..., Any])


def _base_url(context: click.Context, parameter: click.Parameter, value: str) -> str:
    url = URL(value)
    if url.scheme not in ("http", "https") or not url.host:
        raise click.BadParameter(f"{value!r} is no http:// or https:// URL, e.g. {DEFAULT_URL}")
    return value


_OPTIONS = (
    click.option(
        "--url",
        envvar="DISPATCHER_URL",
        show_envvar=True,
        default=DEFAULT_URL,
        show_default=True,
        callback=_base_url,
        help="Where the API answers.",
    ),
    click.option(
        "--tenant",
        envvar="DISPATCHER_TENANT",
        show_envvar=True,
        required=True,
        help="The tenant's subdomain (the Basic-auth user name).",
    ),
    click.option(
        "--token",
        envvar="DISPATCHER_API_TOKEN",
        show_envvar=True,
        required=True,
        help="One of the tenant's API tokens; prefer the environment variable, since a "
        "command line is visible to other users of the machine.",
    ),
)


def api_options(command: Command) -> Command:
    """--url, --tenant and --token, each also read from its environment variable."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


def run(work: Coroutine[Any, Any, T]) -> T:
    """Runs a command's work; an API failure ends the command with its message."""
    try:
        return asyncio.run(work)
    except ApiError as exc:
        raise click.ClickException(f"{exc.message} (HTTP {exc.status})") from exc
    except (Unreachable, CutShort) as exc:
        raise click.ClickException(str(exc)) from exc
