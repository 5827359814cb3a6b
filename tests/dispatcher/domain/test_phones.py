"""Properties of the phone parser: total on any input, E.164 out, idempotent, masked in logs."""

from __future__ import annotations

import re

import phonenumbers
import pytest
from hypothesis import assume, example, given, reject
from hypothesis import strategies as st

from dispatcher.domain import phones
from tests.hostile import any_text, json_values, phone_like

# E.164 allows 15 digits; libphonenumber counts some longer national numbers (German ones) as
# possible, and the spec follows is_possible_number.
E164 = re.compile(r"^\+[1-9]\d{1,19}$")
REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)


@st.composite
def possible_numbers(draw: st.DrawFn) -> phonenumbers.PhoneNumber:
    """A possible number of some region: a region's example number with its last digits varied."""
    region = draw(st.sampled_from(REGIONS))
    example_number = phonenumbers.example_number(region)
    if example_number is None:
        reject()
    national = str(example_number.national_number)
    tail = draw(st.text(alphabet="0123456789", min_size=0, max_size=min(4, len(national) - 1)))
    varied = int(national[: len(national) - len(tail)] + tail)
    number = phonenumbers.PhoneNumber(
        country_code=example_number.country_code, national_number=varied
    )
    assume(phonenumbers.is_possible_number(number))
    return number


# Numbers as people type them: an optional '+', then groups of digits between separators.
written_numbers = st.builds(
    lambda plus, groups, separator: plus + separator.join(groups),
    st.sampled_from(["", "+", "+ ", " +"]),
    st.lists(st.text(alphabet="0123456789", min_size=1, max_size=5), min_size=1, max_size=5),
    st.sampled_from(["", " ", "-", ".", ") ", " (", "\u00a0"]),
)


@given(st.one_of(json_values, written_numbers, phone_like, any_text))
@example("\ud800")
@example("+" + "1" * 64)
@example("٣٣٩٢١٩٥٢٧٦")
@example("+82 00 00000")
def test_parse_is_total_and_answers_e164_or_none(raw: object) -> None:
    normalized = phones.normalize(raw)
    assert normalized is None or E164.match(normalized), normalized
    parsed = phones.parse(raw)
    assert (parsed is None) == (normalized is None)
    if parsed is not None:
        assert isinstance(phones.region(parsed), str)
    code = phones.country_code(raw)
    assert code is None or code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE


@given(st.one_of(written_numbers, phone_like, any_text))
def test_normalizing_is_idempotent(raw: str) -> None:
    normalized = phones.normalize(raw)
    if normalized is not None:
        assert phones.normalize(normalized) == normalized
        parsed = phones.parse(normalized)
        assert parsed is not None and phones.country_code(normalized) == parsed.country_code


@given(
    possible_numbers(),
    st.sampled_from(
        [
            phonenumbers.PhoneNumberFormat.E164,
            phonenumbers.PhoneNumberFormat.INTERNATIONAL,
            phonenumbers.PhoneNumberFormat.RFC3966,
        ]
    ),
)
def test_every_way_of_writing_a_number_normalizes_to_its_e164(
    number: phonenumbers.PhoneNumber, form: int
) -> None:
    written = phonenumbers.format_number(number, form).removeprefix("tel:")
    assert phones.normalize(written) == phones.e164(number)
    assert phones.country_code(written) == number.country_code


@given(st.integers(min_value=200, max_value=999), st.integers(min_value=0, max_value=9_999_999))
def test_us_numbers_without_a_plus_are_us(area: int, local: int) -> None:
    national = f"{area}{local:07d}"
    assume(phones.normalize(national) is not None)
    for written in (national, f"({area}) {local:07d}", f"1{national}", f"+1 {national}"):
        assert phones.normalize(written) == f"+1{national}"
    assert phones.country_code(national) == 1


@given(st.text(min_size=65, max_size=200))
def test_overlong_input_is_never_a_number(raw: str) -> None:
    assert phones.normalize(raw) is None


@pytest.mark.parametrize(
    ("raw", "code"),
    [("+82 000-000-0000", 82), ("+44 20 7946 0000", 44), ("+1 205-123-4567", 1), ("12345", 1)],
)
def test_country_code_is_judged_before_validity(raw: str, code: int) -> None:
    # The spec's SMS check 9 refuses +82 000-000-0000 as non-US although it is no valid number.
    assert phones.country_code(raw) == code


@given(possible_numbers(), any_text, any_text)
def test_logs_never_show_a_full_number(
    number: phonenumbers.PhoneNumber, before: str, after: str
) -> None:
    e164 = phones.e164(number)
    assume(len(e164) >= 9)  # the masking rule covers 7 digits and more
    line = f"{before} {e164} {after}"
    masked = phones.mask(line)
    assert e164 not in masked
    assert e164[1:] not in masked


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        # Found by test_normalizing_is_idempotent: E.164 forms that parsed back as another number.
        ("+82 00 00000", None),
        ("+27 00 718437147", None),
        ("+375 08 125443158", None),
        # The usual "(0)" of international writing still works.
        ("+27 (0)71 843 7147", "+27718437147"),
        ("+44 (0) 20 7946 0000", "+442079460000"),
        ("+82 010-1234-5678", "+821012345678"),
    ],
)
def test_numbers_that_do_not_survive_their_e164_form_are_refused(
    raw: str, normalized: str | None
) -> None:
    assert phones.normalize(raw) == normalized
