"""Settings read from the environment: the Twilio credential pairs and the public URL, and an
empty variable taken as an unset one."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dispatcher.settings import Settings

SID = "AC" + "0123456789abcdef" * 2
ACME_SID = "AC" + "fedcba9876543210" * 2


def test_twilio_credentials_come_in_pairs_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", SID)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "default-token")
    monkeypatch.setenv("TWILIO_ACCOUNT_SID_ACME", ACME_SID)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN_ACME", "acme-token")
    monkeypatch.setenv("TWILIO_ACCOUNT_SID_EMPTY", "")  # unset, as compose files write it
    monkeypatch.setenv("DISPATCHER_PUBLIC_URL", "https://dispatch.example.com/dsp/")
    settings = Settings()
    assert sorted(settings.twilio_accounts) == ["", "ACME"]
    default, acme = settings.twilio_account(None), settings.twilio_account("acme")
    assert default is not None and acme is not None
    assert (default.sid, default.auth_token.get_secret_value()) == (SID, "default-token")
    assert (acme.sid, acme.auth_token.get_secret_value()) == (ACME_SID, "acme-token")
    assert settings.twilio_account("globex") is None
    assert settings.public_url == "https://dispatch.example.com/dsp"
    assert "acme-token" not in repr(settings)


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        (
            {"TWILIO_AUTH_TOKEN": "secret-1"},
            "TWILIO_AUTH_TOKEN is set but TWILIO_ACCOUNT_SID is not",
        ),
        (
            {"TWILIO_ACCOUNT_SID_ACME": ACME_SID},
            "TWILIO_ACCOUNT_SID_ACME is set but TWILIO_AUTH_TOKEN_ACME is not",
        ),
    ],
)
def test_half_a_pair_is_refused_without_echoing_it(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], message: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as refused:
        Settings()
    assert message in str(refused.value)
    assert "secret-1" not in str(refused.value)


def test_a_malformed_account_sid_or_public_url_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "not-a-sid")
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "secret-2")
    with pytest.raises(ValidationError) as refused:
        Settings()
    assert "twilio_accounts..sid" in str(refused.value)
    assert "secret-2" not in str(refused.value)
    with pytest.raises(ValidationError):
        Settings(public_url="dispatch.example.com", twilio_accounts={})


def test_an_empty_admin_token_is_no_admin_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPATCHER_ADMIN_TOKEN", "")
    assert Settings().admin_token is None  # the operator API answers 404, not to "Bearer "


def test_an_empty_redis_url_is_no_redis_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "")
    assert Settings().redis_url is None
