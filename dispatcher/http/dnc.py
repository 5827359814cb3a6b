"""The company do-not-call list, in the platform's shape (its Apps API's outbound_dialer/dnc):
add numbers with an optional expiry, take them off, look one up, and list the whole list."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dispatcher.domain import clock, dnc
from dispatcher.domain.errors import NotFound
from dispatcher.domain.phones import normalize
from dispatcher.http import listing
from dispatcher.http.appkeys import stores_of
from dispatcher.http.auth import charge, tenant_of
from dispatcher.http.body import json_object
from dispatcher.http.responses import json_response
from dispatcher.store.dnc import Entry

routes = web.RouteTableDef()
BASE = "/apps/api/v1/outbound_dialer/dnc"


@routes.post(BASE)
async def add_numbers(request: web.Request) -> web.Response:
    """One answer a contact, in order: created, updated (its expiry replaced) or failed."""
    tenant = await tenant_of(request)
    body = await json_object(request)
    now_ms = clock.to_ms(clock.now())  # once the body is in: "past" is judged as it is stored
    contacts = dnc.contacts_of(body, now_ms)
    await charge(request, tenant, dnc.tokens_for(len(contacts)) - 1)  # 1 taken already
    entries = [(c.number, c.expires_ms) for c in contacts if c.number is not None]
    created = iter(await stores_of(request, tenant).dnc.add(entries, now_ms))
    answer = []
    for contact in contacts:
        if contact.error is not None:
            answer.append({**contact.sent, "status": "failed", "error": contact.error})
        else:
            answer.append({**contact.sent, "status": "created" if next(created) else "updated"})
    return json_response(answer)


@routes.post(BASE + "/remove")
async def remove_numbers(request: web.Request) -> web.Response:
    """One answer a number, in order: removed, not_found, or failed (no number)."""
    tenant = await tenant_of(request)
    numbers = dnc.numbers_of(await json_object(request))
    await charge(request, tenant, dnc.tokens_for(len(numbers)) - 1)
    valid = [number.number for number in numbers if number.number is not None]
    now_ms = clock.to_ms(clock.now())
    removed = iter(await stores_of(request, tenant).dnc.remove(valid, now_ms))
    answer: list[dict[str, Any]] = []
    for number in numbers:
        if number.number is None:
            failed = {"status": "failed", "error": dnc.INVALID_NUMBER}
            answer.append({"phone_number": number.sent, **failed})
        else:
            status = "removed" if next(removed) else "not_found"
            answer.append({"phone_number": number.sent, "status": status})
    return json_response(answer)


@routes.get(BASE)
async def list_numbers(request: web.Request) -> web.Response:
    """Oldest first (by when each was added, then by number), paged as GET /calls."""
    tenant = await tenant_of(request)
    page, per = listing.paging(request.query)
    now_ms = clock.to_ms(clock.now())
    total, entries = await stores_of(request, tenant).dnc.page(page, per, now_ms)
    headers = listing.page_headers(request, page, per, total)
    return json_response([entry_view(entry) for entry in entries], headers=headers)


# Any segment but `remove`: that path is the remove's alone, so that its 405 allows POST only.
@routes.get(BASE + "/{phone_number:(?!remove$)[^{}/]+}")
async def check_number(request: web.Request) -> web.Response:
    """The number's entry; 404 when it is not on the list, or is no number at all (then it
    cannot be)."""
    tenant = await tenant_of(request)
    number = normalize(request.match_info["phone_number"])
    now_ms = clock.to_ms(clock.now())
    found = await stores_of(request, tenant).dnc.entry(number, now_ms) if number else None
    if found is None:
        raise NotFound(dnc.NOT_ON_THE_LIST)
    return json_response(entry_view(found))


def entry_view(entry: Entry) -> dict[str, Any]:
    expires = None if entry.expires_ms is None else clock.iso(clock.from_ms(entry.expires_ms))
    return {
        "phone_number": entry.number,
        "expires_at": expires,
        "created_at": clock.iso(clock.from_ms(entry.created_ms)),
    }
