"""A Redis written by the release before the hash tag (layout 1: `dsp:t:<subdomain>:`) is
brought to this release's layout by `layout.migrate`: every key of a real call's life comes
back under its new name with the same contents and expiry; `serve` and `worker` refuse an
outdated Redis; a second migration renames nothing. A layout-2 Redis gets its ended sets, and a
layout-3 one its SMS opt-outs as sorted sets."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from dispatcher.domain import clock
from dispatcher.store import keys, layout
from tests.conftest import basic, demo_document, load_directory
from tests.workers.conftest import (
    API,
    EXTRA_AGENTS,
    MULTICAST_MENU,
    TENANT,
    inbound_call,
    load_tenant,
    stop_worker,
    wait_for_offer,
    wait_for_status,
)
from workers.settings import create_worker

OLD_PREFIX = "dsp:t:demo:"


async def _contents(redis: Redis, key: str) -> tuple[str, Any, bool]:
    """A key's type, contents and whether it expires."""
    kind = (await redis.type(key)).decode()
    contents: Any
    if kind == "string":
        contents = await redis.get(key)
    elif kind == "hash":
        contents = await redis.hgetall(key)
    elif kind == "zset":
        contents = await redis.zrange(key, 0, -1, withscores=True)
    elif kind == "list":
        contents = await redis.lrange(key, 0, -1)
    else:
        assert kind == "set", kind
        contents = await redis.smembers(key)
    return kind, contents, await redis.pttl(key) > 0


async def _tenant_keys(redis: Redis, prefix: str) -> dict[str, tuple[str, Any, bool]]:
    """Every key under `prefix`, by its name after the prefix."""
    found = [raw.decode() async for raw in redis.scan_iter(match=prefix.replace("{", "\\{") + "*")]
    return {key[len(prefix) :]: await _contents(redis, key) for key in found}


async def _live_calls(client: TestClient[Any, Any], redis_url: str, redis: Redis) -> None:
    """A call carried to `finished` and one still ringing, by a real worker, then stopped."""
    await load_tenant(redis, menus={MULTICAST_MENU: {"offer_timeout_s": 60, "max_wait_s": 120}})
    arq_worker = create_worker(redis_url, handle_signals=False, poll_delay=0.01)
    polling = asyncio.create_task(arq_worker.async_run())
    try:
        first = (await inbound_call(client, MULTICAST_MENU))["id"]
        offer = await wait_for_offer(client, EXTRA_AGENTS[0], first)
        accepted = await client.post(f"{API}/offers/{offer['id']}/accept", headers=basic())
        assert accepted.status == 200
        await wait_for_status(client, first, "finished")
        ringing = (await inbound_call(client, MULTICAST_MENU))["id"]
        await wait_for_offer(client, EXTRA_AGENTS[-1], ringing)
    finally:
        await stop_worker(arq_worker, polling)


async def _as_layout_one(redis: Redis) -> None:
    """What the older release left: the same keys under the old prefix, call hashes of
    campaign calls naming their campaign's key, and no layout written down."""
    async for raw in redis.scan_iter(match=TENANT.prefix.replace("{", "\\{") + "*"):
        rest = raw.decode()[len(TENANT.prefix) :]
        await redis.rename(raw, OLD_PREFIX + rest)
    await redis.hset(OLD_PREFIX + "call:1", "campaign_key", OLD_PREFIX + "campaign:7")
    await redis.delete(keys.LAYOUT)


async def test_a_layout_one_redis_is_renamed_in_place_with_its_contents_and_expiries(
    client: TestClient[Any, Any], redis_url: str, redis: Redis
) -> None:
    await _live_calls(client, redis_url, redis)
    before = await _tenant_keys(redis, TENANT.prefix)
    assert any(expires for _, _, expires in before.values())  # the ringing offer's keys
    await _as_layout_one(redis)

    assert await layout.version(redis) == 1
    with pytest.raises(layout.OutdatedLayout) as refused:
        await layout.refuse_outdated(redis)
    assert str(refused.value) == (
        "Redis holds keys of layout 1, written by an older release; stop its processes and run "
        "`dispatcher migrate` (this release uses layout 5)"
    )

    assert await layout.migrate(redis) == len(before)
    assert await _tenant_keys(redis, TENANT.prefix) == before
    assert await _tenant_keys(redis, OLD_PREFIX) == {}
    assert await redis.get(keys.LAYOUT) == b"5"
    assert await layout.migrate(redis) == 0
    await layout.refuse_outdated(redis)  # passes


async def test_an_empty_or_current_redis_needs_no_migration(redis: Redis) -> None:
    assert await layout.version(redis) == layout.CURRENT
    await layout.refuse_outdated(redis)
    assert await redis.get(keys.LAYOUT) == b"5"  # written down at the first start
    await load_tenant(redis)
    assert await layout.version(redis) == layout.CURRENT


async def test_a_layout_two_redis_gets_its_ended_records_in_the_ended_set(
    client: TestClient[Any, Any], redis_url: str, redis: Redis
) -> None:
    await _live_calls(client, redis_url, redis)
    finished = await redis.zscore(TENANT.ended("call"), f"{1:015d}")
    assert finished is not None  # the call ended under this release
    await redis.delete(TENANT.ended("call"))  # as layout 2 left it
    await redis.set(keys.LAYOUT, 2)
    with pytest.raises(layout.OutdatedLayout):
        await layout.refuse_outdated(redis)

    before = clock.to_ms(clock.now())
    assert await layout.migrate(redis) == 0
    ended = await redis.zrange(TENANT.ended("call"), 0, -1, withscores=True)
    assert [member for member, _ in ended] == [f"{1:015d}".encode()]  # not the ringing one
    assert ended[0][1] >= before  # as if it ended at the migration
    assert await redis.get(keys.LAYOUT) == b"5"


OPTED_OUT = {"message": "Outbound SMS failed. Consumer has opted out of SMS."}
SMS = {
    "chat_type": "Messaging (SMS)",
    "end_user_number": "+1 415-555-0100",
    "outbound_number": "+1 628-555-0199",
    "message": "lorem ipsum",
}


async def test_a_layout_three_redis_gets_its_opt_outs_as_sorted_sets_scored_at_the_migration(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    document = demo_document()
    document["tenants"].append(
        {**document["tenants"][0], "subdomain": "other", "api_tokens": ["other-token"]}
    )
    document["tenants"].append(
        {**document["tenants"][0], "subdomain": "quiet", "api_tokens": ["quiet-token"]}
    )
    await load_directory(redis, document)
    demo, other, quiet = (keys.TenantKeys(name) for name in ("demo", "other", "quiet"))
    numbers = [f"+1415555{n:04d}" for n in range(1200)]  # more than one batch
    await redis.sadd(demo.do_not_contact, *numbers)  # as layout 3 kept them
    await redis.sadd(other.do_not_contact, "+14155550199")
    # What a run cut short between its copy and its RENAME left behind.
    await redis.zadd(demo.do_not_contact + ":scoring", {"+19999999999": 1})
    await redis.set(keys.LAYOUT, 3)
    with pytest.raises(layout.OutdatedLayout) as refused:
        await layout.refuse_outdated(redis)
    assert "layout 3" in str(refused.value)

    before = clock.to_ms(clock.now())
    assert await layout.migrate(redis) == 0
    after = clock.to_ms(clock.now())
    assert await redis.get(keys.LAYOUT) == b"5"
    scored = await redis.zrange(demo.do_not_contact, 0, -1, withscores=True)
    assert sorted(member.decode() for member, _ in scored) == numbers
    [moment] = {score for _, score in scored}  # one moment: the migration's
    assert before <= moment <= after
    assert await redis.zrange(other.do_not_contact, 0, -1, withscores=True) == [
        (b"+14155550199", moment)
    ]
    assert not await redis.exists(quiet.do_not_contact, demo.do_not_contact + ":scoring")

    await redis.set(keys.LAYOUT, 3)  # a second run: every key is a sorted set already
    await asyncio.sleep(0.01)
    assert await layout.migrate(redis) == 0
    assert await redis.zrange(demo.do_not_contact, 0, -1, withscores=True) == scored
    assert await redis.zcard(other.do_not_contact) == 1

    refused_sms = await client.post(f"{API}/sms", json=SMS, headers=basic())
    assert (refused_sms.status, await refused_sms.json()) == (400, OPTED_OUT)
    quiet_sms = await client.post(f"{API}/sms", json=SMS, headers=basic("quiet", "quiet-token"))
    assert quiet_sms.status == 200  # its own list, empty


async def test_a_layout_four_redis_gets_its_campaign_calls_in_their_campaigns_index(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    await load_tenant(redis)
    campaigns = f"{API}/campaigns"
    lists = []
    for name in ("first", "second"):
        created = await client.post(campaigns, json={"name": name, "menu_id": 9}, headers=basic())
        campaign_id = (await created.json())["id"]
        calls = [
            {"end_user_number": f"+1 205-555-{n:04d}", "scheduled_at": "2030-06-03T17:00:00Z"}
            for n in range(600 if name == "first" else 1)  # the first more than one batch
        ]
        joined = await client.post(
            f"{campaigns}/{campaign_id}/calls/batch", json={"calls": calls}, headers=basic()
        )
        assert joined.status == 200
        lists.append(
            (
                campaign_id,
                await redis.zrange(TENANT.campaign_calls(campaign_id), 0, -1, withscores=True),
            )
        )
    await inbound_call(client, MULTICAST_MENU)  # no campaign's
    for campaign_id, _ in lists:
        await redis.delete(TENANT.campaign_calls(campaign_id))  # as layout 4 left them
    await redis.set(keys.LAYOUT, 4)
    with pytest.raises(layout.OutdatedLayout):
        await layout.refuse_outdated(redis)

    assert await layout.migrate(redis) == 0
    for campaign_id, indexed in lists:
        assert (
            await redis.zrange(TENANT.campaign_calls(campaign_id), 0, -1, withscores=True)
            == indexed
        )
    assert [len(indexed) for _, indexed in lists] == [600, 1]
    assert await redis.get(keys.LAYOUT) == b"5"
    listed = await client.get(f"{API}/calls?campaign_id={lists[1][0]}", headers=basic())
    assert listed.headers["Total"] == "1"
