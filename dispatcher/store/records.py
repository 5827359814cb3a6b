"""Calls and chats in Redis: atomic creation with their first job, reads, lists and flags."""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import ResponseError

from dispatcher.directory.tenant import Tenant
from dispatcher.domain import clock
from dispatcher.domain.call_requests import OutboundPlan, ParentCall, QueuedPlan
from dispatcher.domain.campaigns import cancelled
from dispatcher.domain.chat_requests import ACTIVE_SESSION, OPTED_OUT, SmsPlan
from dispatcher.domain.errors import DispatchError, InvalidRequest, ServiceUnavailable
from dispatcher.domain.objects import CallObject, ChatObject, CustomerFlags
from dispatcher.domain.records import (
    CallMeta,
    Ids,
    outbound_call,
    pending_choice,
    queued_call,
    sms_chat,
)
from dispatcher.store import idempotency, jobs, keys
from dispatcher.store.buckets import Bucket
from dispatcher.store.campaigns import CampaignLink
from dispatcher.store.idempotency import Answer, Once
from dispatcher.store.scripts import Scripts

Kind = Literal["call", "chat"]
CallPlan = OutboundPlan | QueuedPlan
AGENT_NOT_AVAILABLE = "Agent is not available to take this call"
_CLAIM_ERRORS = {0: AGENT_NOT_AVAILABLE, -1: ACTIVE_SESSION, -2: OPTED_OUT}


@dataclass(frozen=True)
class Page:
    total: int
    items: list[bytes]  # stored JSON documents, in order


@dataclass(frozen=True)
class ListQuery:
    page: int = 1
    per: int = 100
    status: str | None = None
    type_key: str | None = None  # an index key from TenantKeys.calls_by_type / chats_by_type
    created_from_ms: int | None = None
    created_to_ms: int | None = None
    descending: bool = True


@dataclass(frozen=True)
class _Creation:
    """A record ready to be stored by create_record.lua, and the answer its create gives
    (stored under the client's key when there is one)."""

    kind: Kind
    record: CallObject | ChatObject
    doc: bytes  # the record's JSON, serialised once: stored, and the answer's body
    meta_json: str
    now: datetime
    job: jobs.JobSpec | None
    claims: _Claims
    answer: Answer
    key: Once | None
    campaign: CampaignLink | None = None
    due_ms: int = 0  # when a call of a campaign is due


@dataclass(frozen=True)
class _Claims:
    agent_id: int = 0
    agent_capacity: int | None = None
    consumer_number: str | None = None
    session_ttl_ms: int = 0
    # The sorted set a call joins as it is stored, and its score there: a queued call waits in
    # its menu from the start (scored by creation), a scheduled one sits in the tenant's
    # scheduled set (scored by scheduled_at) until it fires.
    joins: tuple[str, int] | None = None


class Records:
    """Repository of one tenant's calls and chats."""

    def __init__(self, redis: Redis, scripts: Scripts, tenant: Tenant) -> None:
        self._redis = redis
        self._scripts = scripts
        self.tenant = tenant
        self.keys = keys.TenantKeys(tenant.subdomain)

    async def create_call(
        self, plan: CallPlan, key: Once | None = None, bucket: Bucket | None = None
    ) -> Answer:
        """201 with the call; 202 for an outbound call that waits for the agent's choice.
        With `bucket`, the request's token of its rate limit is taken with the ids (or 429)."""
        ids = _ids(await self._allocate(_allocation(plan), bucket=bucket), bucket)
        creation = self._call_creation(plan, ids, key, None)
        return _outcome(creation, await self._create(creation))

    async def create_calls(
        self, planned: Sequence[tuple[CallPlan, Once | None]], campaign: CampaignLink | None
    ) -> list[Answer | DispatchError]:
        """Many calls (a batch), in the order given, in two pipelined round trips: their ids,
        then their records, each written by the same script and interpreted the same way as
        `create_call`'s. One that fails its claims fails alone."""
        if not planned:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for plan, _ in planned:
                await self._allocate(_allocation(plan), pipe)
            allocated = await pipe.execute()
        creations = [
            self._call_creation(plan, _ids(raw), key, campaign)
            for (plan, key), raw in zip(planned, allocated, strict=True)
        ]
        async with self._redis.pipeline(transaction=False) as pipe:
            for creation in creations:
                await self._create(creation, pipe)
            outcomes = await pipe.execute(raise_on_error=False)
        return [_settled(c, raw) for c, raw in zip(creations, outcomes, strict=True)]

    def _call_creation(
        self, plan: CallPlan, ids: Ids, key: Once | None, campaign: CampaignLink | None
    ) -> _Creation:
        if isinstance(plan, OutboundPlan):
            return self._outbound(plan, ids, key)
        return self._queued(plan, ids, key, campaign)

    def _outbound(self, plan: OutboundPlan, ids: Ids, key: Once | None) -> _Creation:
        now = ids.created
        call, meta = outbound_call(plan, self.tenant, ids, now)
        doc = call.model_dump_json().encode()
        job, answer = None, Answer(201, doc, record_id=call.id)
        if meta.pending_action is None:
            job = jobs.JobSpec(jobs.DIAL_OUTBOUND, self.tenant.subdomain, call.id, clock.to_ms(now))
        else:
            pending = orjson.dumps(pending_choice(plan, call.id, meta))
            answer = Answer(202, pending, record_id=call.id)
        claims = _Claims(agent_id=plan.agent.id, agent_capacity=plan.agent.capacity.voice)
        return _Creation("call", call, doc, meta.model_dump_json(), now, job, claims, answer, key)

    def _queued(
        self, plan: QueuedPlan, ids: Ids, key: Once | None, campaign: CampaignLink | None
    ) -> _Creation:
        now = ids.created
        call, meta = queued_call(plan, self.tenant, ids, now)
        run_at, function = clock.to_ms(now), jobs.ROUTE_CALL
        if plan.scheduled_at is not None:
            run_at, function = clock.to_ms(plan.scheduled_at), jobs.FIRE_SCHEDULED_CALL
            joins = (self.keys.scheduled, run_at)
        else:
            joins = (self.keys.waiting(plan.menu.id), run_at)
        job: jobs.JobSpec | None = jobs.JobSpec(function, self.tenant.subdomain, call.id, run_at)
        if campaign is not None:
            # Its campaign's pump fires it, at the campaign's pace: no job of its own.
            job, meta.campaign_id = None, campaign.campaign_id
        claims = _Claims(joins=joins)
        doc = call.model_dump_json().encode()
        answer = Answer(201, doc, record_id=call.id)
        meta_json = meta.model_dump_json()
        return _Creation(
            "call", call, doc, meta_json, now, job, claims, answer, key, campaign, run_at
        )

    async def create_chat(
        self, plan: SmsPlan, now: datetime, key: Once | None = None, bucket: Bucket | None = None
    ) -> Answer:
        """200 with the chat; `bucket` as in `create_call`."""
        anonymous = None if plan.contact else plan.end_user_number
        participants = 2 if plan.agent else 1
        ids = _ids(await self._allocate(("chat", participants, anonymous), bucket=bucket), bucket)
        now = ids.created
        chat, meta = sms_chat(plan, ids, now)
        job = jobs.JobSpec(jobs.SEND_SMS, self.tenant.subdomain, chat.id, clock.to_ms(now))
        claims = _Claims(
            consumer_number=plan.end_user_number,
            session_ttl_ms=self.tenant.doc.settings.sms_session_timeout_s * 1000,
        )
        doc = chat.model_dump_json().encode()
        answer = Answer(200, doc, record_id=chat.id)
        meta_json = meta.model_dump_json()
        creation = _Creation("chat", chat, doc, meta_json, now, job, claims, answer, key)
        return _outcome(creation, await self._create(creation))

    async def document(self, kind: Kind, record_id: int) -> bytes | None:
        raw: bytes | None = await self._redis.hget(  # type: ignore[misc]
            self._record_key(kind, record_id), "doc"
        )
        return raw

    async def parent_call(self, call_id: int) -> ParentCall | None:
        raw_meta = await self._redis.hget(self.keys.call(call_id), "meta")  # type: ignore[misc]
        if raw_meta is None:
            return None
        return ParentCall(id=call_id, menu_id=CallMeta.model_validate_json(raw_meta).menu_id)

    async def parent_calls(self, call_ids: set[int]) -> dict[int, ParentCall]:
        """`parent_call` of many ids in one pipelined round trip; ids of no call left out."""
        ordered = sorted(call_ids)
        async with self._redis.pipeline(transaction=False) as pipe:
            for call_id in ordered:
                pipe.hget(self.keys.call(call_id), "meta")
            metas = await pipe.execute()
        return {
            call_id: ParentCall(id=call_id, menu_id=CallMeta.model_validate_json(meta).menu_id)
            for call_id, meta in zip(ordered, metas, strict=True)
            if meta is not None
        }

    async def flags(self, call_id: int) -> CustomerFlags | None:
        fields = list(CustomerFlags.model_fields)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.exists(self.keys.call(call_id))
            pipe.hmget(self.keys.call(call_id), [f"flag:{name}" for name in fields])
            exists, values = await pipe.execute()
        if not exists:
            return None
        return CustomerFlags(
            **{name: value == b"1" for name, value in zip(fields, values, strict=True)}
        )

    async def set_flags(self, call_id: int, changes: dict[str, bool]) -> CustomerFlags | None:
        args: list[str] = []
        for name, value in changes.items():
            args += [f"flag:{name}", "1" if value else "0"]
        if not await self._scripts.set_flags(keys=[self.keys.call(call_id)], args=args):
            return None
        return await self.flags(call_id)

    async def page(self, kind: Kind, query: ListQuery) -> Page:
        index = self.keys.calls if kind == "call" else self.keys.chats
        filters = [index]
        if query.status is not None:
            by_status = self.keys.calls_by_status if kind == "call" else self.keys.chats_by_status
            filters.append(by_status(query.status))
        if query.type_key is not None:
            filters.append(query.type_key)
        low = query.created_from_ms if query.created_from_ms is not None else -math.inf
        high = query.created_to_ms if query.created_to_ms is not None else math.inf
        scratch = None
        if len(filters) > 1:
            scratch = self.keys.scratch(uuid.uuid4().hex)
            await self._redis.zinterstore(scratch, filters[1:], aggregate="MIN")
            index = scratch
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.zcount(index, low, high)
                pipe.zrange(
                    index,
                    high if query.descending else low,  # type: ignore[arg-type]
                    low if query.descending else high,  # type: ignore[arg-type]
                    desc=query.descending,
                    byscore=True,
                    offset=(query.page - 1) * query.per,
                    num=query.per,
                )
                total, ids = await pipe.execute()
        finally:
            if scratch is not None:
                await self._redis.delete(scratch)
        return Page(total=total, items=await self._documents(kind, ids))

    async def _documents(self, kind: Kind, ids: Sequence[bytes]) -> list[bytes]:
        if not ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for raw_id in ids:
                pipe.hget(self._record_key(kind, int(raw_id)), "doc")
            docs = await pipe.execute()
        return [doc for doc in docs if doc is not None]

    def _record_key(self, kind: Kind, record_id: int) -> str:
        return self.keys.call(record_id) if kind == "call" else self.keys.chat(record_id)

    async def _allocate(
        self, allocation: _Allocation, pipe: Pipeline | None = None, bucket: Bucket | None = None
    ) -> Any:
        """Runs allocate_ids.lua for the ids of one new record (after a token of `bucket`)
        and returns its raw reply (read by `_ids`); or queues it on `pipe`, whose execute()
        returns the replies."""
        kind, participants, end_user_number = allocation
        keys = [
            self.keys.sequence(kind),
            self.keys.sequence("participant"),
            self.keys.sequence("end_user"),
            self.keys.end_users,
        ]
        args: list[Any] = [participants, end_user_number or ""]
        if bucket is not None:
            keys.append(bucket.key)
            args += bucket.script_args()
        return await self._scripts.allocate_ids(keys=keys, args=args, client=pipe)

    async def _create(self, creation: _Creation, pipe: Pipeline | None = None) -> Any:
        """Runs create_record.lua for one creation and returns its raw reply; or queues it on
        `pipe`, whose execute() returns the replies."""
        record, claims, key, campaign = (
            creation.record,
            creation.claims,
            creation.key,
            creation.campaign,
        )
        now_ms = clock.to_ms(creation.now)
        if creation.kind == "call":
            assert isinstance(record, CallObject)
            indexes = [
                self.keys.calls,
                self.keys.calls_by_status(record.status),
                self.keys.calls_by_type(record.call_type),  # type: ignore[arg-type]
            ]
        else:
            assert isinstance(record, ChatObject)
            indexes = [
                self.keys.chats,
                self.keys.chats_by_status(record.status),
                self.keys.chats_by_type(record.chat_type),  # type: ignore[arg-type]
            ]
        return await self._scripts.create_record(
            keys=[
                self._record_key(creation.kind, record.id),
                *indexes,
                jobs.QUEUE_NAME,
                self.keys.agent(claims.agent_id),
                self.keys.sms_session(claims.consumer_number or ""),
                self.keys.do_not_contact,
                claims.joins[0] if claims.joins else self.keys.waiting(0),
                key.redis_key if key else self.keys.idempotency("", ""),
                campaign.key if campaign else self.keys.campaign(0),
                campaign.due_key if campaign else self.keys.campaign_due(0),
            ],
            args=[
                creation.doc,
                creation.meta_json,
                record.status,
                now_ms,
                record.id,
                "" if claims.agent_capacity is None else claims.agent_capacity,
                claims.consumer_number or "",
                claims.session_ttl_ms,
                claims.joins[1] if claims.joins else "",
                record.lang if isinstance(record, CallObject) else "",
                *(key.script_args() if key else ["", 0]),
                creation.answer.status,
                creation.answer.body if key else b"",
                *(campaign.script_args(creation.due_ms) if campaign else ["", 0, "", b""]),
                *jobs.script_args([creation.job] if creation.job else [], now_ms),
            ],
            client=pipe,
        )


_Allocation = tuple[Kind, int, str | None]  # kind, participants to number, anonymous number


def _allocation(plan: CallPlan) -> _Allocation:
    if isinstance(plan, OutboundPlan):
        return "call", 2, None
    return "call", 1, None if plan.contact else plan.end_user_number


def _ids(raw: list[int], bucket: Bucket | None = None) -> Ids:
    if raw[0] == 0:  # the rate limit refused the request: [0, ms to wait]
        assert bucket is not None
        raise bucket.refused(raw[1])
    record_id, first_participant, end_user, created_ms = raw
    return Ids(
        record=record_id,
        first_participant=first_participant,
        end_user=end_user or None,
        created=clock.from_ms(created_ms),
    )


def _outcome(creation: _Creation, outcome: Any) -> Answer:
    """What the client is answered, from create_record.lua's reply (raises the refusals)."""
    if isinstance(outcome, list):  # a concurrent duplicate stored first
        assert creation.key is not None
        return idempotency.replay(creation.key, outcome)
    if outcome == -3:
        raise cancelled()
    if outcome != 1:
        raise InvalidRequest(_CLAIM_ERRORS[int(outcome)])
    return creation.answer


def _settled(creation: _Creation, outcome: Any) -> Answer | DispatchError:
    """`_outcome` of one creation of a batch, its refusal returned rather than raised; an error
    of Redis itself for this one script (not the connection: that fails the whole batch) is
    answered as a 503 for this item alone."""
    if isinstance(outcome, ResponseError):
        return ServiceUnavailable("Service unavailable")
    try:
        return _outcome(creation, outcome)
    except DispatchError as refused:
        return refused
