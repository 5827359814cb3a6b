"""Structured logging: JSON off a terminal, pretty on one; tokens dropped, phone numbers masked."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import orjson
import structlog

from dispatcher.domain.phones import mask

_SECRET_KEYS = {
    "token",
    "api_token",
    "auth_token",
    "password",
    "authorization",
    "secret",
    "webhook_secret",
    "signature",
    "x-twilio-signature",
}

# Credentials inside any text (a message, an exception's text, a traceback), whoever logged it:
# aiohttp's parser, refusing a header line, logs the first bytes of its value at error level.
_SECRET_TEXT = re.compile(
    r"(?i)(\b(?:proxy-)?authorization\s*[:=]\s*|\b(?:set-)?cookie\s*[:=]\s*)[^\r\n'\"]*"
    r"|(\b(?:basic|bearer)\s+)[A-Za-z0-9._~+/=-]+"
    r"|(dispatcher_session=)[^;,\s'\"]*"
)
_known_secrets: tuple[str, ...] = ()  # this process's own tokens, set by configure()


def redact(text: str) -> str:
    """`text` without credential-looking values and without this process's known secrets."""
    text = _SECRET_TEXT.sub(_keep_name, text)
    for secret in _known_secrets:
        text = text.replace(secret, "[redacted]")
    return text


def redact_too(secrets: Iterable[str]) -> None:
    """Secrets learnt after configure() (the URL of an embedded server, with its password)."""
    global _known_secrets
    known = {*_known_secrets, *(s for s in secrets if len(s) >= 8)}
    _known_secrets = tuple(sorted(known, key=len, reverse=True))


def _keep_name(match: re.Match[str]) -> str:
    return next(group for group in match.groups() if group is not None) + "[redacted]"


def _scrub(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if key.lower() in _SECRET_KEYS:
            event[key] = "[redacted]"
        elif isinstance(event[key], str):
            event[key] = mask(redact(event[key]))
    return event


def _json_text(event: Any, **_: Any) -> str:
    return orjson.dumps(event, default=str).decode()


def configure(level: str = "info", fmt: str = "auto", secrets: Iterable[str] = ()) -> None:
    """Our loggers and the libraries' (ARQ, aiohttp) render alike: JSON lines off a terminal,
    with credentials and `secrets` (the process's own tokens) redacted from every value."""
    global _known_secrets
    _known_secrets = ()
    redact_too(secrets)
    pretty = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer()
        if pretty
        else structlog.processors.JSONRenderer(serializer=_json_text)
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, _scrub, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                _scrub,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # ARQ logs two lines for every job at info; at thousands of jobs a second that is most of a
    # worker's output and a tenth of its CPU. Our jobs log what they did, with the call id;
    # ARQ's own lines come back with --log-level debug, and its warnings and errors always.
    logging.getLogger("arq.worker").setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
    # Alembic says which context it runs in at every command; schema.upgrade logs what changed.
    logging.getLogger("alembic").setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
