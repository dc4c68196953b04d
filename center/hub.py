"""The hub: one router for every channel and every PBX, behind commands and queries.

What the hub owns:

* the :class:`~routing.router.Router` (nothing outside ``routing/`` reads
  its dictionaries; the hub, like the campaign runners and the pacing lab,
  asks it through its commands and queries).  The voice adapter never
  touches it: it asks the hub's queries and reports through the hub's line
  commands (:meth:`Hub.line_login`, :meth:`Hub.accept_offer` ...), which,
  unlike the faces' agent commands, do not call the agent's line back;
* agent commands (login, ready, pause, logout, end of wrap-up): the offers
  they cause are carried out at once;
* the lifecycle of every interaction on every channel (queued, offered,
  answered, ended, transferred), published on the bus as typed events;
* the registry of channel adapters: an adapter (``channels.voice``, one per
  PBX) *owns* the interactions it brings in (:meth:`enqueue` with
  ``owner``) and receives their offers (:meth:`ChannelAdapter.carry_out`),
  their exits and transfers; an agent with a phone is reached through its
  :class:`AgentLine` (the voice adapter of the agent's PBX);
* the live KPI figures (:mod:`center.kpi`) and the gauges
  (:mod:`center.metrics`).

Campaign runners (``dialer.runner``) are adapters too: each owns the
persons its campaign reached and receives their offers the same way.
Interactions nobody owns (chat, e-mail, SMS created through the API until
their gateways exist) are accepted and finished on the desktop.

Which PBX an agent and a queue belong to is the hub's to check
(``agent_pbx`` / ``queue_pbx``): an agent logs in only to queues of its own
PBX, so the router never offers a caller on one PBX to an agent on another.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from prometheus_client import CollectorRegistry
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall

from center.kpi import Kpi
from center.metrics import AcdMetrics
from core.bus import EventBus
from core.errors import Conflict, Invalid
from core.events import (
    AgentStateChanged,
    InteractionChanged,
    OfferEnd,
    OfferEnded,
    OfferMade,
    Stage,
)
from routing.agent import Agent, AgentState, Transition
from routing.model import Channel, Exit, Handover, Interaction, Offer, RoutingError
from routing.router import Router

# Offer and Exit: what the hub hands its adapters (ChannelAdapter speaks them),
# so that an adapter needs no import of the router itself
__all__ = ["AcdMetrics", "AgentLine", "ChannelAdapter", "Exit", "Hub", "Offer"]

#: transferred campaign calls remembered for their result (a day of a large centre)
TAKEN_OVER_KEPT = 10_000


class ChannelAdapter(Protocol):
    """A channel's side of the interactions it owns (one voice adapter per PBX)."""

    def carry_out(self, offer: Offer) -> None:
        """Bring the interaction of ``offer`` to its agent (ring, connect ...)."""

    def on_exit(self, ex: Exit) -> None:
        """The router gave the interaction up (max wait): hand it elsewhere."""

    def transfer(
        self, agent: str, interaction: str, queue: str | None, to_agent: str | None
    ) -> list[Offer]:
        """A blind transfer of an interaction this adapter owns."""

    def waiting_inbound(self) -> Iterable[str]:
        """The queue of each inbound customer waiting now (for blending)."""

    def stop(self) -> None: ...


class AgentLine(Protocol):
    """How an agent's phone is reached (the voice adapter of its PBX).  Each
    hook returns True when it handled the command itself."""

    def login(self, agent: str, queues: list[str], paused: str | None) -> bool: ...
    def ready(self, agent: str) -> bool: ...
    def pause(self, agent: str, reason: str) -> bool: ...
    def logged_out(self, agent: str) -> None: ...
    def has_leg(self, agent: str) -> bool: ...
    def leg_missing(self, agent: str) -> None: ...


class Hub:
    def __init__(
        self,
        router: Router,
        clock: IReactorTime,
        *,
        registry: CollectorRegistry | None = None,
        wrap_up: float = 10.0,
        tick_interval: float = 1.0,
        day_start: Callable[[float], float] = lambda now: now - now % 86_400,
        bus: EventBus | None = None,
        agent_pbx: Mapping[str, str] | None = None,
        queue_pbx: Mapping[str, str] | None = None,
        campaign_queues: Iterable[str] = (),
        campaign_only: Iterable[str] = (),
        rung: Iterable[str] = (),
    ) -> None:
        self.router = router
        self.clock = clock
        self.wrap_up = wrap_up
        self.day_start = day_start
        self.metrics = AcdMetrics(registry) if registry is not None else None
        self.kpi = Kpi(router, day_start, clock.seconds())
        self.bus = bus or EventBus()
        self.agent_pbx = dict(agent_pbx or {})
        self.queue_pbx = dict(queue_pbx or {})
        #: the campaigns' queues, and the agents whose phone is rung per call
        #: (no kept line): such an agent cannot take a person a campaign
        #: reached, who must be with an agent within 2 s of the greeting
        self.campaign_queues = frozenset(campaign_queues)
        #: the campaigns' queues that are no inbound queue too (no ``[[queue]]``
        #: table): nobody there takes anything but the campaign's persons, so
        #: a chat created in one or a call transferred into one would wait for ever
        self.campaign_only = frozenset(campaign_only)
        self.rung = frozenset(rung)
        self._published: dict[str, tuple[AgentState, str | None]] = {}
        self._ids = itertools.count(1)
        self.adapters: list[ChannelAdapter] = []
        self._owners: dict[str, ChannelAdapter] = {}  # interaction id -> its adapter
        self._lines: dict[str, AgentLine] = {}  # agent -> how its phone is reached
        #: (PBX, call) -> what a call handed over between adapters carries, until
        #: the PBX announces it to the adapter taking it
        self._handovers: dict[tuple[str, str], Handover] = {}
        #: a campaign's attempt -> the agent who took the person after a
        #: transfer (that agent gives the record's result); the latest kept
        self._taken_over: dict[str, str] = {}
        #: interaction -> the agent whose screen shows its pop (until the offer ends)
        self._popped: dict[str, str] = {}
        router.listen_agents(self._agent_changed)
        router.listen_offers(self._offer_ended)
        self.stopping = False
        self._ticker = LoopingCall(self.tick)
        self._ticker.clock = clock
        self._tick_interval = tick_interval

    # -- registry ---------------------------------------------------------------------------
    def add_adapter(self, adapter: ChannelAdapter) -> None:
        self.adapters.append(adapter)

    def add_line(self, agent: str, line: AgentLine) -> None:
        self._lines[agent] = line

    def own(self, interaction: str, adapter: ChannelAdapter) -> None:
        self._owners[interaction] = adapter

    def release(self, interaction: str) -> None:
        self._owners.pop(interaction, None)

    def hand_over(self, pbx: str, call: str, handover: Handover) -> None:
        """A call leaves its adapter (a campaign's person transferred to a
        queue) and is announced again by the PBX: the adapter that receives
        it takes what it carries (:meth:`take_handover`)."""
        self._handovers[(pbx, call)] = handover

    def take_handover(self, pbx: str, call: str) -> Handover | None:
        return self._handovers.pop((pbx, call), None)

    def taken_over_by(self, attempt: str) -> str | None:
        """The agent who took a campaign's person after a transfer (None: nobody)."""
        return self._taken_over.get(attempt)

    def start(self) -> None:
        self._ticker.start(self._tick_interval, now=False)

    def stop(self) -> None:
        self.stopping = True  # the PBX links close next: expected, not a fault
        if self._ticker.running:
            self._ticker.stop()
        for adapter in self.adapters:
            adapter.stop()

    # -- agents -------------------------------------------------------------------------
    def login(self, agent: str, queues: list[str], paused: str | None = None) -> None:
        """Log in (to queues of the agent's own PBX only)."""
        check_reason(paused)
        own = self.agent_pbx.get(agent)
        for q in queues:
            pbx = self.queue_pbx.get(q)
            if own is not None and pbx is not None and pbx != own:
                raise RoutingError(
                    "queues", f"queue {q!r} is on PBX {pbx!r}, agent {agent} on {own!r}"
                )
            if q in self.campaign_queues and agent in self.rung:
                raise RoutingError(
                    "queues",
                    f"queue {q!r} is a campaign's: its persons need an agent on a nailed-up"
                    f" line (agent {agent} is rung per call)",
                )
        line = self._lines.get(agent)
        if line is not None and line.login(agent, queues, paused):
            return
        self.route(self.router.login(agent, self.clock.seconds(), queues, paused))

    def ready(self, agent: str) -> None:
        line = self._lines.get(agent)
        if line is not None and line.ready(agent):
            return
        self.route(self.router.ready(agent, self.clock.seconds()))

    def pause(self, agent: str, reason: str) -> None:
        check_reason(reason)
        line = self._lines.get(agent)
        if line is not None and line.pause(agent, reason):
            return
        self.router.pause(agent, self.clock.seconds(), reason)

    def logout(self, agent: str) -> None:
        self.router.logout(agent, self.clock.seconds())
        line = self._lines.get(agent)
        if line is not None:
            line.logged_out(agent)

    def end_wrap_up(self, agent: str) -> None:
        self.route(self.router.end_wrap_up(agent, self.clock.seconds()))

    def has_leg(self, agent: str) -> bool:
        """May a call be moved to ``agent`` now (a nailed-up leg in its bridge)?"""
        line = self._lines.get(agent)
        return True if line is None else line.has_leg(agent)

    def leg_missing(self, agent: str) -> None:
        line = self._lines.get(agent)
        if line is not None:
            line.leg_missing(agent)

    # -- the lines' own commands (an adapter reports what its PBX did) ------------------------
    # Two sets of commands, on purpose.  The faces' ones above (login, ready,
    # pause ...) reach the agent's line first: a nailed-up agent without its
    # leg is not made ready, a login nails the leg up.  The ones below are
    # what that line itself tells the hub (the leg is up, the phone rang out,
    # the caller hung up): they go to the router only, never back to the line
    # (which is the caller: it would be asked again what it just reported),
    # with the time the adapter saw it.  Those that cause offers return them
    # instead of routing them: the adapter hands them to :meth:`route` once
    # its own bookkeeping is done (an agent paused before its given-back
    # caller is offered again, a loop of declines that must not recurse).
    def line_login(
        self, agent: str, now: float, queues: list[str], paused: str | None = None
    ) -> list[Offer]:
        """The line logs its agent in (its leg is up, a conversation taken
        over, or paused with the leg's reason meanwhile).  The queues are the
        ones :meth:`login` checked, or the configuration's (auto_login)."""
        return self.router.login(agent, now, queues, paused)

    def line_ready(self, agent: str, now: float) -> list[Offer]:
        """The line makes its agent ready (its leg is back, its bridge its own again)."""
        return self.router.ready(agent, now)

    def line_pause(self, agent: str, now: float, reason: str) -> None:
        """The line pauses its agent (no phone, PBX lost, no answer ...)."""
        self.router.pause(agent, now, reason)

    def queue_owned(self, interaction: Interaction, now: float) -> list[Offer]:
        """Queue an interaction whose adapter reports it itself: a caller the
        last run left waiting or a call taken over after a restart (its row is
        reopened, not new), a person a campaign reached (the runner publishes
        its own news).  Unlike :meth:`enqueue`, no QUEUED event and no count."""
        return self.router.enqueue(interaction, now)

    def accept_offer(self, agent: str, interaction: str, now: float) -> Interaction:
        """The agent's phone is in the call offered to it: the agent has it.
        Unlike :meth:`accept` (the desktop's, for what no adapter owns), the
        adapter publishes the answer and counts it itself."""
        return self.router.accept(agent, interaction, now)

    def decline_offer(
        self, agent: str, interaction: str, now: float, *, timed_out: bool = False
    ) -> list[Offer]:
        """The offer is not carried out (no leg, a failed move, a phone that
        rang out: ``timed_out`` pauses the agent "no answer")."""
        return self.router.decline(agent, interaction, now, timed_out)

    def withdraw_offer(self, agent: str, interaction: str, now: float, reason: str) -> list[Offer]:
        """The offer is taken back through no doing of the agent's (its phone
        went away, the PBX refused the move): ``routing.router.Router.withdraw``."""
        return self.router.withdraw(agent, interaction, now, reason)

    def hold_offer(self, interaction: str) -> None:
        """The offer's move waits for the PBX link: no time-out meanwhile."""
        self.router.hold_offer(interaction)

    def renew_offer(self, interaction: str, now: float) -> None:
        """A held move is sent again: its time-out counts from ``now``."""
        self.router.renew_offer(interaction, now)

    def abandon(self, interaction: str, now: float) -> Interaction | None:
        """The interaction leaves routing without an agent (the caller hung
        up or went to the dialplan's fallback) while waiting or offered."""
        return self.router.abandon(interaction, now)

    def drop(self, interaction: str, now: float, reason: str) -> str | None:
        """The interaction went with the agent's leg, wherever it was; the
        agent it freed, if any (``routing.router.Router.drop``)."""
        return self.router.drop(interaction, now, reason)

    def call_ended(self, agent: str, interaction: str, now: float) -> list[Offer]:
        """The call in ``agent``'s hands was hung up: the agent goes to
        wrap-up (the hub's ``wrap_up``).  :meth:`finish` refuses that for a
        call: there the desktop asks, and a call ends only when it is hung up."""
        return self.router.finish(agent, interaction, now, self.wrap_up)

    def transfer_owned(
        self,
        agent: str,
        interaction: str,
        now: float,
        *,
        queue: str | None = None,
        to_agent: str | None = None,
    ) -> list[Offer]:
        """The owning adapter's half of :meth:`transfer` (which checked the
        target and called the adapter): the interaction waits again, the
        agent goes to wrap-up (the hub's ``wrap_up``)."""
        return self.router.transfer(
            agent, interaction, now, queue=queue, to_agent=to_agent, wrap_up=self.wrap_up
        )

    def route_agent(self, agent: str, now: float) -> list[Offer]:
        """What waits and fits ``agent`` now (its caller left, its move refused)."""
        return self.router.route_agent(agent, now)

    def route_all(self, now: float) -> list[Offer]:
        """Match everything that can be matched (after a PBX's resync)."""
        return self.router.route(now)

    def restore_agent_days(
        self, states: Mapping[str, Sequence[tuple[float, str]]], now: float
    ) -> None:
        """Each agent's day before this process, as the report has it
        (``states``: agent -> (when, state) changes since the day began): the
        live board's ``seconds_today`` counted everything before a restart as
        logged out (QA5 finding 20).  The agent is logged out from ``now``
        until it logs in; an agent no longer configured, or a state this
        version does not know, is skipped."""
        known = {s.value for s in AgentState}
        for agent_id, changes in states.items():
            agent = self.router.agent(agent_id)
            if agent is None:
                continue
            before = [Transition(at, AgentState(state)) for at, state in changes if state in known]
            agent.restore_day(before, now)

    def close_agent_days(self, now: float) -> list[AgentStateChanged]:
        """The state changes a clean stop ends each logged-in agent's day with,
        for the report writer (QA5 finding 23: the next start closed the state
        at the agent's last change, so the report lost the time up to the
        stop).  Not published on the bus: nobody is logged out; the next run
        logs the agent in again (auto_login, a call taken over)."""
        return [
            AgentStateChanged(now, agent.id, AgentState.LOGGED_OUT, "server stopped")
            for agent in self.router.configured_agents()  # in configuration order, as written
            if agent.logged_in
        ]

    # -- events -----------------------------------------------------------------------------
    def publish_interaction(
        self,
        stage: Stage,
        interaction: Interaction,
        at: float | None = None,
        *,
        agent: str | None = None,
        outcome: str | None = None,
        wait: float | None = None,
    ) -> None:
        # the right to a call's result goes with a hand-over, never with an
        # attribute an integration or a list column could set
        attempt = interaction.handed_over
        if stage is Stage.ANSWERED and agent is not None and attempt is not None:
            self._taken_over[attempt] = agent
            while len(self._taken_over) > TAKEN_OVER_KEPT:
                del self._taken_over[next(iter(self._taken_over))]
        self.bus.publish(
            InteractionChanged(
                self.clock.seconds() if at is None else at,
                stage,
                interaction.id,
                interaction.channel,
                interaction.queue,
                interaction.customer,
                interaction.direction,
                tuple(interaction.history),
                agent=agent,
                outcome=outcome,
                wait=wait,
                attempt=attempt,
            )
        )

    def _agent_changed(self, agent: Agent) -> None:
        now_state = (agent.state, agent.pause_reason)
        if self._published.get(agent.id) != now_state:
            self._published[agent.id] = now_state
            self.bus.publish(
                AgentStateChanged(self.clock.seconds(), agent.id, agent.state, agent.pause_reason)
            )

    # -- interactions -------------------------------------------------------------------
    def enqueue(self, interaction: Interaction, owner: ChannelAdapter | None = None) -> None:
        """A new interaction in the universal queue, owned by ``owner`` (None:
        the desktop accepts and finishes it)."""
        if owner is not None:
            self.own(interaction.id, owner)
        if self.metrics:
            self.metrics.offered.labels(interaction.queue, interaction.channel.value).inc()
        self.publish_interaction(Stage.QUEUED, interaction)
        self.route(self.router.enqueue(interaction, self.clock.seconds()))

    def create_interaction(self, channel: Channel, queue: str, **fields: Any) -> str:
        """A chat, e-mail or SMS (until their gateways exist): created through the API."""
        self._check_takes_others(queue)
        iid = f"{channel.value}-{int(self.clock.seconds())}-{next(self._ids)}"
        self.enqueue(Interaction(iid, channel, queue, self.clock.seconds(), **fields))
        return iid

    def accept(self, agent: str, interaction: str) -> None:
        """An agent takes an offered chat, e-mail or SMS (the desktop's button).
        A call is not accepted here: its adapter accepts it once the agent's
        phone is in the call (until then the agent would show busy with a
        call nobody answered)."""
        offered = self.router.in_offer(interaction)
        if offered is None or self.router.offered_to(interaction) != agent:
            raise RoutingError("interaction", f"{interaction} is not offered to {agent}")
        if interaction in self._owners:
            raise Conflict("interaction", f"{interaction} is a call: it is answered on the phone")
        now = self.clock.seconds()
        self.router.accept(agent, interaction, now)
        self.publish_interaction(Stage.ANSWERED, offered, agent=agent)
        if self.metrics:
            it = offered
            self.metrics.answered.labels(it.queue, it.channel.value).inc()
            self.metrics.wait.labels(it.queue, it.channel.value, "answered").observe(
                now - it.arrived
            )

    def finish(self, agent: str, interaction: str, wrap_up: float) -> None:
        """The agent is done with a chat, e-mail or SMS.  A call ends when it
        is hung up (its adapter finishes it): finished here, the agent would
        be offered the next caller in the middle of the conversation."""
        if interaction in self._owners and self.router.handled_by(interaction) == agent:
            raise Conflict("interaction", f"{interaction} is a call: it ends when it is hung up")
        handled = self.router.handled(interaction)
        self.route(self.router.finish(agent, interaction, self.clock.seconds(), wrap_up))
        if handled is not None:
            self.publish_interaction(Stage.ENDED, handled, agent=agent)

    def transfer(
        self, agent: str, interaction: str, *, queue: str | None = None, to_agent: str | None = None
    ) -> None:
        """Blind transfer; an owned interaction (a call) goes through its adapter
        (the caller is put back on hold first); it keeps its id and history.  A
        person a campaign reached is handed over: the campaign's attempt ends,
        the PBX announces the person in the target queue and its voice adapter
        takes the call under its own id, with the history (:meth:`hand_over`).
        A call stays on its PBX: a queue or an agent of another PBX is refused
        (naming the field) before anything moves."""
        own = self.agent_pbx.get(agent)
        if own is not None and queue is not None:
            pbx = self.queue_pbx.get(queue)
            if pbx is not None and pbx != own:
                raise RoutingError(
                    "queue", f"queue {queue!r} is on PBX {pbx!r}, this call on {own!r}"
                )
        if own is not None and to_agent is not None:
            pbx = self.agent_pbx.get(to_agent)
            if pbx is not None and pbx != own:
                raise RoutingError(
                    "agent", f"agent {to_agent} is on PBX {pbx!r}, this call on {own!r}"
                )
        if queue is not None:
            self._check_takes_others(queue)
        self._check_transfer_target(agent, interaction, queue, to_agent)
        owner = self._owners.get(interaction)
        if owner is not None:
            self.route(owner.transfer(agent, interaction, queue, to_agent))
            return
        now = self.clock.seconds()
        self.route(self.router.transfer(agent, interaction, now, queue=queue, to_agent=to_agent))

    def _check_takes_others(self, queue: str) -> None:
        """A campaign-only queue takes nothing but its campaign's persons
        (QA5 findings 6, 11): refused naming ``queue``, nothing moved."""
        if queue in self.campaign_only:
            raise RoutingError(
                "queue",
                f"{queue!r} takes only campaign calls (a campaign's queue with no [[queue]]"
                " table): use an inbound queue or an agent",
            )

    def _check_transfer_target(
        self, agent: str, interaction: str, queue: str | None, to_agent: str | None
    ) -> None:
        """A target that could never take the interaction is refused before
        anything moves (QA5 findings 6, 19): it waited for ever or was handed
        back to its own agent.  (A campaign's queue may be an inbound queue
        too -- a campaign may dial into "sales" -- so only a campaign-only
        queue is refused: :meth:`_check_takes_others`.)"""
        if to_agent is None:
            return
        if to_agent == agent:
            raise RoutingError("agent", f"{interaction} is {agent}'s already")
        handled = self.router.handled(interaction)
        target = self.router.known_agent(to_agent)  # UnknownName ("agent") if there is none
        if handled is not None and target.capacity.get(handled.channel, 0) <= 0:
            raise RoutingError(
                "agent", f"{to_agent} takes no {handled.channel.value} (capacity 0 for it)"
            )

    # -- offers -------------------------------------------------------------------------
    def route(self, offers: list[Offer]) -> None:
        """Hand each offer to the adapter owning its interaction (a PBX's
        voice adapter, a campaign), then publish its screen pop.

        The pop comes once the adapter has the call on its way to the agent,
        not before: an adapter may refuse an offer on the spot (a nailed-up
        agent whose leg is out of its bridge gets no caller: the person goes
        back to the queue, to a colleague), and a pop shown for it would leave
        the agent with a customer's number and record for a call it never
        gets, with nothing on the push to take it back."""
        for offer in offers:
            it = self.router.in_offer(offer.interaction)
            offered_to = self.router.offered_to(offer.interaction)
            owner = self._owners.get(offer.interaction)
            if owner is not None:  # else chat / e-mail / SMS: accepted on the desktop
                owner.carry_out(offer)
            if it is None or offered_to != offer.agent:
                continue  # not (or no longer) this agent's offer
            if offer.agent not in (
                self.router.offered_to(offer.interaction),
                self.router.handled_by(offer.interaction),
            ):
                continue  # refused by its adapter: offered to someone else or waiting again
            # the screen pop: who, on what channel, with what the interaction carries
            self.bus.publish(
                OfferMade(
                    self.clock.seconds(),
                    offer.agent,
                    it.id,
                    it.channel,
                    it.queue,
                    it.customer,
                    dict(it.attributes),
                    # a person the dialer just reached is moved in at once: no time-out
                    None if it.connect_by is not None else offer.deadline,
                    campaign=it.campaign,
                )
            )
            self._popped[it.id] = offer.agent
            if self.router.handled_by(it.id) == offer.agent:  # taken while being carried out
                self._offer_ended(offer.agent, it, OfferEnd.ACCEPTED, self.clock.seconds())

    def _offer_ended(self, agent: str, interaction: Interaction, end: OfferEnd, now: float) -> None:
        """Take the pop back from the agent's screen, however the offer ended
        (only a pop that was shown: an offer its adapter refused on the spot
        never reached the screen)."""
        if self._popped.get(interaction.id) != agent:
            return
        del self._popped[interaction.id]
        self.bus.publish(
            OfferEnded(now, agent, interaction.id, interaction.channel, interaction.queue, end)
        )

    # -- the faces' queries and settings (they see the router only through these) -----------
    def agent(self, agent_id: str) -> Agent | None:
        return self.router.agent(agent_id)

    def known_agent(self, agent_id: str) -> Agent:
        """The agent of that id; an unknown one is refused (``UnknownName``, ``agent``)."""
        return self.router.known_agent(agent_id)

    def agents(self) -> list[Agent]:
        """Every configured agent, by id."""
        return self.router.all_agents()

    def pbx_of(self, agent_id: str) -> str | None:
        """The PBX the agent's phone is on (None: not known)."""
        return self.agent_pbx.get(agent_id)

    def has_queue(self, name: str) -> bool:
        return self.router.has_queue(name)

    def is_waiting(self, interaction: str) -> bool:
        """Queued, offered to nobody yet."""
        return self.router.is_waiting(interaction)

    def handler_of(self, interaction: str) -> str | None:
        """The agent handling ``interaction`` now (in wrap-up too)."""
        return self.router.handled_by(interaction)

    def handled(self, interaction: str) -> Interaction | None:
        """An interaction an agent has now, with its history."""
        return self.router.handled(interaction)

    def offered_to(self, interaction: str) -> str | None:
        """The agent ``interaction`` is offered to now (None: not offered)."""
        return self.router.offered_to(interaction)

    @property
    def offer_timeout(self) -> float:
        """Seconds an agent has to take an offer (the router's setting)."""
        return self.router.offer_timeout

    def calls_waiting(self) -> int:
        """Voice interactions queued now, in every queue."""
        return self.router.calls_waiting()

    def listen_offers(self, listener: Callable[[str, Interaction, OfferEnd, float], None]) -> None:
        """Call ``listener`` when an offer ends, however it ends (a channel
        adapter forgets the ring or the move it had under way)."""
        self.router.listen_offers(listener)

    def set_skills(self, agent: str, skills: Mapping[str, int]) -> None:
        """A supervisor's change: what waits and now fits the agent is offered at once."""
        self.router.set_skills(agent, skills)
        self.route(self.router.route_agent(agent, self.clock.seconds()))

    def set_capacity(self, agent: str, capacity: Mapping[Channel, int]) -> None:
        """A supervisor's change: more room on a channel is used at once."""
        self.router.set_capacity(agent, capacity)
        self.route(self.router.route_agent(agent, self.clock.seconds()))

    # -- queries ----------------------------------------------------------------------------
    @property
    def abandoned(self) -> Sequence[tuple[str, float]]:
        """The latest abandoned callers, (interaction, wait)."""
        return self.kpi.abandoned

    @property
    def fallbacks(self) -> int:
        return self.kpi.fallbacks

    @property
    def low_service(self) -> set[str]:
        return self.kpi.low_service

    def day_window(self) -> tuple[float, float]:
        """(start of today, now): the window of the per-day reports."""
        now = self.clock.seconds()
        return self.day_start(now), now

    def service_level(self, queue: str, now: float) -> tuple[float | None, float | None]:
        """(last 30 minutes, today) shares answered within the voice target."""
        return self.kpi.service_level(queue, now)

    def queue_figures(self) -> list[dict[str, Any]]:
        now = self.clock.seconds()
        out = []
        for name in sorted(self.router.queues):
            window, today = self.service_level(name, now)
            channels = {}
            for channel in Channel:
                waiting, oldest = self.router.waiting_in(name, channel)
                channels[channel.value] = {
                    "waiting": waiting,
                    "oldest_wait": now - oldest if oldest is not None else 0.0,
                }
            out.append(
                {
                    "queue": name,
                    "channels": channels,
                    "service_level_30m": window,
                    "service_level_today": today,
                    "abandoned": self.kpi.abandoned_in(name, now),  # today, this queue
                }
            )
        return out

    def agents_needed_inbound(self, now: float) -> set[str]:
        """Blended agents that inbound needs now, so the dialer yields them first.

        A queue is at risk when inbound calls wait in it, or when its service
        level over the last 30 minutes is below target (as of the last tick:
        this runs on every pacing decision, the service level once a second).
        It claims one agent per waiting call, plus one while the service level
        is low: free agents first, then those whose work ends soonest (in
        wrap-up)."""
        waiting: dict[str, int] = {}
        for adapter in self.adapters:  # a handful of waiting inbound calls
            for q in adapter.waiting_inbound():
                waiting[q] = waiting.get(q, 0) + 1
        needed: set[str] = set()
        for queue in self.router.queues:
            want = waiting.get(queue, 0) + (queue in self.kpi.low_service)
            if want == 0:
                continue
            members = [
                a
                for a in self.router.configured_agents()
                if a.logged_in and queue in a.queues and a.id not in needed
            ]
            order = {AgentState.READY: 0, AgentState.WRAP_UP: 1}
            members.sort(key=lambda a: (order.get(a.state, 2), a.id))
            needed.update(a.id for a in members[:want])
        return needed

    # -- time ------------------------------------------------------------------------------
    def tick(self) -> None:
        now = self.clock.seconds()
        offers, exits = self.router.tick(now)
        self.route(offers)
        for ex in exits:
            owner = self._owners.get(ex.interaction)
            if owner is not None:
                owner.on_exit(ex)
        self.update_gauges(now, self.kpi.levels(now))

    def update_gauges(
        self, now: float, levels: Mapping[str, tuple[float | None, float | None]]
    ) -> None:
        if not self.metrics:
            return
        m = self.metrics
        for queue in self.router.queues:
            for channel in Channel:
                waiting, oldest = self.router.waiting_in(queue, channel)
                m.waiting.labels(queue, channel.value).set(waiting)
                m.oldest.labels(queue, channel.value).set(now - oldest if oldest is not None else 0)
            window, today = levels[queue]
            if window is not None:
                m.service_level.labels(queue, "voice", "30m").set(window)
            if today is not None:
                m.service_level.labels(queue, "voice", "today").set(today)
        counts: dict[tuple[str, str], int] = {}
        for agent in self.router.configured_agents():
            for channel, cap in agent.capacity.items():
                if cap > 0:
                    key = (agent.state.value, channel.value)
                    counts[key] = counts.get(key, 0) + 1
        for state in AgentState:
            for channel in Channel:
                m.agents.labels(state.value, channel.value).set(
                    counts.get((state.value, channel.value), 0)
                )

    # -- a campaign runner's desk (``dialer.ports.AgentDesk``) -------------------------------
    # The router's commands for the persons a campaign reached, unchanged:
    # each returns its offers for the runner to hand to :meth:`route`; no
    # agent line hook runs and nothing is published (the runner reports its
    # persons itself).  The queries above (agent, known_agent, agents,
    # has_queue, offered_to, handler_of, handled) are the desk's too, and so
    # are the line's commands (line_ready, line_pause, accept_offer,
    # decline_offer, withdraw_offer, hold_offer, renew_offer, abandon, drop,
    # route_agent): what a campaign's person does to the router is what a
    # caller's line does, the same commands.
    def campaign_of(self, interaction: str) -> str | None:
        return self.router.campaign_of(interaction)

    def listen_agents(self, listener: Callable[[Agent], None]) -> None:
        self.router.listen_agents(listener)

    def agent_finishes(
        self, agent: str, interaction: str, now: float, wrap_up: float
    ) -> list[Offer]:
        return self.router.finish(agent, interaction, now, wrap_up)

    def agent_wrapped_up(self, agent: str, now: float) -> list[Offer]:
        return self.router.end_wrap_up(agent, now)

    def tick_routing(self, now: float) -> tuple[list[Offer], list[Exit]]:
        """The router's tick alone (a runner with ``ticks_router``); the hub's
        own :meth:`tick` is the one a server runs."""
        return self.router.tick(now)


def check_reason(reason: str | None) -> None:
    """Pause reasons are one line of text: a control character (CR, LF ...)
    is refused before it reaches the state log (the API refuses it first)."""
    if reason is not None and any(ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0 for ch in reason):
        raise Invalid("reason", "must not contain control characters (CR, LF, tab ...)")
