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
