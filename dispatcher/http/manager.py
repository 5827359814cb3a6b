"""Operator API: PUT/GET the directory document, with the admin token as a Bearer token."""

from __future__ import annotations

import structlog
from aiohttp import web

from dispatcher.directory import loader
from dispatcher.directory.schema import DirectoryFile
from dispatcher.domain.errors import InvalidRequest, NotFound, Unauthorized
from dispatcher.http import auth
from dispatcher.http.appkeys import DIRECTORY, REDIS, SCRIPTS, SETTINGS
from dispatcher.http.body import raw_body
from dispatcher.http.errors import message_response
from dispatcher.http.headers import credential, secret_matches
from dispatcher.http.responses import json_response
from dispatcher.store import directory

routes = web.RouteTableDef()
CONFIG = "/manager/api/v1/config"
log = structlog.get_logger("dispatcher.manager")


async def _authorize(request: web.Request) -> web.Response | None:
    """None when the caller holds the admin token; the admin API does not exist without one."""
    admin_token = request.app[SETTINGS].admin_token
    if admin_token is None:
        raise NotFound()
    if not secret_matches(credential(request, "bearer"), admin_token):
        await auth.refused(request)  # a wrong token is slowed down per client address
        return message_response(
            401, Unauthorized().message, {"WWW-Authenticate": 'Bearer realm="manager"'}
        )
    return None


@routes.put(CONFIG)
async def put_config(request: web.Request) -> web.Response:
    refused = await _authorize(request)
    if refused is not None:
        return refused
    raw = await raw_body(request)
    try:
        networks = request.app[SETTINGS].webhook_allowed_networks
        text = raw.decode("utf-8")
        document = loader.parse_text(text, yaml_allowed=True, webhook_networks=networks)
    except UnicodeDecodeError as exc:
        raise InvalidRequest("document: is not UTF-8 text") from exc
    except loader.DirectoryError as exc:
        return json_response({"message": exc.errors[0], "errors": exc.errors}, status=400)
    await directory.save(request.app[REDIS], request.app[SCRIPTS], document)
    request.app[DIRECTORY].forget()  # this process sees it at once, the others within the TTL
    log.info("directory loaded", tenants=[t.subdomain for t in document.tenants])
    return json_response(summary(document))


@routes.get(CONFIG)
async def get_config(request: web.Request) -> web.Response:
    refused = await _authorize(request)
    if refused is not None:
        return refused
    return json_response(await directory.dump(request.app[REDIS]))


def summary(document: DirectoryFile) -> dict[str, object]:
    return {
        "tenants": [
            {
                "subdomain": t.subdomain,
                "agents": len(t.agents),
                "menus": len(t.menus),
                "outbound_numbers": len(t.outbound_numbers),
                "contacts": len(t.contacts),
            }
            for t in document.tenants
        ]
    }
