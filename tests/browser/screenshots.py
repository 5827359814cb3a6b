"""The README's screenshots, taken in Debian's headless Chromium against a running demo
(`make run`, i.e. `dispatcher up --simulate-agents --config deploy/demo.yaml`):

    .venv/bin/python -m tests.browser.screenshots --base http://127.0.0.1:8080 --minutes 3

It feeds the demo tenant a few minutes of calls (inbound, scheduled, outbound, an SMS) so the
chart has a history, signs in agent 2 (Agent Smith) in the console, who takes one call and is
offered the next, and saves docs/screenshots/dashboard.png and agent-console.png."""

from __future__ import annotations

import argparse
import asyncio
import base64
import random
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
from playwright.async_api import Page, async_playwright, expect

from dispatcher.domain import clock
from tests.browser.conftest import CHROMIUM, FLAGS

AUTH = {"Authorization": "Basic " + base64.b64encode(b"demo:demo-token").decode()}
API = "/apps/api/v1"
NUMBERS = ["+1 205-123-4567", "+1 205-555-0142", "+1 415-555-0133", "+1 650-555-0190"]


async def _post(http: aiohttp.ClientSession, base: str, path: str, body: Any) -> Any:
    async with http.post(f"{base}{API}{path}", json=body, headers=AUTH) as answer:
        assert answer.status < 300, await answer.text()
        return await answer.json()


async def _put_status(http: aiohttp.ClientSession, base: str, agent_id: int, status: str) -> None:
    async with http.put(
        f"{base}{API}/agents/{agent_id}/status", json={"status": status}, headers=AUTH
    ) as answer:
        assert answer.status == 200, await answer.text()


async def _inbound(http: aiohttp.ClientSession, base: str, menu_id: int) -> int:
    body = {
        "call_type": "Voice Inbound (API)",
        "menu_id": menu_id,
        "end_user_number": random.choice(NUMBERS),
    }
    call = await _post(http, base, "/calls", body)
    return int(call["id"])


async def traffic(http: aiohttp.ClientSession, base: str, minutes: float) -> None:
    """A few calls a minute into menus 9 and 51, answered by the simulated agents."""
    rng = random.Random(7)
    deadline = time.monotonic() + minutes * 60
    while time.monotonic() < deadline:
        for _ in range(rng.randint(2, 6)):
            await _inbound(http, base, rng.choice([9, 51, 51]))
            await asyncio.sleep(rng.uniform(1, 4))
        await asyncio.sleep(rng.uniform(5, 15))


async def extras(http: aiohttp.ClientSession, base: str) -> None:
    """Scheduled callbacks within the hour, an outbound call and an SMS session."""
    for minutes in (12, 25, 48):
        body = {
            "call_type": "Voice Scheduled (API)",
            "menu_id": 9,
            "end_user_number": random.choice(NUMBERS),
            "scheduled_at": clock.iso(clock.now() + timedelta(minutes=minutes)),
        }
        await _post(http, base, "/calls", body)
    outbound = {
        "call_type": "Voice Outbound (API)",
        "agent_email": "john.doe@foo.com",
        "end_user_number": "+1 859-657-9625",
    }
    async with http.post(f"{base}{API}/calls", json=outbound, headers=AUTH):
        pass  # 400 when John is on a call: fine
    sms = {
        "chat_type": "Messaging (SMS)",
        "end_user_number": "+1 415-555-0100",
        "outbound_number": "+1 628-555-0199",
        "message": "Your technician is on the way.",
    }
    async with http.post(f"{base}{API}/sms", json=sms, headers=AUTH):
        pass  # 400 when a session is already open


async def console(page: Page, base: str, http: aiohttp.ClientSession) -> None:
    """Agent 2 signs in, takes a call from Lock Star, and is offered the next one."""
    await page.goto(base + "/agent")
    await page.fill("#subdomain", "demo")
    await page.fill("#token", "demo-agent-2")
    await page.fill("#agent-id", "2")
    await page.click("#login button[type=submit]")
    await expect(page.locator("#live")).to_have_class("live on")
    await page.click('#status button[data-status="available"]')
    await _put_status(http, base, 1, "unavailable")  # Lock Star's first group: agent 2 alone
    first = await _inbound(http, base, 9)
    await page.locator(f'.offer[data-call="{first}"] [data-action="accept"]').click()
    held = page.locator("#current-call")
    await expect(held).to_have_attribute("data-status", "connected", timeout=20_000)
    await asyncio.sleep(3)  # a few seconds' talk
    await page.click("#finish")  # the caller waits for the person to finish (--simulate-agents)
    await expect(held).to_have_attribute("data-status", "finished")
    second = await _inbound(http, base, 9)
    await expect(page.locator(f'.offer[data-call="{second}"]')).to_be_visible()
    await asyncio.sleep(4)  # the countdown under way


async def dashboard(page: Page, base: str) -> None:
    await page.goto(base + "/dashboard")
    await page.fill("#subdomain", "demo")
    await page.fill("#token", "demo-token")
    await page.click("#login button[type=submit]")
    await expect(page.locator("#live")).to_have_class("live on")
    rows = page.locator("#calls tr[data-call]")
    await expect(rows.first).to_be_visible()
    finished = page.locator("#calls tr[data-call]:has(.badge.finished)").first
    await (finished if await finished.count() else rows.first).click()
    await expect(page.locator("#history li").first).to_be_visible()
    await asyncio.sleep(1.5)


async def main(base: str, out: Path, minutes: float) -> None:
    out.mkdir(parents=True, exist_ok=True)
    async with aiohttp.ClientSession() as http:
        await _put_status(http, base, 1, "available")
        await extras(http, base)
        await traffic(http, base, minutes)
        with tempfile.TemporaryDirectory() as profile:
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch_persistent_context(
                    profile,
                    executable_path=CHROMIUM,
                    headless=True,
                    args=FLAGS,
                    viewport={"width": 1440, "height": 900},
                    device_scale_factor=1,
                )
                agent = await browser.new_page()
                await console(agent, base, http)
                await agent.set_viewport_size({"width": 1280, "height": 600})
                await agent.screenshot(path=str(out / "agent-console.png"), full_page=True)
                board = await browser.new_page()
                await _inbound(http, base, 51)  # something waiting and ringing in the picture
                await dashboard(board, base)
                await board.screenshot(path=str(out / "dashboard.png"), full_page=True)
                await browser.close()
        await _put_status(http, base, 1, "available")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="http://127.0.0.1:8080")
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--minutes", type=float, default=3.0)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.base.rstrip("/"), arguments.out, arguments.minutes))
