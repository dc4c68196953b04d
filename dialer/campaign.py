"""A campaign's dialing settings, validated; the campaign as the server runs
it (:class:`CampaignSetup`: its settings under its country's rules); and the
records it dials.

Settings come from configuration (``[[campaign]]`` tables) or the API; every
error names the key.  The abandon target can never be set above the legal
maximum of the campaign's country, and the ring timeout never below the 15 s
the FCC requires (47 CFR 64.1200(a)(6)).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from core.errors import Invalid
from core.events import DialMode, MachineAction
from dialer.compliance import Campaign, Policy, PolicyError, check_subdivisions, policy_for
from dialer.retry import RetryRules

#: a campaign's name as a ``[[campaign]]`` table may give it (``Name`` of
#: dirigent.config): a list import that makes a campaign (``--create``) gives it no other
CAMPAIGN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}")
CAMPAIGN_NAME_RULE = "letters, digits, '-' or '_' (at most 40)"
MIN_RING = 15.0
#: seconds kept back from the connect limit for the command that ends the
#: wait: the Redirect into the abandon message (or into the agent's bridge)
#: goes over AMI and the dialplan must start its Playback, and the verdict's
#: UserEvent reached us a little after AMD decided.  On a quiet link the round
#: trip is a few milliseconds (the finding's PBX log: 7 ms); 0.3 s covers a
#: PBX or a Dirigent busy for a moment without giving away the law's 2 s.
MOVE_MARGIN = 0.3
#: the least time a person waits for an agent after the verdict, whatever the
#: greeting's silence says: the agent's own events of the same instant (a
#: wrap-up ending, a call hung up) may still be on their way, and an
#: amd.conf whose ``after_greeting_silence`` leaves no time at all (or a cause
#: that claims seconds of silence) must not turn every person into an abandon
#: before the router was asked.  A person for whom an agent is free at once
#: is moved at the verdict; this is only how long the others may wait.
MIN_CONNECT_DELAY = 0.2
#: settings that may be changed while a campaign runs (API / command line)
LIVE_SETTINGS = {
    "abandon_target": float,
    "max_lines_per_agent": float,
    "mode": str,
    "power_ratio": float,
    "ring_timeout": float,
    "machine_action": str,
    "wrap_up": float,
}


class CampaignError(Invalid):
    """A campaign setting refused; ``key`` (= ``field``) names it."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(key, reason)
        self.key = key


@dataclass(frozen=True)
class Lead:
    """One record to dial (a claimed hopper entry)."""

    record_id: int | str
    number: str  # E.164
    contact: str | None = None
    #: the record's own list columns (``extra:`` columns of the import), as text
    extra: Mapping[str, str] = field(default_factory=dict)
    name: str | None = None  # the contact's display name (screen pop, preview)


class LeadSource(Protocol):
    """Where a runner gets records to dial: the hopper behind the compliance gate."""

    def take(self, n: int, now: float) -> list[Lead]:
        """Up to ``n`` records that may be dialed now, each taken once."""
        ...

    def done(self, lead: Lead, outcome: str, now: float) -> None:
        """The attempt on ``lead`` ended with ``outcome`` (retry rules apply)."""
        ...

    def empty_reason(self, now: float) -> str | None:
        """Why ``take`` found nothing (for the campaign's idle status); None:
        records are there and on their way (a buffer that ran dry for a
        moment), the campaign is not idle."""
        ...

    # Optional: ``release(lead, now)`` returns a record taken but never dialed (an
    # agent skipped the preview) without counting an attempt.


@dataclass(frozen=True)
class CampaignSettings:
    name: str
    #: the text of configuration, API or database is read into these two
    #: enums by :func:`validate`, which refuses an unknown one naming its key
    mode: DialMode = DialMode.PREDICTIVE
    queue: str | None = None  # the routing queue agents log into (default: the name)
    #: the dial string, ``{number}`` the number in E.164 without '+' (a PBX's
    #: syntax, passed through unread: the configuration has the PBX adapter
    #: check it); None: the PBX adapter's own route to customers
    trunk: str | None = None
    caller_id: str | None = None
    country: str | None = None
    legal_max_abandon: float = 0.03
    abandon_target: float = 0.03
    windows: tuple[str, ...] = ("30d", "day")
    ring_timeout: float = 22.0
    amd: bool = True
    amd_delay: float = 1.5  # AMD's analysis time after answer (amd.conf total_analysis_time)
    machine_action: MachineAction = MachineAction.HANGUP
    amd_false_positive: float = 0.01  # estimate, counted as abandoned (Ofcom method)
    connect_within: float = 2.0  # from the end of the person's greeting (FCC, Ofcom)
    #: amd.conf ``after_greeting_silence`` (s): AMD's "human" comes this long
    #: after the greeting ended, so the person's connect window at the verdict
    #: is this much shorter (pacing's window, :func:`pacing_window`)
    after_greeting_silence: float = 0.8
    max_lines_per_agent: float = 3.0
    power_ratio: float = 2.0
    wrap_up: float = 120.0  # longest after-call work before the agent is ready again
    preview_auto_dial: float | None = None  # seconds; None: the agent decides

    @property
    def queue_name(self) -> str:
        return self.queue or self.name

    def with_changes(self, **changes: Any) -> CampaignSettings:
        """New settings with ``changes`` applied and validated (API controls)."""
        return validate(replace(self, **changes))


def validate(s: CampaignSettings) -> CampaignSettings:
    """``s`` checked, its ``mode`` and ``machine_action`` as their enums
    (given as text by configuration, the API or the campaign row), or the
    :class:`CampaignError` naming the first key refused."""
    if not s.name or len(s.name) > 120:
        raise CampaignError("name", "must be 1 to 120 characters")
    try:
        mode = DialMode(s.mode)
    except ValueError:
        modes = ", ".join(DialMode)
        raise CampaignError("mode", f"unknown dial mode {s.mode!r} (one of {modes})") from None
    try:
        machine_action = MachineAction(s.machine_action)
    except ValueError:
        raise CampaignError("machine_action", f"one of {', '.join(MachineAction)}") from None
    s = replace(s, mode=mode, machine_action=machine_action)
    if not 0 < s.legal_max_abandon <= 1:
        raise CampaignError("legal_max_abandon", "must be in (0, 1]")
    if not 0 < s.abandon_target <= s.legal_max_abandon:
        raise CampaignError(
            "abandon_target",
            f"must be above 0 and at most the legal maximum {s.legal_max_abandon:.1%}",
        )
    if s.ring_timeout < MIN_RING:
        raise CampaignError("ring_timeout", f"must be at least {MIN_RING:.0f} s (FCC)")
    if s.ring_timeout > 120:
        raise CampaignError("ring_timeout", "must be at most 120 s")
    if not 0 <= s.amd_delay <= 10:
        raise CampaignError("amd_delay", "must be between 0 and 10 s")
    if not 0 <= s.amd_false_positive < 0.5:
        raise CampaignError("amd_false_positive", "must be in [0, 0.5)")
    if not 0 < s.connect_within <= 2.0:
        raise CampaignError("connect_within", "must be in (0, 2] s (FCC/Ofcom)")
    if not 0 <= s.after_greeting_silence <= 5:
        raise CampaignError("after_greeting_silence", "must be between 0 and 5 s")
    if not 1 <= s.max_lines_per_agent <= 10:
        raise CampaignError("max_lines_per_agent", "must be between 1 and 10")
    if not 1 <= s.power_ratio <= s.max_lines_per_agent:
        raise CampaignError("power_ratio", "must be between 1 and max_lines_per_agent")
    if s.wrap_up < 0:
        raise CampaignError("wrap_up", "must be >= 0 seconds")
    if s.preview_auto_dial is not None and s.preview_auto_dial <= 0:
        raise CampaignError("preview_auto_dial", "must be a positive number of seconds")
    # the rest of the syntax is the PBX's: its adapter checks it at start-up
    # (asterisk.port.customer_route_refusal, asked by the configuration)
    if s.trunk is not None and "{number}" not in s.trunk:
        raise CampaignError("trunk", "must contain {number}")
    for w in s.windows:
        if w not in ("30d", "day"):
            raise CampaignError("windows", f"unknown window {w!r} (30d, day)")
    return s


def under_policy(policy: Policy, **keys: Any) -> CampaignSettings:
    """A campaign's settings under its country's rules, validated: the
    country's abandon limit is the legal maximum (and the target, unless a
    lower one is given), measured over the country's window (30 days and the
    day, or the day alone)."""
    return validate(
        CampaignSettings(
            **{"abandon_target": policy.abandon_limit, **keys},
            country=policy.country,
            legal_max_abandon=policy.abandon_limit,
            windows=("30d", "day") if policy.abandon_window == "30d" else ("day",),
        )
    )


#: a country's local day (its campaigns' ledgers and reports) when a campaign names none
DEFAULT_TIMEZONES = {"US": "America/New_York", "GB": "Europe/London", "DE": "Europe/Berlin"}


@dataclass(frozen=True)
class CampaignSetup:
    """One campaign as the server runs it: its dialing settings, its
    country's rules (calling hours, abandon limit and window, lock-outs), its
    retries and the ledger it is measured in.  :meth:`of_country` makes one
    from the keys of a ``[[campaign]]`` table."""

    settings: CampaignSettings
    policy: Policy
    caller_id: str
    timezone: str = "UTC"  # the local day of ledger and reports
    retry: RetryRules = field(default_factory=RetryRules)
    drop_group: str | None = None  # campaigns measured together (Ofcom allows it)
    auto_start: bool = False
    max_attempts_per_day: int | None = None  # stricter than the country's, never laxer
    holiday_subdivisions: tuple[str, ...] = ()
    pbx: str | None = None  # the PBX it dials through (None: the only one)

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def ledger_group(self) -> str:
        return self.drop_group or self.settings.name

    def compliance(self) -> Campaign:
        """The campaign as the compliance gate sees it."""
        return Campaign(
            self.name,
            self.policy,
            self.caller_id,
            holiday_subdivisions=self.holiday_subdivisions,
            max_attempts_per_day=self.max_attempts_per_day,
            timezone=self.timezone,
        )

    @classmethod
    def of_country(
        cls, country: str, caller_id: str, timezone: str | None = None, **keys: Any
    ) -> CampaignSetup:
        """The campaign under ``country``'s rules (:func:`under_policy`; its
        local day the country's unless ``timezone`` names one): ``keys`` are
        its dialing settings and its own.  Each refusal names its key: a
        country without a policy pack, a caller ID that is not a presented
        number, a daily attempt limit laxer than the law's, a dialing setting."""
        policy = policy_for(country)  # PolicyError("country", ...)
        Campaign(keys["name"], policy, caller_id)  # PolicyError("caller_id", ...)
        check_subdivisions(policy.country, keys.get("holiday_subdivisions", ()))
        law, own = policy.max_attempts_per_day, keys.get("max_attempts_per_day")
        if law and own is not None and own > law:
            raise PolicyError(
                "max_attempts_per_day", f"at most {law} in {policy.country} (the law's limit)"
            )
        dial = {key: keys.pop(key) for key in CampaignSettings.__dataclass_fields__ if key in keys}
        return cls(
            under_policy(policy, caller_id=caller_id, **dial),  # CampaignError(key, ...)
            policy,
            caller_id,
            timezone or DEFAULT_TIMEZONES.get(policy.country, "UTC"),
            **keys,
        )


def connect_delay(settings: CampaignSettings, silence: float) -> float:
    """Seconds from a person's verdict to the moment the person must be with
    an agent, or hear the abandon message: the connect limit counted from the
    end of the greeting (47 CFR 64.1200(a)(7): "within two seconds after the
    called person's completed greeting"; Ofcom: 2 s), so less the ``silence``
    AMD heard after the greeting before it said "human", less the command's
    round trip (:data:`MOVE_MARGIN`), and never below
    :data:`MIN_CONNECT_DELAY`.

    Without AMD (or a verdict whose cause names no silence) the person is
    queued at the answer, which comes before the greeting ends: counting from
    there is on the law's safe side."""
    # to the millisecond: 2.0 - 0.8 - 0.3 is 0.8999999999999999 in binary
    return round(
        max(MIN_CONNECT_DELAY, settings.connect_within - max(0.0, silence) - MOVE_MARGIN), 3
    )


def pacing_window(settings: CampaignSettings) -> float:
    """The seconds within which an agent must come free for a live answer,
    as pacing models it: :func:`connect_delay` for the silence AMD typically
    hears after a greeting (amd.conf's ``after_greeting_silence``, the
    campaign's setting) when AMD is on; without AMD the person is queued at
    the answer and waits ``connect_within`` less the margin."""
    silence = settings.after_greeting_silence if settings.amd else 0.0
    return connect_delay(settings, silence)
