"""A tenant's directory as the ingress and workers use it: lookups, hours, token checks."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from zoneinfo import ZoneInfo

from dispatcher.directory.schema import (
    WEEKDAYS,
    Agent,
    Contact,
    Menu,
    Team,
    TenantDoc,
    TenantRecord,
)

_HASH_SCHEME = "hmac-sha256"


def hash_token(token: str) -> str:
    """A salted hash of an API token. Tokens are random secrets, not passwords, so a keyed
    SHA-256 is the right cost: verifying one must stay in the microseconds on every request."""
    salt = secrets.token_hex(16)
    digest = hmac.new(bytes.fromhex(salt), token.encode(), hashlib.sha256).hexdigest()
    return f"{_HASH_SCHEME}${salt}${digest}"


def token_matches(token: str, hashes: list[str]) -> bool:
    """Constant time in the token: every stored hash is compared, none short-circuits."""
    matched = False
    for stored in hashes:
        scheme, salt, digest = stored.split("$", 2)
        candidate = hmac.new(bytes.fromhex(salt), token.encode(), hashlib.sha256).hexdigest()
        matched |= scheme == _HASH_SCHEME and hmac.compare_digest(candidate, digest)
    return matched


@dataclass(frozen=True)
class MenuPath:
    items_count: int
    name: str
    materialized_path: str


@dataclass
class Tenant:
    """One tenant's directory with the indexes built once per loaded version."""

    doc: TenantDoc
    token_hashes: list[str]
    version: str = ""
    agent_token_hashes: dict[int, list[str]] = field(default_factory=dict)

    @classmethod
    def from_record(cls, record: TenantRecord, version: str) -> Tenant:
        return cls(
            doc=record.directory,
            token_hashes=record.token_hashes,
            version=version,
            agent_token_hashes=record.agent_token_hashes,
        )

    @property
    def subdomain(self) -> str:
        return self.doc.subdomain

    def accepts_token(self, token: str) -> bool:
        return token_matches(token, self.token_hashes)

    def accepts_agent_token(self, agent_id: int, token: str) -> bool:
        """An agent's own token; an agent without any accepts none."""
        return token_matches(token, self.agent_token_hashes.get(agent_id, []))

    @cached_property
    def agents_by_id(self) -> dict[int, Agent]:
        return {agent.id: agent for agent in self.doc.agents}

    @cached_property
    def agents_by_email(self) -> dict[str, Agent]:
        return {agent.email.lower(): agent for agent in self.doc.agents}

    @cached_property
    def teams_by_id(self) -> dict[int, Team]:
        return {team.id: team for team in self.doc.teams}

    @cached_property
    def menus_by_id(self) -> dict[int, Menu]:
        return {menu.id: menu for menu in self.doc.menus}

    @cached_property
    def most_menu_agents(self) -> int:
        """The most agents any one menu offers its calls to (each agent once): how many offer
        ids a routing step reserves before it knows the call's menu (workers/routing.py)."""
        return max(
            (len({agent for group in menu.groups for agent in group}) for menu in self.doc.menus),
            default=0,
        )

    @cached_property
    def contacts_by_ticket(self) -> dict[str, Contact]:
        return {contact.ticket_id: contact for contact in self.doc.contacts}

    @cached_property
    def contacts_by_number(self) -> dict[str, Contact]:
        found: dict[str, Contact] = {}
        for contact in self.doc.contacts:
            for number in contact.phone_numbers:
                found.setdefault(number, contact)
        return found

    @cached_property
    def voice_numbers(self) -> list[str]:
        return [n.number for n in self.doc.outbound_numbers if n.voice]

    @cached_property
    def sms_numbers(self) -> frozenset[str]:
        return frozenset(n.number for n in self.doc.outbound_numbers if n.sms)

    def agent_by_email(self, email: str) -> Agent | None:
        return self.agents_by_email.get(email.lower())

    def menu_path(self, menu: Menu) -> MenuPath:
        chain = [menu]
        while chain[-1].parent_id is not None and len(chain) <= len(self.doc.menus):
            parent = self.menus_by_id.get(chain[-1].parent_id)
            if parent is None:
                break
            chain.append(parent)
        chain.reverse()
        return MenuPath(
            items_count=len(chain),
            name=" / ".join(m.name for m in chain),
            materialized_path="/".join(str(m.id) for m in chain),
        )

    def is_after_hours(self, menu: Menu, at: datetime) -> bool:
        if menu.state == "after_hours":
            return True
        if menu.hours is None:
            return False
        local = at.astimezone(ZoneInfo(menu.hours.timezone or self.doc.timezone))
        windows = menu.hours.weekly.get(WEEKDAYS[local.weekday()], [])  # type: ignore[call-overload]
        clock = local.strftime("%H:%M")
        return not any(w[:5] <= clock < w[6:] for w in windows)
