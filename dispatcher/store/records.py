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
from dispatcher.store.keys import Key
from dispatcher.store.scripting import Refused
from dispatcher.store.scripts import (
    NO_JOBS,
    AllocateIds,
    CreateRecord,
    Jobs,
    Missing,
    Scripts,
    SetFlags,
)

Kind = Literal["call", "chat"]
CallPlan = OutboundPlan | QueuedPlan
AGENT_NOT_AVAILABLE = "Agent is not available to take this call"
_CLAIM_ERRORS = {
    "agent_busy": AGENT_NOT_AVAILABLE,
    "session_active": ACTIVE_SESSION,
    "opted_out": OPTED_OUT,
}


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
    joins: tuple[Key, int] | None = None


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
        ids = _ids(await self._scripts.run(self._allocation(_allocation(plan), bucket)))
        creation = self._call_creation(plan, ids, key, None)
        return await self._create(creation)

    async def create_calls(
        self, planned: Sequence[tuple[CallPlan, Once | None]], campaign: CampaignLink | None
    ) -> list[Answer | DispatchError]:
        """Many calls (a batch), in the order given, in two pipelined round trips: their ids,
        then their records, each written by the same script and interpreted the same way as
        `create_call`'s. One that fails its claims fails alone."""
        if not planned:
            return []
        allocations = [self._allocation(_allocation(plan)) for plan, _ in planned]
        async with self._redis.pipeline(transaction=False) as pipe:
            for allocation in allocations:
                await self._scripts.queue(allocation, pipe)
            if campaign is not None:
                pipe.hget(campaign.key, "pump_seq")
            allocated = await pipe.execute()
        pump_seq = int(allocated.pop() or 0) if campaign is not None else 0
        creations = [
            self._call_creation(plan, _ids(allocation.decode(raw)), key, campaign)
            for (plan, key), allocation, raw in zip(planned, allocations, allocated, strict=True)
        ]
        scripts = [self._record_script(creation) for creation in creations]
        async with self._redis.pipeline(transaction=False) as pipe:
            for script in scripts:
                await self._scripts.queue(script, pipe)
            if campaign is not None:
                # One pump for the batch, due with its first call: after the calls, which it
                # then finds stored (fire_campaign_call.lua checks the campaign itself).
                wake = min(creation.due_ms for creation in creations)
                pump = campaign.want_pump(pump_seq, wake)
                await self._scripts.queue(pump, pipe)
            outcomes = await pipe.execute(raise_on_error=False)
        if campaign is not None:
            await campaign.settle_pump(self._scripts, outcomes.pop(), pump)
        return [
            _settled(creation, script, raw)
            for creation, script, raw in zip(creations, scripts, outcomes, strict=True)
        ]

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
        allocation = self._allocation(("chat", participants, anonymous), bucket)
        ids = _ids(await self._scripts.run(allocation))
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
        return await self._create(creation)

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
        flags = {f"flag:{name}": "1" if value else "0" for name, value in changes.items()}
        try:
            await self._scripts.run(SetFlags(self.keys.call(call_id), flags))
        except Missing:
            return None
        return await self.flags(call_id)

    async def page(self, kind: Kind, query: ListQuery) -> Page:
        index = self.keys.calls if kind == "call" else self.keys.chats
        filters: list[str] = [index]
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

    def _record_key(self, kind: Kind, record_id: int) -> Key:
        return self.keys.call(record_id) if kind == "call" else self.keys.chat(record_id)

    def _allocation(self, allocation: _Allocation, bucket: Bucket | None = None) -> AllocateIds:
        """allocate_ids.lua for the ids of one new record (after a token of `bucket`)."""
        kind, participants, end_user_number = allocation
        return AllocateIds(
            record_seq=self.keys.sequence(kind),
            participant_seq=self.keys.sequence("participant"),
            end_user_seq=self.keys.sequence("end_user"),
            end_users=self.keys.end_users,
            participants=participants,
            number=end_user_number,
            bucket=bucket,
        )

    async def _create(self, creation: _Creation) -> Answer:
        """Runs create_record.lua for one creation: the client's answer (raises refusals)."""
        script = self._record_script(creation)
        try:
            await self._scripts.run(script)
        except Refused as refused:
            return _refused(creation, refused)
        return creation.answer

    def _record_script(self, creation: _Creation) -> CreateRecord:
        """create_record.lua for one creation."""
        record, claims, key, campaign = (
            creation.record,
            creation.claims,
            creation.key,
            creation.campaign,
        )
        now_ms = clock.to_ms(creation.now)
        if isinstance(record, CallObject):
            indexes = (
                self.keys.calls,
                self.keys.calls_by_status(record.status),
                self.keys.calls_by_type(record.call_type),  # type: ignore[arg-type]
            )
        else:
            indexes = (
                self.keys.chats,
                self.keys.chats_by_status(record.status),
                self.keys.chats_by_type(record.chat_type),  # type: ignore[arg-type]
            )
        session = claims.consumer_number is not None
        return CreateRecord(
            record=self._record_key(creation.kind, record.id),
            all=indexes[0],
            by_status=indexes[1],
            by_type=indexes[2],
            jobs=Jobs.of([creation.job], now_ms) if creation.job else NO_JOBS,
            doc=creation.doc.decode(),
            meta=creation.meta_json,
            status=record.status,
            score=now_ms,
            id=record.id,
            lang=record.lang if isinstance(record, CallObject) else None,
            agent=self.keys.agent(claims.agent_id) if claims.agent_capacity is not None else None,
            capacity=claims.agent_capacity,
            session=self.keys.sms_session(claims.consumer_number or "") if session else None,
            do_not_contact=self.keys.do_not_contact if session else None,
            number=claims.consumer_number,
            session_ttl=claims.session_ttl_ms if session else None,
            joins=claims.joins[0] if claims.joins else None,
            joins_score=claims.joins[1] if claims.joins else None,
            once=key.redis_key if key else None,
            once_answer=(
                {
                    "fp": key.fingerprint,
                    "ttl": key.ttl_ms,
                    "status": creation.answer.status,
                    "body": creation.answer.body.decode(),
                }
                if key
                else None
            ),
            campaign=campaign.key if campaign else None,
            campaign_due=campaign.due_key if campaign else None,
            due=creation.due_ms if campaign else None,
        )


_Allocation = tuple[Kind, int, str | None]  # kind, participants to number, anonymous number


def _allocation(plan: CallPlan) -> _Allocation:
    if isinstance(plan, OutboundPlan):
        return "call", 2, None
    return "call", 1, None if plan.contact else plan.end_user_number


def _ids(raw: tuple[int, int, int, int]) -> Ids:
    record_id, first_participant, end_user, created_ms = raw
    return Ids(
        record=record_id,
        first_participant=first_participant,
        end_user=end_user or None,
        created=clock.from_ms(created_ms),
    )


def _refused(creation: _Creation, refused: Refused) -> Answer:
    """What the client is answered when create_record.lua stored nothing (raises the claims'
    refusals): a concurrent duplicate's first answer, replayed."""
    if refused.code == "replay":
        assert creation.key is not None
        detail = refused.detail
        stored = [str(detail[name]).encode() for name in ("fp", "status", "body")]
        return idempotency.replay(creation.key, stored)
    if refused.code == "campaign_cancelled":
        raise cancelled()
    raise InvalidRequest(_CLAIM_ERRORS[refused.code])


def _settled(creation: _Creation, script: CreateRecord, outcome: Any) -> Answer | DispatchError:
    """The answer to one creation of a batch, its refusal returned rather than raised; an
    error of Redis itself for this one script (not the connection: that fails the whole
    batch) is answered as a 503 for this item alone."""
    if isinstance(outcome, ResponseError):
        return ServiceUnavailable("Service unavailable")
    try:
        script.decode(outcome)
    except Refused as refused:
        try:
            return _refused(creation, refused)
        except DispatchError as error:
            return error
    return creation.answer
