"""Settings of every process (ingress and workers), read from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

SENTINEL_PORT = 26379

# host and port of one Redis Sentinel
SentinelAddress = tuple[str, int]

# Twilio credentials: TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN, and any number of named pairs
# TWILIO_ACCOUNT_SID_<NAME> / TWILIO_AUTH_TOKEN_<NAME> for tenants with `twilio.account: name`.
TWILIO_SID_ENV = "TWILIO_ACCOUNT_SID"
TWILIO_TOKEN_ENV = "TWILIO_AUTH_TOKEN"


class TwilioAccount(BaseModel):
    model_config = ConfigDict(frozen=True)

    sid: str = Field(pattern=r"^AC[0-9A-Za-z]{32}$")
    auth_token: SecretStr = Field(min_length=1)


def twilio_credentials(environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """The Twilio credential pairs of an environment by name ("" for the unnamed pair); empty
    variables count as unset."""
    found: dict[str, dict[str, str]] = {}
    for variable, value in environ.items():
        for prefix, field in ((TWILIO_SID_ENV, "sid"), (TWILIO_TOKEN_ENV, "auth_token")):
            if value and (variable == prefix or variable.startswith(prefix + "_")):
                found.setdefault(variable[len(prefix) + 1 :], {})[field] = value
    return found


class _TwilioCredentialsSource(PydanticBaseSettingsSource):
    """Reads the variable-named credential pairs, which no fixed field name can."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        found = twilio_credentials(os.environ)
        return {"twilio_accounts": found} if found else {}


class Settings(BaseSettings):
    # Errors never echo what was given: the values here include tokens.
    model_config = SettingsConfigDict(
        env_prefix="DISPATCHER_", extra="ignore", hide_input_in_errors=True
    )

    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_URL", "DISPATCHER_REDIS_URL")
    )
    # Redis Sentinel, instead of REDIS_URL: "host:port,host:port" (port 26379 when left out).
    # Every new connection asks a sentinel where the primary of redis_sentinel_master is, so
    # after a failover the processes follow the new primary by themselves.
    redis_sentinels: Annotated[tuple[SentinelAddress, ...] | None, NoDecode] = None
    redis_sentinel_master: str = Field(default="mymaster", min_length=1)
    # The database with Sentinel (with REDIS_URL it is the URL's path, redis://host:6379/N).
    redis_db: int = Field(default=0, ge=0)
    # Password of the Redis primary and replicas, unless REDIS_URL has one: it can then come
    # from a secret of its own rather than be spliced into a URL (and URL-encoded).
    redis_password: SecretStr | None = None
    # The sentinels' own password (their `requirepass`); unset: the sentinels ask for none.
    redis_sentinel_password: SecretStr | None = None
    # PostgreSQL of the call history (dispatcher/history), a libpq-style URL as asyncpg reads
    # it (postgresql://user:password@host:5432/db?sslmode=require). Unset: `up` starts an
    # embedded one, `serve` and `worker` look for it in the data directory, else run without
    # history. It holds a password: kept out of the settings' repr and of the logs.
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "DISPATCHER_DATABASE_URL"),
        pattern=r"^postgres(ql)?://",
        repr=False,
    )
    # Connections each process's pool may open to PostgreSQL, and how long one statement may
    # run there (set on every connection) before the server cancels it.
    pg_pool_max: int = Field(default=10, ge=1)
    pg_statement_timeout_s: float = Field(default=30.0, gt=0)
    # How long an ended call or chat stays in Redis before it is archived to PostgreSQL, and
    # how many days archived history is kept (None: forever; whole months are dropped).
    hot_retention_s: int = Field(default=3600, ge=0)
    archive_retention_days: int | None = Field(default=None, ge=1)
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
    # An API request is answered within this, its body's arrival included: one that waits on a
    # Redis that is up but does not answer (stopped, swamped) gets a 503 then. An event stream
    # is bounded only until it opens. (Redis clients have no per-command timeout: see
    # redis_connection.CLIENT_OPTIONS.)
    request_timeout_s: float = Field(default=30.0, gt=0)
    keepalive_timeout_s: float = Field(default=75.0, gt=0)
    # Records an export (GET /calls/export, /chats/export) reads and writes at a time: it holds
    # about one batch of objects (3.5-5 KB each), however many it sends in all.
    export_batch_size: int = Field(default=1000, ge=1, le=10_000)
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
    # acknowledged write; "everysec" may lose the last second or two (docs/operations.md: Faults).
    redis_appendfsync: Literal["always", "everysec"] = "everysec"
    # How long a create's answer is kept under its Idempotency-Key for replays (24 h).
    idempotency_ttl_s: int = Field(default=86_400, ge=1)
    # Requests per second a tenant may make (token bucket in Redis, shared by every ingress
    # process), and how many may come at once; a tenant's directory may set its own. 0: no limit.
    rate_limit_per_s: float = Field(default=200, ge=0)
    rate_limit_burst: int = Field(default=400, ge=1)
    # Requests with refused credentials (a wrong token, an unknown tenant, no session) per
    # second per client address, and how many at once: they never spend a tenant's budget.
    refused_rate_limit_per_s: float = Field(default=5, ge=0)
    refused_rate_limit_burst: int = Field(default=50, ge=1)
    # How many reverse proxies in front of the ingress append to X-Forwarded-For: the client
    # address is that many entries from its right. 0 trusts none of it (a client can write
    # anything there): the address is the connection's peer.
    trusted_proxies: int = Field(default=0, ge=0, le=10)
    # `dispatcher worker` serves /metrics, /healthz and /readyz on this port when set.
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    # /metrics is open, as exporters usually are (it names tenants, holds no secret); with a
    # token set it asks for `Authorization: Bearer <token>`.
    metrics_token: SecretStr | None = None
    # The base URL Twilio reaches this service at (https://dispatch.example.com, or with the
    # path prefix a proxy strips): callback URLs are built on it, and Twilio signs the URL it
    # called, which behind a proxy is not the one this process sees.
    public_url: str | None = Field(default=None, pattern=r"^https?://[^/?#\s]+(/[^?#\s]*)?$")
    # Twilio's REST API: the default, a regional edge (https://api.dublin.ie1.twilio.com), or a
    # local fake in tests; and how long one request to it may take.
    twilio_api_url: str = Field(
        default="https://api.twilio.com", pattern=r"^https?://[^/?#\s]+(/[^?#\s]*)?$"
    )
    twilio_timeout_s: float = Field(default=10.0, gt=0, le=60)
    # From the environment (see twilio_credentials), never from the directory.
    twilio_accounts: dict[str, TwilioAccount] = Field(default_factory=dict)
    # Webhook deliveries run in a lane of their own (workers/webhooks.py): this many at once
    # per worker, each cut off after webhook_timeout_s, at most webhook_tenant_concurrency of
    # one tenant (the rest wait their turn) and webhook_connections_per_host to one host:port.
    # After webhook_breaker_failures failures in a row a destination's deliveries wait
    # webhook_breaker_cooldown_s before one is tried again.
    webhook_timeout_s: float = Field(default=5.0, gt=0, le=60)
    webhook_max_jobs: int = Field(default=100, ge=1)
    webhook_tenant_concurrency: int = Field(default=4, ge=1)
    webhook_connections_per_host: int = Field(default=10, ge=1)
    webhook_breaker_failures: int = Field(default=5, ge=1)
    webhook_breaker_cooldown_s: float = Field(default=30.0, gt=0)
    # Webhooks go to public addresses only (destinations.allowed); these networks are allowed
    # too, as CIDRs separated by commas ("10.20.0.0/16,fd00:1::/64"): a receiver on the
    # service's own network, or the tests' local receivers.
    webhook_allowed_networks: Annotated[tuple[IPvAnyNetwork, ...], NoDecode] = ()

    @field_validator("public_url", "twilio_api_url")
    @classmethod
    def _no_trailing_slash(cls, url: str | None) -> str | None:
        return url.rstrip("/") if url is not None else None

    @field_validator("twilio_accounts", mode="before")
    @classmethod
    def _pairs_are_complete(cls, accounts: Any) -> Any:
        if isinstance(accounts, dict):
            for name, pair in accounts.items():
                if isinstance(pair, dict) and len(pair) == 1:
                    suffix = f"_{name}" if name else ""
                    given, missing = (
                        (TWILIO_SID_ENV, TWILIO_TOKEN_ENV)
                        if "sid" in pair
                        else (TWILIO_TOKEN_ENV, TWILIO_SID_ENV)
                    )
                    raise ValueError(f"{given}{suffix} is set but {missing}{suffix} is not")
        return accounts

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        credentials = _TwilioCredentialsSource(settings_cls)
        return init_settings, env_settings, credentials, dotenv_settings, file_secret_settings

    def twilio_account(self, name: str | None) -> TwilioAccount | None:
        """The credentials a tenant's `twilio.account` names (None: the unnamed pair)."""
        return self.twilio_accounts.get((name or "").upper())

    # How long an operator's dashboard session lasts after the login (an HttpOnly cookie).
    dashboard_session_s: int = Field(default=8 * 3600, ge=60)
    # Event streams open at once (/dashboard/events, /agents/{id}/events), counted in Redis
    # across every process: per dashboard session, per agent, and per tenant (both kinds).
    streams_per_session: int = Field(default=10, ge=1)
    streams_per_agent: int = Field(default=5, ge=1)
    streams_per_tenant: int = Field(default=1000, ge=1)

    @field_validator("webhook_allowed_networks", mode="before")
    @classmethod
    def _split_networks(cls, value: object) -> object:
        return (
            tuple(n.strip() for n in value.split(",") if n.strip())
            if isinstance(value, str)
            else value
        )

    @field_validator("redis_sentinels", mode="before")
    @classmethod
    def _parse_sentinels(cls, value: object) -> object:
        return parse_sentinels(value) if isinstance(value, str) else value

    @field_validator("redis_url", "database_url", "admin_token", "metrics_token", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `VAR=` (compose's ${VAR:-}, an empty secret) means unset: an empty token would
        # otherwise open its API to `Authorization: Bearer ` with nothing after it.
        return None if value == "" else value

    @model_validator(mode="after")
    def _one_way_to_redis(self) -> Self:
        if self.redis_url is not None and self.redis_sentinels is not None:
            raise ValueError("set REDIS_URL or DISPATCHER_REDIS_SENTINELS, not both")
        if self.redis_url is not None and "redis_db" in self.model_fields_set:
            raise ValueError(
                "DISPATCHER_REDIS_DB is for Sentinel; with REDIS_URL the database is the "
                "URL's path (redis://host:6379/N)"
            )
        return self

    @model_validator(mode="after")
    def _body_within_request(self) -> Self:
        if self.request_timeout_s <= self.body_timeout_s:
            raise ValueError(
                "DISPATCHER_REQUEST_TIMEOUT_S must be longer than DISPATCHER_BODY_TIMEOUT_S"
            )
        return self

    @property
    def redis_configured(self) -> bool:
        """Whether a Redis is given (a URL or sentinels), rather than one to start or find."""
        return self.redis_url is not None or self.redis_sentinels is not None


def parse_sentinels(text: str) -> tuple[SentinelAddress, ...]:
    """'host:port,host:port' (IPv6 in brackets, port 26379 when left out) as (host, port)s."""
    addresses = tuple(_sentinel_address(item.strip()) for item in text.split(",") if item.strip())
    if not addresses:
        raise ValueError("no sentinel address: expected host:port[,host:port...]")
    return addresses


def _sentinel_address(item: str) -> SentinelAddress:
    parts = urlsplit(f"//{item}")
    try:
        port = SENTINEL_PORT if parts.port is None else parts.port
    except ValueError:  # not a number, or out of range
        port = 0
    if not parts.hostname or not port or parts.path or parts.query or parts.username:
        raise ValueError(f"bad sentinel address {item!r}: expected host:port or [ipv6]:port")
    return parts.hostname, port
