"""Number normalisation and the compliance gate (US, Germany, UK packs)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.numbers import Number, Rejected, normalize
from dialer.compliance import Campaign, Compliance, DialHistory, Policy, PolicyError, policy_for

UTC = dt.UTC


def at(y, mo, d, h, mi=0):
    return dt.datetime(y, mo, d, h, mi, tzinfo=UTC)


# -- numbers -----------------------------------------------------------------------------
def test_german_numbers_are_normalised_with_type_region_and_zone():
    n = normalize("0151 2345 6789", "DE")
    assert n == Number("+4915123456789", "mobile", "DE", ("Europe/Berlin",))
    assert normalize("(030) 123456", "de").e164 == "+4930123456"
    assert normalize("+49 30 123456").e164 == "+4930123456", "international form needs no region"


@pytest.mark.parametrize(
    ("raw", "region", "reason"),
    [
        ("0900 1234567", "DE", "premium-rate"),
        ("12345", "DE", "not a valid number"),
        ("hello", "DE", "not a phone number"),
        ("", "DE", "empty"),
        ("030 123456", None, "not a phone number"),
        ("1" * 80, "DE", "longer than"),
    ],
)
def test_bad_numbers_are_rejected_with_a_reason(raw, region, reason):
    result = normalize(raw, region)
    assert isinstance(result, Rejected) and reason in result.reason


@given(st.text(max_size=80), st.sampled_from([None, "DE", "US", "GB", "XX"]))
def test_normalize_never_raises(raw, region):
    result = normalize(raw, region)
    assert isinstance(result, Number | Rejected)
    if isinstance(result, Number):
        assert result.e164.startswith("+") and result.e164[1:].isdigit()


# -- policy packs ------------------------------------------------------------------------
def test_shipped_packs_load():
    us, de, uk = policy_for("US"), policy_for("DE"), policy_for("UK")
    assert us.windows[0].start == dt.time(8) and us.windows[0].end == dt.time(21)
    assert de.max_attempts_per_day == 3 and de.requires_consent and de.public_holidays
    assert uk.abandon_lockout_hours == 72 and uk.abandon_window == "day"
    with pytest.raises(PolicyError, match="no policy pack for 'FR'"):
        policy_for("FR")


def test_a_broken_pack_names_the_key():
    with pytest.raises(PolicyError, match=r"x.windows\[0\]: end must be after start"):
        Policy.parse(
            {
                "country": "X",
                "windows": [{"days": ["mon"], "start": "20:00", "end": "08:00"}],
                "public_holidays": False,
                "max_attempts_per_day": 0,
                "abandon_limit": 0.03,
                "abandon_window": "day",
                "abandon_lockout_hours": 0,
                "machine_retry_same_day_needs_agent": False,
                "requires_consent": False,
            },
            "x",
        )


@pytest.mark.parametrize(
    "caller_id", ["", "anonymous", "0900 1234567", "+4990012345678", "4930123456"]
)
def test_suppressed_or_invalid_caller_id_is_refused(caller_id):
    with pytest.raises(PolicyError, match="caller_id"):
        Campaign("c", policy_for("DE"), caller_id)


# -- the gate ------------------------------------------------------------------------------
@dataclass
class Dnc:
    global_: set[str] = field(default_factory=set)
    campaign: dict[str, set[str]] = field(default_factory=dict)

    def blocked(self, e164: str, campaign: str) -> str | None:
        if e164 in self.global_:
            return "global"
        return "campaign" if e164 in self.campaign.get(campaign, set()) else None


@dataclass
class Consents:
    """Records as kept (never overwritten): the latest one at ``at`` decides."""

    records: list[tuple[str, str, bool, dt.datetime]] = field(default_factory=list)

    def granted(self, contact: str, channel: str, when: dt.datetime) -> bool:
        mine = [r for r in self.records if r[0] == contact and r[1] == channel and r[3] <= when]
        return bool(mine) and max(mine, key=lambda r: r[3])[2]


NY = normalize("+1 212 555 0100")
TOLL_FREE = normalize("+1 800 555 0100")
BERLIN = normalize("+49 30 123456")
LONDON = normalize("+44 20 7946 0018")


def gate(dnc=None, consents=None):
    return Compliance(dnc or Dnc(), consents or Consents())


def test_us_window_is_in_the_called_partys_local_time():
    us = Campaign("us", policy_for("US"), "+12125550199")
    g = gate()
    assert g.check(us, NY, None, at(2026, 11, 23, 13, 30)).allowed  # 08:30 in New York
    v = g.check(us, NY, None, at(2026, 11, 23, 12, 59))  # 07:59 in New York
    assert not v.allowed and v.check == "window" and "America/New_York" in v.reason
    assert not g.check(us, NY, None, at(2026, 11, 24, 2, 0)).allowed  # 21:00 in New York


def test_a_number_spanning_zones_is_held_to_the_most_restrictive():
    us = Campaign("us", policy_for("US"), "+12125550199")
    v = gate().check(
        us, TOLL_FREE, None, at(2026, 11, 23, 14, 0)
    )  # 09:00 New York, 06:00 Los Angeles
    assert not v.allowed and v.check == "window"


def test_germany_no_sundays_no_holidays_at_most_three_attempts_and_consent():
    consents = Consents([("c1", "voice", True, at(2026, 1, 1, 0))])
    de = Campaign("de", policy_for("DE"), "+4930999999", holiday_subdivisions=("BY",))
    g = gate(consents=consents)
    weekday = at(2026, 11, 23, 9)  # Monday 10:00 Berlin
    assert g.check(de, BERLIN, "c1", weekday).allowed
    assert g.check(de, BERLIN, "c1", at(2026, 11, 22, 9)).check == "window"  # Sunday
    assert g.check(de, BERLIN, "c1", at(2026, 12, 25, 9)).check == "holiday"  # Christmas, a Friday
    assert g.check(de, BERLIN, "c1", at(2026, 1, 6, 9)).check == "holiday"  # Epiphany: Bavaria only
    assert g.check(de, BERLIN, "c1", at(2026, 11, 23, 19, 30)).check == "window"  # 20:30 Berlin
    assert g.check(de, BERLIN, "c1", weekday, DialHistory(attempts_today=3)).check == "attempts"
    # a campaign's own limit may be stricter than the law's, never laxer (found by
    # exploratory testing: max_attempts_per_day = 6 let a number be dialed 4 times)
    lax = Campaign("de6", policy_for("DE"), "+4930999999", max_attempts_per_day=6)
    assert g.check(lax, BERLIN, "c1", weekday, DialHistory(attempts_today=3)).check == "attempts"
    strict = Campaign("de2", policy_for("DE"), "+4930999999", max_attempts_per_day=2)
    assert g.check(strict, BERLIN, "c1", weekday, DialHistory(attempts_today=2)).check == "attempts"
    assert g.check(de, BERLIN, "nobody", weekday).check == "consent"
    consents.records.append(("c1", "voice", False, at(2026, 6, 1, 0)))  # withdrawn
    assert g.check(de, BERLIN, "c1", weekday).check == "consent"


def test_do_not_call_global_and_per_campaign():
    dnc = Dnc(global_={NY.e164}, campaign={"other": {BERLIN.e164}})
    us = Campaign("us", policy_for("US"), "+12125550199")
    assert (
        gate(dnc).check(us, NY, None, at(2026, 11, 23, 15)).reason
        == "on the global do-not-call list"
    )
    de = Campaign("other", policy_for("DE"), "+4930999999", requires_consent=False)
    assert (
        gate(dnc).check(de, BERLIN, None, at(2026, 11, 23, 9)).reason
        == "on the campaign do-not-call list"
    )


def test_uk_abandoned_lockout_and_machine_retry_need_a_guaranteed_agent():
    uk = Campaign("uk", policy_for("UK"), "+442079460000")
    g = gate()
    now = at(2026, 11, 23, 12)
    abandoned = DialHistory(last_abandoned_at=now - dt.timedelta(hours=71))
    assert g.check(uk, LONDON, None, now, abandoned).check == "abandon-lockout"
    assert g.check(uk, LONDON, None, now, abandoned, agent_guaranteed=True).allowed
    assert g.check(
        uk, LONDON, None, now, DialHistory(last_abandoned_at=now - dt.timedelta(hours=73))
    ).allowed
    machine = DialHistory(last_machine_at=now - dt.timedelta(hours=2))
    assert g.check(uk, LONDON, None, now, machine).check == "machine-retry"
    assert g.check(uk, LONDON, None, now + dt.timedelta(days=1), machine).allowed


def test_uk_machine_retry_needs_an_agent_for_24_hours_from_the_machine_not_the_date():
    """Ofcom: an answering-machine call may be retried within the same 24
    hour period only with an agent guaranteed.  A machine at 20:30 on Monday
    locked the number until midnight only: at 08:00 on Tuesday, 11.5 h later,
    it was dialed again without an agent (QA8 F18)."""
    uk = Campaign("uk", policy_for("UK"), "+442079460000")
    g = gate()
    machine = DialHistory(last_machine_at=at(2026, 11, 23, 20, 30))  # Monday, London (GMT)
    tuesday_8 = at(2026, 11, 24, 8)
    refused = g.check(uk, LONDON, None, tuesday_8, machine)
    assert refused.check == "machine-retry"
    assert "2026-11-24 20:30" in refused.reason, "says until when"
    assert g.check(uk, LONDON, None, tuesday_8, machine, agent_guaranteed=True).allowed
    assert not g.check(uk, LONDON, None, at(2026, 11, 24, 20, 29), machine).allowed
    assert g.check(uk, LONDON, None, at(2026, 11, 24, 20, 30), machine).allowed


def test_the_lockout_end_is_the_later_of_the_abandon_and_machine_lockouts():
    """When the law lets a number be called again without an agent
    guaranteed (a retry is due no earlier): 72 h after an abandoned call and
    24 h after a machine in the UK; no lock-out with an agent guaranteed, or
    under a pack without them (the US)."""
    from dialer.compliance import lockout_end

    uk, us = policy_for("UK"), policy_for("US")
    monday = at(2026, 11, 23, 10)
    assert lockout_end(uk, DialHistory()) is None
    machine = DialHistory(last_machine_at=monday)
    assert lockout_end(uk, machine) == monday + dt.timedelta(hours=24)
    both = DialHistory(last_abandoned_at=monday - dt.timedelta(hours=1), last_machine_at=monday)
    assert lockout_end(uk, both) == monday + dt.timedelta(hours=71)
    assert lockout_end(uk, both, agent_guaranteed=True) is None
    assert lockout_end(us, both) is None


def test_call_back_at_is_respected():
    us = Campaign("us", policy_for("US"), "+12125550199")
    now = at(2026, 11, 23, 15)
    v = gate().check(us, NY, None, now, callback_at=now + dt.timedelta(hours=1))
    assert not v.allowed and v.check == "callback"


def test_naive_times_are_refused():
    us = Campaign("us", policy_for("US"), "+12125550199")
    with pytest.raises(ValueError, match="timezone-aware"):
        gate().check(us, NY, None, dt.datetime(2026, 11, 23, 15))


def test_time_zones_match_phonenumbers_for_every_region_and_type():
    """normalize() skips phonenumbers' second type look-up; the zones must not change."""
    import phonenumbers
    from phonenumbers import PhoneNumberType, timezone

    from core.numbers import Number, normalize

    checked = 0
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in (PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE, PhoneNumberType.TOLL_FREE):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
            result = normalize(e164)
            if isinstance(result, Number):
                expected = tuple(
                    z for z in timezone.time_zones_for_number(example) if z != "Etc/Unknown"
                )
                assert result.timezones == expected, e164
                checked += 1
    assert checked > 500


def test_a_number_of_another_country_is_refused_naming_both_regimes():
    # QA6 F3: a GB number in a US campaign got US hours and no Ofcom lock-outs
    us = Campaign("x", policy_for("US"), "+12125550199")
    v = gate().check(us, LONDON, None, at(2026, 11, 23, 15, 0))  # open in London and New York
    assert not v.allowed and v.check == "country"
    assert v.reason == "number is in GB; campaign 'x' dials under US rules"
    assert gate().check(us, NY, None, at(2026, 11, 23, 15, 0)).allowed
