"""Which carrier errors are the carrier's fault (the call then switches to the tenant's next
carrier): Twilio's 5xx, a timeout and a refused connection, against the local fake Twilio; not a
refusal the request caused, nor Twilio's 429. The simulated carrier's `unreachable` rule."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from dispatcher.carriers.base import CarrierError, Dial, Resources
from dispatcher.carriers.simulated import SimulatedCarrier
from dispatcher.carriers.twilio import TwilioCarrier
from dispatcher.directory import loader
from dispatcher.directory.schema import TenantDoc
from dispatcher.directory.tenant import Tenant
from dispatcher.settings import Settings
from dispatcher.store.jobs import JobSpec
from tests.conftest import demo_document
from tests.dispatcher.carriers.test_registry import CREDENTIALS, tenant_on
from tests.ports import free_port
from tests.twilio_fake import FakeTwilio

END_USER = "+18596579625"
FROM = "+13392195276"
ON_TWILIO = tenant_on("twilio", "simulated")


@pytest.fixture
async def fake() -> AsyncIterator[FakeTwilio]:
    twilio = FakeTwilio()
    twilio.api_url = await twilio.start()
    yield twilio
    await twilio.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as opened:
        yield opened


def twilio(session: aiohttp.ClientSession, api_url: str, **settings: Any) -> TwilioCarrier:
    values: dict[str, Any] = {
        "public_url": "https://dispatch.example.com",
        "twilio_accounts": CREDENTIALS,
        "twilio_api_url": api_url,
        **settings,
    }
    return TwilioCarrier(session, Settings(**values))


async def dial_error(carrier: TwilioCarrier | SimulatedCarrier, tenant: Tenant) -> CarrierError:
    with pytest.raises(CarrierError) as caught:
        await carrier.dial(Dial(tenant, 1, END_USER, FROM))
    return caught.value


@pytest.mark.parametrize(
    ("status", "code", "fault"),
    [
        (500, None, True),
        (502, None, True),
        (503, None, True),
        (504, None, True),
        (400, 21211, False),
        (401, 20003, False),
        (404, 20404, False),
        (429, 20429, False),  # Twilio's pace: tried again at Twilio, not a reason to switch
    ],
)
async def test_twilio_s_own_errors_are_its_fault_and_the_request_s_are_not(
    session: aiohttp.ClientSession, fake: FakeTwilio, status: int, code: int | None, fault: bool
) -> None:
    fake.fail_next(status, code)
    error = await dial_error(twilio(session, fake.api_url), ON_TWILIO)
    assert error.carrier_fault is fault
    assert str(error).startswith(f"Twilio refused the call: HTTP {status}")


async def test_a_twilio_that_does_not_answer_in_time_is_at_fault(
    session: aiohttp.ClientSession, fake: FakeTwilio
) -> None:
    fake.stall_s = 1.0
    error = await dial_error(twilio(session, fake.api_url, twilio_timeout_s=0.2), ON_TWILIO)
    assert (error.carrier_fault, error.fail_reason) == (True, "voip_conn_timeout")
    assert str(error) == "Twilio did not answer the call request in time"


async def test_a_twilio_that_refuses_the_connection_is_at_fault(
    session: aiohttp.ClientSession,
) -> None:
    error = await dial_error(twilio(session, f"http://127.0.0.1:{free_port()}"), ON_TWILIO)
    assert (error.carrier_fault, error.fail_reason) == (True, "voip_conn_general")
    assert str(error) == "Twilio could not be reached (ClientConnectorError)"


async def test_the_simulated_carrier_fails_an_unreachable_number_as_a_carrier_at_fault() -> None:
    reported: list[JobSpec] = []

    async def report(specs: list[JobSpec]) -> None:
        reported.extend(specs)

    rules = [{"prefix": "+1859", "outcome": "unreachable"}]
    document = demo_document()
    document["tenants"][0]["settings"]["simulator"] = {"rules": rules}
    doc = TenantDoc.model_validate(loader.validate(document).tenants[0].model_dump())
    tenant = Tenant(doc=doc, token_hashes=[])
    async with aiohttp.ClientSession() as session:
        carrier = SimulatedCarrier.create(Resources(Settings(), session, report))
        error = await dial_error(carrier, tenant)
    assert (error.carrier_fault, error.retry_after_s) == (True, 0)
    assert str(error) == "the simulated carrier could not be reached"
    assert reported == []
