"""`dispatcher campaign list|show|pause|resume|cancel` against a live service: exact tables and
fields, the API's JSON with --json, and the API's messages as errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from dispatcher.settings import Settings
from tests.dispatcher.client.test_calls import _cli, _request
from tests.live import LiveService, live_service

SCHEDULED = {
    "call_type": "Voice Scheduled (API)",
    "menu_id": 9,
    "end_user_number": "+1 205-123-4567",
    "scheduled_at": "2030-06-03T17:00Z",
}


@pytest.fixture(scope="module")
def service(redis_url: str) -> Iterator[LiveService]:
    with live_service(Settings(redis_url=redis_url)) as live:
        yield live


@pytest.fixture
def spring(service: LiveService) -> dict[str, Any]:
    """A campaign of two calls due in 2030; no worker runs, so nothing fires."""
    service.reset()
    api = f"{service.url}/apps/api/v1/campaigns"
    created = _request(
        api, "POST", {"name": "spring", "menu_id": 9, "pacing": {"calls_per_second": 5}}
    )
    batch = {"calls": [SCHEDULED, {**SCHEDULED, "end_user_number": "+1 205-123-4568"}]}
    _request(f"{api}/{created['id']}/calls/batch", "POST", batch)
    found: dict[str, Any] = _request(f"{api}/{created['id']}")
    return found


def test_list_is_a_table_of_campaigns_and_their_progress(
    service: LiveService, spring: dict[str, Any]
) -> None:
    result = _cli(service, "campaign", "list")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "ID  NAME    STATE    MENU  PACE  CALLS  FIRED    OVERDUE  CREATED",
        f"1   spring  running  9     5/s   2      0 (0 %)  0        {spring['created_at']}",
        "page 1 of 1 (campaigns 1-1 of 1)",
    ]


def test_show_and_its_json_are_the_apis_campaign(
    service: LiveService, spring: dict[str, Any]
) -> None:
    shown = _cli(service, "campaign", "show", "1")
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.splitlines() == [
        "id                           1",
        "name                         spring",
        "menu_id                      9",
        "state                        running",
        "pacing.calls_per_second      5",
        "pacing.max_waiting           -",
        "pacing.max_estimated_wait_s  -",
        f"created_at                   {spring['created_at']}",
        "total                        2",
        "counts.scheduled             2",
        "progress.fired               0",
        "progress.not_fired           2",
        "progress.overdue             0",
        "progress.ended_unfired       0",
        "progress.held                0",
        "progress.fired_percent       0",
        "lateness.mean_ms             -",
        "lateness.max_ms              -",
    ]
    as_json = _cli(service, "campaign", "show", "1", "--json")
    assert json.loads(as_json.stdout) == spring


def test_pause_resume_and_cancel_answer_the_campaign_as_it_is_after(
    service: LiveService, spring: dict[str, Any]
) -> None:
    for action, state in (("pause", "paused"), ("resume", "running"), ("cancel", "cancelled")):
        result = _cli(service, "campaign", action, "1", "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["state"] == state
    again = _cli(service, "campaign", "resume", "1")
    assert (again.exit_code, again.stdout) == (1, "")
    assert again.stderr == "Error: Campaign is cancelled (HTTP 409)\n"
    missing = _cli(service, "campaign", "show", "7")
    assert (missing.exit_code, missing.stdout) == (1, "")
    assert missing.stderr == "Error: Campaign not found (HTTP 404)\n"
