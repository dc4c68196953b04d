"""Consent and do-not-call: the rules every channel obeys, whoever contacts.

A number on a do-not-call list is not contacted, and where consent is
required the contact's latest consent record for the channel must be a
grant (a withdrawal after a grant wins: the store keeps every record).
These rules hold for a dialer's call as for a text message or an e-mail a
future channel sends, so they live here and not in ``dialer/``; the
outbound-only rules (calling hours, attempts per day, abandoned-call and
answering-machine lock-outs) stay in ``dialer.compliance``, which asks these
first.

The look-ups are ports: ``store.consent`` implements them over the tables,
a test or the lab with a dict.  Pure: no imports of ours, of Twisted or of
SQLAlchemy.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

#: the channels a consent record is kept for (``POST /api/consent``'s ``channel``)
CHANNELS = ("voice", "sms", "email")

#: what a consent for a channel permits, in the refusal's words
_PERMITS = {"voice": "telephone calls", "sms": "text messages", "email": "e-mails"}


class DncLookup(Protocol):
    def blocked(self, e164: str, campaign: str) -> str | None:
        """'global' or 'campaign' if the number is on a do-not-call list, else None."""


class ConsentLookup(Protocol):
    def granted(self, contact: str, channel: str, at: dt.datetime) -> bool:
        """The latest consent record for (contact, channel) at ``at`` is a grant."""


@dataclass(frozen=True)
class Refusal:
    """Why a contact may not be reached: ``reason`` for a supervisor,
    ``check`` the rule's name (``dnc``, ``consent``), the one metrics and
    reports count by."""

    reason: str
    check: str


def dnc_refusal(dnc: DncLookup, e164: str, campaign: str) -> Refusal | None:
    """The number is on the global do-not-call list or ``campaign``'s: the refusal, else None."""
    listed = dnc.blocked(e164, campaign)
    if listed:
        return Refusal(f"on the {listed} do-not-call list", "dnc")
    return None


def consent_refusal(
    consent: ConsentLookup, contact: str | None, channel: str, at: dt.datetime
) -> Refusal | None:
    """Consent is required and ``contact`` has none in force for ``channel``
    at ``at`` (or no contact is known, so none can be shown): the refusal,
    else None.  Ask only where consent is required (the caller's policy
    says so)."""
    if contact is not None and consent.granted(contact, channel, at):
        return None
    permits = _PERMITS.get(channel, f"the {channel} channel")
    return Refusal(f"no prior express consent for {permits}", "consent")
