"""The two pages in a real browser, against the app on a real port with an ARQ worker: an agent
goes available in the console, a call comes in through the API, the offer rings in the
console, the agent accepts, the dashboard (open all along, never reloaded) shows the call
assigned to them, and the agent finishes it; and the decline path."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from arq import Worker
from playwright.async_api import BrowserContext, Page, expect
from redis.asyncio import Redis

from tests.browser.conftest import Watched, front, open_page
from tests.conftest import basic
from tests.workers.conftest import API, get_call, get_json, inbound_call, load_tenant

PHONE_SALES = 51  # multicast to agents 1, 2 and 4; 1 and 4 are set offline: only 2 rings


async def _tenant(client: TestClient[Any, Any], redis: Redis) -> str:
    """The demo tenant, calls answered at once and held 60 s; agents 1, 2 and 4 offline."""
    await load_tenant(
        redis,
        settings={"simulator": {"answer_after_s": 0.05, "talk_time_s": 60, "rules": []}},
        menus={PHONE_SALES: {"offer_timeout_s": 20, "max_wait_s": 30}},
    )
    for agent_id in (1, 2, 4):
        response = await client.put(
            f"{API}/agents/{agent_id}/status", json={"status": "offline"}, headers=basic()
        )
        assert response.status == 200
    return str(client.make_url("")).rstrip("/")


async def _console(browser: BrowserContext, base: str) -> Watched:
    """The agent console, signed in as agent 2 (Agent Smith)."""
    console = await open_page(browser, base + "/agent")
    page = console.page
    await page.fill("#subdomain", "demo")
    await page.fill("#token", "demo-agent-2")  # the agent's own token, not the tenant's
    await page.fill("#agent-id", "2")
    await page.click("#login button[type=submit]")
    await expect(page.locator("#agent-name")).to_have_text("Agent Smith")
    await expect(page.locator("#live")).to_have_class("live on")  # the event stream is open
    await expect(page.locator("#status .on")).to_have_attribute("data-status", "offline")
    return console


async def _dashboard(browser: BrowserContext, base: str) -> Watched:
    dashboard = await open_page(browser, base + "/dashboard")
    page = dashboard.page
    await page.fill("#subdomain", "demo")
    await page.fill("#token", "demo-token")
    await page.click("#login button[type=submit]")
    await expect(page.locator("#tenant")).to_have_text("demo")
    await expect(page.locator("#live")).to_have_class("live on")
    return dashboard


def _call_row(page: Page, call_id: int) -> Any:
    return page.locator(f'#calls tr[data-call="{call_id}"]')


async def test_an_agent_takes_a_call_in_the_console_and_the_dashboard_follows_it(
    client: TestClient[Any, Any], redis: Redis, worker: Worker, browser: BrowserContext
) -> None:
    base = await _tenant(client, redis)
    console, dashboard = await _console(browser, base), await _dashboard(browser, base)
    agent, board = console.page, dashboard.page

    await (await front(console)).click('#status button[data-status="available"]')
    await expect(agent.locator("#status .on")).to_have_attribute("data-status", "available")
    assert (await get_json(client, f"{API}/agents/2"))["status"] == "available"
    await expect(board.locator('#agents tr[data-agent="2"] .badge')).to_have_text("available")

    call_id = (await inbound_call(client, PHONE_SALES))["id"]
    offer = agent.locator(f'.offer[data-call="{call_id}"]')
    await expect(offer).to_be_visible()
    await expect(board.locator("#kpi-offers")).to_have_text("1")
    await front(console)
    await offer.locator('[data-action="accept"]').click()

    held = agent.locator(f'#current-call[data-call="{call_id}"]')
    await expect(held).to_have_attribute("data-status", "connected")
    await expect(agent.locator("#no-offers")).to_be_visible()
    row = _call_row(board, call_id)
    await expect(row.locator("td").nth(4)).to_have_text("Agent Smith")
    await expect(row.locator(".badge")).to_have_text("connected")
    await expect(board.locator('#agents tr[data-agent="2"] td').nth(2)).to_have_text("1/1")

    await front(dashboard)
    await row.click()  # the call's detail and history
    await expect(board.locator("#detail-fields")).to_have_attribute("data-call", str(call_id))
    await expect(board.locator("#detail-agent")).to_have_text("Agent Smith")
    await expect(board.locator('#history li[data-event="accepted"]')).to_contain_text(
        "Accepted by Agent Smith: assigned"
    )

    await (await front(console)).click("#finish")
    await expect(held).to_have_attribute("data-status", "finished")
    assert (await get_call(client, call_id))["disconnected_by"] == "disconnected_by_agent"
    await expect(row.locator(".badge")).to_have_text("finished")
    await expect(board.locator("#detail-fields")).to_have_attribute("data-status", "finished")
    await expect(board.locator("#history li").last).to_contain_text("connected → finished")
    assert console.errors == [] and dashboard.errors == []


async def test_an_agent_declines_and_a_wrong_login_is_refused(
    client: TestClient[Any, Any], redis: Redis, worker: Worker, browser: BrowserContext
) -> None:
    base = await _tenant(client, redis)
    dashboard = await open_page(browser, base + "/dashboard")
    board = dashboard.page
    await board.fill("#subdomain", "demo")
    await board.fill("#token", "not-the-token")
    await board.click("#login button[type=submit]")
    await expect(board.locator("#login-error")).to_have_text("Unknown tenant or wrong token")
    await expect(board.locator("#board")).to_be_hidden()

    console = await _console(browser, base)
    agent = await front(console)
    await agent.click('#status button[data-status="available"]')
    await expect(agent.locator("#status .on")).to_have_attribute("data-status", "available")
    call_id = (await inbound_call(client, PHONE_SALES))["id"]
    offer = agent.locator(f'.offer[data-call="{call_id}"]')
    await offer.locator('[data-action="decline"]').click()
    await expect(offer).to_have_count(0)
    assert await get_json(client, f"{API}/agents/2/offers") == []
    assert (await get_call(client, call_id))["status"] == "queued"

    await front(dashboard)
    await board.fill("#token", "demo-token")
    await board.click("#login button[type=submit]")
    await board.fill("#lookup-id", str(call_id))
    await board.click("#lookup button")
    await expect(board.locator('#history li[data-event="declined"]')).to_contain_text(
        "Declined by Agent Smith"
    )
    assert console.errors == [] and dashboard.errors == []


async def test_signing_out_of_the_dashboard_ends_the_session(
    client: TestClient[Any, Any], redis: Redis, worker: Worker, browser: BrowserContext
) -> None:
    """The page sends the session's CSRF token with its logout: a reload shows the login."""
    base = await _tenant(client, redis)
    dashboard = await _dashboard(browser, base)
    board = dashboard.page
    await board.click("#signout")
    await expect(board.locator("#login")).to_be_visible()
    await board.reload()
    await expect(board.locator("#login")).to_be_visible()
    await expect(board.locator("#board")).to_be_hidden()
    assert dashboard.errors == []
