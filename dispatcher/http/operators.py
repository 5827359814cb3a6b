"""Operator login for the dashboard: the tenant's API credentials, checked once, open a session
held in an HttpOnly, SameSite=Strict cookie (a browser's EventSource cannot send a header).

The cookie is `<subdomain>.<secret>`: the subdomain names the tenant whose sessions are looked
in, so a session opens one tenant's dashboard only."""

from __future__ import annotations

import structlog
from aiohttp import web

from dispatcher.directory.tenant import Tenant
from dispatcher.domain.errors import InvalidRequest, Unauthorized
from dispatcher.http.appkeys import DIRECTORY, REDIS, SETTINGS
from dispatcher.http.auth import within_rate_limit
from dispatcher.http.body import json_object
from dispatcher.http.headers import cookie
from dispatcher.http.responses import json_response
from dispatcher.store import operator_sessions

routes = web.RouteTableDef()
COOKIE = "dispatcher_session"
COOKIE_PATH = "/dashboard"
WRONG_CREDENTIALS = "Unknown tenant or wrong token"


class NoSession(Unauthorized):
    # Not a Basic challenge: on a fetch() that would pop up the browser's own login dialog.
    headers = {"WWW-Authenticate": 'Session realm="dashboard"'}


async def operator_of(request: web.Request) -> Tenant:
    """The tenant of the request's open session, else 401."""
    subdomain, secret = _cookie(request)
    tenant = await request.app[DIRECTORY].tenant(subdomain) if subdomain else None
    if tenant is None or not await operator_sessions.is_open(request.app[REDIS], tenant, secret):
        raise NoSession()
    structlog.contextvars.bind_contextvars(tenant=tenant.subdomain)
    return tenant


def _cookie(request: web.Request) -> tuple[str, str]:
    subdomain, _, secret = cookie(request, COOKIE).partition(".")
    if not 0 < len(subdomain) <= 63 or not 0 < len(secret) <= 64:
        return "", ""
    return subdomain, secret


async def still_open(request: web.Request, tenant: Tenant) -> bool:
    """For a long-lived stream: whether its session has not ended meanwhile."""
    current = await request.app[DIRECTORY].tenant(tenant.subdomain)
    _, secret = _cookie(request)
    redis = request.app[REDIS]
    return current is not None and await operator_sessions.is_open(redis, current, secret)


@routes.post(COOKIE_PATH + "/login")
async def login(request: web.Request) -> web.Response:
    """JSON `{"subdomain", "token"}`: a cross-site form cannot send JSON without CORS."""
    body = await json_object(request)
    subdomain, token = body.get("subdomain"), body.get("token")
    if not isinstance(subdomain, str) or not isinstance(token, str) or not subdomain or not token:
        raise InvalidRequest("subdomain and token are required")
    tenant = await request.app[DIRECTORY].tenant(subdomain) if len(subdomain) <= 63 else None
    if tenant is None:
        raise NoSession(WRONG_CREDENTIALS)
    await within_rate_limit(request, tenant)
    if not tenant.accepts_token(token):
        raise NoSession(WRONG_CREDENTIALS)
    lifetime_s = request.app[SETTINGS].dashboard_session_s
    secret = await operator_sessions.open_session(request.app[REDIS], tenant, lifetime_s)
    response = json_response({"tenant": tenant.subdomain})
    response.set_cookie(
        COOKIE,
        f"{tenant.subdomain}.{secret}",
        max_age=lifetime_s,
        path=COOKIE_PATH,
        httponly=True,
        samesite="Strict",
        secure=_https(request),
    )
    return response


def _https(request: web.Request) -> bool:
    # Behind a TLS proxy the request arrives as http; the proxy's header says what the
    # browser used. Trusting it can only make the cookie stricter.
    return request.secure or request.headers.get("X-Forwarded-Proto") == "https"


@routes.post(COOKIE_PATH + "/logout")
async def logout(request: web.Request) -> web.Response:
    subdomain, secret = _cookie(request)
    if subdomain:
        await operator_sessions.close_session(request.app[REDIS], subdomain, secret)
    response = web.Response(status=204)
    response.del_cookie(COOKIE, path=COOKIE_PATH)
    return response


@routes.get(COOKIE_PATH + "/session")
async def session(request: web.Request) -> web.Response:
    tenant = await operator_of(request)
    return json_response({"tenant": tenant.subdomain})
