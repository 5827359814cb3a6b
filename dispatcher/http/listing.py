"""Query parameters and headers of the list endpoints (page/per, filters, Total/Per-Page/Link)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from aiohttp import web

from dispatcher.domain import clock
from dispatcher.domain.errors import InvalidRequest
from dispatcher.domain.fields import integer
from dispatcher.domain.statuses import (
    CALL_TYPE_ALIASES,
    CHAT_TYPE_ALIASES,
    CallStatus,
    ChatStatus,
)
from dispatcher.http import headers as request_headers
from dispatcher.http.appkeys import SETTINGS
from dispatcher.http.responses import json_array, json_response
from dispatcher.store.keys import TenantKeys
from dispatcher.store.records import Kind, ListQuery, Page, RecordStore

DEFAULT_PER = 100
MAX_PER = 1000
SORT_COLUMNS = ("id", "created_at")  # both follow creation order


def _call_type_index(keys: TenantKeys, raw: str) -> str | None:
    call_type = CALL_TYPE_ALIASES.get(raw)
    return keys.calls_by_type(call_type) if call_type else None


def _chat_type_index(keys: TenantKeys, raw: str) -> str | None:
    chat_type = CHAT_TYPE_ALIASES.get(raw)
    return keys.chats_by_type(chat_type) if chat_type else None


# Per kind: its statuses, the name of its type filter and the index of a type.
_FILTERS: dict[Kind, tuple[frozenset[str], str, Callable[[TenantKeys, str], str | None]]] = {
    "call": (frozenset(CallStatus), "call_type", _call_type_index),
    "chat": (frozenset(ChatStatus), "chat_type", _chat_type_index),
}


async def respond(request: web.Request, records: RecordStore) -> web.Response:
    """GET /calls or /chats: one page of stored objects, with Total, Per-Page and Link."""
    statuses, type_param, type_index = _FILTERS[records.kind]
    query = parse_query(
        request.query, statuses, type_param, lambda raw: type_index(records.keys, raw)
    )
    page = await records.page(query)
    return json_response(json_array(page.items), headers=headers(request, query, page))


def parse_query(
    query: Mapping[str, str],
    statuses: frozenset[str],
    type_param: str,
    type_key: Callable[[str], str | None],
) -> ListQuery:
    page, per = paging(query)
    status = query.get("status")
    if status is not None and status not in statuses:
        raise InvalidRequest("status is not valid")
    raw_type = query.get(type_param)
    index = None
    if raw_type is not None:
        index = type_key(raw_type)
        if index is None:
            raise InvalidRequest(f"{type_param} is not valid")
    if query.get("sort_column", "id") not in SORT_COLUMNS:
        raise InvalidRequest("sort_column must be one of id, created_at")
    direction = query.get("sort_direction", "desc").lower()
    if direction not in ("asc", "desc"):
        raise InvalidRequest("sort_direction must be asc or desc")
    return ListQuery(
        page=page,
        per=per,
        status=status,
        type_key=index,
        created_from_ms=_moment(query, "created_at[from]"),
        created_to_ms=_moment(query, "created_at[to]"),
        descending=direction == "desc",
    )


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
    raw = query.get(name)
    if raw is None:
        return default
    value = integer(raw)
    if value is None or not 1 <= value <= 1_000_000_000:
        raise InvalidRequest(f"{name} must be a positive integer")
    return value
