"""Every Lua script of store/lua as the dataclass of its inputs (store/scripting.py), and their
registration on a Redis client. The fields' comments say what the script does with them; each
.lua file describes its own K and A in the same names."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript

from dispatcher.domain.campaigns import CampaignState
from dispatcher.domain.errors import Conflict
from dispatcher.store import keys
from dispatcher.store.buckets import Bucket
from dispatcher.store.jobs import PUMP_CAMPAIGN, JobSpec
from dispatcher.store.keys import Key
from dispatcher.store.scripting import (
    Errors,
    KeyTree,
    R,
    Script,
    every_script,
    list_of,
    lua_enums,
    lua_name,
    source,
)


@dataclass(frozen=True)
class Jobs:
    """ARQ jobs a script queues in its own atomic step (lib.lua's enqueue_jobs)."""

    specs: Sequence[JobSpec]
    now_ms: int

    @classmethod
    def of(cls, specs: Sequence[JobSpec], now_ms: int) -> Jobs:
        return cls(list(specs), now_ms)

    def lua(self) -> tuple[KeyTree, Any]:
        tree: list[KeyTree] = [
            {
                "job": keys.arq_job(spec.job_id),
                "result": keys.arq_result(spec.job_id),
                "queue": spec.queue,
            }
            for spec in self.specs
        ]
        args = [
            {
                "id": spec.job_id,
                "payload": spec.payload(self.now_ms).decode(),
                "score": spec.run_at_ms,
                "ttl": spec.ttl_ms(self.now_ms),
            }
            for spec in self.specs
        ]
        return tree, args


NO_JOBS = Jobs([], 0)


@dataclass(frozen=True)
class Pump:
    """A campaign's next pump job (lib.lua's want_pump): its id counts the campaign's pumps,
    `seq` being the count when it was read, so a script names the job's keys in advance."""

    subdomain: str
    campaign_id: int
    seq: int
    payload: bytes

    @property
    def job_id(self) -> str:
        return f"{PUMP_CAMPAIGN}:{self.subdomain}:{self.campaign_id}:{self.seq + 1}"

    def lua(self) -> tuple[KeyTree, Any]:
        tree: KeyTree = {"job": keys.arq_job(self.job_id), "queue": keys.QUEUE}
        return tree, {"id": self.job_id, "seq": self.seq, "payload": self.payload.decode()}


@dataclass(frozen=True)
class Guard:
    """What must hold for a call to `number` to start (lib.lua's guard_refusal): the number is
    not on the company DNC list (with `dnc`), and has had fewer than `limit` attempts in the
    last `span` ms (with `attempts`); the call `id` then counts as one (guard_count)."""

    number: str
    id: int
    now: int
    dnc: Key | None = None
    dnc_expiring: Key | None = None
    attempts: Key | None = None
    limit: int | None = None
    span: int = 86_400_000


class CallBlocked(Exception):
    """A call was not started (lib.lua's guard_refusal): its number is on the company DNC list
    (`reason` "dnc"), or over its contact limit ("contact_limit") until `retry_at` ms."""

    def __init__(self, reason: str, retry_at: int = 0) -> None:
        super().__init__(f"call blocked: {reason}")
        self.reason = reason
        self.retry_at = retry_at


BLOCKED: Errors = {
    code: lambda detail: CallBlocked(detail["err"], int(detail.get("retry_at", 0)))
    for code in ("dnc", "contact_limit")
}


@dataclass(frozen=True)
class Write:
    """The compare-and-set of a stored call or chat (lib.lua's cas_transition): its keys, and
    what it writes if the record is still at `rev`."""

    record: Key
    from_index: Key = field(metadata=lua_name("from"))  # the status index it leaves
    to_index: Key = field(metadata=lua_name("to"))  # the one it joins (the same if it stays)
    rev: int
    doc: str
    status: str
    id: int
    score: int  # its index score: created ms
    meta: str | None = None  # None keeps it
    waiting: Key | None = None  # the menu's waiting set, with `waiting_op`
    waiting_op: str | None = field(default=None, metadata=lua_name("waiting"))  # "add", "rem"
    waiting_score: int | None = None
    agent: Key | None = None  # the agent hash whose held call `release` gives back
    release: bool = False
    scheduled: Key | None = None  # the scheduled set a scheduled call leaves as it moves on
    history: Key | None = None  # the call's history, with `entry`
    entry: str | None = None
    campaign: Key | None = None  # a call of a campaign moves its counts of each status
    ended: Key | None = None  # the tenant's ended set, which a record joins as it ends
    ended_score: int | None = None  # when it ended (ms)
    # The tenant's held calls (a call held, or one that was): `held_until` ms holds the call
    # till then (and moves it there in the scheduled set); without it, the call leaves the set.
    held: Key | None = None
    held_until: int | None = None
    # Where the change is announced, by the same step that writes it (channels, not keys): the
    # tenant's events and, for a call an agent holds, the agent's (CallStore.announce's shape).
    events: str | None = None
    agent_events: str | None = None


# Calls and chats -------------------------------------------------------------------------


@dataclass(frozen=True)
class AllocateIds(Script[list[tuple[int, int, int, int]]]):
    """Per record, in order: (record id, first participant id, end-user id or 0, created ms),
    all created in the same ms."""

    name: ClassVar[str] = "allocate_ids"
    record_seq: Key
    participant_seq: Key
    end_user_seq: Key
    end_users: Key
    # Per record {"participants": n, "number": E.164}, the number of an end user the CRM does
    # not know (absent when it does).
    records: list[dict[str, Any]]
    bucket: Bucket | None = None  # the request's token of its rate limit, taken first

    def result(self, ok: Any) -> list[tuple[int, int, int, int]]:
        created = int(ok["created"])
        return [
            (int(record), int(participant), int(end_user), created)
            for record, participant, end_user in list_of(ok["ids"])
        ]

    def refusal(self, code: str, detail: dict[str, Any]) -> Exception:
        if code == "rate_limited" and self.bucket is not None:
            return self.bucket.refused(int(detail["wait_ms"]))
        return super().refusal(code, detail)


@dataclass(frozen=True)
class CreateRecord(Script[None]):
    """Refusals (err codes) are read by CallStore and ChatStore."""

    name: ClassVar[str] = "create_record"
    record: Key
    all: Key
    by_status: Key
    by_type: Key
    jobs: Jobs
    doc: str
    meta: str
    status: str
    score: int
    id: int
    lang: str | None = None
    agent: Key | None = None
    capacity: int | None = None
    session: Key | None = None
    do_not_contact: Key | None = None
    number: str | None = None
    session_ttl: int | None = None
    joins: Key | None = None
    joins_score: int | None = None
    once: Key | None = None
    once_answer: Mapping[str, Any] | None = field(default=None, metadata=lua_name("once"))
    campaign: Key | None = None
    campaign_due: Key | None = None
    campaign_calls: Key | None = None
    due: int | None = None
    guard: Guard | None = None  # the DNC list (and contact limit) a call may not start against
    held: Key | None = None  # the tenant's held calls, which a call held from the start joins
    held_until: int | None = None


@dataclass(frozen=True)
class SetFlags(Script[None]):
    name: ClassVar[str] = "set_flags"
    call: Key
    flags: Mapping[str, str]

    errors: ClassVar[Errors] = {"missing": lambda _: Missing("set_flags")}


@dataclass(frozen=True)
class BeginArchive(Script[dict[str, Any]]):
    """Reads ended records due for archiving and marks them as being moved; the pass's
    number and the records (store/archiving.py reads them)."""

    name: ClassVar[str] = "begin_archive"
    ended: Key
    archiving: Key
    seq: Key
    records: list[Key]
    histories: list[Key]
    offers: list[Key] | None
    ids: list[int]
    members: list[str]
    cutoff: int

    def result(self, ok: Any) -> dict[str, Any]:
        return {"seq": int(ok["seq"]), "records": list_of(ok["records"])}


@dataclass(frozen=True)
class ReleaseArchived(Script[int]):
    """Removes archived records from Redis, each only if unchanged since it was copied."""

    name: ClassVar[str] = "release_archived"
    ended: Key
    archiving: Key
    records: list[dict[str, Key | list[Key]]]
    moved: list[dict[str, Any]] = field(metadata=lua_name("records"))


class Missing(Exception):
    """The record a script was to change does not exist."""


@dataclass(frozen=True)
class Transition(Script[int]):
    """The new revision; Stale when the record changed meanwhile."""

    name: ClassVar[str] = "transition"
    change: Write
    jobs: Jobs
    guard: Guard | None = None  # a scheduled call firing: CallBlocked when it may not start
    # A campaign call failing with its redial queued: noted among the campaign's redials
    # being made, at `now` ms (keys.campaign_redialling).
    redialling: Key | None = None
    now: int | None = None

    errors: ClassVar[Errors] = BLOCKED


@dataclass(frozen=True)
class FireCampaignCall(Script[int]):
    """The new revision; Stale, or CampaignHeld when the campaign holds the call."""

    name: ClassVar[str] = "fire_campaign_call"
    change: Write  # its `campaign` key is the gate
    jobs: Jobs
    due: Key
    released: Key
    scheduled: int
    queued: int
    burst_s: float
    guard: Guard | None = None

    errors: ClassVar[Errors] = {
        **{
            code: lambda detail: CampaignHeld(detail["err"], int(detail.get("wait_ms", 0)))
            for code in (CampaignState.PAUSED, CampaignState.CANCELLED, "early")
        },
        **BLOCKED,
    }


@dataclass(frozen=True)
class HoldCampaignCall(Script[int]):
    """The new revision; Stale when the call changed meanwhile. A call of a campaign held
    (outside its calling window, over its contact limit) goes back among the campaign's calls
    not yet fired, due at `change.held_until`, and the pump is wanted for it."""

    name: ClassVar[str] = "hold_campaign_call"
    change: Write  # with `held` and `held_until`
    due: Key
    released: Key
    pump: Pump
    now: int


class CampaignHeld(Exception):
    """A call of a campaign was not fired (fire_campaign_call.lua): its campaign is paused or
    cancelled, or the call came `wait_ms` too early for the campaign's pace."""

    def __init__(self, reason: str, wait_ms: int = 0) -> None:
        super().__init__(f"campaign call held: {reason}")
        self.reason = reason
        self.wait_ms = wait_ms


@dataclass(frozen=True)
class EndSession(Script[bool]):
    name: ClassVar[str] = "end_session"
    session: Key
    chat_id: int


# Offers ----------------------------------------------------------------------------------

OFFER_GONE = "Offer is no longer available"


@dataclass(frozen=True)
class MakeOffers(Script[tuple[list[tuple[int, int]], list[int]]]):
    """((agent id, offer id) of the offers made, ids of the agents whose offers rang out)."""

    name: ClassVar[str] = "make_offers"
    call: Key
    call_offers: Key
    offer_seq: Key
    history: Key
    existing: Mapping[str, Key]
    agents: Mapping[str, Key]
    agent_offers: Mapping[str, Key]
    offers: list[Key]
    call_id: int
    now: int
    expires: int
    candidates: list[dict[str, Any]]
    first: int
    reserved: int  # ids reserved from `first`, at least one a candidate (`offers` has those)
    # Where the offers made are announced (channels, not keys), and their times as ISO text.
    channels: Mapping[str, str]
    events: str
    offered_at: str
    expires_at: str
    # The call's next routing step, queued by the same step: `next_step` when no offer was
    # made, `next_step_offered` (due when the offers ring out, if sooner) when some were.
    next_step: Jobs = NO_JOBS
    next_step_offered: Jobs = NO_JOBS

    def result(self, ok: Any) -> tuple[list[tuple[int, int]], list[int]]:
        made = list_of(ok["made"])
        pairs = [(int(made[i]), int(made[i + 1])) for i in range(0, len(made), 2)]
        return pairs, [int(agent) for agent in list_of(ok["rang_out"])]


@dataclass(frozen=True)
class AcceptOffer(Script[list[tuple[int, int]]]):
    """(agent id, offer id) of the offers withdrawn; Conflict when the offer is gone or its
    agent busy, Stale when the call changed meanwhile."""

    name: ClassVar[str] = "accept_offer"
    offer: Key
    change: Write
    agent: Key
    agent_offers: Key
    call_offers: Key
    others: Mapping[str, Key]
    other_agent_offers: Mapping[str, Key]
    other_channels: Mapping[str, str]  # agent id -> its events channel: told of a withdrawal
    jobs: Jobs
    now: int
    offer_id: int
    agent_id: int
    capacity: int
    recent_waits: Key  # the menu's latest assignments, this one pushed and the list capped
    waited: int  # ms from queued to assigned
    waits_kept: int

    def result(self, ok: Any) -> list[tuple[int, int]]:
        flat = list_of(ok)
        return [(int(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 2)]

    errors: ClassVar[Errors] = {
        "gone": lambda _: Conflict(OFFER_GONE),
        "busy": lambda _: Conflict(OFFER_GONE),
    }


@dataclass(frozen=True)
class DeclineOffer(Script[None]):
    name: ClassVar[str] = "decline_offer"
    offer: Key
    agent_offers: Key
    history: Key
    offer_id: int
    now: int

    errors: ClassVar[Errors] = {"gone": lambda _: Conflict(OFFER_GONE)}


@dataclass(frozen=True)
class SetAgentStatuses(Script[list[tuple[int, str, str, bool]]]):
    """Per agent (in `ids` order): its id, previous and current status, whether it holds a
    call."""

    name: ClassVar[str] = "set_agent_statuses"
    agents: Mapping[str, Key]
    ids: list[int]
    status: str
    guard: bool  # an agent holding a call keeps its status
    logout: bool  # a forced logout: offline now, or once the agent's last call ends

    def result(self, ok: Any) -> list[tuple[int, str, str, bool]]:
        return [(int(i), str(was), str(now), bool(held)) for i, was, now, held in list_of(ok)]


@dataclass(frozen=True)
class PickWaiting(Script[list[int]]):
    name: ClassVar[str] = "pick_waiting"
    agents: Mapping[str, Key]
    agent_offers: Mapping[str, Key]
    calls: Mapping[str, Key]
    call_offers: Mapping[str, Key]
    now: int
    agent_list: list[dict[str, Any]] = field(metadata=lua_name("agents"))
    waiting: list[int]

    def result(self, ok: Any) -> list[int]:
        return [int(call_id) for call_id in list_of(ok)]


# Campaigns -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreateCampaign(Script[int]):
    """The new id; campaigns.NameTaken, or Stale when another campaign took the number."""

    name: ClassVar[str] = "create_campaign"
    names: Key
    seq: Key
    all: Key
    campaign: Key
    id: int
    campaign_name: str = field(metadata=lua_name("name"))
    menu_id: int
    rate: str
    max_waiting: int | str
    rules: str  # its own calling window and contact limit (JSON of CampaignRules)
    now: int

    errors: ClassVar[Errors] = {"taken": lambda detail: NameTaken(int(detail["id"]))}


class NameTaken(Exception):
    def __init__(self, campaign_id: int) -> None:
        super().__init__(f"campaign name taken by {campaign_id}")
        self.campaign_id = campaign_id


@dataclass(frozen=True)
class CampaignControl(Script[None]):
    """Refused: `missing`, `cancelled`; Stale when its pumps were counted on meanwhile."""

    name: ClassVar[str] = "campaign_control"
    campaign: Key
    pump: Pump
    jobs: Jobs
    action: str
    now: int


@dataclass(frozen=True)
class ReleaseCampaign(Script[tuple[int, str]]):
    """(calls released, the campaign's state); Stale when its pumps were counted on."""

    name: ClassVar[str] = "release_campaign"
    campaign: Key
    due: Key
    released: Key
    waiting: Key
    queue: Key
    fires: Mapping[str, Key]
    pump: Pump
    now: int
    fire_jobs: Mapping[str, Mapping[str, str]] = field(metadata=lua_name("fires"))
    lookahead: int
    min_interval: int
    most: int
    burst_s: float
    full_poll: int
    stale_after: int

    def result(self, ok: Any) -> tuple[int, str]:
        return int(ok[0]), str(ok[1])


@dataclass(frozen=True)
class WantPump(Script[None]):
    name: ClassVar[str] = "want_pump"
    campaign: Key
    pump: Pump
    wake: int
    now: int


# The company DNC list (store/dnc.py) -----------------------------------------------------


@dataclass(frozen=True)
class DncAdd(Script[list[bool]]):
    """Per entry, in order: whether it was created (else updated)."""

    name: ClassVar[str] = "dnc_add"
    dnc: Key
    expiring: Key
    entries: list[str | int]  # number, expires_at ms (0: never) in turn
    now: int

    def result(self, ok: Any) -> list[bool]:
        return [letter == "c" for letter in str(ok)]


@dataclass(frozen=True)
class DncRemove(Script[list[bool]]):
    """Per number, in order: whether it was on the list (and is off it now)."""

    name: ClassVar[str] = "dnc_remove"
    dnc: Key
    expiring: Key
    numbers: list[str]
    now: int

    def result(self, ok: Any) -> list[bool]:
        return [letter == "r" for letter in str(ok)]


@dataclass(frozen=True)
class DncSweep(Script[int]):
    """The expired entries removed."""

    name: ClassVar[str] = "dnc_sweep"
    dnc: Key
    expiring: Key
    now: int
    most: int


@dataclass(frozen=True)
class DncPage(Script[tuple[int, list[tuple[str, int, int | None]]] | None]):
    """(entries on the list, the page's (number, added ms, expires ms or None)); None when
    expired entries are left to remove (ask again)."""

    name: ClassVar[str] = "dnc_page"
    dnc: Key
    expiring: Key
    now: int
    offset: int
    per: int
    most: int  # expired entries removed first, at most

    def result(self, ok: Any) -> tuple[int, list[tuple[str, int, int | None]]] | None:
        if ok.get("more"):
            return None
        flat = list_of(ok["entries"])
        entries = [
            (
                str(flat[i]),
                int(float(flat[i + 1])),
                int(float(flat[i + 2])) if flat[i + 2] else None,
            )
            for i in range(0, len(flat), 3)
        ]
        return int(ok["total"]), entries


# The rest --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimJobs(Script[list[tuple[str, int]]]):
    """The due jobs claimed for this worker (at most `most`), in the order given: (job id,
    score)."""

    name: ClassVar[str] = "claim_jobs"
    queue: Key
    running: Mapping[str, Key]  # job id -> its in-progress key
    order: list[str]
    most: int
    now: int
    timeout: int

    def result(self, ok: Any) -> list[tuple[str, int]]:
        return [(str(job_id), int(score)) for job_id, score in list_of(ok)]


@dataclass(frozen=True)
class FinishJob(Script[None]):
    """A job's end as ARQ records it (its finish_job), in one step: what becomes of its
    in-progress key, its result, try counter, body and queue entry."""

    name: ClassVar[str] = "finish_job"
    running: Key
    result_key: Key = field(metadata=lua_name("result"))
    retry: Key
    job: Key
    aborts: Key
    queue: Key
    job_id: str
    finish: bool
    data: str | None = None  # the result
    data_ttl: int | None = None  # ms; None keeps a result for good
    incr_score: int | None = None
    keep_running: int | None = None  # ms; None deletes the in-progress key


@dataclass(frozen=True)
class TakeToken(Script[int]):
    """The ms to wait for the tokens: 0 when they were taken."""

    name: ClassVar[str] = "take_token"
    bucket: Bucket
    tokens: int = 1


@dataclass(frozen=True)
class Enqueue(Script[None]):
    name: ClassVar[str] = "enqueue"
    jobs: Jobs


@dataclass(frozen=True)
class RaiseCounter(Script[None]):
    name: ClassVar[str] = "raise_counter"
    counter: Key
    at_least: int


@dataclass(frozen=True)
class ClaimStream(Script[int]):
    """0 when claimed, else the (1-based) scope that is full."""

    name: ClassVar[str] = "claim_stream"
    scopes: list[Key]
    caps: list[int]
    now: int
    expiry: int
    stream: str

    errors: ClassVar[Errors] = {"full": lambda detail: Full(int(detail["scope"]))}


class Full(Exception):
    def __init__(self, scope: int) -> None:
        super().__init__(f"stream scope {scope} is full")
        self.scope = scope


@dataclass(frozen=True)
class ReleaseDesk(Script[bool]):
    name: ClassVar[str] = "release_desk"
    desk: Key
    desk_id: str = field(metadata=lua_name("desk"))


class Scripts:
    """Every script registered on one Redis client (EVALSHA, loaded again if Redis lost it)."""

    def __init__(self, redis: Redis, registered: dict[str, AsyncScript]) -> None:
        self.redis = redis
        self._registered = registered

    @classmethod
    def register(cls, redis: Redis) -> Scripts:
        library = lua_enums() + "\n" + source("lib")
        return cls(
            redis,
            {
                script.name: redis.register_script(library + "\n" + source(script.name))
                for script in every_script()
            },
        )

    async def run(self, script: Script[R]) -> R:
        keys_, arg = script.parts()
        raw = await self._registered[script.name](keys=keys_, args=[arg])
        return script.decode(raw)

    async def queue(self, script: Script[Any], pipe: Pipeline) -> None:
        """Queues the script on `pipe`; its reply, from execute(), goes to `script.decode`."""
        keys_, arg = script.parts()
        await self._registered[script.name](keys=keys_, args=[arg], client=pipe)

    def send(self, script: Script[Any], pipe: Pipeline) -> None:
        """Queues the script's EVALSHA on `pipe` without `queue`'s check that it is loaded
        (redis-py sends SCRIPT EXISTS, a round trip of its own, before every pipeline that
        queued a script): for a caller to whom that round trip would be a third of its cost.
        A NoScriptError reply means Redis lost the script (a restart) and it did not run."""
        keys_, arg = script.parts()
        pipe.execute_command("EVALSHA", self._registered[script.name].sha, len(keys_), *keys_, arg)

    async def enqueue(self, specs: Sequence[JobSpec], now_ms: int) -> None:
        """ARQ jobs queued outside any other write (a write queues its own in its script)."""
        if specs:
            await self.run(Enqueue(jobs=Jobs.of(specs, now_ms)))

    async def take(self, bucket: Bucket | None, tokens: int = 1) -> None:
        """`tokens` of `bucket` (None: no limit), or 429 with the seconds to wait for them."""
        if bucket is None or tokens <= 0:
            return
        wait_ms = await self.run(TakeToken(bucket, tokens))
        if wait_ms:
            raise bucket.refused(wait_ms)
