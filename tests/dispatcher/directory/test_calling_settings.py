"""The settings of calls that must not be placed (docs/config.md): calling_window,
contact_limit_24h and dnc_call_types load with their defaults, keep their values through Redis,
and are refused with the path and a message that says what is expected."""

from __future__ import annotations

import copy
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.directory import loader
from dispatcher.directory.loader import DirectoryError
from dispatcher.directory.schema import (
    WEEKDAYS,
    CallingWindow,
    TenantDoc,
    TenantRecord,
    TenantSettings,
)
from tests.conftest import demo_document
from tests.dispatcher.directory.test_schema import _window, weekly

SETTINGS = "tenants[0].settings"
CONFIG_MD = Path(__file__).parents[3] / "docs" / "config.md"


def _with_settings(**settings: Any) -> dict[str, Any]:
    document = demo_document()
    document["tenants"][0]["settings"].update(settings)
    return document


def test_the_defaults_place_calls_at_any_hour_without_limit_and_the_list_blocks_both() -> None:
    [tenant] = loader.validate(_with_settings()).tenants
    assert tenant.settings.calling_window is None
    assert tenant.settings.contact_limit_24h is None
    assert tenant.settings.dnc_call_types == ["outbound", "scheduled"]


def test_the_settings_load_from_yaml_and_keep_through_the_stored_record() -> None:
    text = (
        "tenants:\n"
        "- subdomain: acme\n"
        "  api_tokens: [t]\n"
        "  settings:\n"
        "    calling_window:\n"
        "      weekly: {mon: ['08:00-21:00'], sat: []}\n"
        "      restricted_dates: [2026-12-25, '2027-01-01']\n"  # a YAML date and a string
        "    contact_limit_24h: 3\n"
        "    dnc_call_types: [scheduled]\n"
    )
    [tenant] = loader.parse_text(text).tenants
    window = tenant.settings.calling_window
    assert window == CallingWindow(
        weekly={"mon": ["08:00-21:00"], "sat": []},
        restricted_dates=[date(2026, 12, 25), date(2027, 1, 1)],
    )
    assert (tenant.settings.contact_limit_24h, tenant.settings.dnc_call_types) == (3, ["scheduled"])
    doc = TenantDoc.model_validate(tenant.model_dump(exclude={"api_tokens"}))
    record = TenantRecord(directory=doc, token_hashes=[])
    stored = TenantRecord.model_validate_json(record.model_dump_json())
    assert stored == record
    assert stored.directory.settings.calling_window == window


def test_a_days_windows_are_merged_in_order() -> None:
    window = CallingWindow.model_validate(
        {"weekly": {"tue": ["13:00-21:00", "22:00-24:00", "08:00-12:00", "11:00-13:00"]}}
    )
    assert window.spans[1] == ((8 * 60, 21 * 60), (22 * 60, 24 * 60))
    assert window.spans[0] == window.spans[2] == ()


def test_a_copy_with_other_windows_has_their_spans() -> None:
    window = CallingWindow.model_validate({"weekly": {"mon": ["08:00-09:00"]}})
    assert window.spans[0] == ((480, 540),)
    later = window.model_copy(update={"weekly": {"mon": ["10:00-11:00"]}})
    assert (later.spans[0], window.spans[0]) == (((600, 660),), ((480, 540),))
    assert later.model_copy(update={"restricted_dates": [date(2026, 12, 25)]}).restricted == {
        date(2026, 12, 25)
    }


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"calling_window": {"weekly": {"mon": ["08:00-21:00", "21:00-25:00"]}}},
            "calling_window.weekly.mon[1]: '21:00-25:00' is not a window like 09:00-17:00",
        ),
        ({"calling_window": {}}, "calling_window.weekly: is required"),
        (
            {"calling_window": {"weekly": {"monday": []}}},
            "calling_window.weekly.monday.[key]: must be one of " + ", ".join(WEEKDAYS),
        ),
        (
            {"calling_window": {"weekly": {}, "restricted_dates": ["25/12/2026"]}},
            "calling_window.restricted_dates[0]: must be a date like 2026-12-25",
        ),
        (
            {"calling_window": {"weekly": {}, "restricted_dates": ["2026-12-25 09:00"]}},
            "calling_window.restricted_dates[0]: must be a date like 2026-12-25",
        ),
        ({"contact_limit_24h": 0}, "contact_limit_24h: input should be greater than or equal to 1"),
        ({"dnc_call_types": ["inbound"]}, "dnc_call_types[0]: must be one of outbound, scheduled"),
        (
            {"dnc_call_types": ["outbound", "scheduled", "outbound"]},
            "dnc_call_types: lists 'outbound' twice",
        ),
    ],
    ids=[
        "window",
        "no-weekly",
        "weekday",
        "date-format",
        "date-and-time",
        "limit",
        "inbound",
        "duplicate",
    ],
)
def test_bad_settings_are_refused_with_the_path(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(DirectoryError) as refused:
        loader.validate(_with_settings(**settings))
    assert refused.value.errors == [f"{SETTINGS}.{message}"]


def test_a_yaml_date_and_time_is_no_restricted_date() -> None:
    text = (
        "tenants: [{subdomain: acme, api_tokens: [t], settings: {calling_window: "
        "{weekly: {}, restricted_dates: [2026-12-25 09:00:00]}}}]"
    )
    with pytest.raises(DirectoryError) as refused:
        loader.parse_text(text)
    assert refused.value.errors == [
        f"{SETTINGS}.calling_window.restricted_dates[0]: must be a date like 2026-12-25"
    ]


def test_no_call_kind_may_be_blocked_by_the_list() -> None:
    [tenant] = loader.validate(_with_settings(dnc_call_types=[])).tenants
    assert tenant.settings.dnc_call_types == []


@given(weekly)
def test_calling_windows_are_accepted_exactly_as_menu_hours(days: dict[str, list[str]]) -> None:
    expected_valid = all(_window(w) is not None for day in days.values() for w in day)
    document = copy.deepcopy(_with_settings(calling_window={"weekly": days}))
    try:
        loader.validate(document)
    except DirectoryError as refused:
        assert not expected_valid
        assert all(
            error.startswith(f"{SETTINGS}.calling_window.weekly") for error in refused.errors
        )
    else:
        assert expected_valid


@given(st.dates(), st.sampled_from(["{:%Y-%m-%d}", "{:%Y%m%d}", "{:%d.%m.%Y}", " {:%Y-%m-%d}"]))
def test_a_restricted_date_is_written_yyyy_mm_dd(day: date, form: str) -> None:
    written = form.format(day)
    raw = {"weekly": {}, "restricted_dates": [written]}
    accepted = form == "{:%Y-%m-%d}" and len(written) == 10
    try:
        window = CallingWindow.model_validate(raw)
    except ValueError:
        assert not accepted
    else:
        assert accepted and window.restricted_dates == [day]


def test_the_examples_of_the_configuration_guide_load() -> None:
    text = CONFIG_MD.read_text()
    section = text[text.index("### Calling windows, contact limits and the DNC list") :]
    settings, tcpa = (
        yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", section, re.S)[:2]
    )
    loaded = TenantSettings.model_validate(settings["settings"])
    assert loaded.calling_window is not None and loaded.calling_window.spans[6] == ()
    window = CallingWindow.model_validate(tcpa["calling_window"])
    assert window.spans == (((8 * 60, 21 * 60),),) * 7
