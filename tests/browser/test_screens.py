"""Both pages with calls in every state, at a desktop's width and a phone's (390 x 844): what
they show (the wait of a queued call, a scheduled call's due time in the tenant's zone, the
campaigns, the open SMS sessions, the caller's number and who hung up, the chart of the last
seven days), that nothing spills past a phone's width, and that no script or console error
comes up. The screenshots are the README's: `make screenshots` writes them to docs/screenshots/
(DISPATCHER_SCREENSHOTS names the folder); otherwise they go to the test's own temporary
folder."""

from __future__ import annotations

import asyncio
import os
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp.test_utils import TestClient
from arq import Worker
from playwright.async_api import BrowserContext, Page, ViewportSize, expect
from redis.asyncio import Redis

from dispatcher.domain import clock
from tests.browser.conftest import Watched, front, open_page
from tests.browser.test_pages import _console, _dashboard
from tests.conftest import basic, demo_document, load_directory
from tests.polling import eventually
from tests.workers.conftest import API, CALLS, get_json, inbound_call, post_json

LOCK_STAR, PHONE_SALES = 9, 51
ZONE = ZoneInfo("America/Los_Angeles")  # the demo tenant's
HOLD_S = 4
DESKTOP = ViewportSize(width=1440, height=900)
PHONE = ViewportSize(width=390, height=844)
SMS = {
    "chat_type": "Messaging (SMS)",
    "outbound_number": "+1 628-555-0199",
    "message": "Your technician is on the way.",
}


async def _tenant(client: TestClient[Any, Any], redis: Redis) -> str:
    """The demo tenant as shipped, offers ringing a minute and calls talked for two (the end user
    never hangs up here); everybody offline until the console's agent 2 says otherwise."""
    document = demo_document()
    tenant = document["tenants"][0]
    tenant["settings"]["simulator"] = {"answer_after_s": 0.05, "talk_time_s": 120, "rules": []}
    for menu in tenant["menus"]:
        menu.update(offer_timeout_s=60, max_wait_s=900)
    await load_directory(redis, document)
    for agent_id in (1, 2, 4):
        await _status(client, agent_id, "offline")
    return str(client.make_url("")).rstrip("/")


async def _status(client: TestClient[Any, Any], agent_id: int, status: str) -> None:
    path = f"{API}/agents/{agent_id}/status"
    response = await client.put(path, json={"status": status}, headers=basic())
    assert response.status == 200


def _due(at: datetime) -> str:
    """As the pages write a due time: `HH:MM` today in the tenant's zone, else `1 Dec HH:MM`."""
    local, today = at.astimezone(ZONE), datetime.now(ZONE)
    time = f"{local:%H:%M}"
    return time if local.date() == today.date() else f"{local.day} {local:%b} {time}"


async def _campaigns(client: TestClient[Any, Any]) -> datetime:
    """Three campaigns on Lock Star: one completed (its two calls fired, then ended through the
    API), one paused with three calls held past their time, one running with calls due in one
    to three hours. Returns when the running one's next call is due."""
    completed = await _campaign(client, "Winter follow-ups")
    soon = clock.iso(clock.now() + timedelta(seconds=0.3))
    fired = await _join(client, completed, [soon, soon])

    async def both_fired() -> bool | None:
        read = await get_json(client, f"{API}/campaigns/{completed}")
        return True if read["progress"]["fired"] == 2 else None

    await eventually(both_fired, "the first campaign's calls fired")
    for call_id in fired:  # nobody is available: they waited queued
        await post_json(client, f"{CALLS}/{call_id}/finish")
    read = await get_json(client, f"{API}/campaigns/{completed}")
    assert read["state"] == "completed"  # every call ended
    paused = await _campaign(client, "Renewals (on hold)")
    await post_json(client, f"{API}/campaigns/{paused}/pause")
    await _join(client, paused, [clock.iso(clock.now() + timedelta(seconds=0.3))] * 3)
    running = await _campaign(client, "Spring callbacks")
    start = clock.now().replace(second=0, microsecond=0) + timedelta(hours=1)
    later = [clock.iso(start + timedelta(minutes=m)) for m in range(0, 121, 20)]
    await _join(client, running, later)
    return start


async def _campaign(client: TestClient[Any, Any], name: str) -> int:
    body = {"name": name, "menu_id": LOCK_STAR, "pacing": {"calls_per_second": 2}}
    created = await post_json(client, f"{API}/campaigns", body, status=201)
    return int(created["id"])


async def _join(client: TestClient[Any, Any], campaign_id: int, due: list[str]) -> list[int]:
    calls = [
        {"end_user_number": f"+1 205-555-{140 + i:04d}", "scheduled_at": at}
        for i, at in enumerate(due)
    ]
    answer = await post_json(client, f"{API}/campaigns/{campaign_id}/calls/batch", {"calls": calls})
    assert [r["status"] for r in answer["results"]] == [201] * len(due)
    return [int(r["body"]["id"]) for r in answer["results"]]


async def _elsewhere(client: TestClient[Any, Any]) -> tuple[int, datetime]:
    """A callback due in 25 minutes (its id, when) and two SMS sessions, one Agent Smith's."""
    due = clock.now().replace(microsecond=0) + timedelta(minutes=25)
    scheduled = {
        "call_type": "Voice Scheduled (API)",
        "menu_id": LOCK_STAR,
        "end_user_number": "+1 415-555-0133",
        "scheduled_at": clock.iso(due),
    }
    callback = await post_json(client, CALLS, scheduled, status=201)
    for number, agent in (("+1 415-555-0100", "agent@somedomain.com"), ("+1 650-555-0190", None)):
        body = {**SMS, "end_user_number": number, **({"agentEmail": agent} if agent else {})}
        await post_json(client, f"{API}/sms", body)
    return int(callback["id"]), due


async def _shoot(watched: Watched, name: str, folder: Path) -> None:
    """The page at a desktop's width, then at a phone's, where nothing may be wider than it."""
    page = await front(watched)
    await page.set_viewport_size(DESKTOP)
    await page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
    await page.set_viewport_size(PHONE)
    await expect(page.locator("body")).to_be_visible()
    assert await _overflow(page) == [], name
    await page.screenshot(path=str(folder / f"{name}-phone.png"), full_page=True)
    await page.set_viewport_size(DESKTOP)


async def _overflow(page: Page) -> Any:
    """The page's width past the viewport, and the elements that reach past it."""
    return await page.evaluate(
        """() => {
          const width = document.documentElement.clientWidth;
          const wide = [...document.querySelectorAll("body *")].filter((node) => {
            const box = node.getBoundingClientRect();
            return box.width > 0 && box.right > width + 1 && !node.closest(".scroll");
          });
          const page = document.documentElement.scrollWidth - width;
          const named = (node) => `${node.tagName.toLowerCase()}#${node.id}.${node.className}`;
          return [...(page > 0 ? [`page ${page}px too wide`] : []), ...wide.map(named)];
        }"""
    )


def _folder(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("DISPATCHER_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def test_both_pages_show_every_state_at_desktop_and_phone_width(
    client: TestClient[Any, Any],
    redis: Redis,
    worker: Worker,
    browser: BrowserContext,
    tmp_path: Path,
) -> None:
    base = await _tenant(client, redis)
    next_due = await _campaigns(client)
    callback, callback_due = await _elsewhere(client)

    console = await _console(browser, base)
    agent = await front(console)
    await agent.click('#status button[data-status="available"]')
    await expect(agent.locator("#status .on")).to_have_attribute("data-status", "available")
    declined = (await inbound_call(client, PHONE_SALES, number="+1 205-555-0188"))["id"]
    offer = agent.locator(f'.offer[data-call="{declined}"]')
    await expect(offer.locator(".caller-number")).to_have_text("+12055550188")
    await offer.locator('[data-action="decline"]').click()  # it waits: nobody else is in
    taken = (await inbound_call(client, PHONE_SALES, number="+1 205-555-0142"))["id"]
    offer = agent.locator(f'.offer[data-call="{taken}"]')
    await offer.locator('[data-action="accept"]').click()
    held = agent.locator(f'#current-call[data-call="{taken}"]')
    await expect(held).to_have_attribute("data-status", "connected")
    await expect(agent.locator("#current-number")).to_have_text("+12055550142")
    await asyncio.sleep(HOLD_S)  # a talk time, and a wait, for the pictures to show
    await agent.click("#finish")
    await expect(held).to_have_attribute("data-status", "finished")
    await expect(agent.locator("#ended-by")).to_have_text("You hung up.")
    ringing = (await inbound_call(client, LOCK_STAR, number="+1 415-555-0177"))["id"]
    offer = agent.locator(f'.offer[data-call="{ringing}"]')
    await expect(offer.locator(".caller-number")).to_have_text("+14155550177")
    await expect(agent.locator("#zone")).to_have_text("· times in America/Los_Angeles")
    folder = _folder(tmp_path)
    await _shoot(console, "agent-console", folder)

    dashboard = await _dashboard(browser, base)
    board = await front(dashboard)
    await expect(board.locator("#zone")).to_have_text("· times in America/Los_Angeles")
    states = board.locator("#campaigns tr[data-campaign] .badge")
    await expect(states).to_have_text(["running", "paused", "completed"])
    paused = board.locator("#campaigns tr[data-campaign]").nth(1).locator("td")
    await expect(paused.nth(3)).to_have_text("3")  # held past their time
    # Each row's outcomes from the campaign's report: the first campaign's two calls ended
    # through the API before they connected, the paused one's three wait.
    outcomes = board.locator("#campaigns tr[data-campaign] .campaign-outcomes")
    await expect(outcomes.nth(2).locator(".outcome")).to_have_text(["2 cancelled"])
    await expect(outcomes.nth(1).locator(".outcome")).to_have_text(["3 pending"])
    running = board.locator("#campaigns tr[data-campaign]").first.locator("td")
    await expect(running.nth(4)).to_have_text(_due(next_due))
    await expect(running.nth(5)).to_have_text(_due(next_due + timedelta(hours=2)))
    sessions = board.locator("#sms-sessions tr[data-chat]")
    await expect(sessions.locator("td:nth-child(2)")).to_have_text(["+*********90", "+*********00"])
    await expect(sessions.locator("td:nth-child(4)")).to_have_text(["selecting", "Agent Smith"])
    wait = board.locator(f'#calls tr[data-call="{declined}"] td').nth(6)
    await expect(wait).to_have_text(re.compile(r"^[1-9]\d*s$|m"))  # waiting, counted on
    due = board.locator(f'#calls tr[data-call="{callback}"] td').nth(6)
    await expect(due).to_have_text(f"due {_due(callback_due)}")
    # The last seven days: today's bar holds the calls above, finished and failed stacked, with
    # their mean wait; the six days before have none.
    days = board.locator("#week g.day")
    await expect(days).to_have_count(7)
    await expect(days.last).to_have_attribute("data-calls", re.compile(r"^[1-9]\d*$"))
    await expect(days.last.locator("rect.seg.finished")).to_have_count(1)
    await expect(days.last.locator("rect.seg.failed")).to_have_count(1)
    await expect(days.first).to_have_attribute("data-calls", "0")
    await expect(board.locator("#week circle.wait")).to_have_count(1)
    await expect(board.locator("#week-caption")).to_contain_text(" calls in 7 days · mean wait ")
    await expect(board.locator("#week-note")).to_be_hidden()
    await board.locator(f'#calls tr[data-call="{taken}"]').click()
    await expect(board.locator('#history li[data-event="accepted"]')).to_contain_text(
        "Accepted by Agent Smith"
    )
    await _shoot(dashboard, "dashboard", folder)
    assert console.errors == [] and dashboard.errors == []


async def test_both_sign_in_pages_fit_a_phone(
    client: TestClient[Any, Any], redis: Redis, browser: BrowserContext
) -> None:
    base = await _tenant(client, redis)
    for path in ("/dashboard", "/agent"):
        watched = await open_page(browser, base + path)
        page = await front(watched)
        await page.set_viewport_size(PHONE)
        await expect(page.locator("#login")).to_be_visible()
        assert await _overflow(page) == [], path
        assert watched.errors == [], path
