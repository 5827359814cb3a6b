"""Hypothesis strategies of hostile input: any JSON value, odd unicode, near-miss numbers."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

# Characters that break naive code: NUL and controls, RTL overrides, zero-width and combining
# marks, emoji with joiners, non-ASCII digits (Arabic-Indic, fullwidth), a lone surrogate.
ODD_CHARACTERS = (
    "\x00\x01\x1f\x7f\t\r\n \u00a0\u200b\u200d\u200e\u200f\u202e\u2066\ufeff\u0301\u0338"
    "\U0001f600\U0001f469\u200d\U0001f4bb\u0663\u06f5\uff11\uff0b\ud800\udfff+-()./:TZ0123456789"
)

odd_text = st.text(alphabet=st.sampled_from(ODD_CHARACTERS), max_size=40)
any_text = st.one_of(st.text(max_size=80), odd_text)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    any_text,
)

json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=12,
)

# Digits, separators and signs as people type them: near misses of real numbers.
phone_like = st.text(
    alphabet=st.sampled_from("0123456789+-(). xX#*\u00a0\uff11\u0663"), max_size=30
)

# Header values as a hostile client sends them, as raw bytes: not UTF-8, a UTF-8 surrogate,
# accented, a port out of range, half an IPv6 literal, near misses of the schemes and cookies
# the app reads. No CR, LF, NUL or other controls: aiohttp's parser refuses those itself.
HEADER_FRAGMENTS = (
    b"\xff", b"\xfe\xff", b"\x80", b"\xc3\xa9", b"\xed\xa0\x80", b"\xf0\x9f\x98\x80", b"%ff",
    b"Basic ", b"Bearer ", b"dispatcher_session=", b"demo.", b"demo:", b"=", b";", b",", b'"',
    b":99999999", b":-1", b"[::1", b"]", b"bytes=", b"0-", b"-1", b"*", b"gzip", b"https",
    b" ", b"\t", b"a" * 300,
)  # fmt: skip
_VALUE_BYTES = [0x09, *range(0x20, 0x7F), *range(0x80, 0x100)]
header_values = st.lists(
    st.one_of(
        st.sampled_from(HEADER_FRAGMENTS), st.sampled_from(_VALUE_BYTES).map(lambda b: bytes([b]))
    ),
    max_size=12,
).map(b"".join)
