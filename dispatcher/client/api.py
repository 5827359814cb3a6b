"""A client of the public API with a tenant's Basic credentials: every failure is an
`ApiError` carrying the API's own message, or `Unreachable` when no answer came at all."""

from __future__ import annotations

import base64
import contextlib
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

API = "/apps/api/v1"
TIMEOUT = aiohttp.ClientTimeout(total=30)
# An event stream has no end; the server writes a comment every 15 s, so a silence this long
# means the connection is dead.
STREAM_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=45)
# An export lasts as long as it lasts; the server reads each batch within its request timeout
# (30 s by default), so a longer silence is a dead connection.
EXPORT_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)


class ApiError(Exception):
    """An answer other than success; `message` is the API's `{"message": ...}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{message} (HTTP {status})")
        self.status = status
        self.message = message


class Unreachable(Exception):
    """No answer: nothing listens, the name does not resolve, or the answer timed out."""


class CutShort(Exception):
    """An answer that began and did not end: the server or the network failed mid-way."""


@dataclass(frozen=True)
class Page:
    """One page of a list, with the list's Total and Per-Page headers."""

    items: list[dict[str, Any]]
    total: int
    per: int


class Client:
    """One tenant's view of the API at `url`; use it as `async with Client(...) as api`."""

    def __init__(self, url: str, tenant: str, token: str) -> None:
        self.url = url.rstrip("/")
        credentials = base64.b64encode(f"{tenant}:{token}".encode()).decode()
        self._headers = {"Authorization": f"Basic {credentials}"}
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Client:
        self._session = aiohttp.ClientSession(self.url, headers=self._headers, timeout=TIMEOUT)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._session is not None:
            await self._session.close()

    # Calls ----------------------------------------------------------------------------------

    async def calls(self, query: Mapping[str, str]) -> Page:
        return await self._page(f"{API}/calls", query)

    async def call(self, call_id: int) -> dict[str, Any]:
        call: dict[str, Any] = await self._json("GET", f"{API}/calls/{call_id}")
        return call

    async def finish_call(self, call_id: int) -> dict[str, Any]:
        call: dict[str, Any] = await self._json("POST", f"{API}/calls/{call_id}/finish")
        return call

    async def export(self, kind: str, query: Mapping[str, str]) -> AsyncIterator[bytes]:
        """The body of GET /<kind>/export as it arrives, gzip on the wire and decoded here;
        CutShort when it does not end as a whole body does."""
        path = f"{API}/{kind}/export"
        async with self._request("GET", path, EXPORT_TIMEOUT, params=query) as answer:
            await _raise_for(answer)
            try:
                async for chunk in answer.content.iter_any():
                    yield chunk
            except aiohttp.ClientPayloadError as exc:
                raise CutShort(f"the export was cut short ({exc.__class__.__name__})") from exc

    # Campaigns ------------------------------------------------------------------------------

    async def campaigns(self, query: Mapping[str, str]) -> Page:
        return await self._page(f"{API}/campaigns", query)

    async def campaign(self, campaign_id: int) -> dict[str, Any]:
        campaign: dict[str, Any] = await self._json("GET", f"{API}/campaigns/{campaign_id}")
        return campaign

    async def control_campaign(self, campaign_id: int, action: str) -> dict[str, Any]:
        """`action`: pause, resume or cancel; the campaign as it is after it."""
        path = f"{API}/campaigns/{campaign_id}/{action}"
        campaign: dict[str, Any] = await self._json("POST", path)
        return campaign

    # Agents ---------------------------------------------------------------------------------

    async def agents(self, page: int = 1, per: int = 1000) -> Page:
        return await self._page(f"{API}/agents", {"page": str(page), "per": str(per)})

    async def set_status(self, agent_id: int, status: str) -> dict[str, Any]:
        path = f"{API}/agents/{agent_id}/status"
        agent: dict[str, Any] = await self._json("PUT", path, {"status": status})
        return agent

    async def offers(self, agent_id: int) -> list[dict[str, Any]]:
        offers: list[dict[str, Any]] = await self._json("GET", f"{API}/agents/{agent_id}/offers")
        return offers

    async def accept(self, offer_id: int) -> dict[str, Any]:
        call: dict[str, Any] = await self._json("POST", f"{API}/offers/{offer_id}/accept")
        return call

    async def decline(self, offer_id: int) -> dict[str, Any]:
        declined: dict[str, Any] = await self._json("POST", f"{API}/offers/{offer_id}/decline")
        return declined

    async def events(
        self, agent_id: int, *, standby: bool = False
    ) -> AsyncIterator[tuple[str, Any]]:
        """The agent's server-sent events as (event, data) until the stream ends; comments,
        such as the `connected` the stream opens with, come as (":", text). With `standby`
        the stream waits while another holds the agent (`standby`, then `ready`)."""
        path = f"{API}/agents/{agent_id}/events" + ("?standby=true" if standby else "")
        async with self._request("GET", path, STREAM_TIMEOUT) as answer:
            await _raise_for(answer)
            event, data = "message", b""
            async for raw in answer.content:
                line = raw.rstrip(b"\r\n")
                if line.startswith(b":"):
                    yield ":", line[1:].strip().decode()
                elif line.startswith(b"event:"):
                    event = line[6:].strip().decode()
                elif line.startswith(b"data:"):
                    data += line[5:].strip()
                elif not line and data:
                    yield event, orjson.loads(data)
                    event, data = "message", b""

    # Plumbing -------------------------------------------------------------------------------

    async def _page(self, path: str, query: Mapping[str, str]) -> Page:
        async with self._request("GET", path, params=query) as answer:
            body = await _body(answer)
            return Page(
                items=body,
                total=int(answer.headers.get("Total", len(body))),
                per=int(answer.headers.get("Per-Page", len(body))),
            )

    async def _json(self, method: str, path: str, body: Any = None) -> Any:
        async with self._request(method, path, json=body) as answer:
            return await _body(answer)

    @contextlib.asynccontextmanager
    async def _request(
        self,
        method: str,
        path: str,
        timeout: aiohttp.ClientTimeout = TIMEOUT,
        **kwargs: Any,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        if self._session is None:
            raise RuntimeError("use the client as `async with Client(...)`")
        try:
            async with self._session.request(method, path, timeout=timeout, **kwargs) as answer:
                yield answer
        except aiohttp.ClientConnectorError as exc:
            raise Unreachable(f"cannot connect to {self.url}: {_reason(exc.os_error)}") from exc
        except TimeoutError as exc:
            raise Unreachable(f"no answer from {self.url} in time") from exc
        except aiohttp.ClientError as exc:
            raise Unreachable(f"{self.url}: {exc.__class__.__name__}: {exc}") from exc


def _reason(error: OSError) -> str:
    """ "connection refused" rather than asyncio's "Connect call failed ('127.0.0.1', 9)"."""
    if error.errno and error.errno > 0:
        return os.strerror(error.errno).lower()
    return (error.strerror or str(error)).lower()


async def _raise_for(answer: aiohttp.ClientResponse) -> None:
    if answer.status < 400:
        return
    raw = await answer.read()
    try:
        message = orjson.loads(raw)["message"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        message = answer.reason or "error"
    raise ApiError(answer.status, str(message))


async def _body(answer: aiohttp.ClientResponse) -> Any:
    await _raise_for(answer)
    return orjson.loads(await answer.read())
