"""Query parameters and headers of the list endpoints (page/per, filters, Total/Per-Page/Link)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from aiohttp import web

from dispatcher.domain import clock
from dispatcher.domain.errors import InvalidRequest
from dispatcher.domain.fields import integer, positive_param
from dispatcher.domain.statuses import (
    CALL_TYPE_ALIASES,
    CHAT_TYPE_ALIASES,
    CallStatus,
    ChatStatus,
)
from dispatcher.http import headers as request_headers
from dispatcher.http.appkeys import SETTINGS
from dispatcher.http.responses import json_array, json_response
from dispatcher.store.records import Kind, ListQuery, Page, RecordStore

DEFAULT_PER = 100
MAX_PER = 1000
SORT_COLUMNS = ("id", "created_at")  # both follow creation order


# Per kind: its statuses, the name of its type filter and the type values by their names.
_FILTERS: dict[Kind, tuple[frozenset[str], str, Mapping[str, str]]] = {
    "call": (frozenset(CallStatus), "call_type", CALL_TYPE_ALIASES),
    "chat": (frozenset(ChatStatus), "chat_type", CHAT_TYPE_ALIASES),
}


async def respond(request: web.Request, records: RecordStore) -> web.Response:
    """GET /calls or /chats: one page of stored objects, with Total, Per-Page and Link."""
    query = parse_query(request.query, records.kind)
    page = await records.page(query)
    return json_response(json_array(page.items), headers=headers(request, query, page))


def parse_query(query: Mapping[str, str], kind: Kind) -> ListQuery:
    """The list's filters, sort and page from its query string (400 on any bad one)."""
    page, per = paging(query)
    if query.get("sort_column", "id") not in SORT_COLUMNS:
        raise InvalidRequest("sort_column must be one of id, created_at")
    direction = query.get("sort_direction", "desc").lower()
    if direction not in ("asc", "desc"):
        raise InvalidRequest("sort_direction must be asc or desc")
    return replace(filters(query, kind), page=page, per=per, descending=direction == "desc")


def filters(query: Mapping[str, str], kind: Kind) -> ListQuery:
    """The filters of a list (`status`, the type, `created_at[from]` and `created_at[to]`, and a
    call list's `campaign_id`) from a query string, 400 on any bad one: the lists', and the
    reports' over the same records."""
    statuses, type_param, types = _FILTERS[kind]
    status = query.get("status")
    if status is not None and status not in statuses:
        raise InvalidRequest("status is not valid")
    raw_type = query.get(type_param)
    record_type = None
    if raw_type is not None:
        record_type = types.get(raw_type)
        if record_type is None:
            raise InvalidRequest(f"{type_param} is not valid")
    return ListQuery(
        status=status,
        type=record_type,
        created_from_ms=_moment(query, "created_at[from]"),
        created_to_ms=_moment(query, "created_at[to]"),
        campaign_id=_campaign_id(query) if kind == "call" else None,
    )


def _campaign_id(query: Mapping[str, str]) -> int | None:
    raw = query.get("campaign_id")
    if raw is None:
        return None
    value = integer(raw)  # at most 18 digits: a PostgreSQL bigint, as the history's ids are
    if value is None or value < 1:
        raise InvalidRequest("campaign_id is not valid")
    return value


def paging(query: Mapping[str, str]) -> tuple[int, int]:
    """`page` (from 1) and `per` (default 100, at most 1000) of any list."""
    return _positive(query, "page", 1), min(_positive(query, "per", DEFAULT_PER), MAX_PER)


def headers(request: web.Request, query: ListQuery, page: Page) -> dict[str, str]:
    return page_headers(request, query.page, query.per, page.total)


def page_headers(request: web.Request, page: int, per: int, total: int) -> dict[str, str]:
    """Total, Per-Page and Link (first, last, and next and prev where they exist)."""
    last = max(1, -(-total // per))
    links = {"first": 1, "last": last}
    if page < last:
        links["next"] = page + 1
    if 1 < page <= last:
        links["prev"] = page - 1
    here = request_headers.request_url(request, request.app[SETTINGS].public_url)
    link = ", ".join(
        f'<{here.update_query(page=str(number), per=str(per))}>; rel="{rel}"'
        for rel, number in links.items()
    )
    return {"Total": str(total), "Per-Page": str(per), "Link": link}


def _moment(query: Mapping[str, str], name: str) -> int | None:
    raw = query.get(name)
    if raw is None:
        return None
    moment = clock.parse_iso(raw)
    if moment is None:
        raise InvalidRequest(f"{name} is not well formed")
    return clock.to_ms(moment)


def _positive(query: Mapping[str, str], name: str, default: int) -> int:
    """A page or page size from the query (the same rule and message on every list)."""
    value = positive_param(query, name)
    return default if value is None else value
