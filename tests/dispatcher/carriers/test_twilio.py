"""What comes back from Twilio, read by its adapter: call and message statuses as the product's
outcomes, and inbound messages. Signatures, end to end: tests/dispatcher/http/test_twilio.py."""

from __future__ import annotations

import pytest

from dispatcher.carriers.base import InboundSms
from dispatcher.carriers.twilio import CallReport, DeliveryReport, TwilioCarrier
from dispatcher.domain.errors import InvalidRequest

CALL_SID = "CA" + "12" * 16
MESSAGE_SID = "SM" + "34" * 16


@pytest.mark.parametrize(
    ("status", "sip", "outcome"),
    [
        ("queued", None, "ringing"),
        ("initiated", None, "ringing"),
        ("ringing", None, "ringing"),
        ("in-progress", None, "answer"),
        ("completed", None, "completed"),
        ("busy", None, "busy"),
        ("no-answer", None, "no_answer"),
        ("failed", None, "failed"),
        ("failed", "500", "failed"),
        ("failed", "404", "wrong_number"),
        ("failed", "604", "wrong_number"),
        ("busy", "404", "busy"),  # only a failed call says the number is wrong
        ("canceled", None, "canceled"),
    ],
)
def test_call_statuses_are_the_products_outcomes(
    status: str, sip: str | None, outcome: str
) -> None:
    form = {"CallSid": CALL_SID, "CallStatus": status}
    if sip is not None:
        form["SipResponseCode"] = sip
    assert TwilioCarrier.call_report(form) == CallReport(status, outcome, CALL_SID)


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"CallSid": CALL_SID, "CallStatus": "answered"}, "CallStatus is invalid"),
        ({"CallSid": CALL_SID}, "CallStatus is invalid"),
        ({"CallSid": "CA123", "CallStatus": "ringing"}, "CallSid is invalid"),
        ({"CallStatus": "bogus"}, "CallStatus is invalid"),  # the status is read first
    ],
)
def test_a_call_status_that_is_not_one_is_refused(form: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        TwilioCarrier.call_report(form)
    assert str(caught.value) == message


def test_message_statuses_fail_for_good_only_when_failed_or_undelivered() -> None:
    reports = [
        TwilioCarrier.delivery_report({"MessageSid": MESSAGE_SID, "MessageStatus": status})
        for status in ("queued", "sent", "delivered", "failed", "undelivered")
    ]
    assert [report.failed for report in reports] == [False, False, False, True, True]
    form = {"MessageSid": MESSAGE_SID, "MessageStatus": "failed", "ErrorCode": "3" * 40}
    assert TwilioCarrier.delivery_report(form) == DeliveryReport(
        "failed", MESSAGE_SID, True, "3" * 16
    )
    with pytest.raises(InvalidRequest) as caught:
        TwilioCarrier.delivery_report({"MessageSid": "SM1", "MessageStatus": "failed"})
    assert str(caught.value) == "MessageSid is invalid"


def test_an_inbound_message_is_read_from_its_twilio_fields() -> None:
    form = {"From": "+1 415-555-0100", "To": "+16285550199", "Body": "STOP"}
    assert TwilioCarrier.inbound_sms(form) == InboundSms("+14155550100", "STOP")


@pytest.mark.parametrize(
    ("answered_by", "outcome"),
    [
        ("human", "human"),
        ("machine_start", "machine"),
        ("machine_end_beep", "machine"),
        ("machine_end_silence", "machine"),
        ("machine_end_other", "machine"),
        ("fax", "machine"),
        ("unknown", "unknown"),
    ],
)
def test_answered_by_is_who_answered(answered_by: str, outcome: str) -> None:
    form = {"CallSid": CALL_SID, "AnsweredBy": answered_by, "MachineDetectionDuration": "2000"}
    assert TwilioCarrier.machine_report(form) == CallReport(answered_by, outcome, CALL_SID)


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"CallSid": CALL_SID, "AnsweredBy": "machine"}, "AnsweredBy is invalid"),
        ({"CallSid": CALL_SID}, "AnsweredBy is invalid"),
        ({"CallSid": "CA123", "AnsweredBy": "human"}, "CallSid is invalid"),
    ],
)
def test_a_detection_that_is_not_one_is_refused(form: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        TwilioCarrier.machine_report(form)
    assert str(caught.value) == message
