"""GET /docs: Swagger UI served whole by this service; every URL of the page is same-origin,
every file it names answers with its content type and cache headers, and the browser's
Content-Security-Policy lets exactly the page's own script run."""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
from aiohttp.test_utils import TestClient

from dispatcher.http import docs, openapi
from tests.dispatcher.http.test_openapi import conforming

CONTENT_TYPES = {".css": "text/css", ".js": "text/javascript", ".png": "image/png"}


class _Page(HTMLParser):
    """Every URL-bearing attribute of the page, and the text of its inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts: list[str] = []
        self.text = ""
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value or "" for name, value in attrs if name in {"src", "href", "action"}]
        self._in_script = tag == "script" and not any(name == "src" for name, _ in attrs)

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.inline_scripts.append(data)


async def _page(client: TestClient[Any, Any]) -> tuple[_Page, str]:
    response = await client.get("/docs")
    assert response.status == 200
    await conforming(response, "/docs")
    assert response.headers["Cache-Control"] == "no-cache"
    parsed = _Page()
    parsed.text = await response.text()
    parsed.feed(parsed.text)
    return parsed, response.headers["Content-Security-Policy"]


async def test_docs_is_a_page_whose_every_url_is_same_origin(client: TestClient[Any, Any]) -> None:
    page, _ = await _page(client)
    assert re.findall(r"https?://|//", page.text) == []  # no scheme, no protocol-relative URL
    assert page.urls == [
        f"docs/static/{docs.VERSION}/swagger-ui.css",
        f"docs/static/{docs.VERSION}/favicon-32x32.png",
        f"docs/static/{docs.VERSION}/favicon-16x16.png",
        f"docs/static/{docs.VERSION}/swagger-ui-bundle.js",
    ]
    for url in page.urls:
        assert urlsplit(url).scheme == "" and urlsplit(url).netloc == "", url


async def test_every_file_the_page_names_is_served_with_its_type_and_cache_headers(
    client: TestClient[Any, Any],
) -> None:
    page, _ = await _page(client)
    for url in page.urls:
        path = urljoin("/docs", url)
        response = await client.get(path)
        assert response.status == 200, path
        assert response.content_type == CONTENT_TYPES[path[path.rindex(".") :]]
        assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        body = await response.read()
        assert body == (docs.STATIC_DIR / path.rsplit("/", 1)[1]).read_bytes()
        # A browser that revalidates anyway gets 304 without the body.
        again = await client.get(path, headers={"If-None-Match": response.headers["ETag"]})
        assert again.status == 304
        assert await again.read() == b""


async def test_the_page_reads_the_document_of_this_service(client: TestClient[Any, Any]) -> None:
    page, _ = await _page(client)
    (script,) = page.inline_scripts
    assert 'url: "openapi.json"' in script
    assert "validatorUrl: null" in script  # no badge from swagger.io
    document = await client.get(urljoin("/docs", "openapi.json"))
    assert await conforming(document, "/openapi.json") == openapi.document()
    # Authorize offers the tenant's Basic credentials, which "Try it out" then sends.
    schemes = openapi.document()["components"]["securitySchemes"]
    assert (schemes["tenantBasic"]["type"], schemes["tenantBasic"]["scheme"]) == ("http", "basic")
    assert schemes["tenantBasic"]["description"].startswith(
        "User name = the tenant's subdomain, password = one of its API tokens: every route. "
        "Or an agent's own credentials, user name = `<subdomain>/<agent id>`"
    )
    assert openapi.document()["security"] == [{"tenantBasic": []}]
    assert "servers" not in openapi.document()  # requests go to the page's own origin


async def test_the_policy_runs_only_this_pages_script_and_allows_no_other_origin(
    client: TestClient[Any, Any],
) -> None:
    page, policy = await _page(client)
    (script,) = page.inline_scripts
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    directives = dict(part.split(" ", 1) for part in policy.split("; "))
    assert directives == {
        "default-src": "'none'",
        "script-src": f"'self' 'sha256-{digest}'",
        "style-src": "'self' 'unsafe-inline'",
        "img-src": "'self' data:",
        "connect-src": "'self'",
        "base-uri": "'none'",
        "form-action": "'none'",
        "frame-ancestors": "'none'",
    }


def test_the_swagger_ui_shipped_reads_openapi_3_1() -> None:
    """Swagger UI renders OpenAPI 3.1 from 5.0 on; the 4.x of PyPI's swagger-ui-bundle
    refuses this document."""
    bundle = (docs.STATIC_DIR / "swagger-ui-bundle.js").read_text("utf-8")
    found = re.search(r'PACKAGE_VERSION:"(\d+)\.(\d+)\.(\d+)"', bundle)
    assert found is not None
    assert int(found.group(1)) >= 5
    assert openapi.document()["openapi"] == "3.1.0"


@pytest.mark.parametrize(
    "path",
    [
        f"/docs/static/{docs.VERSION}/index.html",  # the package's demo page (a remote document)
        f"/docs/static/{docs.VERSION}/swagger-initializer.js",
        f"/docs/static/{docs.VERSION}/swagger-editor-bundle.js",
        f"/docs/static/{docs.VERSION}/..%2F..%2Fcore.py",
        "/docs/static/0.0.1/swagger-ui.css",
        "/docs/static/swagger-ui.css",
    ],
)
async def test_other_files_are_not_served(client: TestClient[Any, Any], path: str) -> None:
    response = await client.get(path)
    assert response.status == 404
    assert await response.json() == {"message": "Resource not found"}
