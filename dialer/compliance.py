"""The one gate every dial passes through: may this number be called now?

Checks, in order, each with a reason a supervisor can read:

1. do-not-call: the global list and the campaign's (an opt-out during a
   call is on the global list at once);
2. the number's country: one the campaign's pack does not govern is
   refused (its hours, consent and lock-outs are another regime's);
3. consent, where the campaign requires it (German B2C telephone
   advertising: UWG 7(2)); a withdrawal after a grant wins;
4. the calling window in the called party's local time, for every time zone
   of the number (several zones: all must be inside the window, i.e. the
   most restrictive), public holidays where the country's pack says so;
5. attempts per number per local day (Germany: at most 3);
6. after an abandoned call, no redial within the lock-out (UK: 72 h) unless
   an agent is guaranteed; after a machine, a retry within 24 hours of it
   only with an agent guaranteed (UK: Ofcom's "same 24 hour period"; the
   retry rules schedule no earlier, see :func:`lockout_end`);
7. a "call back at" time set on the record.

The do-not-call and consent rules are every channel's (``core.consent``);
the gate asks them first and adds the outbound calling rules.  Country
policy packs are data (``dialer/policies/*.toml``), validated when
loaded.  Pure: the lookups and the time are passed in.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import holidays

from core.consent import ConsentLookup, DncLookup, consent_refusal, dnc_refusal
from core.errors import Invalid
from core.numbers import Number, Rejected, normalize

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
POLICY_DIR = Path(__file__).with_name("policies")


class PolicyError(Invalid):
    """A setting refused; ``key`` (= ``field``) names it (a 400 to the API)."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(key, reason)
        self.key = key


@dataclass(frozen=True)
class Window:
    days: frozenset[int]  # 0 = Monday
    start: dt.time
    end: dt.time

    def contains(self, local: dt.datetime) -> bool:
        return local.weekday() in self.days and self.start <= local.time() < self.end


@dataclass(frozen=True)
class Policy:
    country: str
    windows: tuple[Window, ...]
    public_holidays: bool
    max_attempts_per_day: int
    abandon_limit: float
    abandon_window: str
    abandon_lockout_hours: float
    machine_retry_same_day_needs_agent: bool
    requires_consent: bool
    #: the regions (phonenumbers' codes) whose numbers this pack's rules
    #: govern; a number of another is refused (``country``): its hours,
    #: consent and lock-outs are another regime's (QA6 F3)
    regions: tuple[str, ...] = ()

    @property
    def governed(self) -> tuple[str, ...]:
        """The regions whose numbers this pack may call (its own country's
        when it names none)."""
        return self.regions or (self.country,)

    def governs(self, region: str) -> bool:
        return region in self.governed

    @classmethod
    def parse(cls, data: dict[str, Any], source: str = "policy") -> Policy:
        def need(key: str, kind: type | tuple[type, ...]) -> Any:
            if key not in data:
                raise PolicyError(f"{source}.{key}", "required")
            value = data[key]
            if not isinstance(value, kind) or (
                isinstance(value, bool) and kind in (int, float, (int, float))
            ):
                raise PolicyError(f"{source}.{key}", f"wrong type {type(value).__name__}")
            return value

        windows = []
        for i, w in enumerate(need("windows", list)):
            try:
                days = frozenset(DAYS.index(d) for d in w["days"])
                start, end = dt.time.fromisoformat(w["start"]), dt.time.fromisoformat(w["end"])
            except (KeyError, ValueError, TypeError) as exc:
                raise PolicyError(
                    f"{source}.windows[{i}]", f"needs days (mon..sun), start and end HH:MM ({exc})"
                ) from None
            if end <= start:
                raise PolicyError(f"{source}.windows[{i}]", "end must be after start")
            windows.append(Window(days, start, end))
        limit = float(need("abandon_limit", (int, float)))
        if not 0 <= limit <= 1:
            raise PolicyError(f"{source}.abandon_limit", "must be a share between 0 and 1")
        if need("abandon_window", str) not in ("30d", "day"):
            raise PolicyError(f"{source}.abandon_window", "must be '30d' or 'day'")
        return cls(
            country=need("country", str).upper(),
            windows=tuple(windows),
            public_holidays=need("public_holidays", bool),
            max_attempts_per_day=need("max_attempts_per_day", int),
            abandon_limit=limit,
            abandon_window=data["abandon_window"],
            abandon_lockout_hours=float(need("abandon_lockout_hours", (int, float))),
            machine_retry_same_day_needs_agent=need("machine_retry_same_day_needs_agent", bool),
            requires_consent=need("requires_consent", bool),
            regions=_regions(data, source, need("country", str).upper()),
        )


def _regions(data: dict[str, Any], source: str, country: str) -> tuple[str, ...]:
    value = data.get("regions", [country])
    if not isinstance(value, list) or not all(isinstance(v, str) and len(v) == 2 for v in value):
        raise PolicyError(f"{source}.regions", "must be a list of two-letter region codes")
    return tuple(v.upper() for v in value)


def foreign_number(campaign: str, policy: Policy, number: Number) -> str | None:
    """Why ``campaign`` (dialing under ``policy``) may not call ``number``
    at all: a number of a region the pack does not govern (a GB number in a
    US campaign's list would get US hours and no Ofcom lock-outs), else None."""
    if not number.region or policy.governs(number.region):
        return None
    return f"number is in {number.region}; campaign {campaign!r} dials under {policy.country} rules"


@cache
def policy_for(country: str) -> Policy:
    """The shipped pack for a country (``US``, ``DE``, ``GB``/``UK``)."""
    name = {"GB": "uk", "UK": "uk"}.get(country.upper(), country.lower())
    path = POLICY_DIR / f"{name}.toml"
    if not path.exists():
        raise PolicyError("country", f"no policy pack for {country!r} (have: us, de, uk)")
    with open(path, "rb") as fh:
        return Policy.parse(tomllib.load(fh), path.name)


# -- what the gate needs to know ------------------------------------------------------------
@dataclass(frozen=True)
class DialHistory:
    """What happened to this number before (from the attempt table)."""

    attempts_today: int = 0
    last_abandoned_at: dt.datetime | None = None
    last_machine_at: dt.datetime | None = None


@dataclass(frozen=True)
class Campaign:
    name: str
    policy: Policy
    caller_id: str
    requires_consent: bool | None = None  # None: as the country pack says
    holiday_subdivisions: tuple[str, ...] = ()  # e.g. ("BY", "NW"): a holiday in any counts
    windows: tuple[Window, ...] = ()  # narrower campaign hours (in addition to the law)
    max_attempts_per_day: int | None = None
    #: the campaign's local day (reports: what is due "later today")
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        checked = normalize(self.caller_id)
        if isinstance(checked, Rejected) or not self.caller_id.strip().startswith("+"):
            why = checked.reason if isinstance(checked, Rejected) else "must be in +E.164 form"
            raise PolicyError(
                "caller_id",
                f"must be a valid, presented number ({why}); suppressed caller ID is refused",
            )


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str = "ok"
    check: str = ""


@dataclass
class Compliance:
    dnc: DncLookup
    consent: ConsentLookup
    _holidays: dict[tuple[str, str, int], Any] = field(default_factory=dict)
    #: set for one batch of checks at one instant (the hopper's claim): the
    #: hours and holidays of a time zone are worked out once, not per number
    zone_verdicts: dict[tuple[str, str, dt.datetime], Verdict | None] | None = None

    def for_batch(self, dnc: DncLookup, consent: ConsentLookup) -> Compliance:
        """A gate for one batch of checks at one instant (the hopper's claim):
        its own look-ups, this gate's holiday calendars, and each time zone's
        hours and holidays worked out once."""
        return Compliance(dnc, consent, self._holidays, zone_verdicts={})

    def _is_holiday(self, country: str, subdivisions: Iterable[str], day: dt.date) -> bool:
        for sub in (*subdivisions, ""):
            key = (country, sub, day.year)
            if key not in self._holidays:
                self._holidays[key] = holidays.country_holidays(
                    country, subdiv=sub or None, years=day.year
                )
            if day in self._holidays[key]:
                return True
        return False

    def closed_in(self, campaign: Campaign, zones: Iterable[str], now: dt.datetime) -> bool:
        """No call may be made now to a number of these zones: outside the
        calling hours or on a holiday in one of them (whatever else the
        number's record holds)."""
        return any(self._zone_refusal(campaign, zone, now) is not None for zone in zones)

    def hours_refusal(self, campaign: Campaign, number: Number, at: dt.datetime) -> Verdict | None:
        """Why the number may not be called at ``at`` by its hours and
        holidays alone (the first of its zones that is closed), or None.  A
        call-back an agent promises for then would wait for the next
        opening: the customer is told one time and called at another."""
        for zone in number.timezones or (default_zone(number.region),):
            refused = self._zone_refusal(campaign, zone, at)
            if refused is not None:
                return refused
        return None

    def _zone_refusal(self, campaign: Campaign, zone: str, now: dt.datetime) -> Verdict | None:
        """Calling hours and holidays in one time zone: why not now, or None."""
        policy = campaign.policy
        local = now.astimezone(ZoneInfo(zone))
        if not any(w.contains(local) for w in policy.windows):
            return Verdict(
                False, f"outside the legal calling hours in {zone} ({local:%a %H:%M})", "window"
            )
        if campaign.windows and not any(w.contains(local) for w in campaign.windows):
            return Verdict(
                False, f"outside the campaign's hours in {zone} ({local:%a %H:%M})", "window"
            )
        if policy.public_holidays and self._is_holiday(
            policy.country, campaign.holiday_subdivisions, local.date()
        ):
            return Verdict(
                False, f"public holiday in {policy.country} ({local:%Y-%m-%d})", "holiday"
            )
        return None

    def check(
        self,
        campaign: Campaign,
        number: Number,
        contact: str | None,
        now: dt.datetime,
        history: DialHistory = DialHistory(),
        callback_at: dt.datetime | None = None,
        agent_guaranteed: bool = False,
    ) -> Verdict:
        if now.tzinfo is None:
            raise ValueError("now: must be timezone-aware")
        policy = campaign.policy
        listed = dnc_refusal(self.dnc, number.e164, campaign.name)
        if listed is not None:
            return Verdict(False, listed.reason, listed.check)
        foreign = foreign_number(campaign.name, policy, number)
        if foreign is not None:
            return Verdict(False, foreign, "country")
        needs_consent = (
            policy.requires_consent
            if campaign.requires_consent is None
            else campaign.requires_consent
        )
        if needs_consent:
            unconsented = consent_refusal(self.consent, contact, "voice", now)
            if unconsented is not None:
                return Verdict(False, unconsented.reason, unconsented.check)
        zones = number.timezones or (default_zone(number.region),)
        for zone in zones:
            if self.zone_verdicts is None:
                refused = self._zone_refusal(campaign, zone, now)
            else:
                key = (campaign.name, zone, now)
                if key not in self.zone_verdicts:
                    self.zone_verdicts[key] = self._zone_refusal(campaign, zone, now)
                refused = self.zone_verdicts[key]
            if refused is not None:
                return refused
        # the stricter of the campaign's own limit and the law's (0: none in law)
        limits = [n for n in (campaign.max_attempts_per_day, policy.max_attempts_per_day) if n]
        limit = min(limits) if limits else 0
        if limit and history.attempts_today >= limit:
            return Verdict(
                False, f"{history.attempts_today} attempts today (at most {limit})", "attempts"
            )
        if (
            policy.abandon_lockout_hours
            and history.last_abandoned_at is not None
            and not agent_guaranteed
        ):
            until = history.last_abandoned_at + dt.timedelta(hours=policy.abandon_lockout_hours)
            if now < until:
                return Verdict(
                    False,
                    f"abandoned call: locked out until {until:%Y-%m-%d %H:%M} UTC",
                    "abandon-lockout",
                )
        if (
            policy.machine_retry_same_day_needs_agent
            and history.last_machine_at is not None
            and not agent_guaranteed
        ):
            # Ofcom: "within the same 24 hour period", counted from the machine
            # call (the calendar date let a 20:30 machine be retried at 08:00)
            until = history.last_machine_at + MACHINE_RETRY_PERIOD
            if now < until:
                return Verdict(
                    False,
                    f"answering machine at {history.last_machine_at:%Y-%m-%d %H:%M} UTC: "
                    f"retry only with an agent guaranteed until {until:%Y-%m-%d %H:%M} UTC",
                    "machine-retry",
                )
        if callback_at is not None and now < callback_at:
            return Verdict(False, f"call back at {callback_at:%Y-%m-%d %H:%M} UTC", "callback")
        return Verdict(True)


#: after an answering machine, a retry within this period needs an agent
#: guaranteed (Ofcom's "same 24 hour period"), where the pack says so
MACHINE_RETRY_PERIOD = dt.timedelta(hours=24)


def lockout_end(
    policy: Policy, history: DialHistory, agent_guaranteed: bool = False
) -> dt.datetime | None:
    """When the law's lock-outs on a number end: the later of its last
    abandoned call + ``abandon_lockout_hours`` and its last answering machine
    + 24 h (where the pack has ``machine_retry_same_day_needs_agent``), or
    None when neither applies (none in the pack, no such call, or an agent
    guaranteed).  A retry is due no earlier: the gate would refuse it until
    then (it may lie in the past: then it holds nothing back)."""
    if agent_guaranteed:
        return None
    ends = []
    if policy.abandon_lockout_hours and history.last_abandoned_at is not None:
        ends.append(history.last_abandoned_at + dt.timedelta(hours=policy.abandon_lockout_hours))
    if policy.machine_retry_same_day_needs_agent and history.last_machine_at is not None:
        ends.append(history.last_machine_at + MACHINE_RETRY_PERIOD)
    return max(ends) if ends else None


def check_subdivisions(country: str, subdivisions: Iterable[str]) -> None:
    """Each of ``subdivisions`` is one of ``country``'s (a state, a Land:
    its holidays close the campaign's calls), or :class:`PolicyError` naming
    it and those there are: an unknown one failed every claim at run time."""
    known = holidays.country_holidays(country).subdivisions
    for sub in subdivisions:
        if sub not in known:
            raise PolicyError(
                "holiday_subdivisions",
                f"{sub!r} is not a subdivision of {country} (one of {', '.join(known)})",
            )


def default_zone(region: str) -> str:
    return {"DE": "Europe/Berlin", "GB": "Europe/London", "US": "America/New_York"}.get(
        region, "UTC"
    )
