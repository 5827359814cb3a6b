"""Properties of the directory schema: any document is loaded or refused with a path, never a
crash; hours windows parse exactly as CONFIG.md writes them; menus open and close by them."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from ipaddress import ip_network
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from dispatcher.directory import loader
from dispatcher.directory.loader import DirectoryError
from dispatcher.directory.schema import WEEKDAYS, Hours, Menu, TenantDoc
from dispatcher.directory.tenant import Tenant
from dispatcher.domain import clock
from tests.conftest import demo_document
from tests.hostile import any_text, json_values

DEMO = demo_document()
MENU_KEYS = [
    "id", "name", "type", "parent_id", "position", "output_msg", "hidden", "languages", "state",
    "hours", "routing", "groups", "cascade_interval_s", "offer_timeout_s", "max_wait_s",
    "recording",
]  # fmt: skip
ZONES = ["UTC", "America/Los_Angeles", "Asia/Tokyo", "Pacific/Kiritimati", "Pacific/Niue",
         "Asia/Kathmandu", "Europe/Dublin", "Australia/Lord_Howe", "America/St_Johns"]  # fmt: skip

clock_times = st.tuples(st.integers(0, 25), st.integers(0, 61))
windows = st.one_of(
    st.builds(
        lambda a, b: f"{a[0]:02d}:{a[1]:02d}-{b[0]:02d}:{b[1]:02d}", clock_times, clock_times
    ),
    any_text,
)
valid_windows = (
    st.integers(0, 24 * 60 - 1)
    .flatmap(lambda start: st.tuples(st.just(start), st.integers(start + 1, 24 * 60)))
    .map(
        lambda span: "{:02d}:{:02d}-{:02d}:{:02d}".format(
            *divmod(span[0], 60), *divmod(span[1], 60)
        )
    )
)
weekly = st.dictionaries(st.sampled_from(WEEKDAYS), st.lists(windows, max_size=3), max_size=7)
instants = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).map(
    lambda naive: naive.replace(tzinfo=clock.LATEST.tzinfo)
)


def _minutes(text: str) -> int | None:
    """An HH:MM as minutes since midnight, by integer arithmetic (the schema uses a regex)."""
    if len(text) != 5 or text[2] != ":" or not (text[:2] + text[3:]).isdigit():
        return None
    hours, minutes = int(text[:2]), int(text[3:])
    return hours * 60 + minutes if hours <= 24 and minutes < 60 else None


def _window(text: str) -> tuple[int, int] | None:
    start, end = _minutes(text[:5]), _minutes(text[6:])
    if len(text) != 11 or text[5] != "-" or start is None or end is None:
        return None
    if start >= 24 * 60 or end > 24 * 60 or end <= start:
        return None
    return start, end


def _menu(hours: dict[str, Any] | None, **extra: Any) -> Menu:
    return Menu.model_validate({"id": 9, "name": "m", "type": "ivr_menu", "hours": hours, **extra})


def _tenant(*menus: Menu) -> Tenant:
    return Tenant(doc=TenantDoc(subdomain="t", menus=list(menus)), token_hashes=[])


@given(json_values)
@example({"tenants": [{"subdomain": "a", "api_tokens": ["x"], "menus": [{"hours": {}}]}]})
def test_any_json_value_is_loaded_or_refused_with_a_path(raw: Any) -> None:
    try:
        loader.validate(raw)
    except DirectoryError as refused:
        assert refused.errors and all(": " in error for error in refused.errors)


@given(st.sampled_from(MENU_KEYS), json_values)
def test_a_bad_menu_key_is_refused_at_that_menu(key: str, value: Any) -> None:
    document = copy.deepcopy(DEMO)
    document["tenants"][0]["menus"][0][key] = value
    try:
        loader.validate(document)
    except DirectoryError as refused:
        assert all(error.startswith("tenants[0].menus[") for error in refused.errors), refused


@given(st.one_of(any_text, st.text(alphabet="[]{}:-,&*!|>'\"# \n\tab1", max_size=60)))
@example("[" * 700 + "]" * 700)
@example("{a: " * 700 + "}" * 700)
@example("a: &a [1, 1]\nb: &b [*a, *a]\nc: [*b, *b]")
def test_any_text_is_loaded_or_refused(text: str) -> None:
    for yaml_allowed in (True, False):
        try:
            loader.parse_text(text, yaml_allowed=yaml_allowed)
        except DirectoryError as refused:
            assert refused.errors


@given(weekly)
@example({"mon": ["00:00-24:00", "23:59-24:00"]})
@example({"tue": ["24:00-24:00", "17:00-09:00", "9:00-17:00", "09:00-17:00\n"]})
def test_windows_are_accepted_exactly_when_well_formed(days: dict[str, list[str]]) -> None:
    expected_valid = all(_window(w) is not None for day in days.values() for w in day)
    try:
        Hours.model_validate({"weekly": days})
    except ValueError:
        assert not expected_valid
    else:
        assert expected_valid


@given(
    st.dictionaries(
        st.sampled_from(WEEKDAYS),
        st.lists(valid_windows, max_size=3),
    ),
    instants,
    st.sampled_from(ZONES),
)
def test_a_menu_is_open_exactly_inside_its_windows(
    days: dict[str, list[str]], at: datetime, zone: str
) -> None:
    menu = _menu({"timezone": zone, "weekly": days})
    local = at.astimezone(ZoneInfo(zone))
    minute = local.hour * 60 + local.minute
    spans = [_window(w) for w in days.get(WEEKDAYS[local.weekday()], [])]
    is_open = any(span is not None and span[0] <= minute < span[1] for span in spans)
    assert _tenant(menu).is_after_hours(menu, at) is not is_open


@given(
    st.lists(valid_windows, max_size=3),
    st.lists(valid_windows, max_size=3),
    instants,
)
def test_more_windows_never_close_a_menu(first: list[str], more: list[str], at: datetime) -> None:
    fewer = _menu({"weekly": {day: first for day in WEEKDAYS}})
    wider = _menu({"weekly": {day: first + more for day in WEEKDAYS}})
    tenant = _tenant()
    if not tenant.is_after_hours(fewer, at):
        assert not tenant.is_after_hours(wider, at)
    assert tenant.is_after_hours(_menu(None), at) is False
    assert tenant.is_after_hours(_menu(None, state="after_hours"), at) is True


@given(instants, st.sampled_from(ZONES))
@example(clock.EARLIEST, "Pacific/Niue")
@example(clock.LATEST, "Pacific/Kiritimati")
def test_hours_can_be_judged_at_every_instant_the_parser_accepts(at: datetime, zone: str) -> None:
    menu = _menu({"timezone": zone, "weekly": {day: ["00:00-24:00"] for day in WEEKDAYS}})
    assert _tenant(menu).is_after_hours(menu, at) is False
    assert _tenant(menu).is_after_hours(menu, at + timedelta(0)) is False


@given(st.lists(st.one_of(st.none(), st.integers(1, 8)), min_size=1, max_size=8))
def test_a_menu_path_ends_at_its_menu_even_through_cycles(parents: list[int | None]) -> None:
    # The loader refuses unknown parents but not cycles; menu_path must stop on both.
    menus = [
        Menu(id=i + 1, name=f"m{i + 1}", type="ivr_menu", parent_id=parent)
        for i, parent in enumerate(parents)
    ]
    tenant = _tenant(*menus)
    for menu in menus:
        path = tenant.menu_path(menu)
        assert 1 <= path.items_count <= len(menus) + 1
        assert path.materialized_path.split("/")[-1] == str(menu.id)
        assert path.name.split(" / ")[-1] == menu.name


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # Found by test_any_text_is_loaded_or_refused: RecursionError, a 500 on PUT config.
        ("[" * 700 + "]" * 700, "document: is nested too deeply"),
        ('{"a": ' * 50_000 + "1" + "}" * 50_000, "document: is nested too deeply"),
        # Aliases of aliases: 15 kB of YAML, 9 million values for pydantic to walk.
        (
            "g: &g [" + ",".join(["1"] * 3000) + "]\n"
            "tenants: [{subdomain: a, api_tokens: [t], menus: [{id: 9, name: m, type: ivr_menu,"
            " groups: [" + ",".join(["*g"] * 3000) + "]}]}]",
            "tenants[0].menus[0].groups: holds more than 5000000 values",
        ),
    ],
    ids=["deep-arrays", "deep-objects", "alias-bomb"],
)
def test_hostile_documents_are_refused(text: str, message: str) -> None:
    with pytest.raises(DirectoryError) as refused:
        loader.parse_text(text)
    assert refused.value.errors == [message]


def _menu_hours(hours: Any) -> dict[str, Any]:
    document = copy.deepcopy(DEMO)
    document["tenants"][0]["menus"][0]["hours"] = hours
    return document


@pytest.mark.parametrize(
    ("document", "message"),
    [
        # Found by test_windows_are_accepted_exactly_when_well_formed: 24:01..24:59 were windows.
        (
            _menu_hours({"weekly": {"mon": ["09:00-24:30"]}}),
            "tenants[0].menus[0].hours.weekly.mon[0]: "
            "'09:00-24:30' is not a window like 09:00-17:00",
        ),
        (
            _menu_hours({"weekly": {"mon": ["09:00-17:00\n"]}}),
            "tenants[0].menus[0].hours.weekly.mon[0]: "
            "'09:00-17:00\n' is not a window like 09:00-17:00",
        ),
        # Found by test_a_bad_menu_key_is_refused_at_that_menu: a lone surrogate (which the
        # escape "\ud800" spells in YAML and JSON) raised UnicodeEncodeError, a 500 on PUT config.
        (
            _menu_hours({"timezone": "\ud800", "weekly": {}}),
            "tenants[0].menus[0].hours.timezone: is not unicode text",
        ),
        (
            _menu_hours({"weekly": {}, "\udfff": 1}),
            "tenants[0].menus[0].hours: has a key that is not unicode text",
        ),
    ],
    ids=["window-past-24:00", "window-newline", "surrogate-value", "surrogate-key"],
)
def test_malformed_hours_and_text_are_refused(document: Any, message: str) -> None:
    with pytest.raises(DirectoryError) as refused:
        loader.validate(document)
    assert refused.value.errors == [message]


def test_windows_ending_at_midnight_load() -> None:
    hours = Hours.model_validate({"weekly": {"mon": ["00:00-24:00", "23:59-24:00"]}})
    assert hours.weekly["mon"] == ["00:00-24:00", "23:59-24:00"]


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("gopher://hooks.example.com/", "must be an http:// or https:// URL with a host"),
        ("http://127.0.0.1:9000/hook", "127.0.0.1 is not a public address"),
        ("http://[::1]/hook", "::1 is not a public address"),
        ("http://169.254.169.254/latest/meta-data", "169.254.169.254 is not a public address"),
        ("http://100.64.0.1/hook", "100.64.0.1 is not a public address"),
    ],
)
def test_a_webhook_url_to_no_public_address_is_refused_at_load(url: str, problem: str) -> None:
    document = copy.deepcopy(DEMO)
    document["tenants"][0]["settings"]["webhook_url"] = url
    with pytest.raises(DirectoryError) as refused:
        loader.validate(document)
    assert refused.value.errors == [f"tenants[0].settings.webhook_url: {problem}"]


def test_an_allow_listed_network_may_be_named_by_a_webhook_url() -> None:
    document = copy.deepcopy(DEMO)
    document["tenants"][0]["settings"]["webhook_url"] = "http://127.0.0.1:9000/hook"
    networks = [ip_network("127.0.0.0/8")]
    [tenant] = loader.validate(document, webhook_networks=networks).tenants
    assert tenant.settings.webhook_url == "http://127.0.0.1:9000/hook"
    document["tenants"][0]["settings"]["webhook_url"] = "https://hooks.example.com/h"
    [tenant] = loader.validate(document).tenants
    assert tenant.settings.webhook_url == "https://hooks.example.com/h"
