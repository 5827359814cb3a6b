"""ISO 639-1 language codes, from pycountry's copy of the standard."""

from __future__ import annotations

from functools import cache

import pycountry


@cache
def iso_639_1_codes() -> frozenset[str]:
    return frozenset(lang.alpha_2 for lang in pycountry.languages if getattr(lang, "alpha_2", None))


def is_known(code: object) -> bool:
    return isinstance(code, str) and code in iso_639_1_codes()
