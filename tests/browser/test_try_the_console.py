"""docs/console.md's "Try the console" in a real browser against a real `dispatcher up
--simulate-agents` (`make run`, quicker timings): sign in as agent 2, a call of menu 9 rings in
the console and not at a simulated agent, the person accepts it and keeps it past the simulated
talk time until finishing it, signs out, and agent 2 is simulated again."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
from playwright.async_api import BrowserContext, expect

from tests.browser.conftest import open_page
from tests.conftest import basic
from tests.dispatcher.test_demo_console import TALK_TIME_S, _agent_events, _document, _logged
from tests.polling import eventually
from tests.up import dispatcher_up

LOCK_STAR = 9  # first group: agents 1 and 2
INBOUND = {"call_type": "Voice Inbound (API)", "menu_id": LOCK_STAR}


async def _place_call(http: aiohttp.ClientSession, base: str) -> int:
    body = {**INBOUND, "end_user_number": "+1 205-123-4567"}
    async with http.post(f"{base}/apps/api/v1/calls", json=body, headers=basic()) as created:
        assert created.status == 201
        return int((await created.json())["id"])


async def _call(http: aiohttp.ClientSession, base: str, call_id: int) -> dict[str, Any]:
    async with http.get(f"{base}/apps/api/v1/calls/{call_id}", headers=basic()) as answer:
        call: dict[str, Any] = await answer.json()
        return call


async def test_a_person_takes_a_demo_call_in_the_console_as_the_docs_say(
    tmp_path: Path, browser: BrowserContext
) -> None:
    options = ("--simulate-agents",)
    async with (
        dispatcher_up(tmp_path, _document(), options=options) as (base, log_file),
        aiohttp.ClientSession() as http,
    ):
        await _logged(log_file, "available", lambda line: line["agent_id"] == 2)
        console = await open_page(browser, base + "/agent")
        page = console.page
        await page.fill("#subdomain", "demo")
        await page.fill("#token", "demo-agent-2")
        await page.fill("#agent-id", "2")
        await page.click("#login button[type=submit]")
        await expect(page.locator("#agent-name")).to_have_text("Agent Smith")
        await expect(page.locator("#live")).to_have_class("live on")
        await expect(page.locator("#status .on")).to_have_attribute("data-status", "available")
        await _logged(log_file, "taken_over", lambda line: line["agent_id"] == 2)

        call_id = await _place_call(http, base)
        offer = page.locator(f'.offer[data-call="{call_id}"]')
        await expect(offer).to_be_visible()
        await offer.locator('[data-action="accept"]').click()
        held = page.locator(f'#current-call[data-call="{call_id}"]')
        await expect(held).to_have_attribute("data-status", "connected")
        await asyncio.sleep(4 * TALK_TIME_S)  # a simulated end user would have hung up
        await expect(held).to_have_attribute("data-status", "connected")
        assert (await _call(http, base, call_id))["status"] == "connected"
        await page.click("#finish")
        await expect(held).to_have_attribute("data-status", "finished")
        finished = await _call(http, base, call_id)
        assert (finished["agent_info"]["id"], finished["disconnected_by"]) == (
            2,
            "disconnected_by_agent",
        )
        stepped_aside = {line["agent_id"] for line in _agent_events(log_file, "stepped_aside")}
        assert 1 in stepped_aside  # agent 1 rang beside the person and declined
        assert _agent_events(log_file, "accepted") == []

        await page.click("#signout")
        await expect(page.locator("#login")).to_be_visible()
        await _logged(log_file, "handed_back", lambda line: line["agent_id"] == 2)
        later = await _place_call(http, base)

        async def ended() -> dict[str, Any] | None:
            call = await _call(http, base, later)
            return call if call["status"] == "finished" else None

        call = await eventually(ended, "a simulated agent to finish the next call", 30)
        assert call["agent_info"]["id"] in (1, 2)
        assert [line["call_id"] for line in _agent_events(log_file, "accepted")] == [later]
        assert console.errors == []
