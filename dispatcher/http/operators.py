"""Operator login for the dashboard: the tenant's API credentials, checked once, open a session
held in an HttpOnly, SameSite=Strict cookie (a browser's EventSource cannot send a header).

The cookie is `<subdomain>.<secret>`: the subdomain names the tenant whose sessions are looked
in, so a session opens one tenant's dashboard only. The routes that change state (login,
logout) take JSON only and refuse what a browser says comes from another site; logout also
needs the session's CSRF token, which the login and GET /dashboard/session answer with."""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

import structlog
from aiohttp import web

from dispatcher.directory.tenant import Tenant
from dispatcher.domain.errors import Forbidden, InvalidRequest, Unauthorized
from dispatcher.http.appkeys import DIRECTORY, REDIS, SETTINGS
from dispatcher.http.auth import refused, within_rate_limit
from dispatcher.http.body import json_object
from dispatcher.http.headers import cookie
from dispatcher.http.responses import json_response
from dispatcher.store import operator_sessions

routes = web.RouteTableDef()
COOKIE = "dispatcher_session"
COOKIE_PATH = "/dashboard"
CSRF_HEADER = "X-CSRF-Token"
WRONG_CREDENTIALS = "Unknown tenant or wrong token"
CROSS_SITE = "Cross-site request refused"
BAD_CSRF = "Missing or wrong X-CSRF-Token"


class NoSession(Unauthorized):
    # Not a Basic challenge: on a fetch() that would pop up the browser's own login dialog.
    headers = {"WWW-Authenticate": 'Session realm="dashboard"'}


async def operator_of(request: web.Request) -> Tenant:
    """The tenant of the request's open session, charged one token of its rate limit (a
    stream once, when it opens), else 401, charged to the client address."""
    tenant, _ = await _charged_session(request)
    return tenant


async def _charged_session(request: web.Request) -> tuple[Tenant, str]:
    found = await _session(request)
    if found is None:
        await refused(request)
        raise NoSession()
    structlog.contextvars.bind_contextvars(tenant=found[0].subdomain)
    await within_rate_limit(request, found[0])
    return found


async def _session(request: web.Request) -> tuple[Tenant, str] | None:
    """The tenant and secret of the request's session, if it is open."""
    subdomain, secret = _cookie(request)
    tenant = await request.app[DIRECTORY].tenant(subdomain) if subdomain else None
    if tenant is None or not await operator_sessions.is_open(request.app[REDIS], tenant, secret):
        return None
    return tenant, secret


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


def same_origin(request: web.Request) -> None:
    """403 when the browser says the request comes from another site: Sec-Fetch-Site (every
    current browser sends it) or Origin (sent on every POST) naming another host than this
    one or than DISPATCHER_PUBLIC_URL's. A client sending neither (curl, a script) is no
    page a victim's browser could be driving."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        raise Forbidden(CROSS_SITE)
    origin = request.headers.get("Origin")
    if origin is not None and _host_of(origin) not in _own_hosts(request):
        raise Forbidden(CROSS_SITE)


def _host_of(origin: str) -> str:
    if not origin.isascii():
        return ""
    try:
        return urlsplit(origin).netloc.lower()
    except ValueError:  # a bracketed host that is no IPv6 address
        return ""


def _own_hosts(request: web.Request) -> set[str]:
    public_url = request.app[SETTINGS].public_url
    hosts = {request.host.lower()}
    return hosts | {_host_of(public_url)} if public_url else hosts


@routes.post(COOKIE_PATH + "/login")
async def login(request: web.Request) -> web.Response:
    """JSON `{"subdomain", "token"}`, same-origin: a cross-site page cannot sign a victim's
    browser in to the attacker's tenant."""
    same_origin(request)
    body = await json_object(request)
    subdomain, token = body.get("subdomain"), body.get("token")
    if not isinstance(subdomain, str) or not isinstance(token, str) or not subdomain or not token:
        raise InvalidRequest("subdomain and token are required")
    tenant = await request.app[DIRECTORY].tenant(subdomain) if len(subdomain) <= 63 else None
    if tenant is None or not tenant.accepts_token(token):
        # Tenant names are public (/metrics): a wrong token must not spend the tenant's budget.
        await refused(request)
        raise NoSession(WRONG_CREDENTIALS)
    await within_rate_limit(request, tenant)
    lifetime_s = request.app[SETTINGS].dashboard_session_s
    secret = await operator_sessions.open_session(request.app[REDIS], tenant, lifetime_s)
    response = json_response(_session_view(tenant, secret))
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


def _session_view(tenant: Tenant, secret: str) -> dict[str, str]:
    return {"tenant": tenant.subdomain, "csrf_token": operator_sessions.csrf_token(secret)}


def _https(request: web.Request) -> bool:
    # Behind a TLS proxy the request arrives as http; the proxy's header says what the
    # browser used. Trusting it can only make the cookie stricter.
    return request.secure or request.headers.get("X-Forwarded-Proto") == "https"


@routes.post(COOKIE_PATH + "/logout")
async def logout(request: web.Request) -> web.Response:
    """Ends the session, with its CSRF token in X-CSRF-Token; without an open session there
    is nothing to end, and the cookie is cleared all the same."""
    same_origin(request)
    found = await _session(request)
    if found is not None:
        tenant, secret = found
        await within_rate_limit(request, tenant)
        given = request.headers.get(CSRF_HEADER, "")
        expected = operator_sessions.csrf_token(secret)
        if not given.isascii() or not hmac.compare_digest(given, expected):
            raise Forbidden(BAD_CSRF)
        await operator_sessions.close_session(request.app[REDIS], tenant.subdomain, secret)
    response = web.Response(status=204)
    response.del_cookie(COOKIE, path=COOKIE_PATH)
    return response


@routes.get(COOKIE_PATH + "/session")
async def session(request: web.Request) -> web.Response:
    return json_response(_session_view(*await _charged_session(request)))
