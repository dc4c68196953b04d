"""How many calls to launch now: the dial modes and their pacing.

Every strategy looks at a :class:`Snapshot` of the campaign (agents ready,
talking and wrapping up with their elapsed times, calls ringing and waiting
for their AMD verdict) and answers one number: calls to dial now.  The
campaign runner asks every second and after every agent or call event, and
caps the answer by the line limit.  Pure and clock-free.

* :class:`Progressive` -- one call in flight per ready agent: no abandoned
  calls from pacing, agents wait through every ring.
* :class:`Power` -- a fixed number of calls in flight per ready agent.
* :class:`VicidialAdaptive` -- the baseline: VICIdial's adaptive dial level,
  adjusted once a minute from ready agents and waiting calls and cut when
  today's drop rate passes the target, after the fact.
* :class:`Predictive` -- ours; see ``docs/pacing.md`` for the model: it plans
  forward (agents about to free up, calls about to be answered, new calls'
  answer-time distribution) and keeps a safety margin that feedback on the
  measured abandon rate (regulatory window, today, last hour) tightens or
  loosens.
* :class:`Predictive` with clairvoyant inputs -- the bounds of the
  benchmark: ``oracle-agents`` knows when each agent will be free,
  ``oracle-calls`` knows each call's outcome and answer time in advance.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.special import bdtrc, betaincinv, ndtr

from core.errors import Invalid
from core.events import DialMode
from dialer.abandon import AbandonLedger
from dialer.campaign import CampaignSettings, pacing_window
from dialer.estimates import HORIZONS, Estimates, Priors, Tables, Window, columns

STRATEGIES = ("progressive", "ratio:X", "vicidial", "predictive", "oracle-agents", "oracle-calls")
EMPTY = np.zeros(0)
#: new calls whose abandon probability is evaluated together first (see Predictive._largest_k)
FIRST_KS = 8

#: the connect window of a campaign with the default settings (AMD on, amd.conf's
#: 0.8 s after-greeting silence): 0.9 s after the verdict
DEFAULT_WINDOW = pacing_window(CampaignSettings("default"))


class PacingError(Invalid):
    """A setting refused; ``key`` (= ``field``) names it (a 400 to the API)."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(key, reason)
        self.key = key


@dataclass
class Snapshot:
    """The live state of one campaign, as pacing sees it."""

    now: float
    agents: int  # logged in to the campaign and not paused
    ready: int  # free for a call now
    talking: np.ndarray = field(default_factory=lambda: EMPTY)  # elapsed talk (s), per agent
    wrapping: np.ndarray = field(default_factory=lambda: EMPTY)  # elapsed wrap-up (s)
    #: per wrapping agent: seconds until the wrap-up ends by itself (the
    #: campaign's wrap_up, as the router's timer has it); empty: not known
    wrap_left: np.ndarray = field(default_factory=lambda: EMPTY)
    ringing: np.ndarray = field(default_factory=lambda: EMPTY)  # elapsed ring (s), per dial
    verdicts: np.ndarray = field(default_factory=lambda: EMPTY)  # seconds to AMD verdict
    waiting: int = 0  # persons waiting for an agent now
    room: int = 256  # new calls the line limit allows now
    #: other work that takes the campaign's agents ahead of its calls (inbound
    #: calls of blended agents), arrivals per second: each one that comes
    #: before a call of ours needs its agent takes one of the agents counted
    #: in the supply
    inbound_rate: float = 0.0
    #: of ``ready``: agents in no queue but the campaign's, whom no inbound
    #: caller can take (a campaign of blended and outbound-only agents)
    ready_only_ours: int = 0
    # clairvoyant inputs (simulation bounds only)
    agent_free_in: np.ndarray | None = None  # per busy/wrapping agent: seconds until free
    call_need_in: np.ndarray | None = None  # per call in flight: seconds until it needs an agent
    next_need_in: Callable[[int], np.ndarray] | None = None  # the next n records, same

    @property
    def in_flight(self) -> int:
        """Dials that may still need an agent (ringing or awaiting the verdict)."""
        return len(self.ringing) + len(self.verdicts)


class Strategy:
    name = "strategy"

    def decide(self, s: Snapshot, est: Estimates, ledger: AbandonLedger) -> int:
        raise NotImplementedError

    def observe(self, abandoned: bool) -> bool:
        """A person answered one of our calls and was served, or abandoned.
        True if the strategy learned from it (see :meth:`take_back`)."""
        return False

    def take_back(self) -> None:
        """A call observed as served (and learned from) was an answering
        machine that AMD missed: the agent's disposition said so."""

    def set_limit(self, limit: float) -> None:
        """The campaign's abandon target changed (strategies that watch it)."""

    @property
    def level(self) -> float:
        """The pacing level for the metrics (calls in flight per ready agent)."""
        return 1.0


class Progressive(Strategy):
    name = "progressive"

    def decide(self, s: Snapshot, est: Estimates, ledger: AbandonLedger) -> int:
        return max(0, s.ready - s.in_flight - s.waiting)


@dataclass
class Power(Strategy):
    """A fixed number of lines per ready agent, but never past the abandon
    limit: a power dialer abandons whenever more persons answer than agents
    are free, and nothing in a fixed ratio looks at the ledger.  While a
    regulatory window (the day, 30 days) has abandoned ``limit`` of its live
    answers or more, it dials as :class:`Progressive` (a line per ready
    agent: no abandon) until the rate is under the limit again (found by
    exploratory testing: a GB campaign at 20.8 % went on at three lines an
    agent, also after a restart)."""

    ratio: float = 2.0
    limit: float = 0.03
    windows: tuple[str, ...] = ("30d", "day")

    def __post_init__(self) -> None:
        if not 1.0 <= self.ratio <= 10.0:
            raise PacingError("ratio", f"must be between 1 and 10, not {self.ratio}")
        self.name = f"ratio:{self.ratio:g}"

    @property
    def level(self) -> float:
        return self.ratio

    def set_limit(self, limit: float) -> None:
        self.limit = limit

    def at_limit(self, now: float, ledger: AbandonLedger) -> bool:
        for window in self.windows:
            live, abandoned = ledger.counts(window, now)
            if abandoned > 0 and abandoned >= self.limit * live:
                return True
        return False

    def decide(self, s: Snapshot, est: Estimates, ledger: AbandonLedger) -> int:
        ratio = 1.0 if self.at_limit(s.now, ledger) else self.ratio
        return max(0, math.floor(ratio * s.ready + 1e-9) - s.in_flight - s.waiting)


@dataclass
class VicidialAdaptive(Strategy):
    """VICIdial's adaptive predictive mode, as its public ``AST_VDadapt.pl``
    describes it: lines = dial level × active agents (ready or talking),
    counting the calls already up; once a minute the level is multiplied by
    ``1 + k·(ready − waiting)/agents`` and clamped to [1, 3]; when today's
    drop rate passes the target the level is halved (and set to 1 once the
    rate is above twice the target).  It reacts only after the fact."""

    target: float = 0.03
    intensity: float = 0.5
    start_level: float = 1.5
    name: str = "vicidial"
    _level: float = 0.0
    _next_adjust: float | None = None

    def __post_init__(self) -> None:
        self._level = self.start_level

    @property
    def level(self) -> float:
        return self._level

    def set_limit(self, limit: float) -> None:
        self.target = limit

    def decide(self, s: Snapshot, est: Estimates, ledger: AbandonLedger) -> int:
        if self._next_adjust is None:
            self._next_adjust = s.now + 60.0
        elif s.now >= self._next_adjust:
            self._next_adjust = s.now + 60.0
            if s.agents:
                factor = 1.0 + self.intensity * (s.ready - s.waiting) / s.agents
                self._level = min(3.0, max(1.0, self._level * factor))
            today = ledger.rate("day", s.now)
            if today is not None and today > self.target:
                self._level = 1.0 if today > 2 * self.target else max(1.0, self._level / 2)
        active = s.ready + len(s.talking)
        up = s.in_flight + s.waiting + len(s.talking)
        return max(0, math.floor(self._level * active + 1e-9) - up)


@dataclass
class Predictive(Strategy):
    """Plan forward under the abandon cap.

    For each horizon h (0..38 s), with c the connect limit (2 s):

        D(h) = waiting + Σ ringing P(human verdict ≤ h) + Σ answered P(verdict "human" ≤ h)
        S(h) = ready + Σ talking P(free ≤ h + c) + Σ wrapping P(free ≤ h + c)

    (means and Bernoulli variances).  The k-th new call needs an agent at a
    time τ drawn from the answer-time distribution; it is abandoned if the
    demand before it, D(τ) + (k − 1)·q(τ), already uses up S(τ).  With a
    normal approximation, its abandon probability is

        P_ab(k) = Σ_τ w(τ) · Φ((D(τ) + (k − 1)·q(τ) + ½ − S(τ)) / σ(τ))

    and the strategy launches every call with ``P_ab(k) ≤ λ``: the
    probability that a live answer finds no agent within c seconds stays
    below λ for each call placed.  λ is the one knob feedback moves: every
    live answer nudges log λ by ``gain·(budget − abandoned)``, so the
    measured rate settles at the budget (the limit, less AMD's estimated
    misreads, less a margin).  At the cap over the regulatory window, or
    past the hourly guard, it dials progressively until back under.
    """

    limit: float = 0.03  # the legal or configured maximum abandon rate
    margin: float = 0.008  # kept free below the limit (chance)
    amd_false_positive: float = 0.0  # persons AMD hangs up on: part of the budget
    #: c: the seconds from a person's verdict to the abandon deadline, in which
    #: an agent must come free (:func:`dialer.campaign.pacing_window`: the 2 s
    #: from the greeting's end less AMD's silence after it and the command's
    #: round trip, 0.9 s with AMD; 1.7 s without)
    connect_window: float = DEFAULT_WINDOW
    lam: float = 0.01  # accepted abandon probability of the marginal call (start: careful)
    lam_min: float = 0.0005
    lam_max: float = 0.5
    gain: float = 0.05
    windows: tuple[str, ...] = ("30d", "day")
    hour_guard: float = 0.045  # worst-hour rule (5 %) with room
    #: the guard's belief before a window holds answers: a Beta prior with this
    #: mean and this weight (in live answers); see :func:`rate_bound`
    prior_rate: float = 0.015
    prior_weight: float = 20.0
    #: the guard stops predictive dialing while the last hour's rate has an
    #: upper bound at this confidence at ``hour_guard``: sure, because the hour
    #: is short (80 live answers with five agents) and AMD's misreads, which
    #: pacing cannot see, come on top of it.  (The day and 30-day windows are
    #: judged by their counted rate, see ``_day_at_cap``.)
    hour_confidence: float = 0.9
    #: abandons of room an hour keeps below the budget: the margin is at least
    #: this over the hour's live answers (see :attr:`budget`)
    hour_slack: float = 0.9
    #: a day of many live answers keeps a smaller margin (see :attr:`budget`):
    #: the chance spread of its rate at the limit, ``margin_z`` standard
    #: deviations over the live answers the day holds so far ...
    margin_z: float | None = 1.0
    #: ... as long as the last hour keeps ``hour_room_z`` standard deviations
    #: (Poisson, at the limit) below ``hour_guard``; None: the fixed margin
    hour_room_z: float = 2.5
    #: the first hour's bound stops predictive dialing from this many abandons
    #: in the hour (counted, AMD's estimate included); below, with the bound
    #: over all the same, pacing goes on at λ no higher than ``wary_lam``
    #: (see :meth:`_guard`)
    bound_stops_at: float = 2.0
    #: ... or from this share of the hour's projected live answers, if more
    #: (a large campaign's first minutes; wary only in the last
    #: ``bound_stops_at`` abandons before the stop)
    bound_stop_share: float = 0.01
    wary_lam: float = 0.003
    #: a campaign of up to this many agents starts at ``lam``, a larger one at
    #: ``lam``·sqrt(start_agents / agents) (None: every one at ``lam``)
    start_agents: float | None = 20.0
    name: str = "predictive"
    clairvoyant: str | None = None  # None, "agents" or "calls"
    max_burst: int = 256
    #: the exact tail replaces the normal approximation up to this many
    #: Bernoulli terms (agents busy + calls in flight); -1 turns it off
    exact_terms: int = 40
    _progressive: bool = False
    #: the first hour's bound is over on one abandon: wary, not stopped
    _wary: bool = False
    _bound_cache: dict[tuple[float, float, float, float], bool] = field(
        default_factory=dict, repr=False, compare=False
    )
    #: live answers the last hour holds or projects (see :meth:`_projected_hour`)
    _hour_volume: float = 0.0
    #: live answers the day holds, at least the hour's projection
    _day_volume: float = 0.0
    #: the first decision scales λ to the campaign's size (see :meth:`decide`)
    _started: bool = False
    #: during one decision: (now, ledger, projected hour or None), the hour the
    #: guards ask for four times (see :meth:`_projected_hour`)
    _hour_memo: tuple[float, AbandonLedger, float | None] | None = field(
        default=None, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not 0.0 < self.limit <= 1.0:
            raise PacingError("abandon_target", f"must be in (0, 1], not {self.limit}")
        if self.clairvoyant == "agents":
            self.name = "oracle-agents"
        elif self.clairvoyant == "calls":
            self.name = "oracle-calls"

    @property
    def budget(self) -> float:
        """The abandon rate pacing may cause: the limit less AMD's misreads and the margin.

        The margin is at least ``hour_slack`` abandons over the live answers
        of an hour (the last hour's, projected): with five blended agents an
        hour holds 40-55 persons, two abandons are 4-5 %, and AMD's misreads
        (0.5 an hour, unseen) come on top; at the fixed 0.8 points four runs
        in five broke 5 % in some hour.  From about 110 live answers an hour
        (ten agents) the fixed margin is the larger and nothing changes.

        A large campaign's margin is smaller: ``margin_z`` (1) standard
        deviations of the day's rate at the limit, sqrt(p(1 - p) / V) over
        the V live answers the day holds so far, when that is below
        ``margin``, but no smaller than what keeps the last hour
        ``hour_room_z`` (2.5) Poisson standard deviations below
        ``hour_guard``.  Fifty agents' day holds 6,500-8,600 live answers:
        with the fixed 0.8 points they ended it at 1.7-2.0 % against the 3 %
        cap (occupancy 0.915-0.918); the margin now falls from 0.57 points
        after their first hour to 0.19 at the day's end.  The day's cap is
        kept by the guard (:meth:`_day_at_cap`), the margin only keeps the
        feedback off it.  Twenty agents and fewer (an hour of at most about
        400 live answers) keep the fixed margin: their hour has no room for
        it (ten agents' hour of 140 answers: the floor is 2.2 points)."""
        fp = self.amd_false_positive
        margin = self.margin
        if self.margin_z is not None and self._day_volume > 0 and self._hour_volume > 0:
            p = self.limit
            day = self.margin_z * math.sqrt(p * (1.0 - p) / self._day_volume)
            hour = p - self.hour_guard + self.hour_room_z * math.sqrt(p / self._hour_volume)
            margin = min(margin, max(day, hour))
        if self._hour_volume > 0:
            margin = max(margin, self.hour_slack / self._hour_volume)
        return max(0.002, self.limit - fp / (1.0 - fp) - margin)

    @property
    def level(self) -> float:
        return self.lam

    def set_limit(self, limit: float) -> None:
        self.limit = limit

    def observe(self, abandoned: bool) -> bool:
        """A person answered a call this campaign placed: served or abandoned."""
        if self._progressive or self._wary:
            return False  # calls placed progressively (or warily) say nothing about lambda
        step = self.gain * (self.budget - (1.0 if abandoned else 0.0))
        self.lam = min(self.lam_max, max(self.lam_min, self.lam * math.exp(step)))
        return True

    def take_back(self) -> None:
        """An answering machine counted as a served person: the step up it
        gave λ is undone, so that λ settles at the persons' abandon rate.
        Without it every machine AMD missed (about one connection in six
        with the standard workload) pushed λ up as a served person would."""
        step = self.gain * self.budget
        self.lam = min(self.lam_max, max(self.lam_min, self.lam * math.exp(-step)))

    def _guard(self, s: Snapshot, ledger: AbandonLedger) -> bool:
        """At the cap, or not sure to be under it: dial progressively.

        The last hour is judged by an upper bound on its abandon rate that
        is valid for few answers (:func:`rate_bound`), so the guard acts
        from a campaign's first calls: two abandons in ten live answers stop
        predictive dialing, no abandon in three does not.  A fixed
        threshold of 200 answers left the first hours of a small blended
        campaign unguarded.

        The regulatory windows (the day, 30 days) are judged by their
        counted rate, the figure the regulator takes, against a volume of
        at least what the last hour projects (:meth:`_day_at_cap`): the λ
        feedback keeps their rate at the budget, the guard is the backstop
        at the cap.  Judging them by the bound too stopped predictive
        dialing for a third of a 50-agent campaign's first hour (about 1 %
        of the day's occupancy) over abandons that the rest of the day
        absorbs; the hour, whose 5 % a short run of bad luck can break, is
        where the bound binds.

        The bound judges the hour only while the day is young
        (:meth:`_young_day`): then the hour's abandons are the day's, whose
        figure is the 3 % of the regulator and of the demo's own report.
        Later an hour only has to stay under 5 %, and it is judged by its
        counts (:meth:`_hour_at_risk`): with ten blended agents the bound
        held after three abandons in an hour of 130 answers (2.3 %) until
        one of them left the hour, up to a quarter of the day.

        One abandon does not stop the young day's pacing, it makes it wary
        (``_wary``: λ at most ``wary_lam``, 0.3 %, and frozen); two stop it
        (``bound_stops_at``).  The bound is over after one abandon among the
        first dozen answers only because a dozen answers say little, and
        the demo's hour (ten agents, about 110 persons) keeps its 3 % with
        three abandons; stopped, ten blended agents dialed one call per
        ready agent, and fewer while inbound callers came, for 24 minutes
        after such an abandon (seed 4, occupancy 0.795).  Two abandons
        early in the hour still stop it, which is what the assembled
        server's blended hour rests on.  With five agents the hourly rule
        stops pacing after one abandon anyway.

        A large campaign's hour stops later: from 1 % of the answers its
        hour projects (``bound_stop_share``), if that is more than two, but
        never later than two abandons beyond 3 % of the answers it has had;
        it is wary only in the last two abandons before its stop.  Fifty
        agents, all ready at the start, answered 55 persons in their first
        minute, two or three abandoned, and dialed one call per ready agent
        for the next seven minutes (11 % of their first hour) for an hour
        that projects 330 answers and more; ten agents (an hour of at most
        200 answers) keep the stop at two."""
        self._wary = False
        if self._day_at_cap(s.now, ledger):
            return True
        live, abandoned = ledger.counts("1h", s.now)
        if self._young_day(s.now, ledger) and self._over(
            live, abandoned, self.hour_guard, self.hour_confidence
        ):
            stops = min(
                max(self.bound_stops_at, self.bound_stop_share * self._hour_volume),
                self.bound_stops_at + self.limit * live,
            )
            if abandoned >= stops:
                return True
            self._wary = abandoned >= stops - self.bound_stops_at
        return self._hour_at_risk(s.now, ledger)

    def _young_day(self, now: float, ledger: AbandonLedger) -> bool:
        """Does the day hold no more than about an hour's calls?  Its live
        answers at most what the last hour holds or projects: the day's
        first hour, or a day that has barely dialed."""
        day_live, _ = ledger.counts("day", now)
        return day_live <= self._projected_hour(now, ledger) + 1e-9

    def _day_at_cap(self, now: float, ledger: AbandonLedger) -> bool:
        """Is a regulatory window (day, 30 days) at the limit?

        Its counted rate, with the volume taken as at least the last hour's
        projected volume (:meth:`_projected_hour`): the first abandon of a
        day, one of three answers, is not a day at 33 %; the hour's own
        bound judges such a start."""
        hour = self._projected_hour(now, ledger)
        for window in self.windows:
            live, abandoned = ledger.counts(window, now)
            if abandoned > 0 and abandoned >= self.limit * max(live, hour):
                return True
        return False

    def _projected_hour(self, now: float, ledger: AbandonLedger) -> float:
        """The last hour's live answers, scaled to a full hour while less
        than one has passed (at least ten minutes' worth are assumed)."""
        memo = self._hour_memo
        if memo is not None and memo[0] == now and memo[1] is ledger and memo[2] is not None:
            return memo[2]
        live, _ = ledger.counts("1h", now)
        span = ledger.hour_span(now)
        hour = live * 3600.0 / max(span, 600.0) if span < 3600.0 else live
        if memo is not None and memo[0] == now and memo[1] is ledger:
            self._hour_memo = (now, ledger, hour)
        return hour

    def _over(self, live: float, abandoned: float, limit: float, confidence: float) -> bool:
        key = (live, abandoned, limit, confidence)
        cache = self._bound_cache
        hit = cache.get(key)
        if hit is None:
            if len(cache) > 64:
                cache.clear()
            hit = cache[key] = (
                rate_bound(live, abandoned, confidence, self.prior_rate, self.prior_weight) >= limit
            )
        return hit

    def _hour_at_risk(self, now: float, ledger: AbandonLedger) -> bool:
        """Would one more abandon take the last hour past the guard?

        The hour is judged against its projected volume (the calls so far,
        scaled to a full hour while less than one has passed), so that with
        few agents (an hour of 5 agents holds about 80 live answers: 4
        abandons are 5 %) a short run of bad luck stops predictive dialing
        before the worst 60 minutes pass 5 %, while with many agents it only
        acts when the hour really is near the line."""
        live, abandoned = ledger.counts("1h", now)
        if abandoned < 1.0:
            return False
        return abandoned + 1.0 > self.hour_guard * max(live, self._projected_hour(now, ledger))

    def decide(self, s: Snapshot, est: Estimates, ledger: AbandonLedger) -> int:
        # nothing changes the ledger during a decision: its projected hour is
        # worked out once (forgotten after it, for calls from elsewhere)
        self._hour_memo = (s.now, ledger, None)
        try:
            return self._decide(s, est, ledger)
        finally:
            self._hour_memo = None

    def _decide(self, s: Snapshot, est: Estimates, ledger: AbandonLedger) -> int:
        if not self._started and s.agents > 0 and self.start_agents is not None:
            # a campaign starts at λ for twenty agents or fewer, less for
            # more: fifty agents answer 900 persons in their first hour while
            # the feedback is still tuning λ, and at 1 % their first 90
            # minutes ran at 1.9 % (with AMD's estimate the day's 3 %), so the
            # day guard dialed progressively for 50 minutes; few agents learn
            # slowly and keep the start they had.  From 1 % · sqrt(10 / 50)
            # (0.45 %) the start cost fifty agents without inbound a little
            # of their first hour (seed 4: 0.9198); 1 % · sqrt(20 / 50)
            # (0.63 %) keeps both
            self._started = True
            self.lam *= min(1.0, math.sqrt(self.start_agents / s.agents))
        live, _ = ledger.counts("1h", s.now)
        self._hour_volume = max(live, self._projected_hour(s.now, ledger))
        day_live, _ = ledger.counts("day", s.now)
        self._day_volume = max(day_live, self._hour_volume)
        self._progressive = self._guard(s, ledger)
        progressive = max(0, s.ready - s.in_flight - s.waiting)
        if s.agents == 0:
            return progressive
        if self._progressive:
            if s.inbound_rate <= 0 or progressive == 0 or self.clairvoyant is not None:
                return progressive
            # blended agents: one call per ready agent is not safe when an
            # inbound caller may take the agent first; only the calls the
            # model gives (almost) no chance of finding no agent
            return max(self._only_ours(s), min(progressive, self._model_k(s, est, self.lam_min)))
        if self.clairvoyant == "calls" and s.next_need_in is not None:
            return self._clairvoyant_k(s)
        if self._wary:
            return max(self._only_ours(s), self._model_k(s, est, min(self.lam, self.wary_lam)))
        return max(self._only_ours(s), self._model_k(s, est, self.lam))

    @staticmethod
    def _only_ours(s: Snapshot) -> int:
        """The calls that cannot be abandoned: one per ready agent no inbound
        caller or other campaign can take (logged in to no queue but this
        campaign's), less every call in flight and every person waiting
        (each may need one of them), within the line limit.

        The model counts inbound arrivals against every ready agent, and with
        two blended agents busy it left an outbound-only one idle for minutes
        (QA4 finding 2); progressive would have dialed her with no risk.
        The normal approximation charged such a call even without inbound:
        one agent ready, two talking 14 s, nothing in flight gave the first
        call P_ab 1.03 % with a 2 s connect window (the exact model: 0), so
        the longer window, with more agents free in time, placed nothing
        where the shorter placed one.  A blended agent is left to the model
        whatever inbound's learnt rate says: that rate is 0 until the first
        inbound call and after half an hour without one, and the next caller
        is routed ahead of the campaign (found in review)."""
        ours = min(s.ready_only_ours, s.ready)
        return max(0, min(ours - s.in_flight - s.waiting, s.room))

    def _model_k(self, s: Snapshot, est: Estimates, lam: float) -> int:
        """The largest number of new calls each with P_ab <= ``lam``."""
        t = est.tables()
        c = self.connect_window
        w = t.window(c)
        if not w.some_need:
            return 0
        most = max(1, min(self.max_burst, s.room))
        terms = len(s.talking) + len(s.wrapping) + len(s.ringing) + len(s.verdicts)
        if self.clairvoyant is None and terms <= self.exact_terms:
            return self._search(exact_abandon_chances(s, t, w, c), most, lam)
        n = len(w.new_call)
        # supply by h + c: agents ready, plus those whose talk and wrap-up end by then;
        # demand by h from the calls already placed
        if self.clairvoyant is not None and s.agent_free_in is not None:
            mv = w.supply_demand(EMPTY, EMPTY, s.ringing, s.verdicts)
            free_by = (s.agent_free_in[:, None] <= HORIZONS[None, :n] + c).sum(axis=0)
            mv[0] = 0.0
            mv[0, :n] = free_by
        else:
            mv = supply_demand_with_timers(s, w)
        # D(h) + 1/2 - S(h) and its variance
        base = (mv[1, :n] - mv[0, :n]) + (s.waiting + 0.5 - s.ready)
        var = mv[0, n:] + mv[1, n:]
        if s.inbound_rate > 0:
            # inbound arrivals by h + c take agents first: Poisson, mean = variance
            arrivals = inbound_means(s.inbound_rate, c, n)
            base = base + arrivals
            var = var + arrivals
        return self._largest_k(base, var, w, most, lam)

    def _largest_k(
        self, base: np.ndarray, var: np.ndarray, w: Window, most: int, lam: float
    ) -> int:
        """The search with P_ab from the normal approximation (many agents)."""
        # the first call alone, in few steps: three decisions in four place nothing
        first = ndtr(base / np.sqrt(np.maximum(var, 0.01))) @ w.need_weights
        if first > lam:
            return 0
        if most == 1:
            return 1

        def p_abandon(ks: np.ndarray) -> np.ndarray:
            before = (ks - 1.0)[:, None]  # new calls placed before the k-th
            sd = np.sqrt(np.maximum(var + before * w.spread, 0.01))
            # scipy's ndtr is untyped: the product is an array all the same
            p: np.ndarray = ndtr((base + before * w.new_call) / sd) @ w.need_weights
            return p

        return self._search(p_abandon, most, lam, done=1)

    def _search(
        self,
        p_abandon: Callable[[np.ndarray], np.ndarray],
        most: int,
        lam: float,
        done: int = 0,
    ) -> int:
        """The largest k <= ``most`` with P_ab(k) <= lambda (P_ab grows with k).

        P_ab is evaluated for several k at once, in growing chunks: k = 1
        alone (three decisions in four place nothing), then k = 2..8, which
        holds nearly every other answer, then the rest.  ``done``: the k
        already known to pass."""
        for chunk_end in (1, FIRST_KS, most):
            stop = min(chunk_end, most)
            if stop <= done:
                continue
            over = p_abandon(np.arange(done + 1.0, stop + 1.0)) > lam
            if over.any():
                return done + int(over.argmax())
            done = stop
        return done

    def _clairvoyant_k(self, s: Snapshot) -> int:
        """Each call's need time and each agent's free time are known: dial
        the next records (in hopper order) while every call that will need an
        agent still gets one within the connect limit.

        That holds when the needs, sorted, can be paired with the agents'
        free times, sorted, such that the i-th agent is free by the i-th need
        plus the limit (Hall's condition for deadlines).  An agent serves one
        of these calls at most: the next need comes within seconds, a
        conversation with its wrap-up lasts longer.  Times are compared
        exactly, not on the pacing grid (rounding to whole seconds let calls
        through that missed their agent by a fraction of a second)."""
        assert s.next_need_in is not None and s.agent_free_in is not None
        assert s.call_need_in is not None
        c = self.connect_window
        free = np.sort(np.concatenate([np.zeros(s.ready), s.agent_free_in]))
        needs = sorted([0.0] * s.waiting + [x for x in s.call_need_in.tolist() if x != math.inf])

        def feasible(trial: list[float]) -> bool:
            if len(trial) > len(free):
                return False
            return bool(np.all(free[: len(trial)] <= np.asarray(trial) + c))

        upcoming = s.next_need_in(min(self.max_burst, s.room))
        for k, tau in enumerate(upcoming.tolist()):
            if tau == math.inf:
                continue  # never needs an agent (machine, busy, no answer...)
            trial = sorted([*needs, tau])
            if not feasible(trial):
                return k
            needs = trial
        return len(upcoming)


def wrap_free_by(
    s: Snapshot, t: Tables, c: float, n: int, learned: np.ndarray | None = None
) -> np.ndarray:
    """P(free by h + c) per wrapping agent (rows) and horizon h (columns).

    What the campaign has learned of its agents' after-call work (how often
    they end it early), and certainty once the wrap-up's own end is reached:
    the router ends it then (``wrap_up`` of the campaign).  A new campaign's
    estimates start from its configured ``wrap_up`` (see
    :func:`estimates_for`), so an agent just into a 120 s wrap-up is not
    counted on before it is free.  ``learned``: that first part, when the
    caller has it already (the normal approximation needs both)."""
    p = columns(Tables.rows(t.wrap, s.wrapping), c, n) if learned is None else learned
    if len(s.wrap_left) != len(s.wrapping) or not len(p):
        return p
    done: np.ndarray = np.maximum(p, s.wrap_left[:, None] <= HORIZONS[None, :n] + c)
    return done


def supply_demand_with_timers(s: Snapshot, w: Window) -> np.ndarray:
    """The window's ``[supply, demand]`` sums (:meth:`Window.supply_demand`)
    for ``s``, with each wrap-up that ends by its timer within the window
    free by then for sure: the learned rows give way to
    :func:`wrap_free_by`'s, means and variances.

    Only the agents whose timer ends by the window's last horizon are
    corrected: every other agent's difference is an exact zero (``p - p``,
    ``v - v`` on the same numbers), and adding a zero leaves each partial
    sum as it was, so the sums over those agents alone are those over all
    of them, to the bit (pinned by a test).  In seven decisions in ten of a
    fifty-agent day no timer ends within the window, and nothing is
    computed for it."""
    mv, learned = w.gather(s.talking, s.wrapping, s.ringing, s.verdicts)
    if not len(s.wrap_left) or len(s.wrap_left) != len(s.wrapping):
        return mv  # no timers known: the learned rows stand (see wrap_free_by)
    reach = w.reach
    ending = (s.wrap_left <= reach[-1]).nonzero()[0]
    if len(ending):
        n = len(reach)
        rows = learned[ending]
        table = rows[:, :n]
        sure = np.maximum(table, s.wrap_left[ending, None] <= reach[None, :])
        mv[0, :n] += (sure - table).sum(axis=0)
        mv[0, n:] += (sure * (1.0 - sure) - rows[:, n:]).sum(axis=0)
    return mv


def estimates_for(settings: CampaignSettings) -> Estimates:
    """A campaign's estimates before its own calls teach it: ring and AMD
    from its settings, and after-call work as long as its ``wrap_up`` (the
    longest an agent may take; agents who end it sooner teach the estimates
    so).  The default prior (20 s) let the pacer dial for agents who had two
    minutes of wrap-up left."""
    return Estimates(
        ring_timeout=settings.ring_timeout,
        amd_delay=settings.amd_delay if settings.amd else 0.0,
        priors=Priors(wrap_mean=max(1.0, settings.wrap_up)),
    )


def rate_bound(
    live: float, abandoned: float, confidence: float, prior_rate: float, prior_weight: float
) -> float:
    """Upper bound on a window's abandon rate, valid for small samples.

    The ``confidence`` quantile of the Beta posterior of the rate after
    ``abandoned`` of ``live`` answers, from a Beta prior with mean
    ``prior_rate`` worth ``prior_weight`` answers (a campaign is believed to
    be under the cap until its calls say otherwise).  With many answers it
    is the measured rate; with few, one or two abandons weigh what they
    should: 0 of 3 gives 2.3 %, 2 of 10 gives 11 %, 1 of 50 gives 2.9 %
    (defaults).  Monotonic: more abandons at the same volume never lower it.
    The ledger's counts are fractional (AMD's estimated misreads), which the
    Beta distribution takes as they are."""
    a = prior_rate * prior_weight + max(0.0, abandoned)
    b = (1.0 - prior_rate) * prior_weight + max(0.0, live - abandoned)
    return float(betaincinv(a, b, confidence))


def inbound_means(rate: float, c: float, n: int) -> np.ndarray:
    """Expected inbound arrivals that take an agent before a call of ours
    needing one at horizon h can have it: those by h + c (per horizon)."""
    return rate * (HORIZONS[:n] + c)


def with_poisson(pmf: np.ndarray, means: np.ndarray) -> np.ndarray:
    """``pmf`` (horizons × counts) convolved with a Poisson count per horizon."""
    top = float(means.max())
    m = math.ceil(top + 8.0 * math.sqrt(top) + 2.0)
    j = np.arange(m + 1.0)
    # Poisson pmf per horizon (rows) and count (columns), by its recurrence
    pois = np.exp(-means)[:, None] * np.cumprod(
        np.concatenate([np.ones((len(means), 1)), means[:, None] / j[None, 1:]], axis=1), axis=1
    )
    out = np.zeros((pmf.shape[0], pmf.shape[1] + m))
    width = pmf.shape[1]
    for k in range(m + 1):
        out[:, k : k + width] += pmf * pois[:, k : k + 1]
    return out


def poisson_binomial(p: np.ndarray) -> np.ndarray:
    """Distribution of a sum of independent Bernoulli variables, per column.

    ``p`` is (terms, horizons); the result is (horizons, terms + 1), row h
    the probabilities of 0..terms successes at horizon h."""
    terms, horizons = p.shape
    pmf = np.zeros((horizons, terms + 1))
    pmf[:, 0] = 1.0
    for i in range(terms):
        q = p[i][:, None]
        head = pmf[:, : i + 1]
        moved = head * q
        pmf[:, : i + 1] = head - moved
        pmf[:, 1 : i + 2] += moved
    return pmf


def exact_abandon_chances(
    s: Snapshot, t: Tables, w: Window, c: float
) -> Callable[[np.ndarray], np.ndarray]:
    """P_ab(k) for given k, from the exact distributions (see ``docs/pacing.md``).

    At horizon h the k-th new call finds no agent when
    ``D(h) + K + U(h) >= ready + busy``, where D counts the placed calls
    needing an agent by h, U the busy agents not free by h + c, and
    K ~ Binomial(k - 1, new_call(h)) the new calls placed before it.  D and U
    are sums of independent Bernoulli variables: their distribution is built
    term by term (vectorised over the horizons), and the binomial tail comes
    from ``bdtrc``.  With five agents and a few calls in flight the normal
    approximation puts the far tail (P_ab around 0.001-0.01, where lambda
    lives) 10-40 % too low."""
    n = len(w.new_call)
    rows = [
        Tables.rows(t.ring, s.ringing)[:, :n],
        (s.verdicts[:, None] <= HORIZONS[None, :n]) * t.p_human_given_answer,
        1.0 - columns(Tables.rows(t.talk, s.talking), c, n),
        1.0 - wrap_free_by(s, t, c, n),
    ]
    pmf = poisson_binomial(np.concatenate(rows))  # (n, terms + 1)
    if s.inbound_rate > 0:
        pmf = with_poisson(pmf, inbound_means(s.inbound_rate, c, n))
    # new calls before this one that must need an agent for it to be abandoned,
    # when D + U = x
    short = (s.ready + len(s.talking) + len(s.wrapping) - s.waiting) - np.arange(pmf.shape[1])
    need = short[None, None, :]

    def p_abandon(ks: np.ndarray) -> np.ndarray:
        trials = (ks - 1.0).astype(np.int64)[:, None, None]  # bdtrc wants integers
        tail = np.where(
            need <= 0,
            1.0,
            np.where(
                need > trials,
                0.0,
                bdtrc(np.maximum(need - 1, 0), trials, w.new_call[None, :, None]),
            ),
        )
        p: np.ndarray = (tail * pmf[None, :, :]).sum(axis=2) @ w.need_weights
        return p

    return p_abandon


def make_strategy(
    name: str,
    *,
    limit: float = 0.03,
    amd_false_positive: float = 0.0,
    connect_window: float = DEFAULT_WINDOW,
) -> Strategy:
    """A strategy from its ``--strategy`` name (``ratio:X`` with a number X)."""
    if name == "progressive":
        return Progressive()
    if name.startswith("ratio:"):
        try:
            ratio = float(name.split(":", 1)[1])
        except ValueError:
            raise PacingError(
                "strategy", f"{name!r}: ratio must be a number, e.g. ratio:2"
            ) from None
        return Power(ratio, limit=limit)
    if name == "vicidial":
        return VicidialAdaptive(target=limit)
    if name in ("predictive", "oracle-agents", "oracle-calls"):
        return Predictive(
            limit=limit,
            amd_false_positive=amd_false_positive,
            connect_window=connect_window,
            clairvoyant={"oracle-agents": "agents", "oracle-calls": "calls"}.get(name),
        )
    raise PacingError("strategy", f"unknown strategy {name!r} (one of {', '.join(STRATEGIES)})")


def strategy_for(settings: CampaignSettings) -> Strategy:
    """The strategy a campaign's dial mode asks for, with the campaign's limits.

    Preview campaigns are paced by their agents (nothing is dialed for them)."""
    if settings.mode in (DialMode.PROGRESSIVE, DialMode.PREVIEW):
        return Progressive()
    if settings.mode == DialMode.POWER:
        return Power(settings.power_ratio, settings.abandon_target, settings.windows)
    return Predictive(
        limit=settings.abandon_target,
        amd_false_positive=settings.amd_false_positive,
        connect_window=pacing_window(settings),
        windows=settings.windows,
    )
