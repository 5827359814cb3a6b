"""GET /calls/export and /chats/export: every call or chat of a bounded time range, live or
archived, as CSV or NDJSON, streamed a batch at a time (gzip when the client takes it)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import cast, get_args

import structlog
from aiohttp import hdrs, web

from dispatcher.directory.tenant import Tenant
from dispatcher.domain import clock, exports
from dispatcher.domain.errors import InvalidRequest
from dispatcher.domain.exports import FormatName
from dispatcher.http import listing
from dispatcher.http.appkeys import REDIS, REQUEST_ID, SCRIPTS, SETTINGS, stores_of
from dispatcher.http.auth import tenant_of
from dispatcher.http.calls import BASE as CALLS
from dispatcher.http.errors import lift_deadline
from dispatcher.http.sms import CHATS
from dispatcher.store.keys import TenantKeys
from dispatcher.store.records import Kind, ListQuery, RecordStore
from dispatcher.store.stream_leases import StreamCap, leased

log = structlog.get_logger("dispatcher.http")
routes = web.RouteTableDef()

DEFAULT_FORMAT: FormatName = "csv"
MEDIA_TYPES: dict[FormatName, str] = {
    "csv": "text/csv; charset=utf-8",
    "ndjson": "application/x-ndjson",
}
MAX_RANGE_DAYS = 366
_DAY_MS = 86_400_000
NOT_PAGED = "page and per are not export parameters"
BAD_FORMAT = "format must be csv or ndjson"
FROM_REQUIRED = "created_at[from] is required"
TO_BEFORE_FROM = "created_at[to] must not be before created_at[from]"
TOO_MANY = "Too many exports running for this tenant (at most {})"
RANGE_TOO_LONG = f"created_at[from] and created_at[to] must be at most {MAX_RANGE_DAYS} days apart"


@dataclass(frozen=True)
class Export:
    """What an export request asks for: the list's query, its range bounded, and a format."""

    query: ListQuery
    format: FormatName

    def filename(self, kind: Kind) -> str:
        """`calls_20261121T081928.101Z_20261122T081928.101Z.csv`: the range, in UTC."""
        assert self.query.created_from_ms is not None and self.query.created_to_ms is not None
        low, high = (_stamp(ms) for ms in (self.query.created_from_ms, self.query.created_to_ms))
        return f"{kind}s_{low}_{high}.{self.format}"


@routes.get(CALLS + "/export")
async def export_calls(request: web.Request) -> web.StreamResponse:
    tenant = await tenant_of(request)
    async with one_of_few(request, tenant):
        return await respond(request, stores_of(request, tenant).calls)


@routes.get(CHATS + "/export")
async def export_chats(request: web.Request) -> web.StreamResponse:
    tenant = await tenant_of(request)
    async with one_of_few(request, tenant):
        return await respond(request, stores_of(request, tenant).chats)


def one_of_few(request: web.Request, tenant: Tenant) -> AbstractAsyncContextManager[None]:
    """A lease among the tenant's exports running at once, across every ingress process (429
    when `DISPATCHER_EXPORTS_PER_TENANT` run already): a long export holds a connection and
    reads storage for its whole length, and one tenant's must not take everyone's."""
    limit = request.app[SETTINGS].exports_per_tenant
    cap = StreamCap(TenantKeys(tenant.subdomain).exports, limit, TOO_MANY.format(limit))
    return leased(request.app[REDIS], request.app[SCRIPTS], [cap])


def parse_export(query: Mapping[str, str], kind: Kind, now: datetime) -> Export:
    """The list's filters and sort (as GET /calls reads them), a format and a range of at
    most MAX_RANGE_DAYS that must start somewhere (and ends now unless told): 400 else."""
    if "page" in query or "per" in query:
        raise InvalidRequest(NOT_PAGED)
    wanted = query.get("format", DEFAULT_FORMAT)
    if wanted not in get_args(FormatName):
        raise InvalidRequest(BAD_FORMAT)
    listed = listing.parse_query(query, kind)
    low = listed.created_from_ms
    if low is None:
        raise InvalidRequest(FROM_REQUIRED)
    high = listed.created_to_ms if listed.created_to_ms is not None else clock.to_ms(now)
    if high < low:
        raise InvalidRequest(TO_BEFORE_FROM)
    if high - low > MAX_RANGE_DAYS * _DAY_MS:
        raise InvalidRequest(RANGE_TOO_LONG)
    return Export(replace(listed, created_to_ms=high), cast(FormatName, wanted))


async def respond(request: web.Request, records: RecordStore) -> web.StreamResponse:
    """200 and the export, written batch by batch as storage gives them. The first batch is
    read and encoded before the status is sent, so a failure there is still an error answer."""
    export = parse_export(request.query, records.kind, clock.now())
    lines = exports.lines(export.format, records.kind)
    batches = records.stream(export.query, request.app[SETTINGS].export_batch_size)
    first: list[bytes] = await anext(batches, [])
    opening = lines.head() + lines.encode(first)
    response = web.StreamResponse(headers=_headers(request, export, records.kind))
    if takes_gzip(request.headers.get(hdrs.ACCEPT_ENCODING, "")):
        response.enable_compression(web.ContentCoding.gzip)
    await response.prepare(request)
    if request.method == hdrs.METH_HEAD:
        return response
    lift_deadline(request)  # an export lasts as long as it lasts; each batch has a deadline
    rows = await _send(request, response, (opening, len(first)), lines, batches)
    structlog.contextvars.bind_contextvars(rows=rows)
    return response


def _headers(request: web.Request, export: Export, kind: Kind) -> dict[str, str]:
    return {
        hdrs.CONTENT_TYPE: MEDIA_TYPES[export.format],
        hdrs.CONTENT_DISPOSITION: f'attachment; filename="{export.filename(kind)}"',
        hdrs.CACHE_CONTROL: "no-store",  # personal data: no cache keeps a copy
        hdrs.VARY: hdrs.ACCEPT_ENCODING,
        "X-Request-Id": request[REQUEST_ID],
    }


async def _send(
    request: web.Request,
    response: web.StreamResponse,
    opening: tuple[bytes, int],
    lines: exports.Lines,
    batches: AsyncIterator[list[bytes]],
) -> int:
    """Writes the opening (its bytes and rows), then each batch as it is read; the rows sent.
    The status is out by now: a failure can only cut the body short (`_cut`)."""
    timeout = request.app[SETTINGS].request_timeout_s
    chunk, sent = opening
    try:
        await response.write(chunk)
        while batch := await _next(batches, timeout):
            await response.write(lines.encode(batch))
            sent += len(batch)
    except ConnectionResetError:  # the client went away: nobody to tell
        log.info("export left by its client", rows=sent)
    except Exception:
        log.warning("export cut short", rows=sent, exc_info=True)
        _cut(request)
    return sent


async def _next(batches: AsyncIterator[list[bytes]], timeout: float) -> list[bytes]:
    """The next batch, read within `timeout` (the request timeout); [] at the end."""
    async with asyncio.timeout(timeout):
        return await anext(batches, [])


def _cut(request: web.Request) -> None:
    """Closes the connection before the body's last chunk. Every HTTP client takes a chunked
    body without it (or a gzip stream without its trailer) for a failed transfer, where a
    clean end would pass a partial export off as a whole one."""
    if request.transport is not None:
        request.transport.close()


def takes_gzip(accept_encoding: str) -> bool:
    """Whether Accept-Encoding admits gzip (RFC 9110 12.5.3): by name, else by `*`, with a
    weight above 0 (`gzip;q=0` refuses it)."""
    weights: dict[str, float] = {}
    for item in accept_encoding.lower().split(","):
        coding, _, parameters = item.partition(";")
        weights[coding.strip()] = _weight(parameters)
    return weights.get("gzip", weights.get("*", 0.0)) > 0


def _weight(parameters: str) -> float:
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip() == "q":
            try:
                return float(value.strip())
            except ValueError:
                return 0.0
    return 1.0


def _stamp(ms: int) -> str:
    return clock.iso(clock.from_ms(ms)).replace("-", "").replace(":", "")
