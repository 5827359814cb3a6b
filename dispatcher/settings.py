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
    # Slow clients (slowloris): a request's body must arrive within body_timeout_s of the
    # handler asking for it (else 408); a connection must complete a request's headers within
    # keepalive_timeout_s of opening or of its previous answer (aiohttp's keepalive_timeout,
    # which also closes idle keep-alive connections; 75 s is nginx's default).
    body_timeout_s: float = Field(default=10.0, gt=0)
    keepalive_timeout_s: float = Field(default=75.0, gt=0)
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # A job running longer is cancelled and retried. It also bounds how soon another worker
    # retries the jobs of a worker that died: ARQ holds them for this plus 10 s.
    job_timeout_s: int = Field(default=20, ge=1)
    # How stale a process's copy of a tenant directory may be: each process re-checks the
    # stored version at most this often. 0 re-checks on every request (one more round trip).
    directory_ttl_s: float = Field(default=1.0, ge=0)
    # On SIGTERM/SIGINT a process takes no new work and gives what it holds this long to end:
    # in-flight requests are answered, running jobs finish or are handed back to the queue.
    # Kept under the 30 s orchestrators (Kubernetes, systemd) wait before they SIGKILL.
    shutdown_grace_s: float = Field(default=15.0, ge=0)
    # fsync policy of the embedded Redis's AOF: "always" survives a power cut with every
    # acknowledged write; "everysec" may lose the last second or two then (README: Faults).
    redis_appendfsync: Literal["always", "everysec"] = "everysec"
    # How long a create's answer is kept under its Idempotency-Key for replays (24 h).
    idempotency_ttl_s: int = Field(default=86_400, ge=1)
    # Requests per second a tenant may make (token bucket in Redis, shared by every ingress
    # process), and how many may come at once; a tenant's directory may set its own. 0: no limit.
    rate_limit_per_s: float = Field(default=200, ge=0)
    rate_limit_burst: int = Field(default=400, ge=1)
    # How long an operator's dashboard session lasts after the login (an HttpOnly cookie).
    dashboard_session_s: int = Field(default=8 * 3600, ge=60)
