"""Every Redis key name of the product, ARQ's included; all keys of a tenant share the prefix
`dsp:t:{<subdomain>}:`, whose braces are a Redis Cluster hash tag: one tenant, one slot."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NewType

from arq.constants import default_queue_name, job_key_prefix, result_key_prefix

from dispatcher.domain.statuses import CallType, ChatType

# A Redis key name made here; the only kind of name a Lua script is given (store/scripts.py).
Key = NewType("Key", str)

ROOT = "dsp"
TENANTS = Key(f"{ROOT}:tenants")  # hash: subdomain -> version of its stored directory
WORKERS = Key(f"{ROOT}:workers")  # sorted set: worker id -> its last heartbeat (ms)
LAYOUT = Key(f"{ROOT}:layout")  # the layout of these keys (store/layout.py)

# ARQ's queues: the main one (ARQ's default name) and the webhook lane's (workers/settings.py).
QUEUE = Key(default_queue_name)
WEBHOOK_QUEUE = Key(f"{default_queue_name}:webhooks")


def arq_job(job_id: str) -> Key:
    """ARQ's stored job (its payload), by job id."""
    return Key(job_key_prefix + job_id)


def arq_result(job_id: str) -> Key:
    """ARQ's stored result of a finished job, by job id."""
    return Key(result_key_prefix + job_id)


def refused_bucket(address: str) -> Key:
    """Token bucket of a client address's requests with refused credentials (its own rate
    limit, so that they never spend a tenant's)."""
    return Key(f"{ROOT}:refused:{address}")


_CALL_TYPE_SLUGS = {
    CallType.OUTBOUND: "outbound",
    CallType.INBOUND: "inbound",
    CallType.SCHEDULED: "scheduled",
}
_CHAT_TYPE_SLUGS = {ChatType.MESSAGING_API: "api", ChatType.MESSAGING_SMS: "sms"}


@dataclass(frozen=True)
class TenantKeys:
    subdomain: str

    @property
    def prefix(self) -> str:
        """The braces make the subdomain the hash tag of every key below (see
        docs/architecture.md): a script's keys are then always in one Redis Cluster slot."""
        return f"{ROOT}:t:{{{self.subdomain}}}:"

    @property
    def directory(self) -> Key:
        return Key(self.prefix + "directory")

    def call(self, call_id: int) -> Key:
        return Key(f"{self.prefix}call:{call_id}")

    def call_history(self, call_id: int) -> Key:
        """List of the call's history entries (JSON), the last 50 kept (store/lua/lib.lua)."""
        return Key(f"{self.prefix}call:{call_id}:history")

    @property
    def calls(self) -> Key:
        """Sorted set of every call id, scored by creation time in ms."""
        return Key(self.prefix + "calls")

    def calls_by_status(self, status: str) -> Key:
        return Key(f"{self.prefix}calls:status:{status}")

    @property
    def scheduled(self) -> Key:
        """Sorted set of the scheduled calls not fired yet, scored by scheduled_at (ms)."""
        return Key(self.prefix + "calls:scheduled_at")

    def calls_by_type(self, call_type: CallType) -> Key:
        return Key(f"{self.prefix}calls:type:{_CALL_TYPE_SLUGS[call_type]}")

    def chat(self, chat_id: int) -> Key:
        return Key(f"{self.prefix}chat:{chat_id}")

    @property
    def chats(self) -> Key:
        return Key(self.prefix + "chats")

    def chats_by_status(self, status: str) -> Key:
        return Key(f"{self.prefix}chats:status:{status}")

    def chats_by_type(self, chat_type: ChatType) -> Key:
        return Key(f"{self.prefix}chats:type:{_CHAT_TYPE_SLUGS[chat_type]}")

    def ended(self, kind: str) -> Key:
        """Sorted set of the tenant's ended calls (kind "call") or chats ("chat") still in
        Redis, scored by the ms they ended: the archiver's work (workers/archiver.py)."""
        return Key(f"{self.prefix}{kind}s:ended")

    def archiving(self, kind: str) -> Key:
        """Set of the ids of calls or chats being copied to PostgreSQL and not yet removed
        from Redis: a list leaves their copies out (store/archiving.py)."""
        return Key(f"{self.prefix}{kind}s:archiving")

    @property
    def archive_seq(self) -> Key:
        """Counter of the tenant's archiving passes; each row archived carries its pass."""
        return Key(self.prefix + "seq:archive")

    def sequence(self, name: str) -> Key:
        """Counters behind ids: call, chat, participant, end_user."""
        return Key(f"{self.prefix}seq:{name}")

    @property
    def end_users(self) -> Key:
        """Hash: E.164 number -> end-user id, for end users the CRM does not know."""
        return Key(self.prefix + "end_users")

    def agent(self, agent_id: int) -> Key:
        """Hash of an agent's live state: status, voice (calls held)."""
        return Key(f"{self.prefix}agent:{agent_id}")

    def sms_session(self, number: str) -> Key:
        """The consumer's active SMS session (value: chat id), expiring with the session timeout."""
        return Key(f"{self.prefix}sms:session:{number}")

    @property
    def held(self) -> Key:
        """Sorted set: the scheduled calls held past their time (calling window, contact
        limit), call id -> ms they are held until."""
        return Key(self.prefix + "calls:held")

    @property
    def dnc(self) -> Key:
        """Sorted set: the company do-not-call list, E.164 number -> ms it was added."""
        return Key(self.prefix + "dnc")

    @property
    def dnc_expiring(self) -> Key:
        """Sorted set: the DNC entries that expire, E.164 number -> ms of `expires_at`. An entry
        is off the list from that ms on, swept or not (lib.lua's on_dnc)."""
        return Key(self.prefix + "dnc:expiring")

    def attempts(self, number: str) -> Key:
        """Sorted set: the calls that tried `number` (call id -> ms of the attempt) in the last
        contact-limit span, expiring with it."""
        return Key(f"{self.prefix}attempts:{number}")

    @property
    def do_not_contact(self) -> Key:
        """Sorted set: the SMS opt-outs, E.164 number -> ms it first opted out (a set before
        layout 4)."""
        return Key(self.prefix + "sms:do_not_contact")

    @property
    def sms_delivery_failures(self) -> Key:
        """Hash: a carrier's delivery status (failed, undelivered) -> messages that ended so."""
        return Key(self.prefix + "sms:delivery_failures")

    def carrier_receipt(self, message_id: str, status: str) -> Key:
        """Set once per (message, status) a carrier reports, so a repeated report counts once."""
        return Key(f"{self.prefix}sms:receipt:{message_id}:{status}")

    def agent_offers(self, agent_id: int) -> Key:
        """Sorted set of an agent's open offer ids, scored by expiry (ms)."""
        return Key(f"{self.prefix}agent:{agent_id}:offers")

    def offer(self, offer_id: int) -> Key:
        return Key(f"{self.prefix}offer:{offer_id}")

    def call_offers(self, call_id: int) -> Key:
        """Hash: agent id -> offer id, every offer ever made for the call."""
        return Key(f"{self.prefix}call:{call_id}:offers")

    def waiting(self, menu_id: int) -> Key:
        """Sorted set of the queued calls of a menu, scored by queued time (ms)."""
        return Key(f"{self.prefix}menu:{menu_id}:waiting")

    def recent_waits(self, menu_id: int) -> Key:
        """List of a menu's latest assignments, newest first, each `<assigned ms> <waited ms>`
        (capped by accept_offer.lua): what the wait estimate learns from (wait_times.py)."""
        return Key(f"{self.prefix}menu:{menu_id}:recent_waits")

    def campaign(self, campaign_id: int) -> Key:
        """Hash of a campaign: name, menu, pacing, state, counts (`n:<status>`), firing figures."""
        return Key(f"{self.prefix}campaign:{campaign_id}")

    def campaign_due(self, campaign_id: int) -> Key:
        """Sorted set of a campaign's calls not yet handed to a fire job, by scheduled ms."""
        return Key(f"{self.prefix}campaign:{campaign_id}:due")

    def campaign_released(self, campaign_id: int) -> Key:
        """Sorted set of a campaign's calls handed to a fire job and not yet fired, by the ms
        they were handed over."""
        return Key(f"{self.prefix}campaign:{campaign_id}:released")

    def campaign_calls(self, campaign_id: int) -> Key:
        """Sorted set of a campaign's calls still in Redis, scored by creation time in ms (a
        list index, zero-padded members: GET /calls?campaign_id=, the campaign's report)."""
        return Key(f"{self.prefix}campaign:{campaign_id}:calls")

    def campaign_redialling(self, campaign_id: int) -> Key:
        """Sorted set of a campaign's failed calls whose redial is being made (queued with the
        failure, left once its job has made the child or decided on none), by the ms of the
        failure: the campaign does not read `completed` meanwhile."""
        return Key(f"{self.prefix}campaign:{campaign_id}:redialling")

    @property
    def campaigns(self) -> Key:
        """Sorted set of every campaign id, scored by creation time in ms."""
        return Key(self.prefix + "campaigns")

    @property
    def campaign_names(self) -> Key:
        """Hash: campaign name -> id (names are unique per tenant)."""
        return Key(self.prefix + "campaigns:names")

    def idempotency(self, scope: str, key_digest: str) -> Key:
        """Hash of a create's first answer under a client's Idempotency-Key: fp, status, body."""
        return Key(f"{self.prefix}idem:{scope}:{key_digest}")

    @property
    def api_bucket(self) -> Key:
        """Token bucket of the tenant's API requests (the per-tenant rate limit)."""
        return Key(self.prefix + "api:bucket")

    @property
    def carrier_bucket(self) -> Key:
        return Key(self.prefix + "carrier:bucket")

    @property
    def events(self) -> Key:
        """Pub/sub channel of the tenant's call and chat events."""
        return Key(self.prefix + "events")

    def agent_events(self, agent_id: int) -> Key:
        """Pub/sub channel of one agent's offers and assignments."""
        return Key(f"{self.prefix}agent:{agent_id}:events")

    def agent_desk(self, agent_id: int) -> Key:
        """The id of the agent's desk: its newest event stream, the one that gets its events."""
        return Key(f"{self.prefix}agent:{agent_id}:desk")

    @property
    def streams(self) -> Key:
        """Sorted set of the tenant's open event streams, scored by lease expiry (ms)."""
        return Key(self.prefix + "streams")

    @property
    def exports(self) -> Key:
        """Sorted set of the tenant's exports running now, scored by lease expiry (ms)."""
        return Key(self.prefix + "exports")

    def agent_streams(self, agent_id: int) -> Key:
        """Sorted set of the agent's open event streams, scored by lease expiry (ms)."""
        return Key(f"{self.prefix}agent:{agent_id}:streams")

    def session_streams(self, digest: str) -> Key:
        """Sorted set of a dashboard session's open event streams, scored by lease expiry (ms)."""
        return Key(f"{self.prefix}operator_session:{digest}:streams")

    def operator_session(self, digest: str) -> Key:
        """An operator's dashboard session (value: the directory version it was opened
        under), named by the SHA-256 of its cookie secret and expiring with the session."""
        return Key(f"{self.prefix}operator_session:{digest}")

    def chat_messages(self, chat_id: int) -> Key:
        return Key(f"{self.prefix}chat:{chat_id}:messages")

    def scratch(self, token: str) -> Key:
        return Key(f"{self.prefix}scratch:{token}")
