"""The 202 choice in the agent console, in a real browser against the app and an ARQ worker: an
outbound call waiting for the agent's choice shows its numbers as buttons; a click makes the
choice and the call dials; a number the DNC list refuses says so and the call still waits."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from arq import Worker
from playwright.async_api import BrowserContext, expect
from redis.asyncio import Redis

from dispatcher.domain.compliance import ON_DNC_LIST
from tests.browser.conftest import front
from tests.browser.test_pages import _console
from tests.conftest import basic, load_directory
from tests.workers.conftest import API, CALLS, get_call, post_json, tenant_document

CONTACT_NUMBERS = ["+18596579625", "+18596579626"]
LISTED = CONTACT_NUMBERS[0]


async def _tenant(client: TestClient[Any, Any], redis: Redis) -> str:
    """The demo tenant without a default outbound number (an outbound call waits for the
    agent's choice of one), its ticket 71450's contact with two numbers, the first on the
    DNC list; calls answered at once and held 60 s; agent 2 offline, as the console's
    sign-in expects."""
    document = tenant_document(
        settings={
            "default_outbound_number": None,
            "simulator": {"answer_after_s": 0.05, "talk_time_s": 60, "rules": []},
        }
    )
    document["tenants"][0]["contacts"][0]["phone_numbers"] = CONTACT_NUMBERS
    await load_directory(redis, document)
    listed = {"contacts": [{"phone_number": LISTED}]}
    await post_json(client, f"{API}/outbound_dialer/dnc", listed)
    offline = await client.put(
        f"{API}/agents/2/status", json={"status": "offline"}, headers=basic()
    )
    assert offline.status == 200
    return str(client.make_url("")).rstrip("/")


async def test_an_agent_chooses_the_numbers_of_a_waiting_call_in_the_console(
    client: TestClient[Any, Any], redis: Redis, worker: Worker, browser: BrowserContext
) -> None:
    base = await _tenant(client, redis)
    console = await _console(browser, base)
    agent = await front(console)
    await agent.click('#status button[data-status="available"]')
    await expect(agent.locator("#status .on")).to_have_attribute("data-status", "available")
    await expect(agent.locator("#choices-card")).to_be_hidden()

    body = {
        "call_type": "Voice Outbound (API)",
        "agent_email": "agent@somedomain.com",
        "ticket_id": "71450",
    }
    call_id = (await post_json(client, CALLS, body, status=202))["call_id"]
    waiting = agent.locator(f'.choice[data-call="{call_id}"]')
    await expect(waiting).to_have_attribute("data-action", "select_end_user_number")
    await expect(waiting.locator("button")).to_have_text(CONTACT_NUMBERS)
    await expect(agent.locator("#current-number")).to_have_text("number to be chosen")

    await waiting.locator(f'button[data-number="{LISTED}"]').click()
    await expect(agent.locator("#choice-error")).to_have_text(f"Call #{call_id}: {ON_DNC_LIST}")
    await expect(waiting).to_have_attribute("data-action", "select_end_user_number")

    # The end user's number chosen, the outbound number is asked for next.
    await waiting.locator(f'button[data-number="{CONTACT_NUMBERS[1]}"]').click()
    await expect(waiting).to_have_attribute("data-action", "select_outbound_number")
    await expect(waiting.locator("button")).to_have_text(["+16285550199", "+13392195276"])
    await expect(agent.locator("#current-number")).to_have_text(CONTACT_NUMBERS[1])
    await waiting.locator('button[data-number="+13392195276"]').click()

    held = agent.locator(f'#current-call[data-call="{call_id}"]')
    await expect(held).to_have_attribute("data-status", "connected")
    await expect(agent.locator("#choices-card")).to_be_hidden()
    assert (await get_call(client, call_id))["outbound_number"] == "+13392195276"
    await agent.click("#finish")
    await expect(held).to_have_attribute("data-status", "finished")
    response = await client.get(f"{API}/agents/2/choices", headers=basic())
    assert await response.json() == []
    assert console.errors == []
