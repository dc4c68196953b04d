"""The pacing lab's models: what ``dirigent sim dialer`` simulates around a
real campaign runner (wired in :mod:`dirigent.lab`, the lab's composition
root), and the report it makes of a run.

The runner, its pacing strategy and a router of the lab's own drive the
in-process simulated PBX (:class:`sim.inprocess.SimTelephony`) on a
:class:`sim.clock.HeapClock`: hours of a campaign run in seconds, and every
strategy meets the same customers (a call's fate depends on the seed and the
number only; :class:`SimLeads` gives the records in the same order).  Agents
are nailed up; simulated agents end their wrap-up after a time drawn from the
workload, also per customer (:func:`wrap_time`).

With an ``[inbound]`` table in the workload, inbound callers arrive
(Poisson) into a second queue that the same agents are logged in to, routed
by the same router ahead of the campaign (:class:`InboundSim`, through the
lab's :class:`sim.desk.RouterDesk`): the blend of the assembled server, where
a campaign yields agents to inbound queues whose service level is at risk.
The report then gives the inbound service level, speed of answer and
abandons beside the outbound figures.

The report (:func:`report`) is computed from ground truth, not from what the
dialer believes: a "live" answer is a call whose far end is a person, and
persons that AMD took for machines count as abandoned, as the workload says.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from dialer.campaign import Lead
from dialer.runner import Attempt, CampaignRunner, MemoryAttemptLog
from routing.agent import AgentState
from routing.model import Channel, Direction, Interaction, Offer
from sim.clock import HeapClock
from sim.desk import RouterDesk
from sim.fates import CallFate, call_rng
from sim.pbx import SimPbx
from sim.workload import Inbound, Workload

CAMPAIGN = "sim"
INBOUND = "sim-inbound"
#: the inbound service level is judged over this window for the yield rule
SL_WINDOW = 1800.0
FIRST_EXTENSION = 1001
#: an agent connected to an answering machine AMD missed recognises its greeting
#: and gives the "machine" disposition this long after the connection (the
#: workload's machine hangs up after ``undetected_machine_talk``, 6 s)
MACHINE_HEARD = 3.0
#: power ratios of ``--strategy all``
ALL_RATIOS = (1.5, 2.0, 3.0)
#: the simulated campaign's ``wrap_up`` limit is set as an operator would set
#: it: at this quantile of the workload's after-call work (few agents reach it)
WRAP_UP_QUANTILE = 0.99


def wrap_up_limit(workload: Workload) -> float:
    """The campaign's ``wrap_up`` for a workload: the longest after-call work
    an operator would allow, the 99th percentile of the workload's wrap-up
    times rounded up to 5 s (60 s for the standard workload's 25 s ± 10 s).

    The server paces a new campaign from priors built on its ``wrap_up``
    (:func:`dialer.pacing.estimates_for`); the simulation builds its runner
    the same way, so it has to configure the limit as a campaign would.  A
    limit of 600 s made those priors ten minutes of after-call work."""
    rng = random.Random("wrap-up-limit")
    samples = sorted(workload.wrapup.sample(rng) for _ in range(4000))
    top = samples[min(len(samples) - 1, int(WRAP_UP_QUANTILE * len(samples)))]
    return max(5.0, 5.0 * math.ceil(top / 5.0))


def all_strategies() -> list[str]:
    return [
        "progressive",
        *(f"ratio:{r:g}" for r in ALL_RATIOS),
        "vicidial",
        "predictive",
        "oracle-agents",
        "oracle-calls",
    ]


class SimLeads:
    """An endless list: record i has number +4930 9 i (fresh customers, in order)."""

    def __init__(self) -> None:
        self.next = 0
        self.done_count = 0

    @staticmethod
    def number(i: int) -> str:
        return f"+49309{i:08d}"

    def take(self, n: int, now: float) -> list[Lead]:
        leads = [Lead(i, self.number(i)) for i in range(self.next, self.next + n)]
        self.next += n
        return leads

    def done(self, lead: Lead, outcome: str, now: float) -> None:
        self.done_count += 1

    def empty_reason(self, now: float) -> str:
        return "list exhausted"


def _dialed(number: str) -> str:
    """The number as the trunk dial string carries it (and the PBX draws fates by)."""
    return number.lstrip("+")


def wrap_time(workload: Workload, seed: int, number: str) -> float:
    """After-call work for this customer's call (same for every strategy)."""
    return workload.wrapup.sample(call_rng(seed, f"{number}#wrap", 0))


class SimOracle:
    """What the clairvoyant bounds know: the simulator's ground truth."""

    def __init__(self, pbx: SimPbx, leads: SimLeads, seed: int) -> None:
        self.pbx = pbx
        self.leads = leads
        self.seed = seed
        self.free_at: dict[str, float] = {}  # agent -> when talk + wrap end
        self._cache: dict[int, float] = {}  # record index -> need time after dial
        self._cache_phase = 0

    def agent_free_in(self, runner: CampaignRunner, agent: str, now: float) -> float:
        a = runner.desk.known_agent(agent)
        for item in a.work.values():
            attempt = runner.live.get(item.interaction)
            if attempt is not None and attempt.connected is None:
                # being connected right now: busy for this customer's talk and wrap-up
                return self.handle_time(attempt)
        at = self.free_at.get(agent)
        return max(0.0, at - now) if at is not None else 0.0

    def handle_time(self, attempt: Attempt) -> float:
        fate = (self.pbx.fate_log or {}).get(attempt.channel_id) or self.pbx.peek_fate(
            _dialed(attempt.lead.number)
        )
        w = self.pbx.workload_at(self.pbx.now())
        talk = (
            w.amd.undetected_machine_talk
            if fate is not None and fate.outcome == "machine"
            else (fate.talk if fate else 0.0)
        )
        return talk + wrap_time(w, self.seed, attempt.lead.number)

    def _need_after_dial(self, fate: CallFate) -> float:
        w = self.pbx.workload_at(self.pbx.now())
        if fate.outcome not in ("live", "machine") or fate.ring >= w.timeouts.no_answer:
            return math.inf
        if fate.amd_says_machine:
            return math.inf
        return fate.ring + w.amd.delay

    def call_need_in(self, runner: CampaignRunner, attempt: Attempt, now: float) -> float:
        fate = (self.pbx.fate_log or {}).get(attempt.channel_id)
        if fate is None:  # dialed this instant: the PBX has not drawn it yet
            fate = self.pbx.peek_fate(_dialed(attempt.lead.number))
        return max(0.0, attempt.started + self._need_after_dial(fate) - now)

    def next_need_in(self, runner: CampaignRunner, n: int, now: float) -> np.ndarray:
        start = self.leads.next
        phase = sum(1 for p in self.pbx.workload.phases if p.start <= self.pbx.now())
        if phase != self._cache_phase:
            self._cache, self._cache_phase = {}, phase
        out = np.empty(n)
        for k, i in enumerate(range(start, start + n)):
            need = self._cache.get(i)
            if need is None:
                fate = self.pbx.peek_fate(_dialed(SimLeads.number(i)))
                need = self._cache[i] = self._need_after_dial(fate)
            out[k] = need
        for old in [i for i in self._cache if i < start]:
            del self._cache[old]
        return out


class InboundSim:
    """Inbound callers into the campaign's agents, in virtual time.

    Callers arrive as a Poisson process (the same arrival times and callers
    for every strategy: drawn from the seed only) into the ``INBOUND`` queue,
    which every agent is logged in to beside the campaign and which is
    routed ahead of it (its ``priority``).  A simulated agent answers an
    offer at once, talks for the caller's handle time and wraps up for the
    caller's wrap-up time.  A caller with ``patience`` hangs up after it if
    still waiting.  :meth:`needed` is the rule the assembled server uses to
    make a campaign yield agents (``center.hub.Hub.agents_needed_inbound``): one
    agent per waiting caller, plus one while the service level over the last
    30 minutes is below target; free agents first, then those in wrap-up."""

    def __init__(
        self,
        spec: Inbound,
        workload: Workload,
        clock: HeapClock,
        desk: RouterDesk,
        agents: int,
        seed: int,
        wrap_up_limit: float,
    ) -> None:
        self.spec = spec
        self.clock = clock
        self.desk = desk
        self.seed = seed
        self.wrap_up_limit = wrap_up_limit
        self.rate = spec.rate(agents, workload.wrapup)
        self.wrapup = spec.wrapup or workload.wrapup
        self._arrivals = random.Random(f"{seed}:inbound-arrivals")
        self._n = 0
        self.route: Callable[[list[Offer]], None] = lambda offers: None
        self.end_wrap_up: Callable[[str], None] = lambda agent: None
        self.arrived: dict[str, float] = {}  # caller -> arrival (still waiting)
        self.waits: list[float] = []  # answered callers' waits
        self.abandon_waits: list[float] = []
        self.handle_seconds = 0.0
        self.answers: deque[tuple[float, float]] = deque()  # (answered at, wait), 30 min
        self._low: tuple[float, bool] = (-1.0, False)
        self._start = 0.0
        self._end = math.inf

    def start(self, at: float, end: float) -> None:
        self._start, self._end = at, end
        if self.rate > 0:
            self._next()

    def _next(self) -> None:
        gap = self._arrivals.expovariate(self.rate)
        if self.clock.seconds() + gap < self._end:
            self.clock.callLater(gap, self._arrive)

    def _rng(self, caller: str, what: str) -> random.Random:
        return call_rng(self.seed, f"{caller}#{what}", 0)

    def _arrive(self) -> None:
        now = self.clock.seconds()
        self._n += 1
        caller = f"in-{self._n}"
        self.arrived[caller] = now
        if self.spec.patience is not None:
            patience = self.spec.patience.sample(self._rng(caller, "patience"))
            self.clock.callLater(patience, self._give_up, caller)
        it = Interaction(caller, Channel.VOICE, INBOUND, now, direction=Direction.INBOUND)
        self.route(self.desk.queue_owned(it, now))
        self._next()

    def _give_up(self, caller: str) -> None:
        if caller not in self.arrived or not self.desk.is_waiting(caller):
            return
        now = self.clock.seconds()
        self.desk.abandon(caller, now)
        self.abandon_waits.append(now - self.arrived.pop(caller))

    def offers(self, offers: list[Offer]) -> None:
        """Offers of inbound callers (the runner hands over what is not its own)."""
        for offer in offers:
            caller = offer.interaction
            if caller not in self.arrived or self.desk.offered_to(caller) is None:
                continue
            now = self.clock.seconds()
            self.desk.accept_offer(offer.agent, caller, now)
            wait = now - self.arrived.pop(caller)
            self.waits.append(wait)
            self.answers.append((now, wait))
            handle = self.spec.handle.sample(self._rng(caller, "handle"))
            self.handle_seconds += handle
            self.clock.callLater(handle, self._hang_up, offer.agent, caller)

    def _hang_up(self, agent: str, caller: str) -> None:
        now = self.clock.seconds()
        self.route(self.desk.agent_finishes(agent, caller, now, self.wrap_up_limit))
        wrap = self.wrapup.sample(self._rng(caller, "wrap"))
        self.clock.callLater(wrap, self.end_wrap_up, agent)

    def _service_low(self, now: float) -> bool:
        at, low = self._low
        if now - at < 1.0:
            return low  # once a second, like the ACD's tick
        while self.answers and self.answers[0][0] < now - SL_WINDOW:
            self.answers.popleft()
        within = sum(w <= self.spec.service_seconds for _, w in self.answers)
        low = bool(self.answers) and within / len(self.answers) < self.spec.service_level
        self._low = (now, low)
        return low

    def needed(self, now: float) -> set[str]:
        """Blended agents the inbound queue needs now (the campaign yields them)."""
        want = sum(1 for c in self.arrived if self.desk.is_waiting(c)) + self._service_low(now)
        if want == 0:
            return set()
        order = {AgentState.READY: 0, AgentState.WRAP_UP: 1}
        members = sorted(
            (a for a in self.desk.agents() if a.logged_in and INBOUND in a.queues),
            key=lambda a: (order.get(a.state, 2), a.id),
        )
        return {a.id for a in members[:want]}

    def report(self) -> dict[str, Any]:
        target = self.spec.service_seconds
        answered = len(self.waits)
        gave_up = len(self.abandon_waits)
        offered = answered + gave_up
        within = sum(w <= target for w in self.waits)
        return {
            "inbound_calls": self._n,
            "inbound_answered": answered,
            "inbound_abandoned": gave_up,
            "inbound_abandon_rate": round(gave_up / offered, 4) if offered else 0.0,
            # answered within the target, of the callers who were answered or hung up
            "inbound_service_level": round(within / offered, 4) if offered else None,
            "inbound_service_target": f"{self.spec.service_level:.0%} in {target:g} s",
            "inbound_asa": round(sum(self.waits) / answered, 2) if answered else None,
            "inbound_wait_p95": round(float(np.percentile(self.waits, 95)), 2)
            if answered
            else None,
            "inbound_offered_erlangs": round(
                self.rate * (self.spec.handle.expected + self.wrapup.expected), 2
            ),
        }


def report(
    runner: CampaignRunner,
    log: MemoryAttemptLog,
    desk: RouterDesk,
    pbx: SimPbx,
    ids: list[str],
    start: float,
    end: float,
) -> dict[str, Any]:
    logged = talk = wrap = 0.0
    idle_waits: list[float] = []
    for agent_id in ids:
        agent = desk.known_agent(agent_id)
        t = agent.time_in_state(start, end)
        logged += sum(v for k, v in t.items() if k is not AgentState.LOGGED_OUT)
        talk += t[AgentState.BUSY]
        wrap += t[AgentState.WRAP_UP]
        history = agent.history
        for i, tr in enumerate(history[:-1]):
            if tr.state is AgentState.READY and tr.at >= start:
                idle_waits.append(history[i + 1].at - tr.at)
    fates = pbx.fate_log or {}
    attempts = [a for a in log.attempts.values() if a.started < end]
    live_events: list[tuple[float, bool]] = []  # (answer time, abandoned?)
    connects = 0
    for a in attempts:
        fate = fates.get(a.channel_id)
        if fate is None or fate.outcome != "live" or a.answered is None:
            continue
        # a person AMD took for a machine was hung up on: abandoned, as the law counts it
        live_events.append((a.answered, a.abandoned or a.verdict == "machine"))
        connects += a.connected is not None
    lives = len(live_events)
    ledger_live, ledger_abandoned = runner.ledger.counts("30d", end)
    abandoned = sum(1 for _, ab in live_events if ab)
    worst = _worst_hour(live_events, start, end)
    duration = end - start
    waits = np.asarray(idle_waits) if idle_waits else np.zeros(1)
    return {
        "strategy": runner.strategy.name,
        "agents": len(ids),
        "hours": round(duration / 3600.0, 3),
        "occupancy": round((talk + wrap) / logged, 4) if logged else 0.0,
        "talk_utilization": round(talk / logged, 4) if logged else 0.0,
        "talk_minutes_per_agent_hour": round(60.0 * talk / logged, 2) if logged else 0.0,
        "abandon_rate": round(abandoned / lives, 4) if lives else 0.0,
        "worst_hour_abandon_rate": round(worst, 4),
        "idle_wait_mean": round(float(waits.mean()), 2),
        "idle_wait_p95": round(float(np.percentile(waits, 95)), 2),
        "dials": runner.stats.dials,
        "live_answers": lives,
        "abandoned": abandoned,
        "live_connects": connects,
        # what the dialer itself counted (its ledger: connections, abandons and
        # AMD's estimated misreads), beside the ground truth above
        "ledger_live_answers": round(ledger_live, 6),
        "ledger_abandon_rate": round(ledger_abandoned / ledger_live, 4) if ledger_live else 0.0,
        "ledger_human_verdicts": sum(1 for a in log.attempts.values() if a.verdict == "human"),
        "dials_per_live_connect": round(runner.stats.dials / connects, 3) if connects else None,
        "lines_in_use_mean": round(runner.stats.line_seconds / duration, 2) if duration else 0.0,
        "lines_in_use_peak": runner.stats.peak_lines,
    }


def _worst_hour(events: list[tuple[float, bool]], start: float, end: float) -> float:
    """The highest abandon rate over any full 60-minute window (1-minute steps)."""
    if not events:
        return 0.0
    times = np.asarray([t for t, _ in events])
    flags = np.asarray([1.0 if ab else 0.0 for _, ab in events])
    order = np.argsort(times)
    times, flags = times[order], flags[order]
    cum = np.concatenate([[0.0], np.cumsum(flags)])
    if end - start <= 3600.0:
        return float(flags.sum() / len(flags))
    worst = 0.0
    for lo in np.arange(start, end - 3600.0 + 1e-9, 60.0):
        i, j = np.searchsorted(times, lo), np.searchsorted(times, lo + 3600.0)
        if j > i:
            worst = max(worst, float((cum[j] - cum[i]) / (j - i)))
    return worst


def format_line(r: dict[str, Any]) -> str:
    return (
        f"{r['strategy']:>14}  agents {r['agents']:>4}  occupancy {r['occupancy']:.3f}"
        f"  abandon {r['abandon_rate']:.2%} (worst hour {r['worst_hour_abandon_rate']:.2%})"
        f"  idle wait {r['idle_wait_mean']:.1f} s (p95 {r['idle_wait_p95']:.1f})"
        f"  dials/connect {r['dials_per_live_connect']}  lines {r['lines_in_use_mean']:.1f}"
        f"  [{r['wall_seconds']:.1f} s]"
        + (
            f"\n{'':>14}  inbound {r['inbound_answered']} answered,"
            f" service level {r['inbound_service_level'] or 0:.1%}"
            f" (target {r['inbound_service_target']}), ASA {r['inbound_asa'] or 0:.1f} s,"
            f" abandoned {r['inbound_abandoned']} ({r['inbound_abandon_rate']:.1%})"
            if "inbound_calls" in r
            else ""
        )
    )


def plot(results: dict[int, dict[str, dict[str, Any]]], path: str, limit: float) -> None:
    """Occupancy against abandon rate, one point per strategy and agent count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    names = sorted({name for per in results.values() for name in per})
    for name in names:
        points = sorted(
            (n, per[name]["abandon_rate"], per[name]["occupancy"])
            for n, per in results.items()
            if name in per
        )
        xs = [100 * p[1] for p in points]
        ys = [p[2] for p in points]
        ax.plot(xs, ys, marker="o", label=name)
        for n, x, y in zip((p[0] for p in points), xs, ys, strict=True):
            ax.annotate(str(n), (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7)
    ax.axvline(100 * limit, color="red", linestyle="--", linewidth=1, label="abandon limit")
    ax.set_xlabel("abandon rate (% of live answers)")
    ax.set_ylabel("agent occupancy ((talk + wrap) / logged in)")
    ax.set_title("Pacing strategies (labels: agents)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
