"""Reading the headers a client sent without trusting them: credentials, cookies, Host, Expect.

aiohttp hands header bytes over as text, bytes that are not UTF-8 as lone surrogates; such text
makes `str.encode`, `hmac.compare_digest`, Redis and yarl raise. Every credential, cookie and
host the app reads comes through here, as printable ASCII or not at all."""

from __future__ import annotations

import hmac
import re

from aiohttp import HttpVersion11, hdrs, web, web_urldispatcher
from pydantic import SecretStr
from yarl import URL

from dispatcher.domain.errors import InvalidRequest
from dispatcher.http.errors import message_response

MAX_CREDENTIAL = 1024  # characters of an Authorization header's credential
BAD_HOST = "Host header is not valid"
EXPECTATION_FAILED = "Expect header is not valid: only 100-continue is supported"
# RFC 3986's host (a registered name, IPv4, or an IP literal in brackets) and an optional port.
_HOST = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=%]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


def printable(text: str) -> bool:
    """Printable ASCII only: what credentials, cookies and tokens are made of."""
    return text.isascii() and text.isprintable()


def credential(request: web.Request, scheme: str) -> str | None:
    """The credential of `Authorization: <scheme> <credential>` (scheme in any case), or None
    when the header is absent, of another scheme, empty, too long or not printable ASCII."""
    given_scheme, _, given = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
    given = given.strip()
    if given_scheme.lower() != scheme.lower() or not given or len(given) > MAX_CREDENTIAL:
        return None
    return given if printable(given) else None


def secret_matches(given: str | None, expected: SecretStr) -> bool:
    """Constant time in the secret; a missing credential matches nothing."""
    if given is None:
        return False
    return hmac.compare_digest(given.encode(), expected.get_secret_value().encode())


def cookie(request: web.Request, name: str) -> str:
    """The cookie's value, or "" when it is absent or not printable ASCII."""
    value = request.cookies.get(name, "")
    return value if printable(value) else ""


def request_url(request: web.Request, public_url: str | None) -> URL:
    """The URL the client called, for links sent back: on DISPATCHER_PUBLIC_URL when set (what
    a proxy's client called), else on the request's scheme and Host, once the Host is a valid
    one (400 otherwise, as RFC 9112 section 3.2 asks)."""
    if public_url is not None:
        return URL(public_url + str(request.rel_url), encoded=True)
    host = request.host
    if not _HOST.fullmatch(host):
        raise InvalidRequest(BAD_HOST)
    try:
        return URL.build(scheme=request.scheme, authority=host).join(request.rel_url)
    except ValueError as exc:  # a port over 65535, a name IDNA refuses
        raise InvalidRequest(BAD_HOST) from exc


async def expect_continue(request: web.Request) -> web.Response | None:
    """The Expect handler of every route: aiohttp's own answers an expectation other than
    100-continue with a text/plain 417 that repeats the header, and a 500 when that is not
    UTF-8; this one with a `{"message"}` that repeats nothing."""
    if request.version != HttpVersion11:
        return None
    if request.headers.get(hdrs.EXPECT, "").lower() != "100-continue":
        return message_response(417, EXPECTATION_FAILED)
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    request.writer.output_size = 0  # the body's size starts after the interim answer
    return None


def answer_every_expect_header() -> None:
    """Makes `expect_continue` the Expect handler of every route, those aiohttp makes itself
    for a path no route matches (404) or a wrong method (405) too: those take the default
    handler, which the router looks up as a module global when it makes a route, and no
    public API reaches. (Routes made before the call keep the handler they have.)"""
    if not hasattr(web_urldispatcher, "_default_expect_handler"):  # aiohttp moved it
        raise RuntimeError("aiohttp's default Expect handler is not where it was")
    web_urldispatcher._default_expect_handler = expect_continue  # type: ignore[assignment]
