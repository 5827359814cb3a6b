"""Campaigns: create, list, read, pause/resume/cancel, batches of calls that join one, and
a campaign's results (its report, and its contacts exported as CSV)."""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import hdrs, web

from dispatcher.directory.schema import RedialPolicy
from dispatcher.directory.tenant import Tenant
from dispatcher.domain import campaign_results, redials
from dispatcher.domain.campaign_results import EXPORT_COLUMNS, Contacts, export_row
from dispatcher.domain.campaigns import (
    CAMPAIGN_NOT_FOUND,
    NAME_TAKEN,
    CampaignObject,
    CampaignState,
    cancelled,
    validate_campaign,
)
from dispatcher.domain.errors import Conflict, NotFound
from dispatcher.domain.exports import csv_lines
from dispatcher.domain.fields import integer
from dispatcher.http import exports, listing
from dispatcher.http.appkeys import REQUEST_ID, SETTINGS, stores_of
from dispatcher.http.auth import tenant_of
from dispatcher.http.batches import Joining, answer_batch
from dispatcher.http.body import json_object
from dispatcher.http.errors import lift_deadline
from dispatcher.http.responses import json_array, json_response
from dispatcher.store.campaigns import Action, Campaigns
from dispatcher.store.records import ListQuery, Page
from dispatcher.store.stores import Stores

routes = web.RouteTableDef()
BASE = "/apps/api/v1/campaigns"


@routes.post(BASE)
async def create_campaign(request: web.Request) -> web.Response:
    tenant = await tenant_of(request)
    plan = validate_campaign(await json_object(request), tenant)
    campaigns = stores_of(request, tenant).campaigns
    created, campaign_id = await campaigns.create(plan)
    if not created:
        raise Conflict(NAME_TAKEN)
    return json_response(await _read(campaigns, campaign_id), status=201)


@routes.get(BASE)
async def list_campaigns(request: web.Request) -> web.Response:
    """Newest first, paged as GET /calls; `name` picks the campaign of that name."""
    tenant = await tenant_of(request)
    campaigns = stores_of(request, tenant).campaigns
    page, per = listing.paging(request.query)
    query = ListQuery(page=page, per=per)
    name = request.query.get("name")
    if name is None:
        total, ids = await campaigns.page(query.page, query.per)
    else:
        named = await campaigns.id_named(name)
        total, ids = (0, []) if named is None else (1, [named] if query.page == 1 else [])
    found = await campaigns.read_many(ids)
    headers = listing.headers(request, query, Page(total=total, items=[]))
    return json_response(json_array([c.model_dump_json().encode() for c in found]), headers=headers)


@routes.get(BASE + "/{id}")
async def get_campaign(request: web.Request) -> web.Response:
    tenant = await tenant_of(request)
    return json_response(await _read(stores_of(request, tenant).campaigns, _campaign_id(request)))


@routes.post(BASE + "/{id}/pause")
async def pause_campaign(request: web.Request) -> web.Response:
    """Holds the calls not fired yet; they fire after a resume, late (and say how late)."""
    return await _control(request, "pause")


@routes.post(BASE + "/{id}/resume")
async def resume_campaign(request: web.Request) -> web.Response:
    return await _control(request, "resume")


@routes.post(BASE + "/{id}/cancel")
async def cancel_campaign(request: web.Request) -> web.Response:
    """No call of the campaign fires once this has answered; those not fired end failed
    (swept in the background, in chunks)."""
    return await _control(request, "cancel")


@routes.post(BASE + "/{id}/calls/batch")
async def create_campaign_batch(request: web.Request) -> web.Response:
    """A batch of calls joining the campaign: scheduled calls on its menu (the defaults of
    `call_type` and `menu_id`), each checked and answered as POST /calls would."""
    tenant = await tenant_of(request)
    campaigns, campaign_id, (menu_id, state) = await _existing(request, tenant)
    if state == CampaignState.CANCELLED:
        raise cancelled()
    return await answer_batch(
        request, tenant, Joining(menu_id, await campaigns.link(campaign_id, menu_id))
    )


@routes.get(BASE + "/{id}/report")
async def campaign_report(request: web.Request) -> web.Response:
    """Its contacts' outcomes, attempts, contact rate, and the wait and talk of the answered
    ones, over its calls live and archived (docs/api.md, "A campaign's results")."""
    tenant = await tenant_of(request)
    _, campaign_id, _ = await _existing(request, tenant)
    stores = stores_of(request, tenant)
    size = request.app[SETTINGS].export_batch_size
    return json_response(await report(stores, campaign_id, size))


async def report(stores: Stores, campaign_id: int, size: int) -> dict[str, Any]:
    """The campaign's report (also the dashboard's campaign rows')."""
    contacts = await gathered(stores, campaign_id, size)
    return campaign_results.report(campaign_id, contacts, await _policy(stores, campaign_id))


@routes.get(BASE + "/{id}/export")
async def export_campaign(request: web.Request) -> web.StreamResponse:
    """One CSV row per contact, oldest first, written a batch at a time once every call has
    been read (a contact's final outcome is its latest call's, which may be the last read)."""
    tenant = await tenant_of(request)
    _, campaign_id, _ = await _existing(request, tenant)
    stores = stores_of(request, tenant)
    size = request.app[SETTINGS].export_batch_size
    async with exports.one_of_few(request, tenant):
        contacts = (await gathered(stores, campaign_id, size)).ordered()
        policy = await _policy(stores, campaign_id)
        response = web.StreamResponse(headers=_export_headers(request, campaign_id))
        if exports.takes_gzip(request.headers.get(hdrs.ACCEPT_ENCODING, "")):
            response.enable_compression(web.ContentCoding.gzip)
        await response.prepare(request)
        if request.method == hdrs.METH_HEAD:
            return response
        lift_deadline(request)  # each batch is written as the client takes it
        await response.write(csv_lines([EXPORT_COLUMNS]))
        for start in range(0, len(contacts), size):
            rows = [export_row(contact, policy) for contact in contacts[start : start + size]]
            await response.write(csv_lines(rows))
        structlog.contextvars.bind_contextvars(rows=len(contacts))
    return response


async def gathered(stores: Stores, campaign_id: int, size: int) -> Contacts:
    """The campaign's contacts, folded from its calls read `size` at a time."""
    contacts = Contacts()
    async for batch in stores.calls.campaign_calls(campaign_id, size):
        contacts.add(batch)
    return contacts


async def _policy(stores: Stores, campaign_id: int) -> RedialPolicy | None:
    """The redial policy its calls follow: its own, else the tenant's default."""
    return redials.policy_for(stores.tenant, await stores.campaigns.rules(campaign_id))


def _export_headers(request: web.Request, campaign_id: int) -> dict[str, str]:
    return {
        hdrs.CONTENT_TYPE: exports.MEDIA_TYPES["csv"],
        hdrs.CONTENT_DISPOSITION: f'attachment; filename="campaign_{campaign_id}.csv"',
        hdrs.CACHE_CONTROL: "no-store",  # personal data: no cache keeps a copy
        hdrs.VARY: hdrs.ACCEPT_ENCODING,
        "X-Request-Id": request[REQUEST_ID],
    }


async def _control(request: web.Request, action: Action) -> web.Response:
    tenant = await tenant_of(request)
    campaigns, campaign_id, (menu_id, _) = await _existing(request, tenant)
    outcome = await campaigns.control(campaign_id, menu_id, action)
    if outcome == "cancelled":
        raise cancelled()
    return json_response(await _read(campaigns, campaign_id))


async def _read(campaigns: Campaigns, campaign_id: int) -> CampaignObject:
    found = await campaigns.read(campaign_id)
    if found is None:
        raise NotFound(CAMPAIGN_NOT_FOUND)
    return found


async def _existing(request: web.Request, tenant: Tenant) -> tuple[Campaigns, int, tuple[int, str]]:
    """The tenant's campaigns, the id in the path, and that campaign's menu and state; 404 when
    there is no such campaign."""
    campaigns = stores_of(request, tenant).campaigns
    campaign_id = _campaign_id(request)
    basics = await campaigns.basics(campaign_id)
    if basics is None:
        raise NotFound(CAMPAIGN_NOT_FOUND)
    return campaigns, campaign_id, basics


def _campaign_id(request: web.Request) -> int:
    campaign_id = integer(request.match_info["id"])
    if campaign_id is None:
        raise NotFound(CAMPAIGN_NOT_FOUND)
    return campaign_id
