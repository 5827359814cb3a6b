"""The seam between Python and Lua (store/scripting.py, store/scripts.py): a script's KEYS and
its one JSON argument come from its dataclass, its one answer shape is decoded in one place,
every .lua has its dataclass, and no key name, status or reason is typed in a .lua file."""

from __future__ import annotations

import re
from enum import StrEnum
from importlib.resources import files
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis
from redis.crc import key_slot

from dispatcher.domain.errors import Conflict, TooManyRequests
from dispatcher.domain.statuses import CallType, ChatType, FailReason
from dispatcher.store import keys
from dispatcher.store.buckets import Bucket
from dispatcher.store.jobs import DELIVER_WEBHOOK, ROUTE_CALL, JobSpec
from dispatcher.store.scripting import LUA_ENUMS, Refused, Script, every_script, lua_enums
from dispatcher.store.scripts import (
    AllocateIds,
    ClaimStream,
    DeclineOffer,
    Enqueue,
    Full,
    Jobs,
    MakeOffers,
    RaiseCounter,
    Scripts,
    SetFlags,
    TakeToken,
)

DEMO = keys.TenantKeys("demo")
LUA = files("dispatcher.store").joinpath("lua")


def _lua_files() -> dict[str, str]:
    return {
        entry.name.removesuffix(".lua"): entry.read_text(encoding="utf-8")
        for entry in LUA.iterdir()
        if entry.name.endswith(".lua")
    }


def _code(source: str) -> str:
    """The source without its comments."""
    return "\n".join(line.split("--", 1)[0] for line in source.splitlines())


def test_key_fields_become_keys_and_the_rest_one_json_argument() -> None:
    decline = DeclineOffer(
        offer=DEMO.offer(5),
        agent_offers=DEMO.agent_offers(2),
        history=DEMO.call_history(1),
        offer_id=5,
        now=1_000,
    )
    keys_, arg = decline.parts()
    assert keys_ == [DEMO.offer(5), DEMO.agent_offers(2), DEMO.call_history(1)]
    assert orjson.loads(arg) == {
        "k": {"offer": 1, "agent_offers": 2, "history": 3},
        "offer_id": 5,
        "now": 1_000,
    }


def test_lists_and_maps_of_keys_keep_their_shape_and_a_key_named_twice_has_one_place() -> None:
    offers = MakeOffers(
        call=DEMO.call(1),
        call_offers=DEMO.call_offers(1),
        offer_seq=DEMO.sequence("offer"),
        history=DEMO.call_history(1),
        existing={},
        agents={"2": DEMO.agent(2), "4": DEMO.agent(4)},
        agent_offers={"2": DEMO.agent_offers(2)},
        offers=[DEMO.offer(7), DEMO.offer(8)],
        call_id=1,
        now=1,
        expires=2,
        candidates=[{"id": 2, "capacity": 1, "group": "g"}],
        first=7,
        reserved=2,
        channels={"2": DEMO.agent_events(2)},
        events=DEMO.events,
        offered_at="1970-01-01T00:00:00.001Z",
        expires_at="1970-01-01T00:00:00.002Z",
    )
    keys_, arg = offers.parts()
    assert len(keys_) == len(set(keys_)) == 9
    where = orjson.loads(arg)["k"]
    # Channels are arguments, not keys (they are in no slot).
    assert orjson.loads(arg)["channels"] == {"2": DEMO.agent_events(2)}
    assert where["existing"] == {}
    assert [keys_[i - 1] for i in where["offers"]] == [DEMO.offer(7), DEMO.offer(8)]
    assert {name: keys_[i - 1] for name, i in where["agents"].items()} == {
        "2": DEMO.agent(2),
        "4": DEMO.agent(4),
    }
    same = ClaimStream([DEMO.streams, DEMO.streams], [1, 2], 0, 1, "s")
    assert same.parts()[0] == [DEMO.streams]
    assert orjson.loads(same.parts()[1])["k"] == {"scopes": [1, 1]}


def test_an_absent_optional_key_or_argument_is_left_out_not_a_placeholder() -> None:
    allocation = AllocateIds(
        record_seq=DEMO.sequence("call"),
        participant_seq=DEMO.sequence("participant"),
        end_user_seq=DEMO.sequence("end_user"),
        end_users=DEMO.end_users,
        records=[{"participants": 1}],
    )
    keys_, arg = allocation.parts()
    assert len(keys_) == 4
    assert set(orjson.loads(arg)) == {"k", "records"}


def test_parts_bring_their_own_keys_and_arguments() -> None:
    bucket = Bucket(DEMO.api_bucket, 4, 2, at_ms=1_000)
    keys_, arg = TakeToken(bucket, 3).parts()
    assert (keys_, orjson.loads(arg)) == (
        [DEMO.api_bucket],
        {"k": {"bucket": 1}, "bucket": {"rate": 4, "burst": 2, "now": 1_000}, "tokens": 3},
    )
    route = JobSpec(ROUTE_CALL, "demo", 1, 5_000)
    hook = JobSpec(DELIVER_WEBHOOK, "demo", 1, 5_000, ("{}",), "call-2")
    keys_, arg = Enqueue(Jobs.of([route, hook], 4_000)).parts()
    decoded = orjson.loads(arg)
    assert [{name: keys_[i - 1] for name, i in job.items()} for job in decoded["k"]["jobs"]] == [
        {
            "job": "arq:job:route_call:demo:1",
            "result": "arq:result:route_call:demo:1",
            "queue": "arq:queue",
        },
        {
            "job": "arq:job:deliver_webhook:demo:1:call-2",
            "result": "arq:result:deliver_webhook:demo:1:call-2",
            "queue": "arq:queue:webhooks",
        },
    ]
    assert [(job["id"], job["score"], job["ttl"]) for job in decoded["jobs"]] == [
        ("route_call:demo:1", 5_000, 1_000 + 86_400_000),
        ("deliver_webhook:demo:1:call-2", 5_000, 1_000 + 86_400_000),
    ]


def test_one_answer_shape_decoded_into_results_or_domain_errors() -> None:
    offers = MakeOffers(
        DEMO.call(1), DEMO.call_offers(1), DEMO.sequence("offer"), DEMO.call_history(1),
        {}, {}, {}, [], 1, 1, 2, [], 0, 0, {}, DEMO.events, "", "",
    )  # fmt: skip
    assert offers.decode(b'{"ok":{"made":["2",7,"4",8],"rang_out":{}}}') == ([(2, 7), (4, 8)], [])
    decline = DeclineOffer(DEMO.offer(5), DEMO.agent_offers(2), DEMO.call_history(1), 5, 1)
    assert decline.decode(b'{"ok":null}') is None
    with pytest.raises(Conflict) as gone:
        decline.decode(b'{"err":"gone"}')
    assert gone.value.message == "Offer is no longer available"
    with pytest.raises(Refused) as other:
        decline.decode(b'{"err":"what","n":1}')
    assert (other.value.code, other.value.detail) == ("what", {"err": "what", "n": 1})
    bucket = Bucket(DEMO.api_bucket, 2, 2)
    allocation = AllocateIds(
        DEMO.sequence("call"), DEMO.sequence("participant"), DEMO.sequence("end_user"),
        DEMO.end_users, [{"participants": 1}], bucket,
    )  # fmt: skip
    with pytest.raises(TooManyRequests) as limited:
        allocation.decode(b'{"err":"rate_limited","wait_ms":1500}')
    assert (limited.value.message, limited.value.headers) == (
        "Too many requests: the limit is 2 per second",
        {"Retry-After": "2"},
    )
    with pytest.raises(Full) as full:
        ClaimStream([DEMO.streams], [1], 0, 1, "s").decode(b'{"err":"full","scope":1}')
    assert full.value.scope == 1


def test_every_lua_script_has_its_dataclass_and_every_dataclass_its_script() -> None:
    named = [script.name for script in every_script()]
    assert len(named) == len(set(named))
    assert set(named) == set(_lua_files()) - {"lib"}


def test_lua_reads_one_argument_and_builds_no_key_name() -> None:
    for name, source in _lua_files().items():
        code = _code(source)
        argv = re.findall(r"ARGV\[([^\]]*)\]", code)
        assert argv == (["1"] if name == "lib" else []), name
        keys_ = re.findall(r"KEYS\[([^\]]*)\]", code)
        assert keys_ == (["tree"] if name == "lib" else []), name
        for literal in re.findall(r"'([^']*)'|\"([^\"]*)\"", code):
            text = "".join(literal)
            assert not text.startswith(("dsp:", "arq:")), (name, text)
            assert not text.endswith(":") or text == "n:", (name, text)  # n:<status>: a field


def _values(*enums: type[StrEnum]) -> set[str]:
    return {member.value for enum in enums for member in enum}


def test_no_status_state_or_reason_is_typed_in_a_lua_file() -> None:
    named = _values(*LUA_ENUMS.values(), FailReason, CallType, ChatType)
    for name, source in _lua_files().items():
        literals = {
            "".join(found) for found in re.findall(r"'([^']*)'|\"([^\"]*)\"", _code(source))
        }
        assert literals & named == set(), name


def test_the_enum_tables_are_generated_from_the_enums() -> None:
    tables = lua_enums()
    for table, enum in LUA_ENUMS.items():
        for member in enum:
            assert f'{member.name} = "{member.value}"' in tables
        assert f"local {table} = enum({{" in tables


async def test_a_script_flushed_from_redis_is_loaded_again_and_pipelines_run_scripts(
    redis: Redis,
) -> None:
    scripts = Scripts.register(redis)
    counter = DEMO.sequence("end_user")
    await scripts.run(RaiseCounter(counter, 5))
    await redis.script_flush()
    await scripts.run(RaiseCounter(counter, 3))  # EVALSHA, NOSCRIPT, loaded again
    assert await redis.get(counter) == b"5"
    await redis.script_flush()
    async with redis.pipeline(transaction=False) as pipe:
        await scripts.queue(RaiseCounter(counter, 9), pipe)
        await scripts.queue(SetFlags(DEMO.call(404), {"flag:x": "1"}), pipe)
        raw = await pipe.execute()
    assert orjson.loads(raw[0]) == {"ok": None}
    assert await redis.get(counter) == b"9"
    assert await redis.exists(DEMO.call(404)) == 0
    assert orjson.loads(raw[1]) == {"err": "missing"}


def test_every_tenant_key_shares_the_tenant_hash_tag() -> None:
    assert DEMO.call(1) == "dsp:t:{demo}:call:1"
    assert DEMO.prefix == "dsp:t:{demo}:"


def test_every_key_a_script_gets_of_a_tenant_is_in_the_tenant_slot() -> None:
    """Each script's tenant keys share one Redis Cluster slot: the hash tag {subdomain}."""
    bucket = Bucket(DEMO.api_bucket, 1, 1)
    scripts: list[Script[Any]] = [
        AllocateIds(
            DEMO.sequence("call"), DEMO.sequence("participant"), DEMO.sequence("end_user"),
            DEMO.end_users, [{"participants": 1}], bucket,
        ),
        ClaimStream([DEMO.streams, DEMO.agent_streams(1), DEMO.session_streams("d")], [1, 1, 1],
                    0, 1, "s"),
        Enqueue(Jobs.of([JobSpec(ROUTE_CALL, "demo", 1, 5)], 1)),
    ]  # fmt: skip
    for script in scripts:
        tenant_keys = [key for key in script.parts()[0] if not key.startswith("arq:")]
        assert {key_slot(key.encode()) for key in tenant_keys} <= {key_slot(b"{demo}")}
