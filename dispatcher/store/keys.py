"""Every Redis key name of the product; all keys of a tenant share `dsp:t:<subdomain>:`."""

from __future__ import annotations

from dataclasses import dataclass

from dispatcher.domain.statuses import CallType, ChatType

ROOT = "dsp"
TENANTS = f"{ROOT}:tenants"  # hash: subdomain -> version of its stored directory
WORKERS = f"{ROOT}:workers"  # sorted set: worker id -> its last heartbeat (ms)


def refused_bucket(address: str) -> str:
    """Token bucket of a client address's requests with refused credentials (its own rate
    limit, so that they never spend a tenant's)."""
    return f"{ROOT}:refused:{address}"


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
        return f"{ROOT}:t:{self.subdomain}:"

    @property
    def directory(self) -> str:
        return self.prefix + "directory"

    def call(self, call_id: int) -> str:
        return f"{self.prefix}call:{call_id}"

    def call_history(self, call_id: int) -> str:
        """List of the call's history entries (JSON), the last 50 kept (store/lua/lib.lua)."""
        return f"{self.prefix}call:{call_id}:history"

    @property
    def calls(self) -> str:
        """Sorted set of every call id, scored by creation time in ms."""
        return self.prefix + "calls"

    def calls_by_status(self, status: str) -> str:
        return f"{self.prefix}calls:status:{status}"

    @property
    def scheduled(self) -> str:
        """Sorted set of the scheduled calls not fired yet, scored by scheduled_at (ms)."""
        return self.prefix + "calls:scheduled_at"

    def calls_by_type(self, call_type: CallType) -> str:
        return f"{self.prefix}calls:type:{_CALL_TYPE_SLUGS[call_type]}"

    def chat(self, chat_id: int) -> str:
        return f"{self.prefix}chat:{chat_id}"

    @property
    def chats(self) -> str:
        return self.prefix + "chats"

    def chats_by_status(self, status: str) -> str:
        return f"{self.prefix}chats:status:{status}"

    def chats_by_type(self, chat_type: ChatType) -> str:
        return f"{self.prefix}chats:type:{_CHAT_TYPE_SLUGS[chat_type]}"

    def sequence(self, name: str) -> str:
        """Counters behind ids: call, chat, participant, end_user."""
        return f"{self.prefix}seq:{name}"

    @property
    def end_users(self) -> str:
        """Hash: E.164 number -> end-user id, for end users the CRM does not know."""
        return self.prefix + "end_users"

    def agent(self, agent_id: int) -> str:
        """Hash of an agent's live state: status, voice (calls held)."""
        return f"{self.prefix}agent:{agent_id}"

    def sms_session(self, number: str) -> str:
        """The consumer's active SMS session (value: chat id), expiring with the session timeout."""
        return f"{self.prefix}sms:session:{number}"

    @property
    def do_not_contact(self) -> str:
        return self.prefix + "sms:do_not_contact"

    @property
    def sms_delivery_failures(self) -> str:
        """Hash: a carrier's delivery status (failed, undelivered) -> messages that ended so."""
        return self.prefix + "sms:delivery_failures"

    def carrier_receipt(self, message_id: str, status: str) -> str:
        """Set once per (message, status) a carrier reports, so a repeated report counts once."""
        return f"{self.prefix}sms:receipt:{message_id}:{status}"

    def agent_offers(self, agent_id: int) -> str:
        """Sorted set of an agent's open offer ids, scored by expiry (ms)."""
        return f"{self.prefix}agent:{agent_id}:offers"

    def offer(self, offer_id: int) -> str:
        return f"{self.prefix}offer:{offer_id}"

    def call_offers(self, call_id: int) -> str:
        """Hash: agent id -> offer id, every offer ever made for the call."""
        return f"{self.prefix}call:{call_id}:offers"

    def waiting(self, menu_id: int) -> str:
        """Sorted set of the queued calls of a menu, scored by queued time (ms)."""
        return f"{self.prefix}menu:{menu_id}:waiting"

    def campaign(self, campaign_id: int) -> str:
        """Hash of a campaign: name, menu, pacing, state, counts (`n:<status>`), firing figures."""
        return f"{self.prefix}campaign:{campaign_id}"

    def campaign_due(self, campaign_id: int) -> str:
        """Sorted set of a campaign's calls not yet handed to a fire job, by scheduled ms."""
        return f"{self.prefix}campaign:{campaign_id}:due"

    def campaign_released(self, campaign_id: int) -> str:
        """Sorted set of a campaign's calls handed to a fire job and not yet fired, by the ms
        they were handed over."""
        return f"{self.prefix}campaign:{campaign_id}:released"

    @property
    def campaigns(self) -> str:
        """Sorted set of every campaign id, scored by creation time in ms."""
        return self.prefix + "campaigns"

    @property
    def campaign_names(self) -> str:
        """Hash: campaign name -> id (names are unique per tenant)."""
        return self.prefix + "campaigns:names"

    def idempotency(self, scope: str, key_digest: str) -> str:
        """Hash of a create's first answer under a client's Idempotency-Key: fp, status, body."""
        return f"{self.prefix}idem:{scope}:{key_digest}"

    @property
    def api_bucket(self) -> str:
        """Token bucket of the tenant's API requests (the per-tenant rate limit)."""
        return self.prefix + "api:bucket"

    @property
    def carrier_bucket(self) -> str:
        return self.prefix + "carrier:bucket"

    @property
    def events(self) -> str:
        """Pub/sub channel of the tenant's call and chat events."""
        return self.prefix + "events"

    def agent_events(self, agent_id: int) -> str:
        """Pub/sub channel of one agent's offers and assignments."""
        return f"{self.prefix}agent:{agent_id}:events"

    def agent_desk(self, agent_id: int) -> str:
        """The id of the agent's desk: its newest event stream, the one that gets its events."""
        return f"{self.prefix}agent:{agent_id}:desk"

    @property
    def streams(self) -> str:
        """Sorted set of the tenant's open event streams, scored by lease expiry (ms)."""
        return self.prefix + "streams"

    def agent_streams(self, agent_id: int) -> str:
        """Sorted set of the agent's open event streams, scored by lease expiry (ms)."""
        return f"{self.prefix}agent:{agent_id}:streams"

    def session_streams(self, digest: str) -> str:
        """Sorted set of a dashboard session's open event streams, scored by lease expiry (ms)."""
        return f"{self.prefix}operator_session:{digest}:streams"

    def operator_session(self, digest: str) -> str:
        """An operator's dashboard session (value: the directory version it was opened
        under), named by the SHA-256 of its cookie secret and expiring with the session."""
        return f"{self.prefix}operator_session:{digest}"

    def chat_messages(self, chat_id: int) -> str:
        return f"{self.prefix}chat:{chat_id}:messages"

    def scratch(self, token: str) -> str:
        return f"{self.prefix}scratch:{token}"
