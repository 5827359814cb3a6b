"""Settings read from the environment: the Twilio credential pairs and the public URL, and an
empty variable taken as an unset one."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dispatcher.cli import _secrets
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


def test_the_database_url_is_read_by_either_name_and_empty_is_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = "postgresql://archiver:s3cret-pass@db.internal:5432/dispatcher?sslmode=require"
    monkeypatch.setenv("DISPATCHER_DATABASE_URL", url)
    settings = Settings()
    assert settings.database_url == url
    assert "s3cret-pass" not in repr(settings)
    monkeypatch.setenv("DATABASE_URL", "")  # as compose writes ${DATABASE_URL:-}: unset
    monkeypatch.delenv("DISPATCHER_DATABASE_URL")
    assert Settings().database_url is None
    assert (Settings().pg_pool_max, Settings().pg_statement_timeout_s) == (10, 30.0)
    assert (Settings().hot_retention_s, Settings().archive_retention_days) == (3600, None)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATABASE_URL", "mysql://root:s3cret-pass@db/x"),
        ("DISPATCHER_HOT_RETENTION_S", "-1"),
        ("DISPATCHER_ARCHIVE_RETENTION_DAYS", "0"),
        ("DISPATCHER_PG_POOL_MAX", "0"),
        ("DISPATCHER_PG_STATEMENT_TIMEOUT_S", "0"),
    ],
)
def test_history_settings_out_of_bounds_are_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as refused:
        Settings()
    assert "s3cret-pass" not in str(refused.value)


def test_the_database_password_is_redacted_from_the_logs() -> None:
    url = "postgresql://archiver:p%40ss-w0rd-long@db.internal/dispatcher"
    held = _secrets(Settings(database_url=url))
    assert {url, "p%40ss-w0rd-long", "p@ss-w0rd-long"} <= set(held)
    assert _secrets(Settings(database_url="postgresql://dispatcher@/x?host=/s")) == []
