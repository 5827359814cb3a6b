"""JSON responses built from stored documents without decoding them again."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel

from dispatcher.store.idempotency import REPLAYED_HEADER, Answer


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    if isinstance(payload, BaseModel):
        body = payload.model_dump_json().encode()
    elif isinstance(payload, bytes):
        body = payload
    else:
        body = orjson.dumps(payload)
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


def answer_response(answer: Answer) -> web.Response:
    """A create's answer; a replay under an Idempotency-Key says so in a header."""
    headers = {REPLAYED_HEADER: "true"} if answer.replayed else None
    return json_response(answer.body, status=answer.status, headers=headers)


def json_array(documents: Sequence[bytes]) -> bytes:
    return b"[" + b",".join(documents) + b"]"
