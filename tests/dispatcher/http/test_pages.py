"""The browser pages and their assets: served from the package, with a strict CSP, and nothing
but the files of dispatcher/http/static."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from dispatcher.http.pages import HEADERS, assets

NOT_FOUND = {"message": "Resource not found"}


@pytest.mark.parametrize(
    ("path", "content_type", "marker"),
    [
        ("/dashboard", "text/html", b'<script type="module" src="/static/dashboard.js">'),
        ("/agent", "text/html", b'<script type="module" src="/static/agent.js">'),
        ("/static/app.css", "text/css", b":root {"),
        ("/static/dashboard.js", "text/javascript", b'new EventSource("/dashboard/events")'),
        ("/static/agent.js", "text/javascript", b"readEventStream(response, onEvent)"),
        ("/static/common.js", "text/javascript", b"export function h("),
    ],
)
async def test_pages_and_assets_are_served_with_their_type_and_headers(
    client: TestClient[Any, Any], path: str, content_type: str, marker: bytes
) -> None:
    response = await client.get(path)
    assert response.status == 200
    assert response.content_type == content_type
    assert response.charset == "utf-8"
    for name, value in HEADERS.items():
        assert response.headers[name] == value
    assert marker in await response.read()


def test_the_assets_are_the_static_folder() -> None:
    assert sorted(assets()) == [
        "agent.html",
        "agent.js",
        "app.css",
        "common.js",
        "dashboard.html",
        "dashboard.js",
        "favicon.svg",
    ]


@pytest.mark.parametrize(
    "path",
    [
        "/static/nope.js",
        "/static/openapi.yaml",  # a package file beside the folder, not in it
        "/static/..%2Fopenapi.yaml",
        "/static/%2e%2e%2fpages.py",
        "/static/",
        "/dashboard/",
    ],
)
async def test_anything_else_is_404(client: TestClient[Any, Any], path: str) -> None:
    response = await client.get(path)
    assert response.status == 404
    assert await response.json() == NOT_FOUND


def test_no_page_carries_inline_script_or_style() -> None:
    """The CSP allows scripts and styles from files only; inline ones would be blocked."""
    for name, body in assets().items():
        if name.endswith(".html"):
            assert b"<script>" not in body and b"<style" not in body, name
            assert not re.search(rb"\s(on[a-z]+|style)=", body), name


@pytest.mark.parametrize(
    ("path", "status", "location"), [("/", 302, "/dashboard"), ("/docs/", 301, "/docs")]
)
async def test_the_front_door_and_docs_slash_redirect(
    client: TestClient[Any, Any], path: str, status: int, location: str
) -> None:
    response = await client.get(path, allow_redirects=False)
    assert response.status == status
    assert response.headers["Location"] == location
