"""One JSON body parser for all routes: malformed, non-object, oversize and hostile bodies."""

from __future__ import annotations

import io
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import basic

ROUTES = ["/apps/api/v1/calls", "/apps/api/v1/sms"]
JSON = {"Content-Type": "application/json"}
INBOUND = {"call_type": "Voice Inbound (API)", "menu_id": 9, "end_user_number": "+1 205-123-4567"}
NOT_JSON = {"message": "Content-Type must be application/json"}


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "Request body is not valid JSON"),
        (b'{"a": 1,}', "Request body is not valid JSON"),
        (b"\xff\xfe{}", "Request body is not valid JSON"),
        (b'{"a": NaN}', "Request body is not valid JSON"),
        (b"[1, 2]", "Request body must be a JSON object"),
        (b'"text"', "Request body must be a JSON object"),
        (b"42", "Request body must be a JSON object"),
        (b"null", "Request body must be a JSON object"),
        (b"[" * 5000 + b"]" * 5000, "Request body is not valid JSON"),
    ],
    ids=[
        "broken",
        "trailing-comma",
        "not-utf8",
        "nan",
        "array",
        "string",
        "number",
        "null",
        "deep",
    ],
)
async def test_bad_bodies_are_400(
    client: TestClient[Any, Any], demo: dict[str, Any], path: str, body: bytes, message: str
) -> None:
    response = await client.post(path, data=body, headers={**basic(), **JSON})
    assert response.status == 400
    assert await response.json() == {"message": message}


@pytest.mark.parametrize("path", ROUTES)
async def test_oversize_body_is_413(
    client: TestClient[Any, Any], demo: dict[str, Any], path: str
) -> None:
    body = io.BytesIO(b'{"message": "' + b"x" * (1024 * 1024) + b'"}')
    response = await client.post(path, data=body, headers=basic())
    assert response.status == 413
    assert await response.json() == {"message": "Request body is too large (limit 1048576 bytes)"}


async def test_empty_body_is_an_empty_object(
    client: TestClient[Any, Any], demo: dict[str, Any]
) -> None:
    response = await client.post("/apps/api/v1/calls", data=b"", headers=basic())
    assert response.status == 400
    assert await response.json() == {"message": "Invalid call type"}


@pytest.mark.parametrize(
    "field",
    ["call_type", "agent_email", "end_user_number", "menu_id", "lang", "ticket_id", "scheduled_at"],
)
@pytest.mark.parametrize(
    "value",
    [["a"], {"a": 1}, True, 1.5, "ü" * 100_000, "\u0000\ud7ff\U0001f600"],
    ids=["list", "object", "bool", "float", "huge-unicode", "odd-unicode"],
)
async def test_wrong_types_in_any_field_are_4xx_never_500(
    client: TestClient[Any, Any], demo: dict[str, Any], field: str, value: object
) -> None:
    for call_type in ("Voice Outbound (API)", "Voice Inbound (API)", "Voice Scheduled (API)"):
        body: dict[str, object] = {
            "call_type": call_type,
            "agent_email": "admin@somedomain.com",
            "menu_id": 9,
            "end_user_number": "+1 859-657-9625",
            "scheduled_at": "2099-01-01T00:00:00Z",
        }
        body[field] = value
        response = await client.post("/apps/api/v1/calls", json=body, headers=basic())
        assert response.status in (201, 202, 400), (call_type, response.status)
        if response.status == 400:
            assert set(await response.json()) == {"message"}


async def test_unknown_route_and_method_are_json(client: TestClient[Any, Any]) -> None:
    missing = await client.get("/apps/api/v1/nothing")
    assert missing.status == 404
    assert await missing.json() == {"message": "Resource not found"}
    wrong = await client.delete("/apps/api/v1/calls")
    assert wrong.status == 405
    assert await wrong.json() == {"message": "Method not allowed"}


@pytest.mark.parametrize(
    "content_type",
    [
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "text/plain",
        "application/xml",
        "text/xml",
        "application/octet-stream",
        "application/jsonp",
        "text/json",
        None,
    ],
)
@pytest.mark.parametrize("path", [*ROUTES, "/apps/api/v1/calls/batch", "/dashboard/login"])
async def test_a_body_not_labelled_json_is_415(
    client: TestClient[Any, Any], demo: dict[str, Any], path: str, content_type: str | None
) -> None:
    """Form and XML bodies were taken (201): every JSON route now answers 415 for them."""
    headers = {**basic(), "Content-Type": content_type} if content_type else basic()
    skip = [] if content_type else ["Content-Type"]
    response = await client.post(
        path, data=orjson.dumps(INBOUND), headers=headers, skip_auto_headers=skip
    )
    assert response.status == 415
    assert await response.json() == NOT_JSON
    assert await redis_calls(client) == 0


async def redis_calls(client: TestClient[Any, Any]) -> int:
    listed = await client.get("/apps/api/v1/calls", headers=basic())
    return int(listed.headers["Total"])


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/vnd.api+json",
    ],
)
async def test_json_with_parameters_or_a_json_suffix_is_taken(
    client: TestClient[Any, Any], demo: dict[str, Any], content_type: str
) -> None:
    headers = {**basic(), "Content-Type": content_type}
    response = await client.post("/apps/api/v1/calls", data=orjson.dumps(INBOUND), headers=headers)
    assert response.status == 201, await response.text()
