"""The browser pages (/dashboard, /agent) and their assets: plain HTML, JS and CSS shipped in
dispatcher/http/static, nothing built or fetched at run time."""

from __future__ import annotations

from functools import cache
from importlib import resources

from aiohttp import web

from dispatcher.domain.errors import NotFound

routes = web.RouteTableDef()
_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
}
# Scripts, styles and connections from this origin only; no inline script, no framing.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # revalidated each time: a new release shows at once
}


@cache
def assets() -> dict[str, bytes]:
    """Every file of dispatcher/http/static, by name, read once per process."""
    folder = resources.files("dispatcher.http").joinpath("static")
    return {
        entry.name: entry.read_bytes()
        for entry in folder.iterdir()
        if entry.is_file() and entry.name.endswith(tuple(_TYPES))
    }


def _answer(name: str) -> web.Response:
    body = assets().get(name)
    if body is None:
        raise NotFound()
    content_type = _TYPES[name[name.rindex(".") :]]
    return web.Response(body=body, content_type=content_type, charset="utf-8", headers=HEADERS)


@routes.get("/")
async def front(request: web.Request) -> web.Response:
    """A person who opens the service's address lands on the dashboard."""
    raise web.HTTPFound("/dashboard")


@routes.get("/docs/")
async def docs_slash(request: web.Request) -> web.Response:
    raise web.HTTPMovedPermanently("/docs")


@routes.get("/dashboard")
async def dashboard_page(request: web.Request) -> web.Response:
    return _answer("dashboard.html")


@routes.get("/agent")
async def agent_page(request: web.Request) -> web.Response:
    return _answer("agent.html")


@routes.get("/static/{name}")
async def static_asset(request: web.Request) -> web.Response:
    return _answer(request.match_info["name"])
