"""POST /calls/batch (and a campaign's batch): up to 1,000 call requests in one body, each
checked and answered exactly as POST /calls checks and answers it, all stored in one pass of
pipelined writes. An item's `client_token` is its Idempotency-Key (see store/idempotency.py)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from dispatcher.directory.tenant import Tenant
from dispatcher.domain import batches, call_requests, clock
from dispatcher.domain.campaigns import check_joins, with_campaign_defaults
from dispatcher.domain.errors import DispatchError, InvalidRequest
from dispatcher.http.appkeys import SETTINGS, stores_of
from dispatcher.http.auth import charge, tenant_of
from dispatcher.http.body import NOT_AN_OBJECT, json_object
from dispatcher.http.calls import BASE
from dispatcher.http.responses import json_response
from dispatcher.store import idempotency
from dispatcher.store.calls import CallPlan, CallStore
from dispatcher.store.campaigns import CampaignLink
from dispatcher.store.idempotency import Answer, Once

routes = web.RouteTableDef()
NO_IDEMPOTENCY_KEY = (
    f"{idempotency.HEADER} is not taken on batches: give each call a {idempotency.TOKEN}"
)


@dataclass(frozen=True)
class Joining:
    """The campaign a batch's calls join."""

    menu_id: int
    link: CampaignLink


@dataclass
class _Item:
    """One call request of a batch, on its way to its answer (or its refusal)."""

    body: dict[str, Any]
    key: Once | None = None
    answer: Answer | None = None
    refused: DispatchError | None = None

    @property
    def pending(self) -> bool:
        return self.answer is None and self.refused is None

    def settle(self, outcome: Answer | DispatchError) -> None:
        if isinstance(outcome, Answer):
            self.answer = outcome
        else:
            self.refused = outcome


@routes.post(BASE + "/batch")
async def create_batch(request: web.Request) -> web.Response:
    tenant = await tenant_of(request)
    return await answer_batch(request, tenant, None)


async def answer_batch(
    request: web.Request, tenant: Tenant, joining: Joining | None
) -> web.Response:
    """Reads the batch, answers each item as POST /calls would, creates the valid ones."""
    if idempotency.HEADER in request.headers:
        raise InvalidRequest(NO_IDEMPOTENCY_KEY)
    requests = batches.items_of(await json_object(request))
    await charge(request, tenant, batches.tokens_for(len(requests)) - 1)  # 1 taken already
    records = stores_of(request, tenant).calls
    ttl_s = request.app[SETTINGS].idempotency_ttl_s
    items = [_item(records, raw, ttl_s, joining) for raw in requests]
    await _replay(records, [item for item in items if item.pending and item.key])
    await _create(records, [item for item in items if item.pending], joining)
    return json_response(_answer(items))


def _item(records: CallStore, raw: object, ttl_s: int, joining: Joining | None) -> _Item:
    """The item's shape and client_token, checked first as POST /calls checks its body and
    Idempotency-Key first."""
    item = _Item(body={})
    try:
        if not isinstance(raw, dict):
            raise InvalidRequest(NOT_AN_OBJECT)
        campaign_id = joining.link.campaign_id if joining else None
        item.key = idempotency.once_for_item(records.keys, "calls", raw, ttl_s, campaign_id)
        item.body = with_campaign_defaults(raw, joining.menu_id) if joining else raw
    except DispatchError as refused:
        item.refused = refused
    return item


async def _replay(records: CallStore, keyed: list[_Item]) -> None:
    """Items whose client_token has an answer get it again (or 409 for another call)."""
    if not keyed:
        return
    keys = [item.key for item in keyed if item.key is not None]
    stored = await records.recall_many(keys)
    for item, key, first in zip(keyed, keys, stored, strict=True):
        if first[0] is None:
            continue
        try:
            item.answer = idempotency.replay(key, first)  # type: ignore[arg-type]
        except DispatchError as refused:
            item.refused = refused


async def _create(records: CallStore, pending: list[_Item], joining: Joining | None) -> None:
    """Validation of each item, then one pipelined creation of the valid ones."""
    wanted = {id(item): call_requests.wanted_parent(item.body) for item in pending}
    parent_ids = {parent_id for parent_id in wanted.values() if parent_id is not None}
    parents = await records.parent_calls(parent_ids) if parent_ids else {}
    now = clock.now()
    planned: list[tuple[_Item, CallPlan]] = []
    for item in pending:
        parent_id = wanted[id(item)]
        parent = parents.get(parent_id) if parent_id is not None else None
        try:
            plan = call_requests.validate(item.body, records.tenant, now, parent)
            planned.append((item, check_joins(plan, joining.menu_id) if joining else plan))
        except DispatchError as refused:
            item.refused = refused
    outcomes = await records.create_calls(
        [(plan, item.key) for item, plan in planned], joining.link if joining else None
    )
    for (item, _), outcome in zip(planned, outcomes, strict=True):
        item.settle(outcome)


def _answer(items: list[_Item]) -> bytes:
    """`{"created", "replayed", "failed", "results": [{"status", "replayed", "body"}, ...]}`,
    each body exactly what POST /calls would have answered (stored bodies sent as they are)."""
    tally: Counter[str] = Counter()
    results = []
    for item in items:
        if item.answer is not None:
            status, body, replayed = item.answer.status, item.answer.body, item.answer.replayed
        else:
            assert item.refused is not None
            refused = item.refused
            status, replayed = refused.status, False
            body = orjson.dumps({"message": refused.message})
        tally["replayed" if replayed else "created" if status < 300 else "failed"] += 1
        flag = b"true" if replayed else b"false"
        results.append(b'{"status":%d,"replayed":%s,"body":%s}' % (status, flag, body))
    head = orjson.dumps({name: tally[name] for name in ("created", "replayed", "failed")})
    return head[:-1] + b',"results":[' + b",".join(results) + b"]}"
