"""What the ingress and the workers share about Twilio: the callback routes' paths (workers
build the URLs Twilio calls, the ingress serves them) and whose credentials a tenant uses."""

from __future__ import annotations

import re

from twilio.twiml.voice_response import VoiceResponse

from dispatcher.directory.tenant import Tenant
from dispatcher.settings import TWILIO_SID_ENV, TWILIO_TOKEN_ENV, Settings, TwilioAccount

# Under /carrier/{adapter}/ as API.md says; the tenant and the record are in the path, so a
# callback finds both before reading its body.
CALL_STATUS_PATH = "/carrier/twilio/{subdomain}/calls/{call_id}/status"
MESSAGE_STATUS_PATH = "/carrier/twilio/{subdomain}/messages/{chat_id}/status"
INBOUND_SMS_PATH = "/carrier/twilio/{subdomain}/sms"

# Twilio's OpenAPI caps a call's `Twiml` parameter at 4,000 characters, counted as sent: once
# the text in it is XML-escaped (an `&` is 5 characters then).
MAX_TWIML_CHARS = 4000

# Twilio's ids: two letters of the resource (CA a call, SM or MM a message) and 32 hex digits.
SID = re.compile(r"^[A-Z]{2}[0-9a-fA-F]{32}$")


def account_of(settings: Settings, tenant: Tenant) -> TwilioAccount | None:
    return settings.twilio_account(tenant.doc.settings.twilio.account)


def credential_names(tenant: Tenant) -> str:
    """The environment variables a tenant's credentials are read from, for error messages."""
    name = tenant.doc.settings.twilio.account
    suffix = f"_{name.upper()}" if name else ""
    return f"{TWILIO_SID_ENV}{suffix} and {TWILIO_TOKEN_ENV}{suffix}"


def call_status_url(base_url: str, subdomain: str, call_id: int) -> str:
    return base_url + CALL_STATUS_PATH.format(subdomain=subdomain, call_id=call_id)


def message_status_url(base_url: str, subdomain: str, chat_id: int) -> str:
    return base_url + MESSAGE_STATUS_PATH.format(subdomain=subdomain, chat_id=chat_id)


def say_twiml(message: str) -> str:
    """The TwiML that says `message` to the end user, after which the call ends."""
    response = VoiceResponse()
    response.say(message)
    return str(response.to_xml(xml_declaration=False))
