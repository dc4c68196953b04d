"""Phone numbers from lists: normalised to E.164 with phonenumbers, or
rejected with the reason.

Rejected: numbers that do not parse, that are not valid for their region,
and those a dialer must not call: premium rate, shared cost, universal
access (UAN), voicemail access, pagers and unknown types.  Kept: fixed line,
mobile, fixed-or-mobile, toll free, VoIP, personal numbers.

The number's region and time zone(s) are stored with it: calling windows are
in the called party's local time, and a number whose zones differ (a US toll
free number spans the continent) is held to the most restrictive one.
"""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneNumberType, timezone
from phonenumbers.phonenumberutil import is_number_type_geographical

#: Types never dialed by a campaign (cost to the called party or not a person).
REJECTED_TYPES = {
    PhoneNumberType.PREMIUM_RATE: "premium-rate number",
    PhoneNumberType.SHARED_COST: "shared-cost number",
    PhoneNumberType.UAN: "universal access number",
    PhoneNumberType.VOICEMAIL: "voicemail access number",
    PhoneNumberType.PAGER: "pager",
    PhoneNumberType.UNKNOWN: "number of unknown type",
}

TYPE_NAMES = {
    PhoneNumberType.FIXED_LINE: "fixed_line",
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.FIXED_LINE_OR_MOBILE: "fixed_line_or_mobile",
    PhoneNumberType.TOLL_FREE: "toll_free",
    PhoneNumberType.VOIP: "voip",
    PhoneNumberType.PERSONAL_NUMBER: "personal",
}

#: Longest input we try to parse; phonenumbers itself stops at 250 characters.
MAX_INPUT = 64


#: time zones of non-geographical numbers (mobiles, toll free) depend on the
#: country code only: computed once per country
_COUNTRY_ZONES: dict[int, tuple[str, ...]] = {}


def _zones(parsed: phonenumbers.PhoneNumber, kind: int, country_code: int) -> tuple[str, ...]:
    """``timezone.time_zones_for_number`` without working out the type again
    (it is half the cost of a number)."""
    if is_number_type_geographical(kind, country_code):
        found = timezone.time_zones_for_geographical_number(parsed)
    else:
        cached = _COUNTRY_ZONES.get(country_code)
        if cached is not None:
            return cached
        found = timezone.time_zones_for_number(parsed)
        zones = tuple(z for z in found if z != "Etc/Unknown")
        _COUNTRY_ZONES[country_code] = zones
        return zones
    return tuple(z for z in found if z != "Etc/Unknown")


@dataclass(frozen=True)
class Number:
    e164: str
    number_type: str
    region: str
    timezones: tuple[str, ...]


@dataclass(frozen=True)
class Rejected:
    reason: str


def normalize(raw: str, default_region: str | None = None) -> Number | Rejected:
    """E.164 and facts of ``raw`` (national numbers need ``default_region``)."""
    text = (raw or "").strip()
    if not text:
        return Rejected("empty")
    if len(text) > MAX_INPUT:
        return Rejected(f"longer than {MAX_INPUT} characters")
    region = default_region.upper() if default_region else None
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        return Rejected(
            f"not a phone number ({exc._msg})" if hasattr(exc, "_msg") else "not a phone number"
        )
    # is_valid_number() is "a region, and a type other than UNKNOWN"; asking
    # for both once is a third of the cost of asking is_valid_number first.
    number_region = phonenumbers.region_code_for_number(parsed)
    kind = phonenumbers.number_type(parsed)
    # a number with a region has a country code; the check narrows the type
    country_code = parsed.country_code
    if number_region is None or country_code is None or kind == PhoneNumberType.UNKNOWN:
        return Rejected("not a valid number for its region")
    if kind in REJECTED_TYPES:
        return Rejected(REJECTED_TYPES[kind])
    zones = _zones(parsed, kind, country_code)
    return Number(
        phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164),
        TYPE_NAMES.get(kind, str(kind)),
        number_region,
        zones,
    )


def check_region(region: str) -> str:
    """``region`` as phonenumbers' upper-case country code, or ValueError
    saying why: a region phonenumbers does not know would reject every
    national number of a list, row by row, instead of once up front."""
    code = region.strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(
            f"{region!r} is not a country code phonenumbers knows (two letters, e.g. DE, GB, US)"
        )
    return code
