"""The campaign runner: dial, detect, connect or abandon, account, repeat.

One runner drives one campaign through the Telephony port:

1. every second (and soon after every call or agent event) it asks its pacing
   strategy how many calls to launch, caps that by the line limit, and takes
   that many records from its lead source (the hopper behind the compliance
   gate: there is no other way to a number);
2. each attempt is written to the attempt log *before* its dial
   (the customer leg carries its attempt, and the call id is chosen
   by us, so the attempt can be found on the PBX after a restart);
3. answering-machine detection classifies the answered customer leg
   (:class:`core.telephony.CallClassified`); a machine is hung up (or gets
   the message drop), a person becomes a voice interaction in the campaign's
   routing queue and is connected to a free nailed-up agent's line
   (:meth:`Telephony.connect_to_agent`) -- or, with no agent in time, hears
   the abandon message (:attr:`Prompt.ABANDON`) and counts as abandoned.
   "In time" is the law's: ``connect_within`` (2 s) from the end of the
   person's greeting, which AMD heard end ``silence`` seconds before its
   verdict (:attr:`CallClassified.silence`, from ``AMDCAUSE``), less the
   round trip of the command that starts the message: the deadline fires
   ``connect_within - silence - MOVE_MARGIN`` (0.3 s) after the verdict, at
   least ``MIN_CONNECT_DELAY`` (0.2 s) (:func:`dialer.campaign.connect_delay`;
   armed at the verdict, it made the message start 2.8 s after the greeting);
4. when the attempt ends its outcome is written, the lead source applies the
   retry rules, and the estimates and the abandon ledger learn from it.

If the PBX link drops, dialing stops at once; after the resync, attempts
whose channel is gone are closed as "unknown" (never redialed blindly) and
live ones are followed again; a conversation whose channel vanished ends
when the link was lost (its talk time is not stretched to the resync), with
the outcome "pbx-lost" (the record counts as reached, like "answered"); a
person whose move into an agent's bridge went with the link is moved again
within the connect deadline, or past it hears the abandon message (the
agent kept for them is free again).
:meth:`reconcile` does the same for attempts left open by a previous run of
the process.  A person is moved only into the bridge of an agent whose
nailed-up leg is there (``can_connect``): an empty conference is no agent.

Time comes from an ``IReactorTime`` (reactor or ``task.Clock``).
"""

from __future__ import annotations

import enum
import itertools
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from core.errors import Invalid, Unavailable
from core.events import CampaignStatus, DialMode, MachineAction
from core.telephony import (
    CALL_IN_BRIDGE,
    AttemptRef,
    CallAbandonedByPbx,
    CallBridged,
    CallClassified,
    CallEnded,
    DialResult,
    LiveCall,
    Outcome,
    PbxLost,
    PbxSynced,
    Prompt,
    Telephony,
    TelephonyEvent,
    Verdict,
)
from dialer.abandon import AbandonLedger
from dialer.agent_board import AgentBoard
from dialer.campaign import CampaignSettings, Lead, LeadSource, connect_delay
from dialer.compliance import Verdict as GateVerdict
from dialer.estimates import Estimates, InboundRate
from dialer.pacing import Progressive, Snapshot, Strategy, strategy_for
from routing.agent import AgentState, Phase, transfer_queue
from routing.model import (
    Channel,
    Direction,
    Exit,
    Handover,
    HistoryEntry,
    Interaction,
    Offer,
    RoutingError,
    UnknownName,
)

if TYPE_CHECKING:  # dialer.ports imports this module (AttemptLog)
    from dialer.ports import AgentDesk

log = Logger(namespace="dirigent.dialer")


class Center(Protocol):
    """The hub's side for a campaign (``center.hub.Hub``): the runner is a
    channel adapter that owns the calls it dialled.  It registers each
    person on the line before queueing it, and hands every routing step's
    offers to the hub, which gives each offer to the adapter owning its
    interaction (this runner's to :meth:`CampaignRunner.carry_out`) and
    publishes the screen pops."""

    def own(self, interaction: str, adapter: Any) -> None: ...
    def release(self, interaction: str) -> None: ...
    def route(self, offers: list[Offer]) -> None: ...
    def hand_over(self, pbx: str, call: str, handover: Handover) -> None: ...
    def take_handover(self, pbx: str, call: str) -> Handover | None: ...


#: a conversation whose channels vanished with the PBX link (stored as the
#: attempt's outcome; the retry rules see "answered": the person was reached)
PBX_LOST = "pbx-lost"
#: a conversation that ended while no Dirigent ran (closed at the next start:
#: its end is not known, the last moment known is the connection); the retry
#: rules see "answered".  Not "pbx-lost": the PBX was never lost (QA4)
SERVER_RESTART = "server-restart"
#: attempt outcomes (the retry rules' vocabulary, see dialer.retry)
_DIAL_OUTCOME = {
    Outcome.BUSY: "busy",
    Outcome.NO_ANSWER: "no-answer",
    Outcome.CONGESTION: "congestion",
    Outcome.INVALID: "invalid",
    Outcome.FAILED: "failed",
    Outcome.UNKNOWN: "unknown",
}


class AttemptNews(enum.StrEnum):
    """What just happened to an attempt, as the runner tells its listeners
    (:attr:`CampaignRunner.listeners`): the campaigns' service reports some
    of them as interactions, the pacing lab acts on others (an agent's wrap
    time, an oracle's forecast).  String values, so a listener written for the
    plain words still compares equal."""

    DIALED = "dialed"
    REFUSED = "refused"  # the gate refused the record at its dial (never dialed)
    QUEUED = "queued"  # a person waits for an agent
    OFFERED = "offered"
    ABANDONED = "abandoned"
    CONNECTED = "connected"  # with an agent
    ENDED = "ended"


@dataclass
class Attempt:
    id: str
    campaign: str
    lead: Lead
    started: float
    channel_id: str
    pbx: str = ""
    answered: float | None = None
    verdict: str | None = None  # "human" / "machine"
    verdict_at: float | None = None
    #: when the person must be with an agent or hear the abandon message
    #: (the law's limit from the greeting's end, :meth:`CampaignRunner.connect_by`)
    connect_by: float | None = None
    agent: str | None = None
    connected: float | None = None
    ended: float | None = None
    outcome: str | None = None
    cause: int | None = None
    abandoned: bool = False
    channel: str | None = None  # the customer channel name once known
    #: the agent's disposition: an answering machine AMD missed (not a person)
    machine: bool = False
    #: the strategy learned from its connection (undone if it was a machine)
    paced: bool = False
    #: fires once the row is written, with the gate's refusal (its verdict, asked
    #: again at the dial: nothing written, nothing dialed), an Unavailable if the
    #: row could not be written, or None
    #: the gate's check that refused this record at its dial (it never was a dial)
    refused_by: str | None = None
    begun: Deferred[GateVerdict | Unavailable | None] | None = field(
        default=None, compare=False, repr=False
    )

    @property
    def open(self) -> bool:
        return self.outcome is None


class AttemptLog(Protocol):
    """Durable attempts: ``begin`` returns once the row is written, or a
    Deferred that fires then (the database in a thread): the Originate
    waits for it, and is not sent if it fails.  A log that asks the
    compliance gate again at the dial (the database's: a number put on the
    do-not-call list since its record was claimed, a consent withdrawn, a
    calling window closed) returns, or fires with, the refusing
    :class:`dialer.compliance.Verdict` instead, having written nothing."""

    def begin(self, attempt: Attempt) -> Deferred[Any] | GateVerdict | None: ...

    def end(self, attempt: Attempt) -> Deferred[Any] | None: ...

    def connected(self, attempt: Attempt) -> Deferred[Any] | None:
        """A person reached an agent: kept so that a call taken over after a
        restart keeps its talk time."""
        ...

    def open_attempts(self, campaign: str) -> list[Attempt]: ...


class MemoryAttemptLog:
    """The attempt log of a simulation (and of tests): a dict."""

    def __init__(self) -> None:
        self.attempts: dict[str, Attempt] = {}
        self.order: list[str] = []

    def begin(self, attempt: Attempt) -> None:
        self.attempts[attempt.id] = attempt
        self.order.append(attempt.id)

    def end(self, attempt: Attempt) -> None:
        self.attempts[attempt.id] = attempt

    def connected(self, attempt: Attempt) -> None:
        """Nothing to keep: the attempt object itself is the record."""

    def open_attempts(self, campaign: str) -> list[Attempt]:
        return [a for a in self.attempts.values() if a.campaign == campaign and a.open]


class Oracle(Protocol):
    """Clairvoyant inputs for the benchmark's bounds (simulation only)."""

    def agent_free_in(self, runner: CampaignRunner, agent: str, now: float) -> float: ...

    def call_need_in(self, runner: CampaignRunner, attempt: Attempt, now: float) -> float: ...

    def next_need_in(self, runner: CampaignRunner, n: int, now: float) -> np.ndarray: ...


#: conversations kept after their end for a late "machine" disposition (about an
#: hour of 50 agents' calls)
ENDED_KEPT = 2048
#: the pause reason while an agent looks at (or dials) a preview record
PREVIEW = "preview"
#: the person on a preview call waits for one agent only: before anything queued
PREVIEW_PRIORITY = 100


@dataclass
class Preview:
    lead: Lead
    since: float
    timer: IDelayedCall | None = None
    attempt: str | None = None  # set once the agent dialed


@dataclass
class RunnerStats:
    """What this runner did since it was made (this process's start): the
    day's regulatory figures are the ledger's, which survive restarts."""

    since: float = 0.0
    dials: int = 0
    #: records the gate refused at the moment of their dial (not dialed), by check
    refused: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    connected: int = 0
    abandoned: int = 0
    peak_lines: int = 0
    line_seconds: float = 0.0


class CampaignRunner:
    def __init__(
        self,
        settings: CampaignSettings,
        telephony: Telephony,
        desk: AgentDesk,
        clock: IReactorTime,
        source: LeadSource,
        strategy: Strategy | None = None,
        *,
        attempts: AttemptLog | None = None,
        ledger: AbandonLedger | None = None,
        estimates: Estimates | None = None,
        oracle: Oracle | None = None,
        center: Center | None = None,
        foreign_offers: Callable[[list[Offer]], None] | None = None,
        reserved_agents: Callable[[float], set[str]] | None = None,
        can_connect: Callable[[str], bool] | None = None,
        no_leg: Callable[[str], None] | None = None,
        ticks_router: bool = True,
        tick: float = 1.0,
        pbx: str | None = None,
    ) -> None:
        self.settings = settings
        self.telephony = telephony
        #: the PBX's name, in the idle reason while it is down (None: the only one)
        self.pbx = pbx
        #: the agents' side: the hub, or the lab's router-backed desk (never the router itself)
        self.desk = desk
        self.clock = clock
        self.source = source
        self.strategy = strategy or strategy_for(settings)
        self.log = attempts or MemoryAttemptLog()
        self.ledger = ledger or AbandonLedger(amd_false_positive=settings.amd_false_positive)
        self.estimates = estimates or Estimates(
            ring_timeout=settings.ring_timeout,
            amd_delay=settings.amd_delay if settings.amd else 0.0,
        )
        self.oracle = oracle
        #: the hub this runner is an adapter of (None: the runner carries out
        #: its own offers and hands the others to ``foreign_offers``, as the
        #: pacing lab's inbound callers need)
        self.center = center
        #: offers for interactions that are not this campaign's (without a hub)
        self.foreign_offers = foreign_offers
        #: blended agents the inbound side needs now (service level at risk):
        #: pacing does not count on them, so the dialer yields them first
        self.reserved_agents = reserved_agents
        #: whether an agent's nailed-up leg is in its bridge now (the ACD's
        #: ``has_leg``); None: every agent has one (simulations)
        self.can_connect = can_connect
        #: told of an agent offered a call without a leg (pauses it, nails it up)
        self.no_leg = no_leg
        #: when the PBX link was lost (None while up)
        self.lost_at: float | None = None
        #: persons whose move into an agent's bridge may have gone with the link
        self._moves_unsure: set[str] = set()
        #: the open attempts of a previous run, read by :meth:`pbx_abandons` for :meth:`reconcile`
        self._recovering: list[Attempt] | None = None
        #: False when another component (the ACD) ticks the shared router and
        #: hands this runner its offers through :meth:`own_offers`
        self.ticks_router = ticks_router
        self.status: CampaignStatus = CampaignStatus.STOPPED
        self.idle_reason: str | None = None
        self.stats = RunnerStats(since=clock.seconds())
        self.live: dict[str, Attempt] = {}  # attempt id -> open attempt
        self.by_channel: dict[str, Attempt] = {}  # customer channel uniqueid -> attempt
        self.waiting_since: dict[str, float] = {}  # attempt id -> verdict time (no agent yet)
        #: preview mode: agent -> the record on the agent's screen (not dialed yet)
        self.previews: dict[str, Preview] = {}
        self._deadlines: dict[str, IDelayedCall] = {}
        self._talk: dict[str, tuple[float, float]] = {}  # agent -> (talk seconds, wrap start)
        #: the last conversations that ended, for an agent's late "machine" disposition
        self._ended_connected: dict[str, Attempt] = {}
        self._ids = itertools.count(1)
        self._pace_soon: IDelayedCall | None = None
        self._unsettled_at_stop = 0
        #: the server is stopping: no new dials, the lines placed go on (:meth:`wind_down`)
        self.winding_down = False
        self._last_line_change = clock.seconds()
        self.listeners: list[Callable[[AttemptNews, Attempt], None]] = []
        #: preview mode: called with (agent, preview) when a record is put on screen
        self.preview_listeners: list[Callable[[str, Preview], None]] = []
        #: the campaign's agents (logged in to its queue), as pacing counts them
        self._board = AgentBoard(settings.queue_name)
        #: when pacing last placed a line (campaigns sharing agents take turns by it)
        self.last_dial_at = -math.inf
        #: its last pacing found no ready agent (so it waits for one)
        self._short_of_agents = False
        #: how often the campaign's agents are taken by other (inbound) calls,
        #: and the voice work of others each member has now
        self.inbound = InboundRate()
        self._foreign: dict[str, set[str]] = {}
        for a in desk.agents():
            self._board.update(a)
        self._ticker = LoopingCall(self.tick)
        self._ticker.clock = clock
        self._tick = tick
        telephony.listen(self.on_event)
        desk.listen_agents(self._agent_changed)

    # -- controls ----------------------------------------------------------------------
    def start(self) -> None:
        if self.winding_down:
            return  # the server is stopping (the API refuses a start meanwhile)
        self.status, self.idle_reason = CampaignStatus.RUNNING, None
        if not self._ticker.running:
            self._ticker.start(self._tick, now=False)
        self.pace_soon()

    def pause(self) -> None:
        """No new dials; calls in progress finish normally; records on preview
        screens that were not dialed go back to the list."""
        self.status = CampaignStatus.PAUSED
        self._drop_previews()

    def stop(self) -> None:
        self.status = CampaignStatus.STOPPED
        self._drop_previews()
        if self._ticker.running:
            self._ticker.stop()

    def wind_down(self) -> None:
        """The first step of a clean stop of the server: no new dials from
        here on (records on preview screens go back), while the lines already
        placed go on as usual -- ringing out at their own ring timeout, a
        person connected to a free agent or given the abandon message at the
        connect deadline.  The stored status is not touched: the next start
        resumes the campaign."""
        self.winding_down = True
        self._drop_previews()
        if self.status in (CampaignStatus.RUNNING, CampaignStatus.IDLE):
            self.status = CampaignStatus.IDLE
            self.idle_reason = "the server is stopping: no new dials"

    def lines_in_progress(self) -> list[Attempt]:
        """The lines placed whose fate is still open: ringing (or their row
        still being written), answered while AMD listens, a person waiting for
        an agent or being moved into an agent's bridge.  Not a conversation
        with an agent (it goes on without the dialer), nor a call whose end
        is decided and left to the PBX: the abandon message started, a
        machine hung up or given the message (:meth:`close_decided`)."""
        return [
            a
            for a in self.live.values()
            if a.open and a.connected is None and not a.abandoned and a.verdict != "machine"
        ]

    def close_decided(self) -> int:
        """At the end of a clean stop: close the calls whose outcome is
        decided and whose rest the PBX plays out on its own (the abandon
        message, a machine's message or hang-up) with that outcome now, so
        that no attempt stays open (its record "dialing") until a next start.
        Returns how many."""
        now = self.clock.seconds()
        decided = [
            a
            for a in list(self.live.values())
            if a.open and a.connected is None and (a.abandoned or a.verdict == "machine")
        ]
        for a in decided:
            self.waiting_since.pop(a.id, None)
            self._end(a, "abandoned" if a.abandoned else "machine", now)
        return len(decided)

    def update(self, **changes: Any) -> None:
        """Change settings live (abandon target, max lines per agent, dial
        mode, ...).  A new dial mode or power ratio brings a new strategy; a
        new abandon target keeps what the current one has learned."""
        self.settings = self.settings.with_changes(**changes)
        if self.settings.mode != DialMode.PREVIEW:
            self._drop_previews()
        if "mode" in changes or "power_ratio" in changes:
            self.strategy = strategy_for(self.settings)
        elif "abandon_target" in changes:
            self.strategy.set_limit(self.settings.abandon_target)

    # -- agents --------------------------------------------------------------------------
    def campaign_agents(self) -> list[str]:
        """Agents logged in to the campaign's queue (kept by the agent listener)."""
        return sorted(self._board.members)

    def end_wrap_up(self, agent: str) -> None:
        """The agent finished the after-call work (desktop or simulated agent)."""
        now = self.clock.seconds()
        a = self.desk.agent(agent)
        if a is None or not any(w.phase is Phase.WRAP_UP for w in a.work.values()):
            return
        self._route(self.desk.agent_wrapped_up(agent, now))  # the listener learns its length

    def _agent_changed(self, agent: Any) -> None:
        self._board.update(agent)
        self._count_foreign(agent)
        if agent.id in self._talk and not any(
            w.phase is Phase.WRAP_UP for w in agent.work.values()
        ):
            # after-call work over, however it ended (the agent, the router's
            # timer, the desktop through the ACD): the estimates learn its length
            talk, wrap_start = self._talk.pop(agent.id)
            self.estimates.handled(talk, self.clock.seconds() - wrap_start)
        preview = self.previews.get(agent.id)
        if (
            preview is not None
            and preview.attempt is None
            and (agent.id not in self._board.members or agent.pause_reason != PREVIEW)
        ):
            self._release_preview(agent.id)  # logged out or paused for something else
        if self.status == CampaignStatus.RUNNING and agent.state is AgentState.READY:
            self.pace_soon()

    # -- pacing ----------------------------------------------------------------------------
    def tick(self) -> None:
        if self.ticks_router:
            offers, _exits = self.desk.tick_routing(self.clock.seconds())
            self._route(offers)
        self.pace()

    def pace_soon(self) -> None:
        if self._pace_soon is None or not self._pace_soon.active():
            self._pace_soon = self.clock.callLater(0, self.pace)

    def _count_foreign(self, agent: Any) -> None:
        """A member of the campaign given a voice call that is not the
        campaign's (an inbound call of a blended agent): pacing learns how
        often that happens (``Snapshot.inbound_rate``)."""
        others = {
            iid
            for iid, w in agent.work.items()
            if w.channel is Channel.VOICE
            and w.phase is not Phase.WRAP_UP
            and iid not in self.live
            and not self._another_campaigns(iid)
        }
        before = self._foreign.get(agent.id, set())
        if agent.id in self._board.members:
            for _ in others - before:
                self.inbound.took(self.clock.seconds())
        if others:
            self._foreign[agent.id] = others
        else:
            self._foreign.pop(agent.id, None)

    def _another_campaigns(self, interaction: str) -> bool:
        """A person another campaign reached: not an inbound arrival to pace
        against -- its lines are left their agents by the reservation
        (:meth:`dialer.campaigns.Campaigns.reserved_for`), counted twice as
        inbound they held a shared agent's campaigns back for minutes."""
        return self.desk.campaign_of(interaction) not in (None, self.settings.name)

    def snapshot(self, now: float) -> Snapshot:
        reserved = self.reserved_agents(now) if self.reserved_agents is not None else ()
        board = self._board.board(now, reserved)
        ringing, verdicts = [], []
        delay = self.estimates.amd_delay
        for att in self.live.values():
            if att.answered is None:
                ringing.append(now - att.started)
            elif att.verdict is None:
                verdicts.append(max(0.0, att.answered + delay - now))
        s = Snapshot(
            now=now,
            agents=board.counted,
            ready=board.ready,
            talking=board.talking,
            wrapping=board.wrapping,
            wrap_left=board.wrap_left,
            ringing=np.asarray(ringing, dtype=float),
            verdicts=np.asarray(verdicts, dtype=float),
            waiting=len(self.waiting_since),
            inbound_rate=self.inbound.rate(now),
            ready_only_ours=board.ready_only_ours,
        )
        if self.oracle is not None:
            o = self.oracle
            s.agent_free_in = np.asarray(
                [o.agent_free_in(self, a, now) for a in board.busy], dtype=float
            )
            pending = [a for a in self.live.values() if a.verdict is None]
            s.call_need_in = np.asarray(
                [o.call_need_in(self, a, now) for a in pending], dtype=float
            )
            s.next_need_in = lambda n: o.next_need_in(self, n, now)
        return s

    @property
    def waiting_for_agents(self) -> bool:
        """Its last pacing would have dialed but found no ready agent: a
        campaign whose turn it may be among those sharing agents (not one
        that is paused, out of records, outside its hours, or held back by
        its abandon guard with agents free)."""
        return (
            self.settings.mode != DialMode.PREVIEW
            and not self.winding_down
            and self.status in (CampaignStatus.RUNNING, CampaignStatus.IDLE)
            and self._short_of_agents
        )

    def agents_wanted(self) -> float:
        """How many of its agents the campaign's lines in flight will want:
        one for a person waiting for an agent (not offered yet), and for a
        line still ringing or waiting for AMD's verdict its chance of being
        a person -- or one, for progressive dialing, which promises an agent
        to every line.  What other campaigns that share these agents leave
        to them (:meth:`dialer.campaigns.Campaigns.reserved_for`).  A
        preview's line has its agent already."""
        worst = isinstance(self.strategy, Progressive)
        est = self.estimates
        human, machine = est.share("human"), est.share("machine")
        ringing = 1.0 if worst else min(1.0, human / max(1e-9, 1.0 - est.share("failed")))
        answered = 1.0 if worst else human / max(1e-9, human + machine)
        wanted = 0.0
        for att in self.lines_in_progress():
            if att.agent is not None:
                continue
            if att.answered is None:
                wanted += ringing
            elif att.verdict is None:
                wanted += answered
            elif att.id in self.waiting_since and self.desk.offered_to(att.id) is None:
                wanted += 1.0
        return wanted

    def _line_change(self, now: float) -> None:
        self.stats.line_seconds += len(self.live) * (now - self._last_line_change)
        self._last_line_change = now

    def pace(self) -> None:
        if self.winding_down or self.status not in (CampaignStatus.RUNNING, CampaignStatus.IDLE):
            return
        if not self.telephony.connected:
            # no new dials until the resync
            self._idle(f"PBX {self.pbx} down" if self.pbx else "PBX down")
            return
        now = self.clock.seconds()
        if self.settings.mode == DialMode.PREVIEW:
            self._offer_previews(now)
            return
        s = self.snapshot(now)
        # for the turns of campaigns sharing agents: it would dial if it had one
        self._short_of_agents = s.ready == 0
        if s.agents == 0:
            self._idle(self._no_agents_reason())
            return
        cap = int(self.settings.max_lines_per_agent * s.agents) - len(self.live)
        if cap <= 0:
            self._short_of_agents = False
            return
        s.room = cap
        want = self.strategy.decide(s, self.estimates, self.ledger)
        n = max(0, min(want, cap))
        if n == 0:
            return
        self._short_of_agents = False
        leads = self.source.take(n, now)
        if not leads:
            if (reason := self.source.empty_reason(now)) is not None:
                self._idle(reason)
            return
        if self.status == CampaignStatus.IDLE:
            self.status, self.idle_reason = CampaignStatus.RUNNING, None
        for lead in leads:
            self.dial(lead)

    # -- preview mode ----------------------------------------------------------------------
    def _offer_previews(self, now: float) -> None:
        """Each ready agent gets one record to look at; the agent is paused
        ("preview") so nothing else is routed to them meanwhile."""
        free = [
            a
            for a in sorted(self._board.members)
            if a not in self.previews and self.desk.known_agent(a).state is AgentState.READY
        ]
        if not free:
            if not self._board.members:
                self._idle(self._no_agents_reason())
            return
        for agent in free:
            leads = self.source.take(1, now)
            if not leads:
                if (reason := self.source.empty_reason(now)) is not None:
                    self._idle(reason)
                return
            if self.status == CampaignStatus.IDLE:
                self.status, self.idle_reason = CampaignStatus.RUNNING, None
            preview = self.previews[agent] = Preview(leads[0], now)
            self.desk.line_pause(agent, now, PREVIEW)
            if self.settings.preview_auto_dial is not None:
                preview.timer = self.clock.callLater(
                    self.settings.preview_auto_dial, self.preview_dial, agent
                )
            self._notify_preview(agent, preview)

    def preview_dial(self, agent: str) -> Attempt:
        """The agent (or the auto-dial timer) dials the record on screen."""
        preview = self.previews.get(agent)
        if preview is None or preview.attempt is not None:
            raise Invalid(
                "agent", f"{agent} has no record to dial in campaign {self.settings.name}"
            )
        if not self.telephony.connected:
            # the same 503 naming the PBX as a transfer's (it was a 400, as if the agent erred)
            raise Unavailable("pbx", "the PBX link is down; dial again once it is back")
        if preview.timer is not None and preview.timer.active():
            preview.timer.cancel()
        return self.dial(preview.lead, agent=agent)  # it marks the preview dialed

    def preview_skip(self, agent: str) -> None:
        """The agent passes on the record: it goes back to the list untouched
        (no attempt, no retry rule) and the agent gets the next one."""
        preview = self.previews.get(agent)
        if preview is None or preview.attempt is not None:
            raise Invalid(
                "agent", f"{agent} has no record to skip in campaign {self.settings.name}"
            )
        self._release_preview(agent)
        self._preview_over(agent)

    def _drop_previews(self) -> None:
        """Records on screen that were not dialed go back; their agents are ready."""
        for agent, preview in list(self.previews.items()):
            if preview.attempt is None:
                self._release_preview(agent)
                self._preview_over(agent)

    def _release_preview(self, agent: str) -> None:
        preview = self.previews.pop(agent)
        if preview.timer is not None and preview.timer.active():
            preview.timer.cancel()
        release = getattr(self.source, "release", None)
        if release is not None:
            release(preview.lead, self.clock.seconds())

    def _preview_over(self, agent: str) -> None:
        """Back to ready (if still paused for the preview); pacing brings the next record."""
        a = self.desk.agent(agent)
        if a is not None and a.logged_in and a.pause_reason == PREVIEW:
            self._route(self.desk.line_ready(agent, self.clock.seconds()))
        self.pace_soon()

    def _notify_preview(self, agent: str, preview: Preview) -> None:
        for listener in self.preview_listeners:
            listener(agent, preview)

    def _no_agents_reason(self) -> str:
        """Why no agent counts for pacing: none logged in to the campaign, or
        all of them busy elsewhere (an inbound call of a blended agent, a
        pause), said with their states rather than "none logged in"."""
        agents = [a for a in map(self.desk.agent, self.campaign_agents()) if a is not None]
        logged_in = [a for a in agents if a.logged_in]
        if not logged_in:
            return "no agents logged in and ready"
        # a count, not each agent's state: the reason is logged when it changes
        n = len(logged_in)
        return f"no agent free for the campaign ({n} logged in: busy, paused or kept for inbound)"

    def _idle(self, reason: str) -> None:
        if self.status == CampaignStatus.RUNNING or self.idle_reason != reason:
            if self.idle_reason != reason:
                log.info("campaign {c} idle: {r}", c=self.settings.name, r=reason)
            self.status, self.idle_reason = CampaignStatus.IDLE, reason

    # -- dialing ---------------------------------------------------------------------------
    def dial(self, lead: Lead, agent: str | None = None) -> Attempt:
        now = self.clock.seconds()
        seq = next(self._ids)
        attempt_id = f"{self.settings.name}-{int(now)}-{seq}"
        attempt = Attempt(
            attempt_id,
            self.settings.name,
            lead,
            now,
            channel_id=f"dial-{attempt_id}",
            pbx=self.telephony.name,
            agent=agent,
        )
        preview = self.previews.get(agent) if agent is not None else None
        if preview is not None and preview.lead is lead:
            # before the row is asked for: a refusal or failure that comes back
            # at once must find the preview it ends
            preview.attempt = attempt.id
        # the row is written before the Originate (a Deferred: in the database's thread)
        written = self._write_row(attempt)
        self._line_change(now)
        self.live[attempt.id] = attempt
        self.by_channel[attempt.channel_id] = attempt
        self.stats.dials += 1
        self.stats.peak_lines = max(self.stats.peak_lines, len(self.live))
        if agent is None:
            self.last_dial_at = now
        begun = attempt.begun = Deferred()

        def not_written(failure: Failure) -> Failure:
            # said to whoever waits (a preview's dial: 503), then ended as failed
            if not begun.called:
                begun.callback(Unavailable("attempt", "its row could not be written; not dialed"))
            return failure

        if isinstance(written, Deferred):
            written.addErrback(not_written)
            d = written.addCallback(self._begun, attempt, agent)
            d.addCallbacks(self._originated, self._originate_failed, (attempt,), {}, (attempt,))
        else:
            self._begun_at_once(written, attempt, agent)
        self._notify(AttemptNews.DIALED, attempt)
        return attempt

    def _write_row(self, attempt: Attempt) -> Deferred[Any] | GateVerdict | None:
        """The attempt log's answer to ``begin``: a Deferred, or the log's
        plain answer (None: written, or the gate's refusal) when it has one
        at once (the simulation's :class:`MemoryAttemptLog`): then the dial
        goes on without a Deferred chain, which cost the simulation about a
        tenth of its dialing.  Anything else (an exception, a failure, a
        coroutine) is :func:`maybeDeferred`'s."""
        try:
            result = self.log.begin(attempt)
        except BaseException:
            return fail(Failure(captureVars=Deferred.debug))
        if result is None or isinstance(result, GateVerdict):
            return result
        return maybeDeferred(lambda: result)

    def _begun_at_once(
        self, refused: GateVerdict | None, attempt: Attempt, agent: str | None
    ) -> None:
        """:meth:`_begun` and then :meth:`_originated` (or
        :meth:`_originate_failed`), in the order the Deferred chain of a
        row written at once runs them: at once, and the outcome when the
        Originate's Deferred fires."""
        try:
            sent = self._begun(refused, attempt, agent)
        except BaseException:
            failed: Deferred[None] = fail(Failure(captureVars=Deferred.debug))
            failed.addCallbacks(
                self._originated, self._originate_failed, (attempt,), {}, (attempt,)
            )
            return
        if sent is not None:
            sent.addCallbacks(self._originated, self._originate_failed, (attempt,), {}, (attempt,))
            return
        try:
            self._originated(None, attempt)
        except BaseException:
            fail(Failure(captureVars=Deferred.debug))  # logged as unhandled, as in the chain

    def _begun(
        self, refused: object, attempt: Attempt, agent: str | None
    ) -> Deferred[DialResult] | None:
        """The row is written: the Originate goes, unless the gate refused
        the record at this moment (then the attempt never was)."""
        verdict = refused if isinstance(refused, GateVerdict) else None
        if verdict is not None:
            self._refused(attempt, verdict)
        if attempt.begun is not None and not attempt.begun.called:
            attempt.begun.callback(verdict)
        return None if verdict is not None else self._send(attempt, agent)

    def _refused(self, attempt: Attempt, verdict: GateVerdict) -> None:
        """Not a dial: no outcome, no retry rule, nothing in the ledger; the
        record goes back to the pool, whose gate keeps it from the hopper
        while the refusal holds (a do-not-call entry: for good)."""
        now = self.clock.seconds()
        self.live.pop(attempt.id, None)
        self.by_channel.pop(attempt.channel_id, None)
        self.stats.dials -= 1
        self.stats.refused[verdict.check] = self.stats.refused.get(verdict.check, 0) + 1
        self._line_change(now)
        log.warn(
            "campaign {c}: record {r} not dialed, refused at the dial: {why}",
            c=self.settings.name,
            r=attempt.lead.record_id,
            why=verdict.reason,
        )
        attempt.refused_by = verdict.check
        self._notify(AttemptNews.REFUSED, attempt)
        agent = attempt.agent
        preview = self.previews.get(agent) if agent is not None else None
        if agent is not None and preview is not None and preview.attempt == attempt.id:
            preview.attempt = None
            self._release_preview(agent)
            self._preview_over(agent)
        else:
            release = getattr(self.source, "release", None)
            if release is not None:
                release(attempt.lead, now)
        self.pace_soon()

    def _send(self, attempt: Attempt, agent: str | None) -> Deferred[DialResult] | None:
        """The Originate of an attempt whose row is written (unless it was
        closed meanwhile, e.g. by a resync)."""
        if not attempt.open:
            return None
        s = self.settings
        lead = attempt.lead
        return self.telephony.dial_customer(
            lead.number,
            route=s.trunk,
            call=attempt.channel_id,
            ref=AttemptRef(attempt.id, s.name),
            timeout=s.ring_timeout,
            caller_id=s.caller_id,
            detect_machine=s.amd and agent is None,
        )

    def _originated(self, result: DialResult | None, attempt: Attempt) -> None:
        if not attempt.open or result is None:
            return
        now = self.clock.seconds()
        if result.outcome is Outcome.ANSWERED:
            attempt.answered = now
            self.estimates.answered_after(now - attempt.started)
            if not self.settings.amd or attempt.agent is not None:
                self._verdict(attempt, "human", now)
            return
        outcome = _DIAL_OUTCOME.get(result.outcome, "failed")
        attempt.cause = result.cause
        self.estimates.outcome("no_answer" if outcome == "no-answer" else "failed")
        if outcome != "no-answer":
            self.estimates.failed_after(now - attempt.started)
        self._end(attempt, outcome, now)

    def _originate_failed(self, failure: Any, attempt: Attempt) -> None:
        if self.status == CampaignStatus.STOPPED and not self.telephony.connected:
            # shutting down: the link closed under calls still ringing; the
            # next start's reconcile settles them (one line, not one per call)
            self._unsettled_at_stop += 1
            if self._unsettled_at_stop == 1:
                log.info(
                    "campaign {c}: calls still ringing at shutdown are settled by the next"
                    " start's reconcile",
                    c=self.settings.name,
                )
            return
        log.warn("originate for attempt {a} failed: {e}", a=attempt.id, e=failure.getErrorMessage())
        # with the link down the call may exist: the resync decides, not us
        if attempt.open and self.telephony.connected:
            self._end(attempt, "failed", self.clock.seconds())

    # -- events ----------------------------------------------------------------------------
    def on_event(self, event: TelephonyEvent) -> None:
        match event:
            case CallClassified(call=uid) if uid in self.by_channel:
                verdict = "machine" if event.verdict is Verdict.MACHINE else "human"
                self._verdict(self.by_channel[uid], verdict, self.clock.seconds(), event.silence)
            case CallBridged(call=uid) if uid in self.by_channel:
                self._connected(self.by_channel[uid], self.clock.seconds())
            case CallEnded(call=uid) if uid in self.by_channel:
                self._hung_up(self.by_channel[uid], self.clock.seconds(), event)
            case CallAbandonedByPbx(call=uid) if uid in self.by_channel:
                self._abandoned_by_pbx(self.by_channel[uid], self.clock.seconds())
            case PbxLost():
                self.lost_at = self.clock.seconds()
                # moves into agents' bridges in flight may go with the link; the
                # router does not time them out meanwhile (a "no answer" pause
                # would blame the agent for the PBX): the resync settles them
                self._moves_unsure.update(a for a in self.live if self.desk.offered_to(a))
                for attempt_id in self._moves_unsure:
                    self.desk.hold_offer(attempt_id)
                if self.status != CampaignStatus.STOPPED:
                    log.warn(
                        "campaign {c}: PBX link lost, dialing stopped ({n} calls in progress)",
                        c=self.settings.name,
                        n=len(self.live),
                    )
            case PbxSynced():
                self.lost_at = None  # moves from here on go over the new link
                self.reconcile_live()
                self._settle_moves(self.clock.seconds())
                self.pace_soon()
            case _:
                pass

    def connect_by(self, verdict_at: float, silence: float = 0.0) -> float:
        """When a person whose verdict came at ``verdict_at``, ``silence``
        seconds after the end of their greeting, must be with an agent or
        hear the abandon message: the one deadline of the timer, the router's
        ``connect_by`` and the moves settled after a resync
        (:func:`dialer.campaign.connect_delay`)."""
        return verdict_at + connect_delay(self.settings, silence)

    def _verdict(self, attempt: Attempt, verdict: str, now: float, silence: float = 0.0) -> None:
        """AMD's verdict (or the answer, without AMD).  A person is queued
        for an agent until :meth:`connect_by`, counted from the end of the
        greeting: ``silence`` is how long before ``now`` it ended."""
        if not attempt.open or attempt.verdict is not None:
            return
        attempt.verdict, attempt.verdict_at = verdict, now
        self.estimates.outcome(verdict)
        if verdict == "machine":
            if self.settings.machine_action == MachineAction.MESSAGE:
                d = self.telephony.play_prompt(attempt.channel_id, Prompt.MACHINE_MESSAGE)
                self._command(attempt, "machine message", d)
            else:  # the machine may have hung up first: "No such channel" is said, not raised
                self._command(attempt, "hang-up", self.telephony.hang_up(attempt.channel_id))
            return
        if self.settings.amd and attempt.agent is None:
            self.ledger.human_verdict(now)
        preview = self.previews.get(attempt.agent) if attempt.agent else None
        attempt.connect_by = self.connect_by(now, silence)
        interaction = self._interaction(
            attempt, now, attempt.agent, PREVIEW_PRIORITY if preview is not None else 0
        )
        self.waiting_since[attempt.id] = now
        self._deadlines[attempt.id] = self.clock.callLater(
            attempt.connect_by - now, self._deadline, attempt
        )
        self._notify(AttemptNews.QUEUED, attempt)
        self._own(attempt.id)
        self._route(self.desk.queue_owned(interaction, now))
        if preview is not None and preview.attempt == attempt.id:
            # the agent who dialed takes the call: out of the preview pause, into the offer
            del self.previews[attempt.agent]  # type: ignore[arg-type]
            self._route(self.desk.line_ready(attempt.agent, now))  # type: ignore[arg-type]

    # -- the hub's adapter -----------------------------------------------------------------
    def _own(self, interaction: str) -> None:
        if self.center is not None:
            self.center.own(interaction, self)

    def _release(self, interaction: str) -> None:
        if self.center is not None:
            self.center.release(interaction)

    def carry_out(self, offer: Offer) -> None:
        """An agent was picked for a person this campaign reached: move the
        person into the agent's bridge, or, when the agent's leg is not in
        it, put the person back to the queue (never into an empty bridge)."""
        attempt = self.live.get(offer.interaction)
        if attempt is None:
            log.warn("offer {o} for a call this campaign no longer has", o=offer)
            return
        self._move(attempt, offer.agent)

    def _move(self, attempt: Attempt, agent: str) -> None:
        if self.can_connect is not None and not self.can_connect(agent):
            log.warn(
                "campaign {c}: agent {g} has no phone leg; {a} goes back to the queue",
                c=self.settings.name,
                g=agent,
                a=attempt.id,
            )
            if self.no_leg is not None:
                self.no_leg(agent)
            if self.desk.offered_to(attempt.id) == agent:
                now = self.clock.seconds()
                self._route(self.desk.decline_offer(agent, attempt.id, now))
            return
        attempt.agent = agent
        if self.lost_at is not None:
            # fails with the link down: the resync settles it, no time-out meanwhile
            self._moves_unsure.add(attempt.id)
            self.desk.hold_offer(attempt.id)
        else:  # sent now: the offer's time-out counts from here (again, after a hold)
            self.desk.renew_offer(attempt.id, self.clock.seconds())
        d = self.telephony.connect_to_agent(attempt.channel_id, agent)
        self._command(attempt, "connecting to the agent", d)
        self._notify(AttemptNews.OFFERED, attempt)

    def on_exit(self, ex: Exit) -> None:
        """The router gave a waiting person up (its queue's maximum wait):
        the call is abandoned as at the connect deadline."""
        attempt = self.live.get(ex.interaction)
        if attempt is not None:
            self._deadline(attempt)

    def transfer(
        self, agent: str, interaction: str, queue: str | None, to_agent: str | None
    ) -> list[Offer]:
        """A blind transfer of a person this campaign reached: a hand-over.

        The campaign's part ends here (the attempt is closed "answered", the
        agent goes to wrap-up) and the person is sent to the queue's waiting
        point in the PBX's dialplan, where the PBX announces the call like
        any caller: the PBX's voice adapter takes it from there (hold music,
        the dialplan fallback if nobody answers in time, the offer, the
        end), as it would on a real Asterisk, with the number, the record's
        fields and the history carried over by the hub.  Keeping it the
        campaign's would leave two owners of one channel once the PBX
        announces it.  ``to_agent``: waits for that agent only, in the
        campaign's queue if that agent serves it, else in that agent's first
        configured queue (:func:`routing.router.transfer_queue`)."""
        if self.center is None:
            raise RoutingError("transfer", "a campaign call is transferred through the hub")
        if (queue is None) == (to_agent is None):
            raise RoutingError("transfer", "give either a queue or an agent")
        if queue is not None and not self.desk.has_queue(queue):
            raise UnknownName("queue", f"unknown queue {queue!r}")
        target = queue
        if to_agent is not None:
            other = self.desk.agent(to_agent)
            if other is None:
                raise UnknownName("agent", f"unknown agent {to_agent!r}")
            # the campaign's queue if the colleague serves it, else the colleague's first
            target = transfer_queue(self.settings.queue_name, other)
            if target is None:
                raise RoutingError("agent", f"agent {to_agent} is in no queue")
        assert target is not None
        if not self.telephony.connected:
            # the person could not be moved: the agent keeps the call
            raise Unavailable("pbx", "the PBX link is down: the call cannot be moved now")
        attempt = self.live[interaction]
        now = self.clock.seconds()
        handled = self.desk.handled(interaction)
        history = list(handled.history) if handled is not None else []
        history.append(HistoryEntry.transferred(agent, now, to_queue=queue, to_agent=to_agent))
        self.center.hand_over(
            self.telephony.name,
            attempt.channel_id,
            Handover(
                customer=attempt.lead.number,
                attributes=dict(attempt.lead.extra),
                history=history,
                to_agent=to_agent,
                campaign=self.settings.name,
                attempt=attempt.id,
            ),
        )
        if attempt.connected is not None:
            self._talk[agent] = (now - attempt.connected, now)
        offers = self.desk.agent_finishes(agent, interaction, now, self.settings.wrap_up)
        d = self.telephony.transfer_to_queue(attempt.channel_id, target)
        center, pbx = self.center, self.telephony.name

        def not_moved(failure: Any) -> Any:
            # the call gone meanwhile: nothing will be announced, nothing is kept
            center.take_handover(pbx, attempt.channel_id)
            return failure

        d.addErrback(not_moved)
        self._command(attempt, "transfer", d)
        self._end(attempt, "answered", now)
        return offers

    def waiting_inbound(self) -> list[str]:
        return []  # this campaign's persons are outbound

    def own_offers(self, offers: list[Offer]) -> list[Offer]:
        """Without a hub: carry out the offers for this campaign's calls and
        return the others."""
        foreign = []
        for offer in offers:
            if offer.interaction in self.live:
                self.carry_out(offer)
            else:
                foreign.append(offer)
        return foreign

    def _route(self, offers: list[Offer]) -> None:
        if not offers:
            return
        if self.center is not None:
            self.center.route(offers)
            return
        foreign = self.own_offers(offers)
        if foreign:
            if self.foreign_offers is not None:
                self.foreign_offers(foreign)
            else:
                for offer in foreign:
                    log.warn("offer {o} for an interaction this campaign does not know", o=offer)

    @staticmethod
    def _command(attempt: Attempt, what: str, d: Deferred[None]) -> None:
        """A command on the customer leg that may fail (the call gone meanwhile):
        logged, the call's own events say what happened next."""
        d.addErrback(
            lambda f: log.warn(
                "{w} of {a} failed: {e}", w=what, a=attempt.id, e=f.getErrorMessage()
            )
        )

    def _deadline(self, attempt: Attempt) -> None:
        self._deadlines.pop(attempt.id, None)
        if attempt.id not in self.waiting_since or not attempt.open:
            return
        if self.desk.offered_to(attempt.id) is not None:
            # moving into the agent's bridge right now (a move lost with the
            # PBX link is settled by the resync: :meth:`_settle_moves`)
            return
        self._abandon(attempt, self.clock.seconds())

    def _abandon(self, attempt: Attempt, now: float, played: bool = False) -> None:
        """No agent in time: the abandon message (``played``: the PBX's net
        played it already), counted abandoned.  A person still offered (a
        move lost with the link) frees that agent."""
        del self.waiting_since[attempt.id]
        timer = self._deadlines.pop(attempt.id, None)
        if timer is not None and timer.active():
            timer.cancel()
        freed = self.desk.drop(attempt.id, now, "not moved")
        attempt.abandoned = True
        self.stats.abandoned += 1
        self.ledger.abandoned(now)
        self.strategy.observe(abandoned=True)
        if not played:
            d = self.telephony.play_prompt(attempt.channel_id, Prompt.ABANDON)
            self._command(attempt, "abandon message", d)
        self._notify(AttemptNews.ABANDONED, attempt)
        if freed is not None:
            self._route(self.desk.route_agent(freed, now))

    def _abandoned_by_pbx(self, attempt: Attempt, now: float) -> None:
        """The dialplan's net played the abandon message at the legal limit:
        nobody had moved the person (the server was stopped, late, or cut
        off from the PBX while the person waited).  Counted abandoned as at
        the deadline.  A move already on its way still lands (a Redirect
        ends the message) and the call is connected as usual, but it came
        too late for the law: abandoned all the same, counted live once."""
        self._forget_marks([attempt])
        if attempt.abandoned or attempt.connected is not None:
            return
        log.warn(
            "campaign {c}: the PBX played the abandon message to {a} itself: nobody moved"
            " the person by the connect limit",
            c=self.settings.name,
            a=attempt.id,
        )
        if attempt.id in self.waiting_since and self.desk.offered_to(attempt.id) is None:
            self._abandon(attempt, now, played=True)
            return
        self._count_abandoned(attempt, now)

    def _count_abandoned(self, attempt: Attempt, now: float) -> None:
        """A person answered and no agent took the call in time: once per call."""
        if attempt.abandoned:
            return
        attempt.abandoned = True
        self.stats.abandoned += 1
        self.ledger.abandoned(now)
        self.strategy.observe(abandoned=True)
        self._notify(AttemptNews.ABANDONED, attempt)

    def _forget_marks(self, attempts: Iterable[Attempt]) -> None:
        """The PBX's marks of these calls are known now: deleted there."""
        d = self.telephony.take_pbx_abandons([a.channel_id for a in attempts])
        d.addErrback(
            lambda f: log.warn(
                "campaign {c}: the PBX's abandon marks not deleted: {e}",
                c=self.settings.name,
                e=f.getErrorMessage(),
            )
        )

    def _settle_moves(self, now: float) -> None:
        """After a resync: a person whose move into an agent's bridge went
        with the PBX link (sent as it dropped, or while it was down) and who
        is not in that bridge now (the resync would have said so) is still
        on hold, and the agent is kept for them.  Before the connect
        deadline (:meth:`connect_by`, the timer's own) the person is moved again; past it, the person hears the
        abandon message and counts abandoned, as at the deadline, and the
        agent is free for the next one."""
        unsure, self._moves_unsure = self._moves_unsure, set()
        # who is offered to whom now: a person re-routed while this runs
        # (to an agent freed here) is moved by that offer, not again
        todo = [(a, self.desk.offered_to(a)) for a in sorted(unsure)]
        for attempt_id, agent in todo:
            attempt = self.live.get(attempt_id)
            since = self.waiting_since.get(attempt_id)
            if attempt is None or attempt.connected is not None or since is None:
                continue
            if agent is None or self.desk.offered_to(attempt_id) != agent:
                continue
            due = attempt.connect_by if attempt.connect_by is not None else self.connect_by(since)
            if now < due:
                log.info(
                    "campaign {c}: {a} moved to agent {g} again after the resync",
                    c=self.settings.name,
                    a=attempt_id,
                    g=agent,
                )
                self._move(attempt, agent)
            else:
                self._abandon(attempt, now)

    def _connected(self, attempt: Attempt, now: float) -> None:
        if attempt.connected is not None or attempt.agent is None:
            return
        if self.desk.offered_to(attempt.id) is None:
            return
        self.waiting_since.pop(attempt.id, None)
        timer = self._deadlines.pop(attempt.id, None)
        if timer is not None and timer.active():
            timer.cancel()
        self.desk.accept_offer(attempt.agent, attempt.id, now)
        attempt.connected = now
        self.log.connected(attempt)
        self.stats.connected += 1
        if not attempt.abandoned:  # a late move, counted live and abandoned at the PBX's net
            self.ledger.live(now)
        attempt.paced = self.strategy.observe(abandoned=False)
        self._notify(AttemptNews.CONNECTED, attempt)

    def answering_machine(self, ref: str, connected_at: float | None = None) -> str:
        """The agent's disposition: call ``ref`` reached an answering machine
        that AMD took for a person.

        The ledger counted it live when it reached the agent; the rate the
        regulator takes (abandoned / calls answered by a person) does not.
        With the standard workload (30 % machines, 15 % of them missed)
        about one connection in six is a machine, and the guards of the
        pacing saw, e.g., 67.7 live answers in an hour where 50 persons
        answered: they let a third abandon into that hour.  The live answer
        is taken back at its connection (the day bucket, the last hour's
        events), λ's step for it is undone, and the call ends "machine" (the
        retry rules see a machine, not a reached person).

        ``connected_at``: when the call reached the agent, for a call this
        runner no longer holds (ended, or before a restart; the store knows).
        Returns "open" (the call is up: it will end "machine"), "ended"
        (taken back; the end was written already, "answered": the caller
        rewrites the stored attempt and reschedules its record) or "unknown"
        (nothing to take back)."""
        now = self.clock.seconds()
        attempt = self.live.get(ref) or self._ended_connected.get(ref)
        if attempt is not None:
            if attempt.machine or attempt.connected is None:
                return "unknown"
            attempt.machine = True
            self.ledger.take_back_live(attempt.connected, now)
            if attempt.paced:
                self.strategy.take_back()
            if attempt.open:
                return "open"
            # kept (marked): a second "machine" finds it and takes nothing back again
            attempt.outcome = "machine"  # the caller rewrites the stored attempt and record
            return "ended"
        if connected_at is None:
            return "unknown"
        return "ended" if self.ledger.take_back_live(connected_at, now) else "unknown"

    def _hung_up(self, attempt: Attempt, now: float, event: CallEnded) -> None:
        if not attempt.open:
            return
        if attempt.connected is not None and attempt.agent is not None:
            vanished = event.vanished and self.lost_at is not None
            if vanished or event.cut_by_pbx:
                # cut by the PBX; one that vanished while the link was down ended
                # at the latest when the link was lost (not at the resync)
                ended = max(attempt.connected, self.lost_at or now) if vanished else now
                if self.desk.handler_of(attempt.id) is not None:
                    self._route(
                        self.desk.agent_finishes(
                            attempt.agent, attempt.id, now, self.settings.wrap_up
                        )
                    )
                self._end(
                    attempt, PBX_LOST, ended, retry_as="machine" if attempt.machine else "answered"
                )
                return
            if self.desk.handler_of(attempt.id) is not None:
                self._talk[attempt.agent] = (now - attempt.connected, now)
                self._route(
                    self.desk.agent_finishes(attempt.agent, attempt.id, now, self.settings.wrap_up)
                )
            if attempt.machine:
                self._end(attempt, "machine", now)
                return
            self._end(attempt, "answered", now)
            # the agent may say afterwards that it was a machine (in wrap-up)
            self._ended_connected[attempt.id] = attempt
            while len(self._ended_connected) > ENDED_KEPT:
                del self._ended_connected[next(iter(self._ended_connected))]
            return
        if attempt.abandoned:
            self._end(attempt, "abandoned", now)
            return
        if attempt.id in self.waiting_since:
            # the person hung up before an agent took the call: abandoned
            del self.waiting_since[attempt.id]
            timer = self._deadlines.pop(attempt.id, None)
            if timer is not None and timer.active():
                timer.cancel()
            offered_to = self.desk.offered_to(attempt.id)
            self.desk.abandon(attempt.id, now)  # also releases an agent it was offered to
            if offered_to is not None:
                self._route(self.desk.route_agent(offered_to, now))
            attempt.abandoned = True
            self.stats.abandoned += 1
            self.ledger.abandoned(now)
            self.strategy.observe(abandoned=True)
            self._end(attempt, "abandoned", now)
            return
        if attempt.verdict == "machine":
            self._end(attempt, "machine", now)
            return
        if attempt.answered is None:
            return  # the originate result closes it
        if event.cut_by_pbx:
            # answered, AMD undecided, cut by a PBX shutdown or restart: nobody
            # knows what answered (a flag, not a Q.850 cause: not "no answer")
            self._close_unknown(attempt, now)
            return
        if self.settings.amd:
            # answered, no verdict heard: AMD may have said HUMAN to a PBX
            # whose UserEvent never reached us; the dialplan's net then
            # played the abandon message and marked the call (QA round 3,
            # finding 4: such persons were stored "no-answer", outside the
            # ledger).  The PBX says which; the attempt closes once it has.
            d = self.telephony.take_pbx_abandons([attempt.channel_id])
            d.addCallbacks(self._verdict_missed, self._marks_unread, (attempt,), {}, (attempt,))
            return
        self._no_verdict(attempt, now)

    def _no_verdict(self, attempt: Attempt, now: float) -> None:
        """Answered, hung up before AMD decided."""
        self.estimates.outcome("failed")
        self._end(attempt, "no-answer", now)

    def _verdict_missed(self, marks: dict[str, float], attempt: Attempt) -> None:
        if not attempt.open:
            return
        now = self.clock.seconds()
        if attempt.channel_id not in marks:
            self._no_verdict(attempt, now)
            return
        log.warn(
            "campaign {c}: {a} was answered by a person whose AMD verdict never reached"
            " Dirigent; the PBX played the abandon message: counted abandoned",
            c=self.settings.name,
            a=attempt.id,
        )
        attempt.verdict = "human"
        self._count_abandoned(attempt, now)
        self._end(attempt, "abandoned", now)

    def _marks_unread(self, failure: Failure, attempt: Attempt) -> None:
        log.warn(
            "campaign {c}: the PBX's abandon mark of {a} not read: {e}",
            c=self.settings.name,
            a=attempt.id,
            e=failure.getErrorMessage(),
        )
        if attempt.open:
            self._no_verdict(attempt, self.clock.seconds())

    def _end(self, attempt: Attempt, outcome: str, now: float, retry_as: str | None = None) -> None:
        """Close the attempt with ``outcome`` at ``now``; the retry rules see
        ``retry_as`` when given (an outcome of their vocabulary)."""
        if not attempt.open:
            return
        self._line_change(max(now, self._last_line_change))
        attempt.outcome, attempt.ended = outcome, now
        self._release(attempt.id)
        self.live.pop(attempt.id, None)
        self.by_channel.pop(attempt.channel_id, None)
        self.log.end(attempt)
        self.stats.outcomes[outcome] = self.stats.outcomes.get(outcome, 0) + 1
        self.source.done(attempt.lead, retry_as or outcome, now)
        preview = self.previews.get(attempt.agent) if attempt.agent else None
        if preview is not None and preview.attempt == attempt.id:
            del self.previews[attempt.agent]  # type: ignore[arg-type]  # not answered
            self._preview_over(attempt.agent)  # type: ignore[arg-type]  # the next record
        self._notify(AttemptNews.ENDED, attempt)
        self.pace_soon()

    def _notify(self, what: AttemptNews, attempt: Attempt) -> None:
        for listener in self.listeners:
            listener(what, attempt)

    # -- restarts and link loss ------------------------------------------------------------
    def reconcile_live(self) -> Deferred[None]:
        """After a resync: attempts whose channel is gone are closed.  A
        person who was waiting for an agent may have heard the PBX's abandon
        message while the link was down (its net): the PBX's marks say so,
        and those close abandoned; every other call gone closes "unknown" at
        once.  A look-up that fails leaves the waiting ones open (held, not
        moved) for the next resync."""
        now = self.clock.seconds()
        gone = [a for a in self.live.values() if self.telephony.live_call(a.channel_id) is None]
        # persons who waited for an agent (or were counted abandoned at the
        # deadline while the link was down: the PBX's net marked them too)
        waiting = [
            a for a in gone if (a.id in self.waiting_since or a.abandoned) and a.connected is None
        ]
        for attempt in gone:
            if attempt not in waiting:
                self._close_unknown(attempt, now)
        if not waiting:
            return succeed(None)
        self._moves_unsure.difference_update(a.id for a in waiting)  # nowhere to move them
        d = self.telephony.take_pbx_abandons([a.channel_id for a in waiting])

        def close(marks: dict[str, float]) -> None:
            now = self.clock.seconds()
            for attempt in waiting:
                if not attempt.open:
                    continue
                if attempt.channel_id in marks or attempt.abandoned:
                    self._close_abandoned(attempt, now)
                else:
                    self._close_unknown(attempt, now)

        def failed(failure: Failure) -> None:
            log.warn(
                "campaign {c}: {n} persons gone with the link stay open until the next resync"
                " (the PBX's abandon marks not read: {e})",
                c=self.settings.name,
                n=len(waiting),
                e=failure.getErrorMessage(),
            )

        return d.addCallbacks(close, failed)

    def reconcile(self, pbx_abandoned: Mapping[str, float] | None = None) -> list[Attempt]:
        """On start (after the first resync): attempts a previous run left open.

        ``pbx_abandoned``: the calls the PBX's net played the abandon
        message to while no Dirigent ran (:meth:`pbx_abandons`): abandoned
        live answers, counted so in the ledger and closed "abandoned" (the
        retry rules and the UK lock-out see an abandoned call); a message
        still playing is left to end.

        A call still bridged with a nailed-up agent is a conversation going
        on: it is taken over (the agent is busy with it, and its end is
        recorded as usual) instead of being cut off.  Any other call still up
        is hung up (its state was lost) and, like the calls already gone,
        closed "unknown" -- unless the person had already been connected to
        an agent: that call was a conversation, closed "server-restart" (or
        "pbx-lost" for one still up, hung up here) and seen by the retry
        rules as "answered", so that nobody who spoke to an
        agent is called again for it.  None is redialed here: the retry
        rules decide when the record is due again.  Returns the attempts
        closed."""
        now = self.clock.seconds()
        closed = []
        marks = pbx_abandoned or {}
        recovering, self._recovering = self._recovering, None
        if recovering is None:
            recovering = self.log.open_attempts(self.settings.name)
        for attempt in recovering:
            chan = self.telephony.live_call(attempt.channel_id)
            if attempt.channel_id in marks and attempt.connected is None:
                self._abandoned_while_down(attempt, marks[attempt.channel_id], now)
                closed.append(attempt)
                continue
            if chan is not None:
                agent = self._agent_bridged_with(chan)
                if agent is not None and self._adopt(attempt, chan, agent, now):
                    continue
                self._command(attempt, "hang-up", self.telephony.hang_up(attempt.channel_id))
            if attempt.connected is not None:
                # the person spoke to an agent: reached, never due again for
                # it; the conversation ended at the latest now, at the
                # earliest when it began (the last moment we know of)
                outcome = PBX_LOST if chan is not None else SERVER_RESTART
                retry_as = "answered"
                attempt.ended = now if chan is not None else attempt.connected
            else:
                outcome = retry_as = "unknown"
                attempt.ended = now
            attempt.outcome = outcome
            self.log.end(attempt)
            self.source.done(attempt.lead, retry_as, now)
            self.stats.outcomes[outcome] = self.stats.outcomes.get(outcome, 0) + 1
            closed.append(attempt)
            self._notify(AttemptNews.ENDED, attempt)  # counted and reported like any other end
        return closed

    def pbx_abandons(self) -> Deferred[dict[str, float]]:
        """Before :meth:`reconcile`: which open attempts of a previous run the
        PBX's net played the abandon message to (read from the PBX, and
        forgotten there).  A failed look-up is logged and reads as none:
        those attempts close "unknown", as before the net existed."""
        # read once (the store preloads them in its writer): reconcile takes these
        self._recovering = self.log.open_attempts(self.settings.name)
        calls = [a.channel_id for a in self._recovering]
        if not calls:
            return succeed({})

        def failed(failure: Failure) -> dict[str, float]:
            log.failure(
                "campaign {c}: the PBX's abandon marks could not be read",
                failure,
                c=self.settings.name,
            )
            return {}

        return self.telephony.take_pbx_abandons(calls).addErrback(failed)

    def _abandoned_while_down(self, attempt: Attempt, at: float, now: float) -> None:
        """A person answered while no Dirigent ran and heard the PBX's
        abandon message (at ``at``, the PBX's clock): an abandoned live
        answer.  Counted in the ledger now -- the hour's window holds it a
        little longer than from ``at``, on the safe side."""
        attempt.answered = attempt.answered or min(at, now)
        attempt.verdict = attempt.verdict or "human"
        attempt.abandoned = True
        attempt.outcome, attempt.ended = "abandoned", now
        self.ledger.abandoned(now)
        self.stats.abandoned += 1
        self.stats.outcomes["abandoned"] = self.stats.outcomes.get("abandoned", 0) + 1
        self.log.end(attempt)
        self.source.done(attempt.lead, "abandoned", now)
        log.warn(
            "campaign {c}: {a} was answered while no Dirigent ran and the PBX played the"
            " abandon message: counted abandoned",
            c=self.settings.name,
            a=attempt.id,
        )
        self._notify(AttemptNews.ENDED, attempt)

    def _close_abandoned(self, attempt: Attempt, now: float) -> None:
        """Gone while the link was down, after the PBX's net played the
        abandon message: abandoned (counted once), out of the router."""
        self._count_abandoned(attempt, now)
        self._close_gone(attempt, "abandoned", now)

    def _agent_bridged_with(self, chan: LiveCall) -> str | None:
        """The agent whose nailed-up leg (``agent-<id>-<ms>``) shares the bridge."""
        for uid in self.telephony.bridged_with(chan.id):
            if uid.startswith("agent-") and uid.count("-") >= 2:
                return uid[len("agent-") :].rsplit("-", 1)[0]
        return None

    def _interaction(
        self, attempt: Attempt, now: float, agent: str | None, priority: int
    ) -> Interaction:
        """The router's side of a person on the line: offered to ``agent``
        only when one is named (preview, a call taken over after a restart)."""
        return Interaction(
            attempt.id,
            Channel.VOICE,
            self.settings.queue_name,
            now,
            direction=Direction.OUTBOUND,
            customer=attempt.lead.number,
            attributes=dict(attempt.lead.extra),
            agent=agent,
            priority=priority,
            connect_by=self.connect_by(now) if attempt.connect_by is None else attempt.connect_by,
            campaign=self.settings.name,
        )

    def _adopt(self, attempt: Attempt, chan: LiveCall, agent_id: str, now: float) -> bool:
        """The person in ``agent_id``'s bridge after a restart is that agent's
        call again.  The voice adapter holds such an agent paused
        :data:`CALL_IN_BRIDGE` (ready, an inbound caller could be moved in
        first); it is taken from the hold when this call is the only one
        in the bridge (with another customer there, it is not: hung up)."""
        agent = self.desk.agent(agent_id)
        if agent is None:
            return False
        held = agent.state is AgentState.PAUSED and agent.pause_reason == CALL_IN_BRIDGE
        alone = all(uid.startswith("agent-") for uid in self.telephony.bridged_with(chan.id))
        if not (agent.state is AgentState.READY or (held and alone)):
            return False
        attempt.answered = attempt.answered or now
        attempt.verdict, attempt.verdict_at = "human", attempt.verdict_at or now
        attempt.channel = chan.name
        self.live[attempt.id] = attempt
        self.by_channel[attempt.channel_id] = attempt
        interaction = self._interaction(attempt, now, agent_id, PREVIEW_PRIORITY)
        self._own(attempt.id)
        self.desk.queue_owned(interaction, now)  # offered to that agent only
        others: list[Offer] = []
        if held:  # the agent leaves the hold for this call (first: it goes ahead)
            others = [o for o in self.desk.line_ready(agent_id, now) if o.interaction != attempt.id]
        if self.desk.offered_to(attempt.id) is None:
            if held:  # back in the hold, and what it was offered meanwhile goes back
                self.desk.line_pause(agent_id, now, CALL_IN_BRIDGE)
                given_back: list[Offer] = []
                for o in others:
                    given_back += self.desk.withdraw_offer(
                        agent_id, o.interaction, now, CALL_IN_BRIDGE
                    )
                self._route(given_back)
            self.desk.abandon(attempt.id, now)
            self._release(attempt.id)
            del self.live[attempt.id], self.by_channel[attempt.channel_id]
            return False
        self.desk.accept_offer(agent_id, attempt.id, now)
        self._route(others)  # chat, e-mail ... its capacity allows beside the call
        # the conversation began before the restart: its talk time counts from then
        attempt.agent, attempt.connected = agent_id, attempt.connected or now
        log.info(
            "campaign {c}: call {a} with agent {g} taken over after a restart",
            c=self.settings.name,
            a=attempt.id,
            g=agent_id,
        )
        return True

    def _close_unknown(self, attempt: Attempt, now: float) -> None:
        """Nobody knows how the call ended: closed "unknown", and out of the
        router wherever it was (queued, offered, with an agent); the agent it
        held is routed again."""
        self._close_gone(attempt, "unknown", now)

    def _close_gone(self, attempt: Attempt, outcome: str, now: float) -> None:
        """A call gone with the PBX link: closed ``outcome`` and out of the
        router wherever it was; the agent it held is routed again."""
        self.waiting_since.pop(attempt.id, None)
        timer = self._deadlines.pop(attempt.id, None)
        if timer is not None and timer.active():
            timer.cancel()
        freed = self.desk.drop(attempt.id, now, "pbx lost")
        self._end(attempt, outcome, now)
        if freed is not None:
            self._route(self.desk.route_agent(freed, now))
