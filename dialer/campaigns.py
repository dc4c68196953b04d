"""The outbound channel: the configured campaigns, each a runner, and their controls.

This is where a pure :class:`~dialer.runner.CampaignRunner` meets the rest
of the server, through ports:

* its records, attempts, abandon ledger and campaign row live behind a
  :class:`~dialer.ports.CampaignStore` (the database's is
  :class:`store.dialer.DbCampaignStore`, wired in by ``dirigent.service``);
  a ledger is shared by the campaigns of one drop-rate group and counts in
  the campaign's local day;
* it shares the hub's router and its PBX's link: each runner is a channel
  adapter of the hub (``center=``), owning the persons its campaign reached;
  the hub ticks the router, publishes every screen pop and hands each offer
  to the adapter owning its interaction; blended agents that an inbound
  queue needs are not counted by the pacing (``hub.agents_needed_inbound``);
* after the first resync of a PBX, its campaigns' attempts a previous run
  left open are closed as "unknown", records claimed but never dialed are
  returned, and campaigns that were running (or ``auto_start``) start again;
* controls (start, pause, stop, live setting changes) are kept by the
  store, and live figures go to Prometheus and to the event bus
  (``CampaignFigures``, for supervisors).

The store does its work off the reactor thread, in the order asked (the
attempt row committed before its Originate is sent); only the start-up
(:class:`Campaigns`' constructor, before the reactor serves anything) reads
and writes directly.  Time is the ``clock`` given (the reactor, or a
``ScaledClock`` in tests), for the runners and for the figures alike.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import zoneinfo
from collections import Counter as Tally
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from center.hub import Hub
from core.bus import EventBus
from core.errors import Conflict, Invalid, NotFound, Unavailable
from core.events import (
    CampaignFigures,
    CampaignView,
    Channel,
    Direction,
    InteractionChanged,
    PreviewShown,
    Stage,
)
from core.telephony import PbxSynced, Telephony, TelephonyEvent
from dialer.abandon import WINDOWS, AbandonLedger
from dialer.campaign import LIVE_SETTINGS, CampaignError, CampaignSettings, CampaignSetup
from dialer.compliance import Verdict
from dialer.pacing import estimates_for
from dialer.ports import CampaignAttempts, CampaignStore, Hopper, RecordCounts
from dialer.runner import (
    PBX_LOST,
    SERVER_RESTART,
    Attempt,
    AttemptNews,
    CampaignRunner,
    CampaignStatus,
)
from routing.agent import AgentState

log = Logger(namespace="dirigent.campaigns")

RECORD_STATUSES = ("new", "scheduled", "dialing", "completed", "closed")
#: how often a stop's drain looks at the lines still in progress (seconds)
DRAIN_POLL = 0.1
#: a line's bound in a stop's drain: its ring timeout, AMD's analysis and the
#: connect limit from its dial, plus this for the PBX's answers to arrive
DRAIN_MARGIN = 3.0
#: set in the campaign row once someone started, paused or stopped it
CONTROLLED = "_controlled"


def local_day_start(timezone: str) -> Callable[[float], float]:
    """Start of the local calendar day (epoch seconds) in ``timezone``."""
    zone = zoneinfo.ZoneInfo(timezone)

    def start(now: float) -> float:
        local = dt.datetime.fromtimestamp(now, zone)
        return local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()

    return start


class DialerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.calls = Counter(
            "dirigent_dialer_calls",
            "Dial attempts by final outcome",
            ["campaign", "outcome"],
            registry=registry,
        )
        self.refused = Counter(
            "dirigent_dialer_refused",
            "Records the compliance gate refused at the moment of their dial (not dialed)",
            ["campaign", "check"],
            registry=registry,
        )
        self.abandon = Gauge(
            "dirigent_dialer_abandon_ratio",
            "Abandoned / live-answered calls over the window (AMD estimate included)",
            ["campaign", "window"],
            registry=registry,
        )
        self.lines = Gauge(
            "dirigent_dialer_lines_in_use",
            "Outbound calls in progress",
            ["campaign"],
            registry=registry,
        )
        self.level = Gauge(
            "dirigent_dialer_dial_level",
            "Lines in use per agent working the campaign (the pacing level)",
            ["campaign"],
            registry=registry,
        )
        self.agents = Gauge(
            "dirigent_dialer_agents",
            "Agents logged in to the campaign, by state",
            ["campaign", "state"],
            registry=registry,
        )
        self.running = Gauge(
            "dirigent_dialer_campaign_status",
            "1 for the campaign's current status",
            ["campaign", "status"],
            registry=registry,
        )
        self.records = Gauge(
            "dirigent_campaign_records",
            "Records of the campaign's active lists by status",
            ["campaign", "status"],
            registry=registry,
        )
        self.list_records = Gauge(
            "dirigent_list_records",
            "Records of each of the campaign's lists by status (inactive lists too)",
            ["campaign", "list", "status"],
            registry=registry,
        )


@dataclass
class Campaign:
    config: CampaignSetup
    runner: CampaignRunner
    source: Hopper
    attempts: CampaignAttempts

    @property
    def name(self) -> str:
        return self.config.name


def _pbx_of(pbxs: Mapping[str, Telephony], cfg: CampaignSetup) -> str:
    """The name of the PBX the campaign names (the only one by default)."""
    if cfg.pbx is not None and cfg.pbx in pbxs:
        return cfg.pbx
    if len(pbxs) == 1:
        return next(iter(pbxs))
    raise ValueError(f"campaign {cfg.name}: pbx {cfg.pbx!r} is not one of {sorted(pbxs)}")


class Campaigns:
    def __init__(
        self,
        configs: tuple[CampaignSetup, ...],
        store: CampaignStore,
        telephony: Telephony | Mapping[str, Telephony],
        acd: Hub,
        clock: IReactorTime,
        *,
        registry: CollectorRegistry | None = None,
        bus: EventBus | None = None,
        figures_interval: float = 5.0,
        sweep_interval: float = 30.0,
    ) -> None:
        self.store = store
        self.clock = clock
        self.acd = acd
        self.bus = bus or acd.bus
        self.metrics = DialerMetrics(registry) if registry is not None else None
        #: every database write and claim of the campaigns, in order, off the reactor
        self.campaigns: dict[str, Campaign] = {}
        self._configs = configs
        self._ledgers: dict[str, AbandonLedger] = {}
        #: the PBXs whose first resync has been seen (their campaigns recovered)
        self._reconciled: set[str] = set()
        #: campaign -> the PBX it dials on
        self._pbx: dict[str, str] = {}
        self._counting = False
        #: a clean stop has begun: no new dials (:meth:`drain`)
        self.stopping = False
        #: fires when the stop's drain is over (None before it began)
        self._drained: Deferred[None] | None = None
        #: stop at once: the drain, begun or not, waits for nothing
        self._at_once = False
        #: the drain's start, lines waited for and bound (campaign time)
        self._drain_state = (0.0, 0, 0.0)
        #: the attempts the drain waits for
        self._waited: set[str] = set()
        self._drain_loop = LoopingCall(self._drain_check)
        self._drain_loop.clock = clock
        #: each campaign dials through its own PBX's port (``pbx`` in its table)
        pbxs = dict(telephony) if isinstance(telephony, Mapping) else {"": telephony}
        # start-up (before the reactor serves anything): the rows are made here
        for cfg in configs:
            s = cfg.settings
            source, attempts = store.open(cfg)
            s = self._restore_settings(cfg)
            self._pbx[s.name] = _pbx_of(pbxs, cfg)
            runner = CampaignRunner(
                s,
                pbxs[self._pbx[s.name]],
                acd,  # the runner's AgentDesk
                clock,
                source,
                attempts=attempts,
                ledger=self._ledger(cfg),
                # after-call work as configured until the campaign learns better:
                # agents in a 120 s wrap-up are not counted on before it ends
                estimates=estimates_for(s),
                center=acd,
                reserved_agents=functools.partial(self.reserved_for, s.name),
                # a person goes only to an agent whose nailed-up leg is in its bridge
                can_connect=acd.has_leg,
                no_leg=acd.leg_missing,
                ticks_router=False,
                pbx=self._pbx[s.name] or None,
            )
            source.on_filled = runner.pace_soon  # a refill of the hopper: pace again
            runner.listeners.append(self._on_attempt)
            runner.preview_listeners.append(functools.partial(self._on_preview, s.name))
            self.campaigns[s.name] = Campaign(cfg, runner, source, attempts)
        for name, port in pbxs.items():
            port.listen(functools.partial(self._on_event, name))
        self._figures = LoopingCall(self.publish_figures)
        self._figures.clock = clock
        self._figures_interval = figures_interval
        # writes the store refused for longer than the retries are tried again
        self._sweep = LoopingCall(store.sweep)
        self._sweep.clock = clock
        self._sweep_interval = sweep_interval

    def reserved_for(self, name: str, now: float) -> set[str]:
        """The agents campaign ``name``'s pacing may not count on: those
        inbound needs (:meth:`center.hub.Hub.agents_needed_inbound`), and
        those the other campaigns' lines in flight will want.  Each
        campaign paced on the same ready agents: three progressive
        campaigns sharing three agents dialed seven lines for them, and one
        abandoned every person it reached (QA5 finding 1, also on the real
        Asterisk).  Another campaign's wants are met, as its persons will
        be, by its free agents first, those shared with ``name`` before its
        own (the router may give its person any of them), then those whose
        work ends soonest.  And they take turns: a campaign that waits for
        an agent and last dialed before ``name`` did has one more agent
        kept for it, so that the campaign paced first when an agent comes
        free does not take every one (the first of three took all of them)."""
        reserved = set(self.acd.agents_needed_inbound(now))
        mine = self.campaigns[name].runner
        members = set(mine.campaign_agents())
        if not members:
            return reserved
        order = {AgentState.READY: 0, AgentState.WRAP_UP: 1}
        turn = (mine.last_dial_at, name)
        for other_name, other in self.campaigns.items():
            theirs = other.runner.campaign_agents()
            if other_name == name or members.isdisjoint(theirs):
                continue
            want = math.ceil(other.runner.agents_wanted() - 1e-9)
            if other.runner.waiting_for_agents and (other.runner.last_dial_at, other_name) < turn:
                want += 1  # its turn before ours
            if want <= 0:
                continue
            free = [
                a
                for a in map(self.acd.known_agent, theirs)
                if a.id not in reserved and a.state in order
            ]
            free.sort(key=lambda a: (order[a.state], a.id not in members, a.id))
            reserved.update(a.id for a in free[:want])
        return reserved

    def _ledger(self, cfg: CampaignSetup) -> AbandonLedger:
        group = cfg.ledger_group
        ledger = self._ledgers.get(group)
        if ledger is None:
            members = [c.name for c in self._configs if c.ledger_group == group]
            store = self.store.ledger(group, members)
            ledger = AbandonLedger(
                day_start=local_day_start(cfg.timezone),
                amd_false_positive=cfg.settings.amd_false_positive,
                on_change=store.save,
            )
            ledger.load(store.load())
            # the last hour too: the hourly guard judges it from the first call
            now = self.clock.seconds()
            ledger.load_recent(store.recent(now, ledger.amd_false_positive), now)
            self._ledgers[group] = ledger
        return ledger

    def _restore_settings(self, cfg: CampaignSetup) -> CampaignSettings:
        """Live changes made through the API survive a restart (they are kept
        in the campaign row); a stored value the configuration no longer
        allows is dropped with a warning."""
        settings = cfg.settings
        for key, value in self.store.stored_settings(cfg.name).items():
            if key not in LIVE_SETTINGS:
                continue
            try:
                settings = settings.with_changes(**{key: value})
            except CampaignError as exc:
                log.warn("campaign {c}: stored {k} ignored: {e}", c=cfg.name, k=key, e=exc)
        return settings

    # -- life cycle -----------------------------------------------------------------------
    def start(self) -> None:
        self._figures.start(self._figures_interval, now=False)
        self._sweep.start(self._sweep_interval, now=False)

    def drain(self) -> Deferred[None]:
        """The first step of a clean stop (SIGTERM, Ctrl-C, the end of a
        timed run): every campaign stops placing new dials
        (:meth:`CampaignRunner.wind_down`), and the lines already placed are
        let resolve with the rest of the server still running (the PBX
        sessions, the connect path, the ACD): a ringing line rings out at its
        own ring timeout (never hung up early: the law wants an unanswered
        call to ring at least 15 s), a person is connected to a free agent as
        usual or hears the abandon message at the connect deadline, by the
        normal path.  Fires once none is left in progress, at the latest
        when the last one placed is past its ring timeout, AMD's analysis and
        the connect limit (plus :data:`DRAIN_MARGIN`), or at once after
        :meth:`stop_at_once`.  Then the calls whose end is decided (the
        abandon message, a machine) are closed with that outcome; a
        conversation with an agent goes on on the PBX (the next start takes
        it over), and so does a line still in progress when the drain was
        cut short (the next start settles it).  Lines of a PBX whose link is
        down are not waited for (nothing here can move them)."""
        if self._drained is not None:
            return _chained(self._drained)
        self.stopping = True
        done: Deferred[None] = Deferred()
        self._drained = done
        for c in self.campaigns.values():
            c.runner.wind_down()
            c.source.release_buffer()
        self.publish_figures()
        began = self.clock.seconds()
        pending = self._in_progress()
        away = sum(
            len(c.runner.lines_in_progress())
            for c in self.campaigns.values()
            if not c.runner.telephony.connected
        )
        unseen = f"; {_lines(away)} on a PBX whose link is down, left to it" if away else ""
        if not pending or self._at_once:
            log.info(
                "stopping: no new dials; {n} in progress{w}{u}",
                n=_lines(len(pending)) if pending else "no lines",
                w=", not waited for (stopping at once)" if pending else "",
                u=unseen,
            )
            self._drain_over()
            return _chained(done)
        until = max(self._settled_by(c, a) for c, a in pending)
        log.info(
            "stopping: no new dials; waiting for {n} in progress (ringing, or answered and"
            " not yet with an agent) to resolve, at most {t:.1f} s{u}",
            n=_lines(len(pending)),
            t=max(0.0, until - began),
            u=unseen,
        )
        self._drain_state = (began, len(pending), until)
        self._waited = {a.id for _, a in pending}
        self._drain_loop.start(DRAIN_POLL, now=False)
        return _chained(done)

    def stop_at_once(self) -> None:
        """A second stop signal: the drain (begun or about to begin) waits
        for nothing more."""
        self._at_once = True
        if self._drained is not None and not self._drained.called:
            self._drain_check()

    def _in_progress(self, linked: bool = True) -> list[tuple[Campaign, Attempt]]:
        """The lines in progress (``linked``: only those on a PBX whose link is up)."""
        return [
            (c, a)
            for c in self.campaigns.values()
            if c.runner.telephony.connected or not linked
            for a in c.runner.lines_in_progress()
        ]

    @staticmethod
    def _settled_by(c: Campaign, attempt: Attempt) -> float:
        """When a line placed at ``attempt.started`` is resolved at the latest."""
        s = c.runner.settings
        amd = s.amd_delay if s.amd else 0.0
        return attempt.started + s.ring_timeout + amd + s.connect_within + DRAIN_MARGIN

    def _drain_check(self) -> None:
        began, total, until = self._drain_state
        now = self.clock.seconds()
        if self._in_progress() and not self._at_once and now < until:
            return
        # a link lost meanwhile: its lines are not waited for, but not resolved
        left = [a for _, a in self._in_progress(linked=False) if a.id in self._waited]
        if self._drain_loop.running:
            self._drain_loop.stop()
        if not left:
            log.info(
                "stopping: the {n} in progress resolved in {t:.1f} s",
                n=_lines(total),
                t=now - began,
            )
        else:
            log.warn(
                "stopping{how}: {k} of the {n} still in progress after {t:.1f} s, left to"
                " the PBX (the next start settles them)",
                how=" at once" if self._at_once else "",
                k=len(left),
                n=_lines(total),
                t=now - began,
            )
        self._drain_over()

    def _drain_over(self) -> None:
        closed = sum(c.runner.close_decided() for c in self.campaigns.values())
        if closed:
            log.info(
                "stopping: {n} calls given the abandon message or left to an answering"
                " machine closed (the PBX plays them out)",
                n=closed,
            )
        assert self._drained is not None
        self._drained.callback(None)

    def stop(self) -> None:
        for loop in (self._figures, self._sweep):
            if loop.running:
                loop.stop()
        for c in self.campaigns.values():
            c.runner.stop()  # the stored status stays: a restart resumes it
            c.source.release_buffer()
        # what is queued is written before the store goes (bounded by the retries)
        self.store.close()

    def flush(self) -> Deferred[Any]:
        """Fires once every write asked for so far has been tried (tests, shutdown)."""
        return self.store.flush()

    def _on_event(self, pbx: str, event: TelephonyEvent) -> None:
        if isinstance(event, PbxSynced) and pbx not in self._reconciled:
            self._reconciled.add(pbx)
            self.clock.callLater(0, self.recover, pbx)

    def recover(self, pbx: str | None = None) -> Deferred[Any]:
        """After the first resync of ``pbx`` (None: every PBX): close what a
        previous run left open on it, then resume its campaigns that were
        running.  Only that PBX's campaigns: another PBX's calls are not
        known before its own resync, and its open attempts would be closed
        as unknown while they talk.  What the store says is read in its
        writer; the runners act on it here."""
        mine = {
            c.name: c.attempts
            for c in self.campaigns.values()
            if pbx is None or self._pbx[c.name] == pbx
        }
        d = self.store.recovery(mine)
        d.addCallback(self._resume)
        d.addErrback(lambda f: log.failure("campaign recovery failed", f))
        return d

    def _resume(self, states: dict[str, tuple[str | None, dict[str, Any]]]) -> Deferred[Any]:
        resumed = []
        for c in (self.campaigns[name] for name in states):
            # which of the calls left open the PBX's net played the abandon
            # message to (read from the PBX first: reconcile counts them)
            d = c.runner.pbx_abandons()
            d.addCallback(self._resume_one, c, states[c.name])
            d.addErrback(_recovery_failed, c.name)
            resumed.append(d)
        return gatherResults(resumed).addCallback(lambda _: self.publish_figures())

    def _resume_one(
        self, pbx_abandoned: dict[str, float], c: Campaign, state: tuple[str | None, dict[str, Any]]
    ) -> None:
        closed = c.runner.reconcile(pbx_abandoned)  # their ends are queued in the writer first
        freed = self.store.release_orphans(c.source)
        outcomes = Tally(a.outcome or "unknown" for a in closed)
        freed.addCallback(self._recovered, c.name, outcomes)
        freed.addErrback(lambda f: log.failure("returning orphaned records failed", f))
        # auto_start until someone controls the campaign: a supervisor's
        # pause or stop outlives restarts, and so does a start
        status, stored = state
        if status == "running" or (c.config.auto_start and not stored.get(CONTROLLED)):
            self._status(c.name, "running")
            # the first leads are claimed before the runner paces
            primed = c.source.fill(self.clock.seconds())
            primed.addCallback(_start, c.runner)
        elif status == "paused":  # a supervisor's pause, as the row says (it came back "stopped")
            c.runner.pause()

    def _recovered(self, freed: int, name: str, outcomes: Tally[str]) -> None:
        """Say what the start-up closed, by outcome (not all "unknown": QA4)."""
        if outcomes or freed:
            log.info(
                "campaign {c}: {n} open attempts closed ({o}), {f} records returned",
                c=name,
                n=sum(outcomes.values()),
                o=", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())) or "none",
                f=freed,
            )

    def _status(self, name: str, status: str) -> None:
        self.store.set_status(name, status)

    # -- controls -------------------------------------------------------------------------
    def get(self, name: str) -> Campaign:
        found = self.campaigns.get(name)
        if found is None:
            raise NotFound("campaign", f"unknown campaign {name!r}")
        return found

    def control(self, name: str, action: str) -> dict[str, Any]:
        c = self.get(name)
        if self.stopping and action == "start":
            raise Unavailable("campaign", "the server is stopping: no new dials")
        if action == "start":
            c.runner.start()
        elif action == "pause":
            c.runner.pause()
            c.source.release_buffer()
        elif action == "stop":
            c.runner.stop()
            c.source.release_buffer()
        else:
            raise Invalid("action", f"unknown action {action!r} (start, pause, stop)")
        self._status(name, "running" if action == "start" else c.runner.status)
        self._store_settings(name, {CONTROLLED: True})
        log.info("campaign {c}: {a}", c=name, a=action)
        self.publish_figures()
        return self.view(name)

    def change(self, name: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Change live settings (``LIVE_SETTINGS``, of the types the API's
        schema checked): validated all together by the campaign's rules
        (nothing changes if one is refused), then kept in the campaign row."""
        c = self.get(name)
        for key in changes:
            if key not in LIVE_SETTINGS:
                raise CampaignError(
                    key, f"cannot be changed live (one of {', '.join(LIVE_SETTINGS)})"
                )
        clean = dict(changes)
        c.runner.update(**clean)
        self._store_settings(name, clean, dial_mode=c.runner.settings.mode)
        log.info("campaign {c}: changed {k}", c=name, k=", ".join(sorted(clean)))
        self.publish_figures()
        return self.view(name)

    def _store_settings(self, name: str, updates: dict[str, Any], **columns: Any) -> None:
        """Merge ``updates`` into the campaign row's settings (kept across
        restarts), in the writer's order."""
        self.store.store_settings(name, dict(updates), **columns)

    # -- dispositions ----------------------------------------------------------------------
    def answering_machine(self, campaign: str, ref: str, connected_at: float | None) -> str:
        """An agent said call ``ref`` of ``campaign`` reached an answering machine (the
        disposition "machine", already stored on its attempt row).

        The campaign's ledger takes the live answer back (its day bucket is
        saved, the hour's guard and λ see persons only; see
        :meth:`CampaignRunner.answering_machine`).  A call still up ends
        "machine"; one that ended "answered" is rewritten "machine" and its
        record retried by the machine rule, in the writer's order (after
        the end's own writes).  Returns the runner's answer ("open",
        "ended", "unknown"; "unknown" too for a campaign not configured)."""
        c = self.campaigns.get(campaign)
        if c is None:
            return "unknown"
        state = c.runner.answering_machine(ref, connected_at)
        if state != "open":
            now = dt.datetime.fromtimestamp(self.clock.seconds(), dt.UTC)
            self.store.machine_after_answer(ref, now, c.config.retry, c.config.policy)
        log.info(
            "campaign {c}: call {a} was an answering machine ({s})", c=campaign, a=ref, s=state
        )
        return state

    # -- preview mode ------------------------------------------------------------------------
    def _preview_runner(self, agent: str) -> CampaignRunner:
        for c in self.campaigns.values():
            if agent in c.runner.previews:
                return c.runner
        raise Invalid("agent", f"{agent} has no preview record")

    def preview(self, agent: str) -> dict[str, Any] | None:
        """The record on the agent's screen, if any."""
        for c in self.campaigns.values():
            p = c.runner.previews.get(agent)
            if p is not None:
                return self._preview_view(c.name, agent, p)
        return None

    def preview_decision(self, agent: str, decision: str) -> Deferred[dict[str, Any]]:
        """The agent's decision on the record on its screen; a dial is
        answered once its attempt is written, or refused (409 naming the
        record) when the compliance gate, asked again at this moment, says
        no: the number went on the do-not-call list, its consent was
        withdrawn or the calling hours ended while it was on screen."""
        runner = self._preview_runner(agent)
        name = runner.settings.name
        if decision == "dial":
            attempt = runner.preview_dial(agent)

            def answer(refused: Verdict | Unavailable | None) -> dict[str, Any]:
                if isinstance(refused, Unavailable):
                    raise refused
                if refused is not None:
                    raise Conflict(
                        "record",
                        f"{attempt.lead.number} not dialed: {refused.reason}"
                        " (the next record comes up)",
                    )
                return {"campaign": name, "attempt": attempt.id, "dialing": True}

            return (attempt.begun or succeed(None)).addCallback(answer)
        if decision == "skip":
            runner.preview_skip(agent)
            return succeed({"campaign": name, "skipped": True})
        raise Invalid("decision", f"unknown decision {decision!r} (dial, skip)")

    def _preview_view(self, campaign: str, agent: str, p: Any) -> dict[str, Any]:
        auto = self.campaigns[campaign].runner.settings.preview_auto_dial
        return {
            "agent": agent,
            "campaign": campaign,
            "record": p.lead.record_id,
            "customer": p.lead.number,
            "name": p.lead.name,
            "attributes": dict(p.lead.extra),
            "since": p.since,
            "auto_dial_at": None if auto is None else p.since + auto,
            "dialing": p.attempt is not None,
        }

    def _on_preview(self, campaign: str, agent: str, p: Any) -> None:
        self.bus.publish(
            PreviewShown(self.clock.seconds(), **self._preview_view(campaign, agent, p))
        )

    # -- figures ---------------------------------------------------------------------------
    def figures(self, name: str) -> CampaignView:
        c = self.get(name)
        r = c.runner
        now = self.clock.seconds()
        states: dict[str, int] = {}
        for agent_id in r.campaign_agents():
            state = self.acd.known_agent(agent_id).state.value
            states[state] = states.get(state, 0) + 1
        s = r.settings
        live, abandoned = r.ledger.counts("day", now)
        # the counts since this server started come with ``since`` and beside
        # the day's: a supervisor must not read "abandoned 0" beside a day at
        # 20 % without being told why
        return CampaignView(
            idle_reason=r.idle_reason or self._not_started(c),
            pbx=self._pbx[name] or None,
            country=s.country,
            legal_max_abandon=s.legal_max_abandon,
            abandon_target=s.abandon_target,
            max_lines_per_agent=s.max_lines_per_agent,
            mode=s.mode,
            power_ratio=s.power_ratio,
            ring_timeout=s.ring_timeout,
            machine_action=s.machine_action,
            wrap_up=s.wrap_up,
            lines_in_use=len(r.live),
            agents=states,
            since=round(r.stats.since, 3),
            today={"live": round(live, 2), "abandoned": round(abandoned, 2)},
            dials=r.stats.dials,
            connected=r.stats.connected,
            abandoned=r.stats.abandoned,
            outcomes=dict(r.stats.outcomes),
            refused=dict(r.stats.refused),
            # rounded: 0.010000000000000002 is float noise, not a figure
            abandon_rate={w: _rounded(r.ledger.rate(w, now)) for w in WINDOWS},
            drop_group=c.config.ledger_group,
        )

    def _not_started(self, c: Campaign) -> str | None:
        """Why an ``auto_start`` campaign is still stopped: its PBX has not had
        its first resync (QA12 finding 9: ``stopped`` with no reason), in the
        runner's words for a PBX that is down."""
        pbx = self._pbx[c.name]
        if (
            not c.config.auto_start
            or c.runner.status is not CampaignStatus.STOPPED
            or pbx in self._reconciled
        ):
            return None
        waits = f"auto_start starts it after {f'PBX {pbx}' if pbx else 'the PBX'}'s first resync"
        if c.runner.telephony.connected:
            return waits
        return f"{f'PBX {pbx}' if pbx else 'PBX'} down: {waits}"

    def event(self, name: str) -> CampaignFigures:
        """The campaign's figures as the bus carries them."""
        status = self.get(name).runner.status
        return CampaignFigures(self.clock.seconds(), name, status, self.figures(name))

    def view(self, name: str) -> dict[str, Any]:
        """The campaign as the API answers it."""
        return self.event(name).view()

    def views(self) -> list[dict[str, Any]]:
        return [self.view(name) for name in sorted(self.campaigns)]

    def publish_figures(self) -> None:
        for name, c in self.campaigns.items():
            event = self.event(name)
            self.bus.publish(event)
            view = event.figures
            if self.metrics is None or view is None:
                continue
            m = self.metrics
            for window, rate in view.abandon_rate.items():
                m.abandon.labels(name, window).set(rate or 0.0)
            m.lines.labels(name).set(view.lines_in_use)
            working = sum(n for state, n in view.agents.items() if state != AgentState.PAUSED.value)
            m.level.labels(name).set(view.lines_in_use / working if working else 0.0)
            for state in AgentState:
                if state is not AgentState.LOGGED_OUT:
                    m.agents.labels(name, state.value).set(view.agents.get(state.value, 0))
            for status in ("running", "idle", "paused", "stopped"):
                m.running.labels(name, status).set(1 if c.runner.status == status else 0)
        self._refresh_record_gauges()

    def _refresh_record_gauges(self) -> None:
        """Records by status: a count over the whole list, so in a thread
        (never on the reactor), at most one refresh at a time."""
        if self.metrics is None or self._counting:
            return
        self._counting = True
        d = self.store.count_records({n: c.attempts.campaign_id for n, c in self.campaigns.items()})
        d.addCallback(self._set_record_gauges)
        d.addErrback(lambda f: log.warn("record counts failed: {e}", e=f.getErrorMessage()))
        d.addBoth(lambda _: setattr(self, "_counting", False))

    def _set_record_gauges(self, counts: RecordCounts) -> None:
        m = self.metrics
        assert m is not None
        for name, per_list in counts.items():
            for status in RECORD_STATUSES:
                active = sum(by.get(status, 0) for (_, on), by in per_list.items() if on)
                m.records.labels(name, status).set(active)
                for (list_name, _), by in per_list.items():
                    m.list_records.labels(name, list_name, status).set(by.get(status, 0))

    def _on_attempt(self, what: AttemptNews, attempt: Attempt) -> None:
        """Outbound interactions for the reports and the screen pop, and the
        outcome counter."""
        now = self.clock.seconds()
        agent: str | None = None  # with an agent: answered, and ended after it
        outcome: str | None = None  # why a call was cut that was not the person's doing
        match what:
            case AttemptNews.REFUSED:
                if self.metrics is not None:
                    self.metrics.refused.labels(
                        attempt.campaign, attempt.refused_by or "gate"
                    ).inc()
                return
            case AttemptNews.QUEUED:
                stage, at = Stage.QUEUED, now
            case AttemptNews.CONNECTED:
                # the answer when the connection was (an end closed at start-up
                # at that moment must not come before it: QA4, a negative talk time)
                stage, agent = Stage.ANSWERED, attempt.agent
                at = attempt.connected if attempt.connected is not None else now
            case AttemptNews.ENDED:
                if self.metrics is not None:
                    self.metrics.calls.labels(attempt.campaign, attempt.outcome or "unknown").inc()
                if attempt.verdict != "human":
                    return
                # an end is reported when it happened (a call cut by a link loss
                # ended when the link was lost, not at the resync)
                at = attempt.ended if attempt.ended is not None else now
                if attempt.outcome in (PBX_LOST, SERVER_RESTART, "unknown"):
                    # cut by the PBX, or closed at start-up: not the person's doing
                    stage, agent, outcome = Stage.ENDED, attempt.agent, attempt.outcome
                elif attempt.connected is not None:
                    stage, agent = Stage.ENDED, attempt.agent
                else:
                    stage = Stage.ABANDONED
            case _:
                return
        c = self.campaigns[attempt.campaign]
        self.bus.publish(
            InteractionChanged(
                at,
                stage,
                attempt.id,
                Channel.VOICE,
                c.runner.settings.queue_name,
                attempt.lead.number,
                Direction.OUTBOUND,
                agent=agent,
                campaign=attempt.campaign,
                outcome=outcome,
            )
        )


def _lines(n: int) -> str:
    return f"{n} line" if n == 1 else f"{n} lines"


def _chained(d: Deferred[None]) -> Deferred[None]:
    """A Deferred that fires when ``d`` does (each caller gets its own)."""
    mine: Deferred[None] = Deferred()

    def fire(result: object) -> object:
        mine.callback(None)
        return result

    d.addBoth(fire)
    return mine


def _recovery_failed(failure: Failure, name: str) -> None:
    log.failure("campaign {c}: recovery failed", failure, c=name)


def _start(_: object, runner: CampaignRunner) -> None:
    runner.start()


def _rounded(rate: float | None) -> float | None:
    return None if rate is None else round(rate, 6)
