"""The do-not-call and consent rules every channel obeys (core.consent)."""

from __future__ import annotations

import datetime as dt

from core.consent import Refusal, consent_refusal, dnc_refusal
from tests.test_compliance import Consents, Dnc

NOON = dt.datetime(2026, 6, 2, 12, tzinfo=dt.UTC)


def test_a_number_on_either_do_not_call_list_is_refused_naming_the_list():
    dnc = Dnc(global_={"+4930123456"}, campaign={"spring": {"+4930999999"}})
    assert dnc_refusal(dnc, "+4930123456", "other") == Refusal(
        "on the global do-not-call list", "dnc"
    )
    assert dnc_refusal(dnc, "+4930999999", "spring") == Refusal(
        "on the campaign do-not-call list", "dnc"
    )
    assert dnc_refusal(dnc, "+4930999999", "other") is None


def test_consent_is_per_channel_and_a_withdrawal_wins():
    consents = Consents([("c1", "sms", True, NOON - dt.timedelta(days=2))])
    assert consent_refusal(consents, "c1", "sms", NOON) is None
    # a grant for text messages is none for calls, and no contact shows none
    assert consent_refusal(consents, "c1", "voice", NOON) == Refusal(
        "no prior express consent for telephone calls", "consent"
    )
    assert consent_refusal(consents, None, "sms", NOON) == Refusal(
        "no prior express consent for text messages", "consent"
    )
    consents.records.append(("c1", "sms", False, NOON - dt.timedelta(days=1)))
    refused = consent_refusal(consents, "c1", "sms", NOON)
    assert refused is not None and refused.check == "consent"
