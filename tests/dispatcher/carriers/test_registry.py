"""The carrier registry: the adapters a worker builds from its settings, and the one refusal
of a tenant whose carrier this worker has not set up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from dispatcher.carriers import registry
from dispatcher.carriers.base import CarrierError, Resources
from dispatcher.carriers.simulated import SimulatedCarrier
from dispatcher.carriers.twilio import TwilioCarrier
from dispatcher.directory import loader
from dispatcher.directory.schema import TenantDoc
from dispatcher.directory.tenant import Tenant
from dispatcher.settings import Settings
from dispatcher.store.jobs import JobSpec
from tests.conftest import demo_document
from tests.twilio_fake import ACCOUNT_SID, AUTH_TOKEN

CREDENTIALS = {"": {"sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN}}


async def _report(specs: list[JobSpec]) -> None:
    raise AssertionError("nothing is dialled here")


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as opened:
        yield opened


def resources(session: aiohttp.ClientSession, **settings: Any) -> Resources:
    values: dict[str, Any] = {"public_url": "https://dispatch.example.com", **settings}
    return Resources(Settings(**values), session, _report)


def tenant_on(carrier: str, *following: str) -> Tenant:
    """The demo tenant placing its calls through `carrier`, then the `following` ones."""
    document = demo_document()
    document["tenants"][0]["settings"]["carrier"] = carrier
    document["tenants"][0]["settings"]["carriers"] = [carrier, *following]
    doc = TenantDoc.model_validate(loader.validate(document).tenants[0].model_dump())
    return Tenant(doc=doc, token_hashes=[])


def test_the_registry_names_each_adapter_by_its_own_name() -> None:
    assert dict(registry.ADAPTERS) == {"simulated": SimulatedCarrier, "twilio": TwilioCarrier}
    assert registry.NAMES == ("simulated", "twilio")


async def test_a_worker_builds_twilio_only_with_credentials(
    session: aiohttp.ClientSession,
) -> None:
    without = registry.Carriers.build(resources(session, twilio_accounts={}))
    assert list(without) == ["simulated"]
    with_credentials = registry.Carriers.build(resources(session, twilio_accounts=CREDENTIALS))
    assert list(with_credentials) == ["simulated", "twilio"]
    assert isinstance(with_credentials.of(tenant_on("twilio")), TwilioCarrier)
    assert isinstance(with_credentials.of(tenant_on("simulated")), SimulatedCarrier)


async def test_a_carrier_not_set_up_is_refused_with_the_one_message(
    session: aiohttp.ClientSession,
) -> None:
    carriers = registry.Carriers.build(resources(session, twilio_accounts={}))
    with pytest.raises(CarrierError) as caught:
        carriers.of(tenant_on("twilio"))
    assert str(caught.value) == "the twilio carrier is not set up (its credentials are not set)"
    assert (caught.value.fail_reason, caught.value.retry_after_s) == ("voip_conn_general", None)
    assert caught.value.carrier_fault is False  # the configuration's: no switch for it


async def test_a_tenant_s_adapter_is_its_first_carrier_and_any_is_found_by_name(
    session: aiohttp.ClientSession,
) -> None:
    carriers = registry.Carriers.build(resources(session, twilio_accounts=CREDENTIALS))
    assert isinstance(carriers.of(tenant_on("twilio", "simulated")), TwilioCarrier)
    assert isinstance(carriers.of(tenant_on("simulated", "twilio")), SimulatedCarrier)
    assert isinstance(carriers.named("twilio"), TwilioCarrier)
    with pytest.raises(CarrierError):
        carriers.named("vonage")
