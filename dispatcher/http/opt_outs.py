"""SMS opt-outs: the consumers who texted an opt-out word, listed, looked up and removed (a
number removed may be sent an SMS again). This product's addition: the platform has no such
route (docs/decisions.md)."""

from __future__ import annotations

from aiohttp import web

from dispatcher.domain import phones
from dispatcher.domain.errors import InvalidRequest, NotFound
from dispatcher.http import listing
from dispatcher.http.appkeys import stores_of
from dispatcher.http.auth import tenant_of
from dispatcher.http.responses import json_response
from dispatcher.store.opt_outs import OptOut, OptOuts

routes = web.RouteTableDef()
BASE = "/apps/api/v1/sms/opt_outs"
NOT_OPTED_OUT = "Phone number has not opted out"
INVALID_NUMBER = "phone_number is invalid"
# Any segment, braces too (aiohttp's default refuses them), so that whatever is no number is
# answered as such rather than as an unknown route.
ONE = BASE + "/{phone_number:[^/]+}"


@routes.get(BASE)
async def list_opt_outs(request: web.Request) -> web.Response:
    """Newest first, paged as GET /calls."""
    page, per = listing.paging(request.query)
    total, entries = await (await _opt_outs(request)).page(page, per)
    headers = listing.page_headers(request, page, per, total)
    return json_response([entry.view() for entry in entries], headers=headers)


@routes.get(ONE)
async def get_opt_out(request: web.Request) -> web.Response:
    opt_outs = await _opt_outs(request)
    return _found(await opt_outs.find(_number(request)))


@routes.delete(ONE)
async def remove_opt_out(request: web.Request) -> web.Response:
    """The consumer may be sent an SMS again; answers the entry removed."""
    opt_outs = await _opt_outs(request)
    return _found(await opt_outs.remove(_number(request)))


async def _opt_outs(request: web.Request) -> OptOuts:
    return stores_of(request, await tenant_of(request)).opt_outs


def _number(request: web.Request) -> str:
    """The path's number in E.164, however it is written (`+1 (415) 111-3333`, `4151113333`)."""
    number = phones.normalize(request.match_info["phone_number"])
    if number is None:
        raise InvalidRequest(INVALID_NUMBER)
    return number


def _found(entry: OptOut | None) -> web.Response:
    if entry is None:
        raise NotFound(NOT_OPTED_OUT)
    return json_response(entry.view())
