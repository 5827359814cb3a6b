"""Campaigns: create, list, read, pause/resume/cancel, and batches of calls that join one."""

from __future__ import annotations

from aiohttp import web

from dispatcher.directory.tenant import Tenant
from dispatcher.domain.campaigns import (
    CAMPAIGN_NOT_FOUND,
    NAME_TAKEN,
    CampaignObject,
    CampaignState,
    cancelled,
    validate_campaign,
)
from dispatcher.domain.errors import Conflict, NotFound
from dispatcher.domain.fields import integer
from dispatcher.http import listing
from dispatcher.http.appkeys import stores_of
from dispatcher.http.auth import tenant_of
from dispatcher.http.batches import Joining, answer_batch
from dispatcher.http.body import json_object
from dispatcher.http.responses import json_array, json_response
from dispatcher.store.campaigns import Action, Campaigns
from dispatcher.store.records import ListQuery, Page

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
