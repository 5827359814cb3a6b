"""`dispatcher calls list|show` against a live service: exact tables and fields, the API's JSON
with --json, the API's messages as errors, and one line when nothing answers."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from dispatcher.cli import main
from dispatcher.settings import Settings
from tests.live import LiveService, live_service
from tests.ports import free_port

BIN = Path(sys.executable).parent / "dispatcher"
TOKEN = "demo-token"
OUTBOUND = {
    "call_type": "Voice Outbound (API)",
    "agent_email": "admin@somedomain.com",
    "end_user_number": "+1 628-555-0142",
}
INBOUND = {"call_type": "Voice Inbound (API)", "menu_id": 9, "end_user_number": "+1 205-123-4567"}
SCHEDULED = {**INBOUND, "call_type": "Voice Scheduled (API)", "scheduled_at": "2030-06-03T17:00Z"}


@pytest.fixture(scope="module")
def service(redis_url: str) -> Iterator[LiveService]:
    with live_service(Settings(redis_url=redis_url)) as live:
        yield live


def _request(url: str, method: str = "GET", body: Any = None) -> Any:
    credentials = base64.b64encode(f"demo:{TOKEN}".encode()).decode()
    request = urllib.request.Request(
        url,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Basic {credentials}", "Content-Type": "application/json"},
        method=method,
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


@pytest.fixture
def calls(service: LiveService) -> list[dict[str, Any]]:
    """The demo tenant with an outbound, an inbound and a scheduled call (ids 1, 2, 3), as the
    API answered their creation; no worker runs, so they stay as created."""
    service.reset()
    return [
        _request(f"{service.url}/apps/api/v1/calls", "POST", body)
        for body in (OUTBOUND, INBOUND, SCHEDULED)
    ]


def _cli(service: LiveService, *args: str, token: str = TOKEN) -> Result:
    command = [*args, "--url", service.url, "--tenant", "demo", "--token", token]
    return CliRunner().invoke(main, command, catch_exceptions=False)


def test_list_is_a_table_newest_first(service: LiveService, calls: list[dict[str, Any]]) -> None:
    outbound, inbound, scheduled = (call["created_at"] for call in calls)
    result = _cli(service, "calls", "list")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert result.stdout.splitlines() == [
        "ID  TYPE       STATUS     CREATED                   AGENT       MENU       WAIT  TALK",
        f"3   scheduled  scheduled  {scheduled}  -           Lock Star  -     -",
        f"2   inbound    queued     {inbound}  -           Lock Star  -     -",
        f"1   outbound   assigned   {outbound}  Admin UJET  -          0 s   -",
        "page 1 of 1 (calls 1-3 of 3)",
    ]


def test_list_filters_and_pages_as_the_api_does(
    service: LiveService, calls: list[dict[str, Any]]
) -> None:
    def ids(*args: str) -> list[int]:
        result = _cli(service, "calls", "list", "--json", *args)
        assert result.exit_code == 0, result.output
        return [call["id"] for call in json.loads(result.stdout)]

    assert ids("--type", "inbound") == [2]
    assert ids("--status", "scheduled") == [3]
    assert ids("--oldest-first") == [1, 2, 3]
    assert ids("--from", calls[1]["created_at"], "--oldest-first") == [2, 3]
    assert ids("--to", calls[1]["created_at"]) == [2, 1]
    assert ids("--per", "1", "--page", "2") == [2]
    second = _cli(service, "calls", "list", "--per", "2", "--page", "2")
    assert second.stdout.splitlines()[-1] == "page 2 of 2 (calls 3-3 of 3)"
    beyond = _cli(service, "calls", "list", "--page", "5")
    assert beyond.stdout == "page 5 of 1: no calls on this page (3 in all)\n"
    empty = _cli(service, "calls", "list", "--status", "finished")
    assert empty.stdout == "no calls\n"


def test_list_json_is_the_apis_own(service: LiveService, calls: list[dict[str, Any]]) -> None:
    result = _cli(service, "calls", "list", "--json")
    assert json.loads(result.stdout) == _request(f"{service.url}/apps/api/v1/calls?per=20")
    assert [call["id"] for call in json.loads(result.stdout)] == [3, 2, 1]


def test_show_prints_the_fields_that_are_set(
    service: LiveService, calls: list[dict[str, Any]]
) -> None:
    inbound = calls[1]
    result = _cli(service, "calls", "show", "2")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "id                    2",
        "call_type             Voice Inbound (API)",
        "status                queued",
        "lang                  en",
        f"created_at            {inbound['created_at']}",
        f"queued_at             {inbound['queued_at']}",
        "selected_menu         Lock Star (id 9, mobile_menu)",
        "end_user              id 88",
        "outbound_number       +13392195276",
        "voip_provider         voip_provider_simulated",
        "recording_permission  not_asked",
        "offer_type            cascade",
        f"offer_events          Group 1 at {inbound['created_at']}",
        "participants          end_user 88: waiting",
    ]
    outbound = calls[0]
    assert _cli(service, "calls", "show", "1").stdout.splitlines() == [
        "id                    1",
        "call_type             Voice Outbound (API)",
        "status                assigned",
        "lang                  en",
        f"created_at            {outbound['created_at']}",
        f"assigned_at           {outbound['assigned_at']}",
        "wait_duration         0 s",
        "agent_info            Admin UJET (id 1)",
        "outbound_number       +13392195276",
        "voip_provider         voip_provider_simulated",
        "recording_permission  not_asked",
        "participants          agent 1: waiting",
        "                      end_user: waiting",
    ]
    as_json = _cli(service, "calls", "show", "3", "--json")
    assert json.loads(as_json.stdout) == calls[2]


@pytest.mark.parametrize(
    ("args", "token", "message"),
    [
        (["calls", "show", "99"], TOKEN, "Error: Call not found (HTTP 404)"),
        (["calls", "list"], "not-the-token", "Error: Unauthorized (HTTP 401)"),
        (
            ["calls", "list", "--from", "yesterday"],
            TOKEN,
            "Error: created_at[from] is not well formed (HTTP 400)",
        ),
    ],
)
def test_api_errors_are_the_apis_message_and_exit_1(
    service: LiveService, calls: list[dict[str, Any]], args: list[str], token: str, message: str
) -> None:
    result = _cli(service, *args, token=token)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == message + "\n"
    assert token not in result.output


def test_an_unknown_tenant_is_the_apis_404(service: LiveService, calls: list[Any]) -> None:
    args = ["calls", "list", "--url", service.url, "--tenant", "nobody", "--token", TOKEN]
    result = CliRunner().invoke(main, args)
    assert (result.exit_code, result.stderr) == (1, "Error: Resource not found (HTTP 404)\n")


def test_missing_or_bad_options_are_usage_errors(service: LiveService) -> None:
    no_tenant = CliRunner().invoke(main, ["calls", "list", "--token", TOKEN], env={})
    assert no_tenant.exit_code == 2
    assert no_tenant.stderr.splitlines()[-1] == (
        "Error: Missing option '--tenant' (env var: 'DISPATCHER_TENANT')."
    )
    bad_url = CliRunner().invoke(
        main, ["calls", "list", "--url", "127.0.0.1:8080", "--tenant", "demo", "--token", TOKEN]
    )
    assert bad_url.exit_code == 2
    assert bad_url.stderr.splitlines()[-1] == (
        "Error: Invalid value for '--url' (env var: 'DISPATCHER_URL'): '127.0.0.1:8080' is no "
        "http:// or https:// URL, e.g. http://127.0.0.1:8080"
    )


def _environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCHER_")}
    return {**env, "DISPATCHER_TENANT": "demo", "DISPATCHER_API_TOKEN": TOKEN, **extra}


@pytest.mark.subprocess
def test_the_command_reads_its_settings_from_the_environment(
    service: LiveService, calls: list[dict[str, Any]]
) -> None:
    done = subprocess.run(
        [str(BIN), "calls", "list", "--per", "1"],
        env=_environment(DISPATCHER_URL=service.url),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines()[-1] == "page 1 of 3 (calls 1-1 of 3)"


@pytest.mark.subprocess
def test_nothing_listening_is_one_line_and_no_traceback() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = subprocess.run(
        [str(BIN), "calls", "show", "1"],
        env=_environment(DISPATCHER_URL=url),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == f"Error: cannot connect to {url}: connection refused\n"
