"""The address a request comes from, for the limit on refused credentials: the connection's
peer, or behind `trusted_proxies` reverse proxies the entry of X-Forwarded-For they vouch for."""

from __future__ import annotations

import ipaddress

from aiohttp import web

from dispatcher.domain.errors import InvalidRequest
from dispatcher.http.appkeys import SETTINGS

FORWARDED_FOR = "X-Forwarded-For"
BAD_FORWARDED_FOR = "X-Forwarded-For must be a list of IP addresses"


def client_address(request: web.Request) -> str:
    """Each trusted proxy appends the address it got the request from, so the entry
    `trusted_proxies` from the right is the first one no client could have written."""
    peer = request.remote or "unknown"
    hops = request.app[SETTINGS].trusted_proxies
    if hops == 0:
        return peer
    entries = _forwarded_for(request)
    return entries[-hops] if len(entries) >= hops else peer


def _forwarded_for(request: web.Request) -> list[str]:
    joined = ",".join(request.headers.getall(FORWARDED_FOR, []))
    if not joined.isascii():
        raise InvalidRequest(BAD_FORWARDED_FOR)
    try:
        return [str(ipaddress.ip_address(e.strip())) for e in joined.split(",") if e.strip()]
    except ValueError as exc:
        raise InvalidRequest(BAD_FORWARDED_FOR) from exc
