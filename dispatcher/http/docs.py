"""GET /docs: the OpenAPI document as a browsable page (Swagger UI, from the installed
swagger-ui-py package: the page and its assets come from this server, nothing from elsewhere)."""

from __future__ import annotations

import base64
import hashlib
from importlib import metadata
from pathlib import Path

from aiohttp import web

from dispatcher.domain.errors import NotFound

routes = web.RouteTableDef()

_SWAGGER_UI = metadata.distribution("swagger-ui-py")
# The package's files are located through its metadata rather than imported: importing it
# would load its Jinja2 templating, which this page does not use.
STATIC_DIR = Path(str(_SWAGGER_UI.locate_file("swagger_ui/static")))
# The assets' URLs carry the package version, so a browser may keep them for good (immutable)
# and an upgrade is fetched anew; the page itself is revalidated on every visit.
VERSION = _SWAGGER_UI.version
ASSETS = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}
ASSET_CACHE = "public, max-age=31536000, immutable"

# Swagger UI reads /openapi.json and sends "Try it out" requests to this same origin (the
# document names no servers); the Authorize button takes the tenant's Basic credentials.
# validatorUrl null: no badge fetched from swagger.io. URLs are relative, so the page also
# works behind a proxy that serves the API under a path prefix.
_INIT = """
window.ui = SwaggerUIBundle({
  url: "openapi.json",
  dom_id: "#swagger-ui",
  validatorUrl: null,
  deepLinking: true,
  displayRequestDuration: true,
  defaultModelsExpandDepth: 0
});
""".strip()

PAGE = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>dispatcher API</title>
<link rel="stylesheet" href="docs/static/{VERSION}/swagger-ui.css">
<link rel="icon" type="image/png" sizes="32x32" href="docs/static/{VERSION}/favicon-32x32.png">
<link rel="icon" type="image/png" sizes="16x16" href="docs/static/{VERSION}/favicon-16x16.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/static/{VERSION}/swagger-ui-bundle.js"></script>
<script>{_INIT}</script>
</body>
</html>
"""

_INIT_HASH = base64.b64encode(hashlib.sha256(_INIT.encode()).digest()).decode()
# The browser itself refuses anything from another origin; Swagger UI styles elements inline
# and draws some icons as data: URLs.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        f"script-src 'self' 'sha256-{_INIT_HASH}'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)


@routes.get("/docs")
async def docs_page(request: web.Request) -> web.Response:
    return web.Response(
        text=PAGE,
        content_type="text/html",
        headers={"Cache-Control": "no-cache", "Content-Security-Policy": CONTENT_SECURITY_POLICY},
    )


@routes.get("/docs/static/{version}/{name}")
async def docs_asset(request: web.Request) -> web.FileResponse:
    """Only the files the page uses: the package also holds an editor and a demo page that
    would load a document from the internet."""
    name = request.match_info["name"]
    if request.match_info["version"] != VERSION or name not in ASSETS:
        raise NotFound()
    return web.FileResponse(
        STATIC_DIR / name,
        headers={"Content-Type": ASSETS[name], "Cache-Control": ASSET_CACHE},
    )
