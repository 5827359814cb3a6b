"""A tenant's calls in Redis: creation, compare-and-set transitions, reads and their events."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, ClassVar, Literal

import orjson
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError

from dispatcher.directory.schema import CallingWindow
from dispatcher.domain import choices, clock, compliance, history, lifecycle, redials
from dispatcher.domain.call_requests import (
    SELECT_END_USER_NUMBER,
    OutboundPlan,
    ParentCall,
    QueuedPlan,
)
from dispatcher.domain.errors import Conflict, DispatchError, InvalidRequest
from dispatcher.domain.objects import CallObject, CustomerFlags
from dispatcher.domain.records import CallMeta, Ids, outbound_call, pending_choice, queued_call
from dispatcher.domain.statuses import TERMINAL_CALL_STATUSES, CallStatus, CallType
from dispatcher.store import campaigns, jobs
from dispatcher.store.archiving import Footprint, call_footprint
from dispatcher.store.buckets import Bucket
from dispatcher.store.campaigns import CampaignLink
from dispatcher.store.idempotency import Answer, Once
from dispatcher.store.records import (
    AGENT_NOT_AVAILABLE,
    Allocation,
    Claims,
    Creation,
    Kind,
    ListQuery,
    RecordStore,
    Visible,
    ids_of,
    settled,
)
from dispatcher.store.scripting import Script, Stale
from dispatcher.store.scripts import (
    CallBlocked,
    CampaignHeld,
    FireCampaignCall,
    Guard,
    HoldCampaignCall,
    Jobs,
    Missing,
    SetFlags,
    TakeToken,
    Transition,
    Write,
)

CallPlan = OutboundPlan | QueuedPlan
Stored = tuple[bytes, bytes]  # a call's object and meta, as stored (JSON each)
__all__ = ["AGENT_NOT_AVAILABLE", "CallBlocked", "CallPlan", "CampaignHeld"]


class CallChanging(RuntimeError):
    """The call kept changing under us; the job is retried by ARQ."""


SNAPSHOT_FIELDS = ["doc", "meta", "rev"]  # what `load` reads of a call's hash


@dataclass(frozen=True)
class Snapshot:
    call: CallObject
    meta: CallMeta
    rev: int

    @property
    def agent_id(self) -> int | None:
        if self.meta.agent_id is not None:
            return self.meta.agent_id
        return self.call.agent_info.id if self.call.agent_info else None


@dataclass
class Then:
    """A script sent in the same round trip as a change's write, right after it, whether the
    write is made or not (the script checks what it needs for itself): a fired call's first
    offering. Sent once: `ran` once it was, and `answer` its decoded answer (or the Stale it
    raised) when the write was made."""

    script: Script[Any]
    ran: bool = False
    answer: Any = None


@dataclass
class Change:
    call: CallObject
    meta: CallMeta | None = None
    jobs: list[jobs.JobSpec] = field(default_factory=list)
    waiting: Literal["add", "rem", ""] = ""
    release_agent: bool = False
    announce: bool = True  # False for changes clients cannot see (private facts only)
    # A scheduled call firing: written only if it may start (the DNC list, the contact limit).
    guard: Guard | None = None
    then: Then | None = None


class CallStore(RecordStore):
    """One tenant's calls, the only code that knows a call's layout in Redis: created with their
    first job in one atomic step, then every write a compare-and-set on the call's revision."""

    kind: ClassVar[Kind] = "call"

    async def create_call(
        self, plan: CallPlan, key: Once | None = None, bucket: Bucket | None = None
    ) -> Answer:
        """201 with the call; 202 for an outbound call that waits for the agent's choice.
        With `bucket`, the request's token of its rate limit is taken with the ids (or 429)."""
        ids = await self._ids(_allocation(plan), bucket)
        creation = self._call_creation(plan, ids, key, None)
        answer = await self._create(creation)
        await self._announce_waiting([(creation, answer)])
        return answer

    async def create_calls(
        self,
        planned: Sequence[tuple[CallPlan, Once | None]],
        campaign: CampaignLink | None,
        brief: bool = False,
    ) -> list[Answer | DispatchError]:
        """Many calls (a batch), in the order given, in two pipelined round trips: their ids
        (one script for the batch), then their records, each written by the same script and
        interpreted the same way as `create_call`'s. One that fails its claims fails alone.
        `brief`: the answers (and what their keys remember) are `{"id": N}` only, for callers
        that are not clients."""
        if not planned:
            return []
        allocation = self._allocation([_allocation(plan) for plan, _ in planned])
        async with self._redis.pipeline(transaction=False) as pipe:
            await self._scripts.queue(allocation, pipe)
            if campaign is not None:
                pipe.hget(campaign.key, "pump_seq")
            allocated = await pipe.execute()
        pump_seq = int(allocated[1] or 0) if campaign is not None else 0
        creations = [
            self._call_creation(plan, ids_of(raw), key, campaign)
            for (plan, key), raw in zip(planned, allocation.decode(allocated[0]), strict=True)
        ]
        if brief:
            creations = [replace(c, answer=_brief(c.record.id)) for c in creations]
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
        answers = [
            settled(creation, script, raw)
            for creation, script, raw in zip(creations, scripts, outcomes, strict=True)
        ]
        await self._announce_waiting(list(zip(creations, answers, strict=True)))
        return answers

    async def _announce_waiting(
        self, created: Sequence[tuple[Creation, Answer | DispatchError]]
    ) -> None:
        """A call created to wait for its agent's choice is announced, so that the agent's
        console shows it at once (a call created to be dialled is announced by its dial)."""
        for creation, answer in created:
            record = creation.record
            if answer is creation.answer and answer.status == 202:
                assert isinstance(record, CallObject)
                meta = CallMeta.model_validate_json(creation.meta_json)
                await self.announce(Snapshot(record, meta, 1))

    def _call_creation(
        self, plan: CallPlan, ids: Ids, key: Once | None, campaign: CampaignLink | None
    ) -> Creation:
        if isinstance(plan, OutboundPlan):
            return self._outbound(plan, ids, key)
        return self._queued(plan, ids, key, campaign)

    def _outbound(self, plan: OutboundPlan, ids: Ids, key: Once | None) -> Creation:
        now = ids.created
        call, meta = outbound_call(plan, self.tenant, ids, now)
        doc = call.model_dump_json().encode()
        job, answer = None, Answer(201, doc, record_id=call.id)
        if meta.pending_action is None:
            job = jobs.JobSpec(jobs.DIAL_OUTBOUND, self.tenant.subdomain, call.id, clock.to_ms(now))
        else:
            # Its timeout is queued with it: no crash can leave it holding its agent for good.
            due = meta.choice_expires_ms or clock.to_ms(now)
            job = jobs.JobSpec(jobs.EXPIRE_CHOICE, self.tenant.subdomain, call.id, due)
            pending = orjson.dumps(pending_choice(plan, call.id, meta))
            answer = Answer(202, pending, record_id=call.id)
        rules = compliance.rules_for(self.tenant, CallType.OUTBOUND, None)
        number = plan.end_user_number
        claims = Claims(
            agent_id=plan.agent.id,
            agent_capacity=plan.agent.capacity.voice,
            # A call waiting for the end user's number to be chosen is checked as it is chosen.
            guard=self.guard(number, call.id, rules, now) if number is not None else None,
        )
        return Creation("call", call, doc, meta.model_dump_json(), now, job, claims, answer, key)

    def _queued(
        self, plan: QueuedPlan, ids: Ids, key: Once | None, campaign: CampaignLink | None
    ) -> Creation:
        now = ids.created
        call, meta = queued_call(plan, self.tenant, ids, now)
        run_at, function, guard = clock.to_ms(now), jobs.ROUTE_CALL, None
        if plan.scheduled_at is not None:
            own = campaign.rules if campaign else None
            rules = compliance.rules_for(self.tenant, CallType.SCHEDULED, own)
            # Due outside its calling window: held from the start, due at the opening (and
            # judged again then).
            call = self._held_from_start(call, plan, rules.window)
            due = clock.parse_iso(call.held_until) or plan.scheduled_at
            run_at, function = clock.to_ms(due), jobs.FIRE_SCHEDULED_CALL
            joins = (self.keys.scheduled, run_at)
            # Stored only if the DNC list does not block it; its contact limit counts its
            # firing, not its creation.
            if rules.dnc:
                number = plan.end_user_number
                guard = self.guard(number, call.id, replace(rules, contact_limit=None))
        else:
            joins = (self.keys.waiting(plan.menu.id), run_at)
        job: jobs.JobSpec | None = jobs.JobSpec(function, self.tenant.subdomain, call.id, run_at)
        if campaign is not None:
            # Its campaign's pump fires it, at the campaign's pace: no job of its own.
            job, meta.campaign_id = None, campaign.campaign_id
            call.campaign_id = campaign.campaign_id
        claims = Claims(joins=joins, guard=guard)
        doc = call.model_dump_json().encode()
        answer = Answer(201, doc, record_id=call.id)
        meta_json = meta.model_dump_json()
        return Creation(
            "call", call, doc, meta_json, now, job, claims, answer, key, campaign, run_at
        )

    def _held_from_start(
        self, call: CallObject, plan: QueuedPlan, window: CallingWindow | None
    ) -> CallObject:
        """The new scheduled call, held until its window opens if it is due outside it. A
        window that never opens fails the call when it comes due (workers/scheduling.py)."""
        if plan.scheduled_at is None or window is None:
            return call
        try:
            opens = compliance.opening(self.tenant, window, plan.end_user_number, plan.scheduled_at)
        except InvalidRequest:
            return call
        if opens <= plan.scheduled_at:
            return call
        return lifecycle.held(call, opens, compliance.HELD_BY_WINDOW)

    async def choose(self, loaded: Snapshot, choice: choices.Choice) -> Snapshot:
        """The agent's choice, written only while the call still waits for it (409
        otherwise), with the call's dial queued in the same step once nothing more is pending.
        A chosen end user's number passes the DNC list and its contact limit in that step too,
        as a created call's does (400 otherwise, and the call still waits)."""
        rules = compliance.rules_for(self.tenant, CallType.OUTBOUND, None)

        def decide(current: Snapshot) -> Change:
            if not choices.waiting(current.call, current.meta):
                raise Conflict(choices.NOT_WAITING)
            if current.meta.pending_action != choice.action:
                raise Conflict(choices.NOT_WAITING)  # a choice made meanwhile moved it on
            now = clock.now()
            call, meta = choices.chosen(current.call, current.meta, choice)
            sub, now_ms = self.tenant.subdomain, clock.to_ms(now)
            dial = (
                []
                if meta.pending_action
                else [jobs.JobSpec(jobs.DIAL_OUTBOUND, sub, call.id, now_ms)]
            )
            guard = None
            if choice.action == SELECT_END_USER_NUMBER:
                guard = self.guard(choice.number, call.id, rules, now)
            # The end user's number is private: a choice of it alone changes no call object.
            return Change(call, meta=meta, jobs=dial, guard=guard, announce=call != current.call)

        try:
            after = await self.apply(loaded.call.id, decide, loaded=loaded)
        except CallBlocked as blocked:
            if blocked.reason == "dnc":
                raise InvalidRequest(compliance.ON_DNC_LIST) from None
            raise compliance.over_contact_limit(
                rules.contact_limit or 0, blocked.retry_at
            ) from None
        if after is None:
            raise Conflict(choices.NOT_WAITING)  # gone from Redis: it ended long ago
        return after

    async def waiting_choices(self, agent_id: int) -> list[Snapshot]:
        """The agent's calls waiting for its choice, oldest first: looked for among the
        tenant's assigned calls, which are few (each holds an agent's voice slot)."""
        ids = await self._redis.zrange(self.keys.calls_by_status(CallStatus.ASSIGNED), 0, -1)
        async with self._redis.pipeline(transaction=False) as pipe:
            for raw in ids:
                self.queue_load(pipe, int(raw))
            loaded = [self.snapshot_of(fields) for fields in await pipe.execute()]
        return [
            snapshot
            for snapshot in loaded
            if snapshot is not None
            and snapshot.agent_id == agent_id
            and choices.waiting(snapshot.call, snapshot.meta)
        ]

    async def campaign_calls(
        self, campaign_id: int, size: int = 1000
    ) -> AsyncIterator[list[tuple[bytes, bytes]]]:
        """Every call of the campaign, live and archived, each once, oldest first, as its
        object and meta (JSON each), `size` at a time (a contact's first call comes before
        its redials: their ids are drawn later)."""
        query = ListQuery(campaign_id=campaign_id, descending=False)
        archive = self._archive

        async def archived(visible: Visible, after: int | None) -> list[tuple[int, Stored]]:
            assert archive is not None
            return await archive.calls_batch(self.tenant.subdomain, query, visible, size, after)

        merged = self.merged(query, size, self._stored, archived if archive else None)
        async for batch in merged:
            yield batch

    async def _stored(self, ids: list[int]) -> list[Stored | None]:
        """The object and meta of each call of `ids`, in order: from Redis, else (archived
        since the ids were read) from PostgreSQL; None for one gone from both."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for call_id in ids:
                pipe.hmget(self.keys.call(call_id), ["doc", "meta"])
            replies = await pipe.execute()
        found: list[Stored | None] = [
            (doc, meta) if doc is not None and meta is not None else None for doc, meta in replies
        ]
        gone = [call_id for call_id, stored in zip(ids, found, strict=True) if stored is None]
        if gone and self._archive is not None:
            archived = await self._archive.calls_stored(self.tenant.subdomain, gone)
            found = [
                stored if stored is not None else archived.get(call_id)
                for call_id, stored in zip(ids, found, strict=True)
            ]
        return found

    async def parent_call(self, call_id: int) -> ParentCall | None:
        return (await self.parent_calls({call_id})).get(call_id)

    async def parent_calls(self, call_ids: set[int]) -> dict[int, ParentCall]:
        """The calls of `call_ids` that exist, live or archived, with their menus (a new call
        names one as its parent); read in one pipelined round trip, and one query for those
        no longer in Redis."""
        ordered = sorted(call_ids)
        async with self._redis.pipeline(transaction=False) as pipe:
            for call_id in ordered:
                pipe.hget(self.keys.call(call_id), "meta")
            metas = await pipe.execute()
        found = {
            call_id: ParentCall(id=call_id, menu_id=CallMeta.model_validate_json(meta).menu_id)
            for call_id, meta in zip(ordered, metas, strict=True)
            if meta is not None
        }
        gone = [call_id for call_id in ordered if call_id not in found]
        if gone and self._archive is not None:
            archived = await self._archive.menus(self.tenant.subdomain, gone)
            found |= {
                call_id: ParentCall(id=call_id, menu_id=menu_id)
                for call_id, menu_id in archived.items()
            }
        return found

    def guard(
        self,
        number: str,
        call_id: int,
        rules: compliance.Rules,
        now: datetime | None = None,
    ) -> Guard | None:
        """What a call to `number` must pass as it starts (store/scripts.py's Guard), by its
        rules; None when none of them applies."""
        if not rules.dnc and rules.contact_limit is None:
            return None
        limited = rules.contact_limit is not None
        return Guard(
            number=number,
            id=call_id,
            now=clock.to_ms(now or clock.now()),
            dnc=self.keys.dnc if rules.dnc else None,
            dnc_expiring=self.keys.dnc_expiring if rules.dnc else None,
            attempts=self.keys.attempts(number) if limited else None,
            limit=rules.contact_limit,
            span=compliance.CONTACT_LIMIT_SPAN_MS,
        )

    async def flags(self, call_id: int) -> CustomerFlags | None:
        fields = list(CustomerFlags.model_fields)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.exists(self.keys.call(call_id))
            pipe.hmget(self.keys.call(call_id), [f"flag:{name}" for name in fields])
            exists, values = await pipe.execute()
        if exists:
            return CustomerFlags(
                **{name: value == b"1" for name, value in zip(fields, values, strict=True)}
            )
        if self._archive is None:
            return None
        return _flags(await self._archive.flags(self.tenant.subdomain, call_id))

    async def set_flags(self, call_id: int, changes: dict[str, bool]) -> CustomerFlags | None:
        """Sets flags of a live call in Redis, of an archived one in its row."""
        flags = {f"flag:{name}": "1" if value else "0" for name, value in changes.items()}
        try:
            await self._scripts.run(SetFlags(self.keys.call(call_id), flags))
        except Missing:
            if self._archive is None:
                return None
            return _flags(await self._archive.set_flags(self.tenant.subdomain, call_id, changes))
        return await self.flags(call_id)

    async def detail(self, call_id: int) -> tuple[CallObject, list[dict[str, Any]]] | None:
        """The call and its history (the dashboard's call detail), live or archived."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hget(self.keys.call(call_id), "doc")
            pipe.lrange(self.keys.call_history(call_id), 0, -1)
            doc, stored = await pipe.execute()
        entries = [orjson.loads(raw) for raw in stored]
        if doc is None and self._archive is not None:
            doc = await self._archive.document("call", self.tenant.subdomain, call_id)
            entries = await self._archive.history("call", self.tenant.subdomain, call_id) or []
        if doc is None:
            return None
        call = CallObject.model_validate_json(doc)
        return call, [history.created(call), *entries]

    async def load(self, call_id: int) -> Snapshot | None:
        return self.snapshot_of(await self._redis.hmget(self.keys.call(call_id), SNAPSHOT_FIELDS))  # type: ignore[misc]

    def queue_load(self, pipe: Pipeline, call_id: int) -> None:
        """`load` on a pipeline of the caller's, read back by `snapshot_of` (a job that reads
        more than the call then pays one round trip for all of it)."""
        pipe.hmget(self.keys.call(call_id), SNAPSHOT_FIELDS)

    @staticmethod
    def snapshot_of(fields: list[bytes | None]) -> Snapshot | None:
        doc, meta, rev = fields
        if doc is None or meta is None or rev is None:
            return None
        return Snapshot(
            call=CallObject.model_validate_json(doc),
            meta=CallMeta.model_validate_json(meta),
            rev=int(rev),
        )

    async def apply(
        self,
        call_id: int,
        decide: Callable[[Snapshot], Change | None],
        attempts: int = 8,
        loaded: Snapshot | None = None,
    ) -> Snapshot | None:
        """Load, decide, write if unchanged meanwhile; None when there was nothing to do.
        `loaded`: the call as the caller just read it, decided on before reading it again."""
        for _ in range(attempts):
            snapshot, loaded = loaded or await self.load(call_id), None
            if snapshot is None:
                return None
            change = decide(snapshot)
            if change is None:
                return None
            rev = await self._write(snapshot, change)
            if rev:
                # Announced by the write's own script (Write.events), as `announce` would.
                return Snapshot(change.call, change.meta or snapshot.meta, rev)
        raise CallChanging(f"call {call_id} kept changing")

    async def _write(self, before: Snapshot, change: Change) -> int:
        """The change's compare-and-set: the new revision, or 0 when the call changed."""
        now_ms = clock.to_ms(clock.now())
        call = change.call
        doc = call.model_dump_json()
        webhooks = (
            jobs.webhook_jobs(self.tenant, "call", call.id, doc, before.rev + 1, now_ms)
            if change.announce
            else []
        )
        campaign_id = before.meta.campaign_id
        redial = await self._redial(before, change, now_ms) if campaign_id is not None else []
        queued = Jobs.of([*change.jobs, *webhooks, *redial], now_ms)
        write = self.write(before, call, change, now_ms, doc)
        fires = before.call.status == CallStatus.SCHEDULED and call.status == CallStatus.QUEUED
        try:
            if campaign_id is not None and fires:
                due = before.call.held_until or call.scheduled_at
                fire = self._fire_in_campaign(call, due, campaign_id, write, queued, change)
                return await self._run(fire, change.then)
            if campaign_id is not None and write.held_until is not None:
                menu_id = before.meta.menu_id or 0
                return await self._hold_in_campaign(campaign_id, menu_id, write, now_ms)
            redialling = self.keys.campaign_redialling(campaign_id or 0) if redial else None
            transition = Transition(
                write, queued, change.guard, redialling, now_ms if redialling else None
            )
            return await self._run(transition, change.then)
        except Stale:
            return 0

    async def _run(self, write: Script[int], then: Then | None) -> int:
        """The write's script, and `then` after it in the same round trip (one round trip:
        a fired call's, sent by `Scripts.send`). Redis having lost the scripts, the write is
        run again alone and `then` left unanswered."""
        if then is None or then.ran:
            return await self._scripts.run(write)
        then.ran = True
        async with self._redis.pipeline(transaction=False) as pipe:
            self._scripts.send(write, pipe)
            self._scripts.send(then.script, pipe)
            raw, raw_then = await pipe.execute(raise_on_error=False)
        if isinstance(raw, NoScriptError):
            return await self._scripts.run(write)  # which loads it
        for reply in (raw, raw_then):
            if isinstance(reply, Exception) and not isinstance(reply, NoScriptError):
                raise reply
        rev = write.decode(raw)  # Stale: not written, and `then` is not answered
        if not isinstance(raw_then, NoScriptError):
            try:
                then.answer = then.script.decode(raw_then)
            except Stale as stale:
                then.answer = stale
        return rev

    async def _redial(self, before: Snapshot, change: Change, now_ms: int) -> list[jobs.JobSpec]:
        """A campaign call failing with an outcome its redial policy lists, with attempts left:
        the job that makes its redial (workers/redials.py), queued with the failure itself so
        that no crash between the two loses it; named after the call, so it is queued once."""
        call, meta = change.call, change.meta or before.meta
        if not redials.may_follow(call) or before.call.status in TERMINAL_CALL_STATUSES:
            return []
        assert meta.campaign_id is not None
        link = campaigns.Campaigns(self._redis, self._scripts, self.tenant.subdomain)
        policy = redials.policy_for(self.tenant, await link.rules(meta.campaign_id))
        if policy is None or policy.delay_s(redials.outcome_of(call, meta), meta.attempt) is None:
            return []
        return [jobs.JobSpec(jobs.REDIAL_CALL, self.tenant.subdomain, call.id, now_ms)]

    def write(
        self,
        before: Snapshot,
        call: CallObject,
        change: Change,
        now_ms: int,
        doc: str | None = None,
    ) -> Write:
        """The compare-and-set of `before` into `call` (lib.lua's cas_transition); `doc` is
        the call's JSON when the caller has it already (serialising a call is the costliest
        Python of a transition: once per change)."""
        created = clock.parse_iso(call.created_at)
        menu_id = (change.meta or before.meta).menu_id or 0
        entry = history.change(before.call, call, now_ms) if change.announce else None
        campaign_id = before.meta.campaign_id
        ends = call.status in TERMINAL_CALL_STATUSES and before.call.status != call.status
        return Write(
            record=self.keys.call(call.id),
            from_index=self.keys.calls_by_status(before.call.status),
            to_index=self.keys.calls_by_status(call.status),
            rev=before.rev,
            doc=doc if doc is not None else call.model_dump_json(),
            status=call.status,
            id=call.id,
            score=clock.to_ms(created) if created else now_ms,
            meta=change.meta.model_dump_json() if change.meta else None,
            waiting=self.keys.waiting(menu_id) if change.waiting else None,
            waiting_op=change.waiting or None,
            waiting_score=now_ms if change.waiting else None,
            agent=self.keys.agent(before.agent_id or 0) if change.release_agent else None,
            release=change.release_agent,
            scheduled=self.keys.scheduled,
            history=self.keys.call_history(call.id),
            entry=orjson.dumps(entry).decode() if entry else None,
            campaign=self.keys.campaign(campaign_id) if campaign_id is not None else None,
            ended=self.keys.ended(self.kind) if ends else None,
            ended_score=now_ms if ends else None,
            held=self.keys.held if before.call.held_until or call.held_until else None,
            held_until=_ms(call.held_until),
            events=self.keys.events if change.announce else None,
            agent_events=self._agent_events(change, before) if change.announce else None,
        )

    def _agent_events(self, change: Change, before: Snapshot) -> str | None:
        """The channel of the agent holding the call after the change, if any."""
        agent_id = Snapshot(change.call, change.meta or before.meta, 0).agent_id
        return self.keys.agent_events(agent_id) if agent_id is not None else None

    async def _hold_in_campaign(
        self, campaign_id: int, menu_id: int, write: Write, now_ms: int
    ) -> int:
        """A held call of a campaign goes back among its calls due (hold_campaign_call.lua)."""
        link = campaigns.Campaigns(self._redis, self._scripts, self.tenant.subdomain)
        hold = HoldCampaignCall(
            change=write,
            due=self.keys.campaign_due(campaign_id),
            released=self.keys.campaign_released(campaign_id),
            pump=await link.next_pump(campaign_id, menu_id, now_ms),
            now=now_ms,
        )
        return await self._scripts.run(hold)

    def _fire_in_campaign(
        self,
        fired: CallObject,
        due: str | None,
        campaign_id: int,
        write: Write,
        queued: Jobs,
        change: Change,
    ) -> FireCampaignCall:
        """A call of a campaign fires only while its campaign runs: checked in the same atomic
        step as the compare-and-set (fire_campaign_call.lua). `due`: when it was due, its
        scheduled_at or the end of its hold (the campaign's lateness counts from it)."""
        moments = [clock.parse_iso(due), clock.parse_iso(fired.queued_at)]
        scheduled, queued_ms = (clock.to_ms(at) if at else 0 for at in moments)
        return FireCampaignCall(
            change=write,
            jobs=queued,
            due=self.keys.campaign_due(campaign_id),
            released=self.keys.campaign_released(campaign_id),
            scheduled=scheduled,
            queued=queued_ms,
            burst_s=campaigns.BURST_S,
            guard=change.guard,
        )

    async def announce(self, snapshot: Snapshot) -> None:
        """The tenant's channel gets every change; the call's agent gets it too (their
        console follows the call they hold), after `assigned` when it is the assignment."""
        call = snapshot.call.model_dump(mode="json")
        agent_id = snapshot.agent_id
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.publish(self.keys.events, orjson.dumps({"type": "call.updated", "call": call}))
            if agent_id is not None:
                channel = self.keys.agent_events(agent_id)
                if snapshot.call.status == CallStatus.ASSIGNED:
                    pipe.publish(channel, _event("assigned", {"call_id": snapshot.call.id}))
                pipe.publish(channel, _event("call_updated", call))
            await pipe.execute()

    # Offers ---------------------------------------------------------------------------------

    async def enqueue(self, specs: list[jobs.JobSpec]) -> None:
        await self._scripts.enqueue(specs, clock.to_ms(clock.now()))

    async def take_carrier_token(self, rate: float) -> int:
        """0 when a call may be placed now, else the ms until the tenant's bucket refills."""
        bucket = Bucket(self.keys.carrier_bucket, rate, max(1.0, rate))
        return await self._scripts.run(TakeToken(bucket))

    async def footprint(self, call_id: int) -> Footprint | None:
        """Every key and index entry the call holds now (None when there is no such call);
        archiving.call_footprint says where it looks."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hmget(self.keys.call(call_id), ["doc", "meta"])
            pipe.hgetall(self.keys.call_offers(call_id))
            (doc, meta), offered = await pipe.execute()
        if doc is None or meta is None:
            return None
        offers = {int(offer_id): int(agent_id) for agent_id, offer_id in offered.items()}
        candidates = call_footprint(self.keys, orjson.loads(doc), orjson.loads(meta), offers)
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in candidates.keys:
                pipe.exists(key)
            for key, member in candidates.entries:
                pipe.zscore(key, member)
            found = await pipe.execute()
        own, held = found[: len(candidates.keys)], found[len(candidates.keys) :]
        return Footprint(
            keys=[key for key, exists in zip(candidates.keys, own, strict=True) if exists],
            entries=[
                entry
                for entry, score in zip(candidates.entries, held, strict=True)
                if score is not None
            ],
        )


def _flags(stored: dict[str, bool] | None) -> CustomerFlags | None:
    if stored is None:
        return None
    return CustomerFlags(**{name: bool(stored.get(name)) for name in CustomerFlags.model_fields})


def _allocation(plan: CallPlan) -> Allocation:
    if isinstance(plan, OutboundPlan):
        return "call", 2, None
    return "call", 1, None if plan.contact else plan.end_user_number


def _ms(stamp: str | None) -> int | None:
    moment = clock.parse_iso(stamp)
    return clock.to_ms(moment) if moment is not None else None


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return orjson.dumps({"event": kind, "data": data})


def _brief(record_id: int) -> Answer:
    return Answer(201, orjson.dumps({"id": record_id}), record_id=record_id)
