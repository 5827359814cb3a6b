"""GET /apps/api/v1/wait_times: each queue's estimated wait, from live data (the estimator is
dispatcher/domain/wait_times.py; what it reads, store/waits.py)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dispatcher.directory.schema import Menu
from dispatcher.directory.tenant import Tenant
from dispatcher.domain import clock
from dispatcher.domain.wait_times import QueueNow, estimate, wait_query
from dispatcher.http.appkeys import REDIS
from dispatcher.http.auth import tenant_of
from dispatcher.http.responses import json_response
from dispatcher.store.waits import queues_now

routes = web.RouteTableDef()


@routes.get("/apps/api/v1/wait_times")
async def wait_times(request: web.Request) -> web.Response:
    tenant = await tenant_of(request)
    query = wait_query(request.query, tenant)
    # No queue takes chats: asked for them alone, there is none (docs/api.md).
    menus = [] if query.channel_type == "chat" else query.menus(tenant)
    at_ms = clock.to_ms(clock.now())
    queues = await queues_now(request.app[REDIS], tenant, menus, query.lang, at_ms)
    found = []
    for menu, queue in zip(menus, queues, strict=True):
        wait_s = estimate(queue)
        if query.keeps(wait_s):
            found.append(_record(tenant, menu, queue, wait_s))
    return json_response(found)


def _record(tenant: Tenant, menu: Menu, queue: QueueNow, wait_s: int | None) -> dict[str, Any]:
    return {
        "menu_id": menu.id,
        "menu_type": menu.type,
        "voice_call": wait_s,
        "materialized_path": tenant.menu_path(menu).name,
        "logged_in_agents": queue.logged_in,
        "available_agents": queue.available,
        "breakthrough_agents": queue.breakthrough,
    }
