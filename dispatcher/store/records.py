"""Calls and chats in Redis: atomic creation with their first job, reads, lists and flags."""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import orjson
from redis.asyncio import Redis

from dispatcher.directory.tenant import Tenant
from dispatcher.domain import clock
from dispatcher.domain.call_requests import OutboundPlan, ParentCall, QueuedPlan
from dispatcher.domain.chat_requests import ACTIVE_SESSION, OPTED_OUT, SmsPlan
from dispatcher.domain.errors import InvalidRequest
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
from dispatcher.store.idempotency import Answer, Once
from dispatcher.store.scripts import Scripts

Kind = Literal["call", "chat"]
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
class _Answering:
    """The answer a create gives, stored under the client's key when there is one."""

    answer: Answer
    key: Once | None


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

    async def create_outbound(
        self, plan: OutboundPlan, now: datetime, key: Once | None = None
    ) -> Answer:
        """201 with the call, or 202 when the agent must still choose a number."""
        ids = await self._allocate("call", participants=2, end_user_number=None)
        now = ids.created
        call, meta = outbound_call(plan, self.tenant, ids, now)
        job, answer = None, Answer(201, call.model_dump_json().encode(), record_id=call.id)
        if meta.pending_action is None:
            job = jobs.JobSpec(jobs.DIAL_OUTBOUND, self.tenant.subdomain, call.id, clock.to_ms(now))
        else:
            pending = orjson.dumps(pending_choice(plan, call.id, meta))
            answer = Answer(202, pending, record_id=call.id)
        claims = _Claims(agent_id=plan.agent.id, agent_capacity=plan.agent.capacity.voice)
        return await self._create(
            "call", call, meta.model_dump_json(), now, job, claims, _Answering(answer, key)
        )

    async def create_queued(
        self, plan: QueuedPlan, now: datetime, key: Once | None = None
    ) -> Answer:
        anonymous = None if plan.contact else plan.end_user_number
        ids = await self._allocate("call", participants=1, end_user_number=anonymous)
        now = ids.created
        call, meta = queued_call(plan, self.tenant, ids, now)
        if plan.scheduled_at is not None:
            run_at, function = clock.to_ms(plan.scheduled_at), jobs.FIRE_SCHEDULED_CALL
            joins = (self.keys.scheduled, run_at)
        else:
            run_at, function = clock.to_ms(now), jobs.ROUTE_CALL
            joins = (self.keys.waiting(plan.menu.id), run_at)
        job = jobs.JobSpec(function, self.tenant.subdomain, call.id, run_at)
        claims = _Claims(joins=joins)
        answer = Answer(201, call.model_dump_json().encode(), record_id=call.id)
        return await self._create(
            "call", call, meta.model_dump_json(), now, job, claims, _Answering(answer, key)
        )

    async def create_chat(self, plan: SmsPlan, now: datetime, key: Once | None = None) -> Answer:
        anonymous = None if plan.contact else plan.end_user_number
        participants = 2 if plan.agent else 1
        ids = await self._allocate("chat", participants=participants, end_user_number=anonymous)
        now = ids.created
        chat, meta = sms_chat(plan, ids, now)
        job = jobs.JobSpec(jobs.SEND_SMS, self.tenant.subdomain, chat.id, clock.to_ms(now))
        claims = _Claims(
            consumer_number=plan.end_user_number,
            session_ttl_ms=self.tenant.doc.settings.sms_session_timeout_s * 1000,
        )
        answer = Answer(200, chat.model_dump_json().encode(), record_id=chat.id)
        return await self._create(
            "chat", chat, meta.model_dump_json(), now, job, claims, _Answering(answer, key)
        )

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

    async def _allocate(self, kind: Kind, participants: int, end_user_number: str | None) -> Ids:
        record_id, first_participant, end_user, created_ms = await self._scripts.allocate_ids(
            keys=[
                self.keys.sequence(kind),
                self.keys.sequence("participant"),
                self.keys.sequence("end_user"),
                self.keys.end_users,
            ],
            args=[participants, end_user_number or ""],
        )
        return Ids(
            record=record_id,
            first_participant=first_participant,
            end_user=end_user or None,
            created=clock.from_ms(created_ms),
        )

    async def _create(
        self,
        kind: Kind,
        record: CallObject | ChatObject,
        meta_json: str,
        now: datetime,
        job: jobs.JobSpec | None,
        claims: _Claims,
        answering: _Answering,
    ) -> Answer:
        now_ms = clock.to_ms(now)
        if kind == "call":
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
        outcome = await self._scripts.create_record(
            keys=[
                self._record_key(kind, record.id),
                *indexes,
                jobs.QUEUE_NAME,
                self.keys.agent(claims.agent_id),
                self.keys.sms_session(claims.consumer_number or ""),
                self.keys.do_not_contact,
                claims.joins[0] if claims.joins else self.keys.waiting(0),
                answering.key.redis_key if answering.key else self.keys.idempotency("", ""),
            ],
            args=[
                record.model_dump_json(),
                meta_json,
                record.status,
                now_ms,
                record.id,
                "" if claims.agent_capacity is None else claims.agent_capacity,
                claims.consumer_number or "",
                claims.session_ttl_ms,
                claims.joins[1] if claims.joins else "",
                record.lang if isinstance(record, CallObject) else "",
                *(answering.key.script_args() if answering.key else ["", 0]),
                answering.answer.status,
                answering.answer.body if answering.key else b"",
                *jobs.script_args([job] if job else [], now_ms),
            ],
        )
        if isinstance(outcome, list):  # a concurrent duplicate stored first
            assert answering.key is not None
            return idempotency.replay(answering.key, outcome)
        if outcome != 1:
            raise InvalidRequest(_CLAIM_ERRORS[int(outcome)])
        return answering.answer
