"""The Lua scripts of store/lua, registered on a Redis client (EVALSHA, reloaded if flushed)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files

from redis.asyncio import Redis
from redis.commands.core import AsyncScript


def _source(name: str) -> str:
    return files("dispatcher.store").joinpath(f"lua/{name}.lua").read_text(encoding="utf-8")


@dataclass(frozen=True)
class Scripts:
    allocate_ids: AsyncScript
    create_record: AsyncScript
    set_flags: AsyncScript
    raise_counter: AsyncScript
    transition: AsyncScript
    make_offers: AsyncScript
    accept_offer: AsyncScript
    decline_offer: AsyncScript
    take_token: AsyncScript
    enqueue: AsyncScript
    end_session: AsyncScript
    pick_waiting: AsyncScript
    create_campaign: AsyncScript
    campaign_control: AsyncScript
    release_campaign: AsyncScript
    fire_campaign_call: AsyncScript
    claim_stream: AsyncScript
    release_desk: AsyncScript

    @classmethod
    def register(cls, redis: Redis) -> Scripts:
        library = _source("lib")
        return cls(
            **{
                name: redis.register_script(library + "\n" + _source(name))
                for name in cls.__dataclass_fields__
            }
        )
