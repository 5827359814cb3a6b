"""Settings of every process (ingress and workers), read from the environment."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DISPATCHER_", extra="ignore")

    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_URL", "DISPATCHER_REDIS_URL")
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    data_dir: Path = Path(".data")
    admin_token: SecretStr | None = None
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # A job running longer is cancelled and retried. It also bounds how soon another worker
    # retries the jobs of a worker that died: ARQ holds them for this plus 10 s.
    job_timeout_s: int = Field(default=20, ge=1)
    # How stale a process's copy of a tenant directory may be: each process re-checks the
    # stored version at most this often. 0 re-checks on every request (one more round trip).
    directory_ttl_s: float = Field(default=1.0, ge=0)
    # How long a create's answer is kept under its Idempotency-Key for replays (24 h).
    idempotency_ttl_s: int = Field(default=86_400, ge=1)
