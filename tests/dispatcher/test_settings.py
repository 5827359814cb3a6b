"""Settings read from the environment: an empty variable is an unset one."""

from __future__ import annotations

import pytest

from dispatcher.settings import Settings


def test_an_empty_admin_token_is_no_admin_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPATCHER_ADMIN_TOKEN", "")
    assert Settings().admin_token is None  # the operator API answers 404, not to "Bearer "


def test_an_empty_redis_url_is_no_redis_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "")
    assert Settings().redis_url is None
