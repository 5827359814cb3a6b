"""Directory validation (CONFIG.md): valid documents load with the documented defaults,
malformed ones are refused whole, every problem named by the exact path of the bad key."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from dispatcher.carriers import registry, twilio
from dispatcher.directory import loader
from dispatcher.directory.loader import DirectoryError
from tests.conftest import ADMIN_TOKEN, DEMO_FILE, demo_document, load_directory

Document = dict[str, Any]
Change = Callable[[Document], None]
CONFIG = "/manager/api/v1/config"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def tenant(document: Document) -> Document:
    found: Document = document["tenants"][0]
    return found


def refusal(document: Any) -> list[str]:
    """The errors of a document `validate` must refuse; its message is the first of them."""
    with pytest.raises(DirectoryError) as caught:
        loader.validate(document)
    assert str(caught.value) == caught.value.errors[0]
    return caught.value.errors


def changed(change: Change) -> Document:
    document = demo_document()
    change(document)
    return document


# --- valid documents -----------------------------------------------------------------------------


def test_demo_document_loads() -> None:
    document = loader.validate(demo_document())
    [demo] = document.tenants
    assert demo.subdomain == "demo"
    assert demo.api_tokens == ["demo-token"]
    assert demo.timezone == "America/Los_Angeles"
    assert [agent.id for agent in demo.agents] == [1, 2, 3, 4]
    assert [menu.id for menu in demo.menus] == [9, 50, 51]
    assert [contact.ticket_id for contact in demo.contacts] == [
        "71450",
        "76517",
        "5006x00000XXxxxXXX",
    ]


def test_numbers_are_stored_in_e164() -> None:
    [demo] = loader.validate(demo_document()).tenants
    assert [n.number for n in demo.outbound_numbers] == ["+16285550199", "+13392195276"]
    assert [(n.voice, n.sms) for n in demo.outbound_numbers] == [(True, True), (True, False)]
    assert demo.settings.default_outbound_number == "+13392195276"
    assert demo.contacts[0].phone_numbers == ["+18596579625"]


def test_omitted_optional_keys_take_the_documented_defaults() -> None:
    document = loader.validate(
        {
            "tenants": [
                {
                    "subdomain": "acme",
                    "api_tokens": ["t0ken"],
                    "agents": [{"id": 7, "email": "a@acme.example"}],
                    "menus": [{"id": 1, "name": "Queue", "type": "ivr_menu"}],
                    "contacts": [{"ticket_id": 42, "id": 3, "out_contact_id": 99}],
                }
            ]
        }
    )
    [acme] = document.tenants
    settings = acme.settings
    assert (settings.sms_enabled, settings.outbound_sms_enabled) == (True, True)
    assert settings.sms_allowed_regions == ["US"]
    assert settings.sms_session_timeout_s == 3600
    assert settings.default_outbound_number is None
    assert (settings.webhook_url, settings.webhook_secret) == (None, None)
    assert (settings.carrier, settings.carriers) == ("simulated", ["simulated"])
    assert (settings.twilio.account, settings.twilio.ring_timeout_s) == (None, 30)
    assert acme.outbound_numbers == []
    [agent] = acme.agents
    assert agent.can_make_calls is True
    assert agent.languages == ["en"]
    assert agent.status == "available"
    assert (agent.capacity.voice, agent.capacity.chat) == (1, 5)
    [menu] = acme.menus
    assert menu.parent_id is None
    assert menu.position == 0
    assert menu.hidden is False
    assert menu.languages == ["en"]
    assert menu.state == "open"
    assert menu.hours is None
    assert menu.routing == "cascade"
    assert menu.groups == []
    assert (menu.cascade_interval_s, menu.offer_timeout_s, menu.max_wait_s) == (30, 30, 600)
    assert menu.recording == "ask"
    # Integer CRM ids are kept as strings.
    [contact] = acme.contacts
    assert (contact.ticket_id, contact.out_contact_id) == ("42", "99")


def test_unknown_keys_are_ignored() -> None:
    document = demo_document()
    document["comment"] = "top level"
    tenant(document)["region"] = "us-west"
    tenant(document)["settings"]["colour"] = "blue"
    tenant(document)["agents"][0]["nickname"] = "boss"
    tenant(document)["menus"][0]["icon"] = "lock"
    assert loader.validate(document).tenants[0].agents[0].email == "admin@somedomain.com"


def test_menu_hours_with_valid_windows_load() -> None:
    document = changed(
        lambda d: tenant(d)["menus"][0].update(
            hours={
                "timezone": "Asia/Seoul",
                "weekly": {"mon": ["09:00-12:00", "13:00-18:00"], "sat": ["00:00-24:00"]},
            }
        )
    )
    hours = loader.validate(document).tenants[0].menus[0].hours
    assert hours is not None
    assert hours.timezone == "Asia/Seoul"
    assert hours.weekly["mon"] == ["09:00-12:00", "13:00-18:00"]


def test_validate_does_not_change_its_input() -> None:
    document = demo_document()
    before = copy.deepcopy(document)
    loader.validate(document)
    assert document == before


# --- malformed documents: one problem each -----------------------------------------------------


def _set(path: tuple[str | int, ...], value: Any) -> Change:
    """Set the value at `path` under tenants[0]."""

    def change(document: Document) -> None:
        target: Any = tenant(document)
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return change


def _drop(*path: str | int) -> Change:
    def change(document: Document) -> None:
        target: Any = tenant(document)
        for part in path[:-1]:
            target = target[part]
        del target[path[-1]]

    return change


def _append(key: str, item: Document) -> Change:
    def change(document: Document) -> None:
        tenant(document)[key].append(item)

    return change


def _second_tenant(document: Document) -> None:
    document["tenants"].append(copy.deepcopy(tenant(document)))


REFUSED: list[Any] = [
    # Keys and enumerations.
    pytest.param(
        _set(("menus", 2, "type"), "phone_menu"),
        "tenants[0].menus[2].type: must be one of ivr_menu, mobile_menu, web_menu",
        id="menu-type",
    ),
    pytest.param(_drop("subdomain"), "tenants[0].subdomain: is required", id="subdomain-missing"),
    pytest.param(_drop("api_tokens"), "tenants[0].api_tokens: is required", id="tokens-missing"),
    pytest.param(
        _drop("menus", 0, "name"), "tenants[0].menus[0].name: is required", id="menu-name"
    ),
    pytest.param(_drop("agents", 0, "id"), "tenants[0].agents[0].id: is required", id="agent-id"),
    pytest.param(
        _set(("menus", 0, "state"), "closed"),
        "tenants[0].menus[0].state: must be one of open, after_hours, manual_redirection",
        id="menu-state",
    ),
    pytest.param(
        _set(("menus", 0, "routing"), "random"),
        "tenants[0].menus[0].routing: must be one of cascade, multicast",
        id="menu-routing",
    ),
    pytest.param(
        _set(("menus", 0, "recording"), "sometimes"),
        "tenants[0].menus[0].recording: must be one of ask, always, never",
        id="menu-recording",
    ),
    pytest.param(
        _set(("agents", 0, "status"), "busy"),
        "tenants[0].agents[0].status: must be one of available, unavailable, offline",
        id="agent-status",
    ),
    pytest.param(
        _set(("settings", "carrier"), "vonage"),
        "tenants[0].settings.carrier: must be one of simulated, twilio",
        id="carrier-unknown",
    ),
    pytest.param(
        _set(("settings", "twilio"), {"account": "acme-eu"}),
        "tenants[0].settings.twilio.account: string should match pattern '^[A-Za-z0-9_]{1,40}$'",
        id="twilio-account-pattern",
    ),
    pytest.param(
        _set(("subdomain",), "Demo_1"),
        "tenants[0].subdomain: string should match pattern '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'",
        id="subdomain-pattern",
    ),
    pytest.param(
        _set(("agents", 0, "email"), "not-an-email"),
        "tenants[0].agents[0].email: string should match pattern '^[^@\\s]+@[^@\\s]+$'",
        id="agent-email-pattern",
    ),
    pytest.param(
        _set(("settings", "sms_enabled"), "maybe"),
        "tenants[0].settings.sms_enabled: "
        "input should be a valid boolean, unable to interpret input",
        id="setting-not-boolean",
    ),
    pytest.param(
        _set(("agents", 0, "id"), 0),
        "tenants[0].agents[0].id: input should be greater than or equal to 1",
        id="agent-id-zero",
    ),
    pytest.param(
        _set(("agents", 0, "capacity"), {"voice": -1}),
        "tenants[0].agents[0].capacity.voice: input should be greater than or equal to 0",
        id="agent-capacity-negative",
    ),
    pytest.param(
        _set(("menus", 0, "max_wait_s"), 0),
        "tenants[0].menus[0].max_wait_s: input should be greater than 0",
        id="menu-max-wait-zero",
    ),
    # Tokens.
    pytest.param(
        _set(("api_tokens",), []),
        "tenants[0].api_tokens: list should have at least 1 item after validation, not 0",
        id="tokens-empty",
    ),
    pytest.param(
        _set(("api_tokens",), ["good", ""]),
        "tenants[0].api_tokens[1]: string should have at least 1 character",
        id="token-empty-string",
    ),
    # Phone numbers.
    pytest.param(
        _set(("outbound_numbers", 0, "number"), "12345"),
        "tenants[0].outbound_numbers[0].number: is not a possible phone number",
        id="outbound-number",
    ),
    pytest.param(
        _set(("contacts", 1, "phone_numbers"), ["+1 859-657-9625", "abc"]),
        "tenants[0].contacts[1].phone_numbers[1]: is not a possible phone number",
        id="contact-phone-number",
    ),
    pytest.param(
        _set(("settings", "default_outbound_number"), "call me"),
        "tenants[0].settings.default_outbound_number: is not a possible phone number",
        id="default-outbound-number-malformed",
    ),
    # Languages, time zones, hours.
    pytest.param(
        _set(("agents", 1, "languages"), ["en", "xy"]),
        "tenants[0].agents[1].languages[1]: 'xy' is not an ISO 639-1 language code",
        id="agent-language",
    ),
    pytest.param(
        _set(("menus", 0, "languages"), ["en", "EN"]),
        "tenants[0].menus[0].languages[1]: 'EN' is not an ISO 639-1 language code",
        id="menu-language-upper-case",
    ),
    pytest.param(
        _set(("timezone",), "Mars/Olympus"),
        "tenants[0].timezone: 'Mars/Olympus' is not a known time zone",
        id="tenant-timezone",
    ),
    pytest.param(
        _set(("menus", 0, "hours"), {"timezone": "Nowhere/City", "weekly": {}}),
        "tenants[0].menus[0].hours.timezone: 'Nowhere/City' is not a known time zone",
        id="hours-timezone",
    ),
    pytest.param(
        _set(("menus", 0, "hours"), {"weekly": {"mon": ["17:00-09:00"]}}),
        "tenants[0].menus[0].hours.weekly.mon[0]: '17:00-09:00' is not a window like 09:00-17:00",
        id="hours-window-reversed",
    ),
    pytest.param(
        _set(("menus", 0, "hours"), {"weekly": {"tue": ["09:00-17:00", "9-5"]}}),
        "tenants[0].menus[0].hours.weekly.tue[1]: '9-5' is not a window like 09:00-17:00",
        id="hours-window-malformed",
    ),
    pytest.param(
        _set(("menus", 0, "hours"), {"weekly": {"fri": ["09:00-09:00"]}}),
        "tenants[0].menus[0].hours.weekly.fri[0]: '09:00-09:00' is not a window like 09:00-17:00",
        id="hours-window-empty",
    ),
    pytest.param(
        _set(("menus", 0, "hours"), {"weekly": {"sun": ["24:30-25:00"]}}),
        "tenants[0].menus[0].hours.weekly.sun[0]: '24:30-25:00' is not a window like 09:00-17:00",
        id="hours-window-out-of-day",
    ),
    pytest.param(
        _set(("menus", 0, "hours"), {"timezone": "UTC"}),
        "tenants[0].menus[0].hours.weekly: is required",
        id="hours-weekly-missing",
    ),
    # Duplicates (agent emails compare without case; numbers compare in E.164).
    pytest.param(
        _append("agents", {"id": 1, "email": "new@somedomain.com"}),
        "tenants[0].agents[4].id: duplicate id 1",
        id="agent-id-duplicate",
    ),
    pytest.param(
        _set(("agents", 1, "email"), "ADMIN@somedomain.com"),
        "tenants[0].agents[1].email: duplicate email 'admin@somedomain.com'",
        id="agent-email-duplicate",
    ),
    pytest.param(
        _append("menus", {"id": 9, "name": "Again", "type": "web_menu"}),
        "tenants[0].menus[3].id: duplicate id 9",
        id="menu-id-duplicate",
    ),
    pytest.param(
        _append("outbound_numbers", {"number": "+1 (628) 555-0199", "sms": False}),
        "tenants[0].outbound_numbers[2].number: duplicate number '+16285550199'",
        id="outbound-number-duplicate",
    ),
    pytest.param(
        _append("contacts", {"ticket_id": 71450, "id": 1}),
        "tenants[0].contacts[3].ticket_id: duplicate ticket_id '71450'",
        id="ticket-id-duplicate",
    ),
    pytest.param(
        _append("teams", {"id": 1, "name": "Again"}),
        "tenants[0].teams[2].id: duplicate id 1",
        id="team-id-duplicate",
    ),
    pytest.param(
        _second_tenant,
        "tenants[1].subdomain: duplicate subdomain 'demo'",
        id="subdomain-duplicate",
    ),
    # References.
    pytest.param(
        lambda d: tenant(d)["menus"][0]["groups"][0].__setitem__(1, 99),
        "tenants[0].menus[0].groups[0][1]: unknown agent 99",
        id="group-unknown-agent",
    ),
    pytest.param(
        _set(("teams", 0, "agent_ids", 1), 99),
        "tenants[0].teams[0].agent_ids[1]: unknown agent 99",
        id="team-unknown-agent",
    ),
    pytest.param(
        _set(("menus", 1, "parent_id"), 77),
        "tenants[0].menus[1].parent_id: unknown menu 77",
        id="parent-menu-unknown",
    ),
    pytest.param(
        _set(("settings", "default_outbound_number"), "+1 415-555-0100"),
        "tenants[0].settings.default_outbound_number: is not one of the voice outbound_numbers",
        id="default-outbound-number-not-managed",
    ),
    pytest.param(
        _set(("outbound_numbers", 1, "voice"), False),
        "tenants[0].settings.default_outbound_number: is not one of the voice outbound_numbers",
        id="default-outbound-number-not-voice",
    ),
    pytest.param(
        _set(("settings", "sms_allowed_regions"), ["US", "XX"]),
        "tenants[0].settings.sms_allowed_regions[1]: 'XX' is not a region code",
        id="sms-region-unknown",
    ),
    pytest.param(
        _set(("settings", "sms_allowed_regions"), ["us"]),
        "tenants[0].settings.sms_allowed_regions[0]: 'us' is not a region code",
        id="sms-region-lower-case",
    ),
    # The answer message is sent in the Twiml of a call, which Twilio takes up to 4,000
    # characters as sent: escaped, inside <Response><Say>...</Say></Response> (32 more).
    pytest.param(
        _set(("settings", "twilio"), {"answer_message": "a" * 1001}),
        "tenants[0].settings.twilio.answer_message: string should have at most 1000 characters",
        id="answer-message-long",
    ),
    pytest.param(
        _set(("settings", "twilio"), {"answer_message": "&" * 1000}),
        "tenants[0].settings.twilio.answer_message: is 5032 characters as TwiML (XML-escaped), "
        "over Twilio's 4000",
        id="answer-message-ampersands",
    ),
    pytest.param(
        _set(("settings", "twilio"), {"answer_message": "<" * 1000}),
        "tenants[0].settings.twilio.answer_message: is 4032 characters as TwiML (XML-escaped), "
        "over Twilio's 4000",
        id="answer-message-less-thans",
    ),
    pytest.param(
        _set(("settings", "twilio"), {"answer_message": "&" * 743 + "a" * 257}),
        "tenants[0].settings.twilio.answer_message: is 4004 characters as TwiML (XML-escaped), "
        "over Twilio's 4000",
        id="answer-message-just-over",
    ),
]


@pytest.mark.parametrize(("change", "message"), REFUSED)
def test_malformed_document_is_refused_with_the_path(change: Change, message: str) -> None:
    assert refusal(changed(change)) == [message]


@pytest.mark.parametrize("name", registry.NAMES)
def test_a_tenant_loads_on_every_registered_carrier(name: str) -> None:
    document = changed(_set(("settings", "carrier"), name))
    assert loader.validate(document).tenants[0].settings.carrier == name


@pytest.mark.parametrize("name", ["Twilio", "", 5, None, ["twilio"]])
def test_a_carrier_the_registry_does_not_name_is_refused_with_the_names(name: object) -> None:
    """Checked against the registry of adapters, not a list of its own; any value not named,
    a string or not, gets the same message."""
    assert registry.NAMES == ("simulated", "twilio")
    assert refusal(changed(_set(("settings", "carrier"), name))) == [
        "tenants[0].settings.carrier: must be one of simulated, twilio"
    ]


def _carriers(**values: Any) -> Change:
    """The tenant's carrier settings replaced by `values` (none of them: neither is given)."""

    def change(document: Document) -> None:
        settings = tenant(document)["settings"]
        settings.pop("carrier", None)
        settings.update(values)

    return change


FAILOVER = ["twilio", "simulated"]


@pytest.mark.parametrize(
    ("values", "carrier", "carriers"),
    [
        ({}, "simulated", ["simulated"]),
        ({"carrier": "twilio"}, "twilio", ["twilio"]),
        ({"carriers": FAILOVER}, "twilio", FAILOVER),
        ({"carrier": "twilio", "carriers": FAILOVER}, "twilio", FAILOVER),
    ],
    ids=["neither", "carrier-alone", "carriers-alone", "both-agreeing"],
)
def test_carrier_and_carriers_name_the_same_first_carrier(
    values: dict[str, Any], carrier: str, carriers: list[str]
) -> None:
    settings = loader.validate(changed(_carriers(**values))).tenants[0].settings
    assert (settings.carrier, settings.carriers) == (carrier, carriers)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"carrier": "simulated", "carriers": ["twilio", "simulated"]},
            "tenants[0].settings: carrier 'simulated' must be the first of carriers when both "
            "are given",
        ),
        (
            {"carriers": ["twilio", "simulated", "twilio"]},
            "tenants[0].settings.carriers: lists 'twilio' twice",
        ),
        (
            {"carriers": ["twilio", "vonage"]},
            "tenants[0].settings.carriers[1]: must be one of simulated, twilio",
        ),
        (
            {"carriers": []},
            "tenants[0].settings.carriers: list should have at least 1 item after validation, "
            "not 0",
        ),
        ({"carriers": "twilio"}, "tenants[0].settings.carriers: input should be a valid list"),
    ],
    ids=["disagreeing", "duplicate", "unknown", "empty", "not-a-list"],
)
def test_a_carrier_list_that_does_not_hold_is_refused_with_the_path(
    values: dict[str, Any], message: str
) -> None:
    assert refusal(changed(_carriers(**values))) == [message]


def test_an_answer_message_of_exactly_4000_characters_as_twiml_loads() -> None:
    message = "&" * 742 + "a" * 258  # 742 * 5 + 258 + 32 = 4,000
    document = changed(_set(("settings", "twilio"), {"answer_message": message}))
    loaded = loader.validate(document).tenants[0].settings.twilio
    assert len(twilio.say_twiml(loaded.answer_message)) == twilio.MAX_TWIML_CHARS


@pytest.mark.parametrize(
    ("document", "message"),
    [
        pytest.param({}, "tenants: is required", id="no-tenants-key"),
        pytest.param(
            {"tenants": []},
            "tenants: list should have at least 1 item after validation, not 0",
            id="no-tenants",
        ),
        pytest.param(
            ["tenants"],
            "document: input should be a valid dictionary or instance of DirectoryFile",
            id="not-a-mapping",
        ),
        pytest.param(
            None,
            "document: input should be a valid dictionary or instance of DirectoryFile",
            id="empty",
        ),
    ],
)
def test_malformed_top_level_is_refused(document: Any, message: str) -> None:
    assert refusal(document) == [message]


# --- every problem is listed ---------------------------------------------------------------------


def test_errors_lists_every_schema_problem_in_document_order() -> None:
    document = demo_document()
    del tenant(document)["subdomain"]
    tenant(document)["agents"][3]["languages"] = ["xy"]
    tenant(document)["menus"][2]["type"] = "phone_menu"
    tenant(document)["outbound_numbers"][1]["number"] = "12345"
    assert refusal(document) == [
        "tenants[0].subdomain: is required",
        "tenants[0].outbound_numbers[1].number: is not a possible phone number",
        "tenants[0].agents[3].languages[0]: 'xy' is not an ISO 639-1 language code",
        "tenants[0].menus[2].type: must be one of ivr_menu, mobile_menu, web_menu",
    ]


def test_errors_lists_every_reference_problem() -> None:
    document = demo_document()
    tenant(document)["menus"][0]["groups"] = [[1, 99], [98]]
    tenant(document)["menus"][2]["parent_id"] = 404
    tenant(document)["agents"].append({"id": 2, "email": "AGENT@somedomain.com"})
    tenant(document)["settings"]["sms_allowed_regions"] = ["ZZ"]
    tenant(document)["settings"]["default_outbound_number"] = "+1 415-555-0100"
    assert refusal(document) == [
        "tenants[0].agents[4].id: duplicate id 2",
        "tenants[0].agents[4].email: duplicate email 'agent@somedomain.com'",
        "tenants[0].menus[0].groups[0][1]: unknown agent 99",
        "tenants[0].menus[0].groups[1][0]: unknown agent 98",
        "tenants[0].menus[2].parent_id: unknown menu 404",
        "tenants[0].settings.sms_allowed_regions[0]: 'ZZ' is not a region code",
        "tenants[0].settings.default_outbound_number: is not one of the voice outbound_numbers",
    ]


def test_directory_error_message_is_its_first_error() -> None:
    error = DirectoryError(["a: first", "b: second"])
    assert str(error) == "a: first"
    assert error.errors == ["a: first", "b: second"]
    assert isinstance(error, ValueError)


# --- reading text and files ----------------------------------------------------------------------


def test_parse_text_reads_yaml() -> None:
    document = loader.parse_text(DEMO_FILE.read_text())
    assert document.tenants[0].subdomain == "demo"


def test_parse_text_reads_json_as_yaml_and_as_json() -> None:
    text = json.dumps(demo_document())
    assert loader.parse_text(text) == loader.parse_text(text, yaml_allowed=False)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("tenants: [", id="unclosed-flow"),
        pytest.param("tenants:\n  - subdomain: demo\n   api_tokens: [x]\n", id="bad-indent"),
        pytest.param("key: 'unterminated\n", id="unterminated-quote"),
        pytest.param("\ttenants: []\n", id="tab-indent"),
    ],
)
def test_parse_text_refuses_invalid_yaml(text: str) -> None:
    with pytest.raises(DirectoryError) as caught:
        loader.parse_text(text)
    assert caught.value.errors == ["document: is not valid YAML"]
    assert str(caught.value) == "document: is not valid YAML"


def test_parse_text_refuses_invalid_json() -> None:
    with pytest.raises(DirectoryError) as caught:
        loader.parse_text("tenants: []", yaml_allowed=False)
    assert caught.value.errors == ["document: is not valid JSON"]


def test_parse_text_validates_what_it_parsed() -> None:
    text = DEMO_FILE.read_text().replace("type: web_menu", "type: phone_menu")
    with pytest.raises(DirectoryError) as caught:
        loader.parse_text(text)
    assert caught.value.errors == [
        "tenants[0].menus[1].type: must be one of ivr_menu, mobile_menu, web_menu"
    ]


def test_read_file_by_suffix(tmp_path: Path) -> None:
    as_json = tmp_path / "directory.json"
    as_json.write_text(json.dumps(demo_document()))
    as_yml = tmp_path / "directory.yml"
    as_yml.write_text(DEMO_FILE.read_text())
    assert loader.read_file(as_json) == loader.read_file(as_yml)
    # A .json file is read as JSON only, even when the text would be valid YAML.
    not_json = tmp_path / "yaml-inside.json"
    not_json.write_text(DEMO_FILE.read_text())
    with pytest.raises(DirectoryError) as caught:
        loader.read_file(not_json)
    assert caught.value.errors == ["document: is not valid JSON"]


def test_read_file_that_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(DirectoryError) as caught:
        loader.read_file(missing)
    [error] = caught.value.errors
    assert error.startswith(f"{missing}: cannot be read (")


# --- through the operator API -------------------------------------------------------------------


async def test_refused_document_leaves_the_stored_directory_unchanged(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    await load_directory(redis, demo_document())
    before = await client.get(CONFIG, headers=ADMIN)
    assert before.status == 200
    stored = await before.json()
    assert [t["subdomain"] for t in stored["tenants"]] == ["demo"]

    document = demo_document()
    tenant(document)["menus"][0]["name"] = "Renamed"  # a valid change, not to be applied
    tenant(document)["menus"][2]["type"] = "phone_menu"
    tenant(document)["agents"][0]["status"] = "busy"
    other = copy.deepcopy(tenant(document))
    other["subdomain"] = "other"
    other["menus"][2]["type"] = "ivr_menu"
    other["agents"][0]["status"] = "available"
    document["tenants"].append(other)  # a valid tenant, not to be half-loaded

    response = await client.put(
        CONFIG,
        data=json.dumps(document),
        headers={**ADMIN, "Content-Type": "application/json"},
    )
    assert response.status == 400
    assert await response.json() == {
        "message": "tenants[0].agents[0].status: must be one of available, unavailable, offline",
        "errors": [
            "tenants[0].agents[0].status: must be one of available, unavailable, offline",
            "tenants[0].menus[2].type: must be one of ivr_menu, mobile_menu, web_menu",
        ],
    }

    after = await client.get(CONFIG, headers=ADMIN)
    assert after.status == 200
    assert await after.json() == stored


async def test_an_answer_message_too_long_as_twiml_is_refused_through_the_operator_api(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    await load_directory(redis, demo_document())
    document = demo_document()
    tenant(document)["settings"]["twilio"] = {"answer_message": "&" * 1000}
    response = await client.put(CONFIG, json=document, headers=ADMIN)
    assert response.status == 400
    message = (
        "tenants[0].settings.twilio.answer_message: is 5032 characters as TwiML (XML-escaped), "
        "over Twilio's 4000"
    )
    assert await response.json() == {"message": message, "errors": [message]}


async def test_refused_yaml_through_the_operator_api(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    await load_directory(redis, demo_document())
    stored = await (await client.get(CONFIG, headers=ADMIN)).json()
    response = await client.put(
        CONFIG, data="tenants: [", headers={**ADMIN, "Content-Type": "application/yaml"}
    )
    assert response.status == 400
    assert await response.json() == {
        "message": "document: is not valid YAML",
        "errors": ["document: is not valid YAML"],
    }
    assert await (await client.get(CONFIG, headers=ADMIN)).json() == stored


@pytest.mark.parametrize("yaml_allowed", [True, False])
def test_loading_tells_how_much_was_read(yaml_allowed: bool) -> None:
    """The progress of `load-config`'s parse bar: every character, in YAML's small chunks."""
    text = DEMO_FILE.read_text() if yaml_allowed else json.dumps(demo_document())
    told: list[int] = []
    raw = loader.load(text, yaml_allowed=yaml_allowed, on_read=told.append)
    assert raw == demo_document()
    assert sum(told) == len(text)
    assert len(told) > 1 if yaml_allowed else told == [len(text)]


def test_validating_tells_each_tenant_and_refuses_as_ever() -> None:
    document = demo_document()
    document["tenants"].append({**copy.deepcopy(tenant(document)), "subdomain": "other"})
    told: list[None] = []
    loader.validate(document, on_tenant=lambda: told.append(None))
    assert len(told) == 2
    assert loader.tenant_count(document) == 2
    tenant(document)["menus"][0]["type"] = "phone_menu"
    with pytest.raises(DirectoryError) as caught:
        loader.validate(document, on_tenant=lambda: told.append(None))
    assert caught.value.errors == [
        "tenants[0].menus[0].type: must be one of ivr_menu, mobile_menu, web_menu"
    ]
    assert loader.tenant_count({"tenants": "x"}) is None
    assert loader.tenant_count([]) is None
