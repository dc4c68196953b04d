"""Inbound ACD: PBX callers to agents, through the telephony port.

The PBX announces a waiting caller (:class:`core.telephony.CallWaiting`:
answered, on hold music, for a queue).  This service turns that into a voice
interaction in the router's universal queue and carries out the router's
offers with :meth:`Telephony.connect_to_agent`:

* agents rung per call (``mode = "ring"``): the agent's phone is rung for
  the caller; the call is accepted when the caller enters a bridge; a failed
  ring (:class:`AgentRingFailed`: busy, unreachable, no answer) declines the
  offer, pauses the agent with that reason and re-routes the caller, who is
  back on hold;
* nailed-up agents (``mode = "nailed"``, as the predictive dialer needs):
  the agent's phone is kept on the line in its own bridge
  (:meth:`Telephony.keep_line`); the caller joins it without ringing.

(How the shipped Asterisk dialplan does each of these is
:mod:`asterisk.port`'s business.)

A caller hanging up while waiting is counted abandoned (with the wait); one
hanging up while connected ends the interaction (agent to wrap-up).  After a
PBX link loss, waiting calls stay queued; the resync reports calls that ended
meanwhile: a conversation among them ends at the moment the link was lost
(its talk time is not stretched to the resync) with the outcome "pbx-lost".

Nailed-up agents are offered calls only while their leg sits in its bridge.
An agent without one is paused with the reason "pbx lost" (the leg vanished
with the PBX: restart, crash, link loss) or "no phone" (a nail-up failed or
is still ringing), and the leg is nailed up again by itself: after the
resync, and after every failure, with retries backed off 1 s, 2 s, 4 s ...
(capped, at most ``nail_retries`` in a row; the clock is the injected one).
Once the leg is in its bridge the agent returns to what it was before,
ready or paused with its own reason.  A leg the agent's phone hung up
("phone hung up") is not rung again until the agent or a supervisor sets
the agent ready.

Time comes from an ``IReactorTime`` (the reactor, or ``task.Clock``).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from core.bus import EventBus
from core.events import AgentStateChanged, InteractionChanged, OfferMade, Stage
from core.telephony import (
    AgentRingFailed,
    CallBridged,
    CallEnded,
    CallFellBack,
    CallWaiting,
    DialResult,
    Outcome,
    OutcomeUnknown,
    PbxGoingDown,
    PbxLost,
    PbxSynced,
    RingFailure,
    Telephony,
    TelephonyEvent,
)
from routing.agent import Agent, AgentState
from routing.model import Channel, Interaction, RoutingError
from routing.router import Exit, Offer, Router

log = Logger(namespace="center.acd")

#: pause reasons of a nailed-up agent without its leg (set and cleared by the ACD)
PBX_LOST = "pbx lost"
NO_PHONE = "no phone"
PHONE_HUNG_UP = "phone hung up"
LEG_REASONS = frozenset((PBX_LOST, NO_PHONE))
#: the outcome of a conversation whose channels vanished with the PBX link
ENDED_PBX_LOST = "pbx-lost"
#: a leg hung up this long before the PBX announced its shutdown (or the link
#: dropped) went down with the PBX, not by the agent's hand
SHUTDOWN_WINDOW = 5.0
#: the pause a preview campaign sets; never restored after a lost leg (the
#: record on screen went back meanwhile)
PREVIEW = "preview"
SL_WINDOW = 1800.0  # "service level over the last 30 minutes"
#: the pause reason of a ring-mode agent whose phone did not take the call
PAUSE_FOR_RING_FAILURE = {
    RingFailure.BUSY: "endpoint busy",
    RingFailure.UNREACHABLE: "endpoint unreachable",
    RingFailure.NO_ANSWER: "no answer",
}


@dataclass
class AgentEndpoint:
    agent: str
    endpoint: str  # the agent's phone, as the PBX names it (e.g. "1001")
    mode: str = "ring"  # "ring" or "nailed"
    nailed_uniqueid: str | None = None
    #: the nailed leg is in its bridge (calls may be moved in)
    leg_up: bool = False
    #: queues to log in to once the leg is up (auto-login, login without a leg)
    queues: list[str] | None = None
    #: what the agent returns to once the leg is up: None = ready, else that pause
    resume: str | None = None
    nailing: bool = False  # an Originate for the leg is in flight
    answered: bool = False  # ... and was answered (the bridge comes next)
    tries: int = 0  # nail-ups failed in a row
    retry: IDelayedCall | None = None
    hung_up_at: float | None = None  # the leg hung up (not yet known why)


@dataclass
class _Call:
    interaction: Interaction  # its id is the caller's call id
    agent: str | None = None
    answered_at: float | None = None


class AcdMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["queue", "channel"]
        self.offered = Counter(
            "dirigent_interactions_offered_total",
            "Interactions that entered a queue",
            labels,
            registry=registry,
        )
        self.answered = Counter(
            "dirigent_interactions_answered_total",
            "Interactions an agent accepted",
            labels,
            registry=registry,
        )
        self.abandoned = Counter(
            "dirigent_interactions_abandoned_total",
            "Interactions the customer left while waiting",
            labels,
            registry=registry,
        )
        self.fallback = Counter(
            "dirigent_interactions_fallback_total",
            "Callers the dialplan fallback took (Dirigent too slow or down)",
            labels,
            registry=registry,
        )
        self.waiting = Gauge(
            "dirigent_queue_waiting", "Interactions waiting now", labels, registry=registry
        )
        self.oldest = Gauge(
            "dirigent_queue_oldest_wait_seconds",
            "Wait of the oldest waiting interaction",
            labels,
            registry=registry,
        )
        self.service_level = Gauge(
            "dirigent_queue_service_level",
            "Share answered within the target (window: 30m, today)",
            [*labels, "window"],
            registry=registry,
        )
        self.wait = Histogram(
            "dirigent_queue_wait_seconds",
            "Time from arrival to answer or abandon",
            [*labels, "outcome"],
            buckets=(5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600, 86400),
            registry=registry,
        )
        self.handle = Histogram(
            "dirigent_interaction_handle_seconds",
            "Time from answer to end",
            labels,
            buckets=(30, 60, 120, 180, 300, 600, 1200, 3600),
            registry=registry,
        )
        self.agents = Gauge(
            "dirigent_agents",
            "Agents by state, per channel they serve",
            ["state", "channel"],
            registry=registry,
        )
        self.nailup_failures = Counter(
            "dirigent_agent_nailup_failures",
            "Nail-ups of an agent's phone leg that failed (each is retried, backed off)",
            ["reason"],
            registry=registry,
        )


class InboundAcd:
    def __init__(
        self,
        telephony: Telephony,
        router: Router,
        clock: IReactorTime,
        endpoints: Mapping[str, AgentEndpoint],
        *,
        registry: CollectorRegistry | None = None,
        wrap_up: float = 10.0,
        tick_interval: float = 1.0,
        day_start: Callable[[float], float] = lambda now: now - now % 86_400,
        bus: EventBus | None = None,
        nail_retry_initial: float = 1.0,
        nail_retry_max: float = 60.0,
        nail_retries: int = 10,
    ) -> None:
        self.telephony = telephony
        self.router = router
        self.clock = clock
        self.endpoints = dict(endpoints)
        self.wrap_up = wrap_up
        self.day_start = day_start
        self.metrics = AcdMetrics(registry) if registry is not None else None
        self.calls: dict[str, _Call] = {}  # interaction id (caller uniqueid) -> call
        self.by_nailed: dict[str, str] = {}  # nailed agent leg uniqueid -> agent
        self.nail_retry_initial = nail_retry_initial
        self.nail_retry_max = nail_retry_max
        self.nail_retries = nail_retries
        #: when the PBX link was lost (None while up): conversations that vanished
        #: meanwhile end then, not at the resync
        self.lost_at: float | None = None
        self._pbx_going_down = False  # Shutdown seen: legs hanging up now go with the PBX
        self.answers: deque[tuple[float, str, float]] = deque()  # (answered at, queue, wait)
        self.today: dict[str, list[int]] = {}  # queue -> [within target, answered]
        self._today_start = day_start(clock.seconds())
        self.abandoned: list[tuple[str, float]] = []  # (interaction, wait) for reporting
        self.fallbacks = 0
        self.bus = bus or EventBus()
        self._published: dict[str, tuple[AgentState, str | None]] = {}
        self._ids = itertools.count(1)
        #: other owners of interactions in the shared router (campaign runners):
        #: each carries out its own offers and returns the rest
        self.offer_owners: list[Callable[[list[Offer]], list[Offer]]] = []
        #: queues whose service level over 30 minutes is below target (each tick)
        self.low_service: set[str] = set()
        router.agent_listeners.append(self._agent_changed)
        telephony.listen(self.on_event)
        self.stopping = False
        self._ticker = LoopingCall(self.tick)
        self._ticker.clock = clock
        self._tick_interval = tick_interval

    def start(self) -> None:
        self._ticker.start(self._tick_interval, now=False)

    def stop(self) -> None:
        self.stopping = True  # the PBX link closes next: expected, not a fault
        if self._ticker.running:
            self._ticker.stop()
        for ep in self.endpoints.values():
            self._cancel_retry(ep)

    # -- agents -------------------------------------------------------------------------
    # Agent operations go through here, not straight to the router, so that
    # the offers they cause are carried out at once.
    def login(self, agent: str, queues: list[str], paused: str | None = None) -> None:
        """Log in.  A nailed-up agent without a leg logs in paused "no phone"
        and its leg is nailed up; it becomes ready (or ``paused``) once the
        leg is in its bridge."""
        _check_reason(paused)
        ep = self.endpoints.get(agent)
        if ep is not None and ep.mode == "nailed" and not self.has_leg(agent):
            self.router.login(agent, self.clock.seconds(), queues, NO_PHONE)
            ep.queues, ep.resume = list(queues), paused
            self.nail_up(agent)
            return
        self._route(self.router.login(agent, self.clock.seconds(), queues, paused))

    def ready(self, agent: str) -> None:
        """Ready for work.  For a nailed-up agent whose leg is down this does
        not open routing (a call moved to an agent without a leg finds an
        empty conference): the wish is kept, the agent stays paused "pbx
        lost" / "no phone", a nail-up is started if none is under way, and
        the agent is ready by itself once the leg is in its bridge."""
        ep = self.endpoints.get(agent)
        a = self.router.agents.get(agent)
        if (
            ep is not None
            and ep.mode == "nailed"
            and a is not None
            and a.logged_in
            and not self.has_leg(agent)
        ):
            ep.resume = None
            if a.pause_reason not in LEG_REASONS:
                self.router.pause(agent, self.clock.seconds(), NO_PHONE)
            if not ep.nailing and (ep.retry is None or not ep.retry.active()):
                ep.tries = 0
                self.nail_up(agent)
            return
        self._route(self.router.ready(agent, self.clock.seconds()))

    def pause(self, agent: str, reason: str) -> None:
        """Pause.  While a nailed-up agent's leg is down the pause is kept for
        when the leg is back (the agent shows the leg's reason until then)."""
        _check_reason(reason)
        ep = self.endpoints.get(agent)
        a = self.router.agents.get(agent)
        if (
            ep is not None
            and a is not None
            and a.logged_in
            and a.pause_reason in LEG_REASONS
            and not self.has_leg(agent)
        ):
            ep.resume = reason
            return
        self.router.pause(agent, self.clock.seconds(), reason)

    def logout(self, agent: str) -> None:
        self.router.logout(agent, self.clock.seconds())
        ep = self.endpoints.get(agent)
        if ep is not None:  # logged out on purpose: not logged in again by a re-nail
            self._cancel_retry(ep)
            ep.queues, ep.resume = None, None

    def end_wrap_up(self, agent: str) -> None:
        self._route(self.router.end_wrap_up(agent, self.clock.seconds()))

    def _publish_interaction(
        self,
        stage: Stage,
        interaction: Interaction,
        at: float | None = None,
        *,
        agent: str | None = None,
        outcome: str | None = None,
        wait: float | None = None,
    ) -> None:
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
            )
        )

    def _agent_changed(self, agent: Agent) -> None:
        now_state = (agent.state, agent.pause_reason)
        if self._published.get(agent.id) != now_state:
            self._published[agent.id] = now_state
            self.bus.publish(
                AgentStateChanged(self.clock.seconds(), agent.id, agent.state, agent.pause_reason)
            )

    # -- non-voice interactions (chat, e-mail, SMS until their gateways exist) --------------
    def create_interaction(self, channel: Channel, queue: str, **fields: Any) -> str:
        iid = f"{channel.value}-{int(self.clock.seconds())}-{next(self._ids)}"
        interaction = Interaction(iid, channel, queue, self.clock.seconds(), **fields)
        if self.metrics:
            self.metrics.offered.labels(queue, channel.value).inc()
        self._publish_interaction(Stage.QUEUED, interaction)
        self._route(self.router.enqueue(interaction, self.clock.seconds()))
        return iid

    def accept(self, agent: str, interaction: str) -> None:
        pending = self.router.offered.get(interaction)
        if pending is None or pending.agent != agent:
            raise RoutingError("interaction", f"{interaction} is not offered to {agent}")
        now = self.clock.seconds()
        self.router.accept(agent, interaction, now)
        self._publish_interaction(Stage.ANSWERED, pending.interaction, agent=agent)
        if self.metrics:
            it = pending.interaction
            self.metrics.answered.labels(it.queue, it.channel.value).inc()
            self.metrics.wait.labels(it.queue, it.channel.value, "answered").observe(
                now - it.arrived
            )

    def finish(self, agent: str, interaction: str, wrap_up: float) -> None:
        handled = self.router.handled_interactions.get(interaction)
        self._route(self.router.finish(agent, interaction, self.clock.seconds(), wrap_up))
        if handled is not None:
            self._publish_interaction(Stage.ENDED, handled, agent=agent)

    def transfer(
        self, agent: str, interaction: str, *, queue: str | None = None, to_agent: str | None = None
    ) -> None:
        """Blind transfer.  A call is first put back on hold (``dirigent-inbound``
        of the target queue, music on hold), then offered like a new arrival;
        the interaction keeps its id and history."""
        now = self.clock.seconds()
        call = self.calls.get(interaction)
        if call is not None:
            target_queue = queue or (
                sorted(self.router.agents[to_agent].queues)[0]
                if to_agent
                and self.router.agents.get(to_agent)
                and self.router.agents[to_agent].queues
                else call.interaction.queue
            )
            offers = self.router.transfer(
                agent, interaction, now, queue=queue, to_agent=to_agent, wrap_up=self.wrap_up
            )
            call.agent, call.answered_at = None, None
            call.interaction.arrived = now
            # hold first: the caller leaves the agent and hears music until the next offer
            self.telephony.transfer_to_queue(interaction, target_queue)
            self._route(offers)
            return
        self._route(self.router.transfer(agent, interaction, now, queue=queue, to_agent=to_agent))

    def day_window(self) -> tuple[float, float]:
        """(start of today, now): the window of the per-day reports."""
        now = self.clock.seconds()
        return self.day_start(now), now

    def queue_figures(self) -> list[dict[str, Any]]:
        now = self.clock.seconds()
        out = []
        for name in sorted(self.router.queues):
            window, today = self.service_level(name, now)
            channels = {}
            for channel in Channel:
                bucket: Sequence[tuple[float, int, str]] = (
                    self.router._buckets.get((name, channel)) or []
                )
                oldest = min((self.router.waiting[i].arrived for *_, i in bucket), default=None)
                channels[channel.value] = {
                    "waiting": len(bucket),
                    "oldest_wait": now - oldest if oldest is not None else 0.0,
                }
            out.append(
                {
                    "queue": name,
                    "channels": channels,
                    "service_level_30m": window,
                    "service_level_today": today,
                    "abandoned": len(self.abandoned),
                }
            )
        return out

    def agents_needed_inbound(self, now: float) -> set[str]:
        """Blended agents that inbound needs now, so the dialer yields them first.

        A queue is at risk when inbound calls wait in it, or when its service
        level over the last 30 minutes is below target (as of the last tick:
        this runs on every pacing decision, the service level once a second).
        It claims one agent
        per waiting call, plus one while the service level is low: free
        agents first, then those whose work ends soonest (in wrap-up)."""
        waiting: dict[str, int] = {}
        for iid, call in self.calls.items():  # a handful of waiting inbound calls
            if call.answered_at is None and iid in self.router.waiting:
                q = call.interaction.queue
                waiting[q] = waiting.get(q, 0) + 1
        needed: set[str] = set()
        for queue in self.router.queues:
            want = waiting.get(queue, 0) + (queue in self.low_service)
            if want == 0:
                continue
            members = [
                a
                for a in self.router.agents.values()
                if a.logged_in and queue in a.queues and a.id not in needed
            ]
            order = {AgentState.READY: 0, AgentState.WRAP_UP: 1}
            members.sort(key=lambda a: (order.get(a.state, 2), a.id))
            needed.update(a.id for a in members[:want])
        return needed

    def adopt_nailed(self, agent: str, queues: list[str]) -> bool:
        """After a restart of Dirigent (not of the PBX), the agent's nailed-up
        leg is still in its bridge: take it over and log the agent in,
        instead of ringing a phone that is already on the line."""
        prefix = f"agent-{agent}-"
        for live in self.telephony.live_calls():
            uid = live.id
            if uid.startswith(prefix) and live.bridge is not None:
                ep = self.endpoints[agent]
                ep.nailed_uniqueid, ep.leg_up, ep.queues = uid, True, list(queues)
                self.by_nailed[uid] = agent
                self.login(agent, queues)
                log.info("agent {a}: nailed-up leg {uid} taken over", a=agent, uid=uid)
                return True
        return False

    def has_leg(self, agent: str) -> bool:
        """May calls be moved to this agent?  Ring-mode agents: always (their
        phone is rung per call).  Nailed-up agents: only while their leg is in
        its bridge, as the PBX mirror shows it."""
        ep = self.endpoints.get(agent)
        if ep is None or ep.mode != "nailed":
            return True
        if not ep.leg_up or ep.nailed_uniqueid is None:
            return False
        live = self.telephony.live_call(ep.nailed_uniqueid)
        return live is not None and live.bridge is not None

    def nail_up(self, agent: str, queues: list[str] | None = None) -> Deferred[None]:
        """Bring a nailed-up agent's phone into its own bridge (dirigent-agent).

        With ``queues``, the agent is logged in once the leg is in its bridge
        (not before: a caller moved in earlier would find no bridge).  A
        failure (busy, no answer, originate refused) is logged, counted
        (``dirigent_agent_nailup_failures_total``) and retried, backed off;
        the agent shows "no phone" meanwhile.  Calling this while a nail-up
        is under way, or with the leg up, changes nothing (one leg per agent).
        The Deferred fires (with None) once the Originate is answered or has
        failed; it never fails."""
        ep = self.endpoints[agent]
        if queues is not None:
            ep.queues = list(queues)
        if ep.nailing or self.has_leg(agent):
            return succeed(None)
        self._cancel_retry(ep)
        return self._nail(agent)

    def _nail(self, agent: str) -> Deferred[None]:
        ep = self.endpoints[agent]
        ep.retry = None
        if not self.telephony.connected:
            return succeed(None)  # the resync after the reconnect nails it up
        uid = f"agent-{agent}-{int(self.clock.seconds() * 1000)}"
        if uid == ep.nailed_uniqueid or uid in self.by_nailed:
            uid = f"{uid}{ep.tries + 1}"  # same millisecond: still agent-<id>-<digits>
        if ep.nailed_uniqueid is not None:
            self.by_nailed.pop(ep.nailed_uniqueid, None)
        ep.nailed_uniqueid, ep.leg_up, ep.nailing, ep.answered = uid, False, True, False
        self.by_nailed[uid] = agent
        d = self.telephony.keep_line(agent, ep.endpoint, call=uid, timeout=30.0)
        done: Deferred[None] = d.addCallbacks(
            self._nail_result, self._nail_error, (agent, uid), {}, (agent, uid)
        )
        return done  # fires with None: both callbacks return it

    def _nail_result(self, result: DialResult, agent: str, uid: str) -> None:
        ep = self.endpoints[agent]
        if ep.nailed_uniqueid != uid or not ep.nailing:
            return
        if result.outcome is Outcome.ANSWERED:
            ep.answered = True  # the bridge follows (or a hang-up: see on_event)
            return
        cause = f", cause {result.cause}" if result.cause is not None else ""
        self._nail_failed(agent, uid, result.outcome.value, f"{result.outcome.value}{cause}")

    def _nail_error(self, failure: Any, agent: str, uid: str) -> None:
        ep = self.endpoints[agent]
        if ep.nailed_uniqueid != uid or not ep.nailing:
            return
        if not self.telephony.connected:
            # the link dropped under the Originate: the resync shows whether the
            # leg exists, and nails it up if not
            ep.nailing = False
            log.info("agent {a}: nail-up interrupted by the PBX link loss", a=agent)
            return
        unknown = failure.check(OutcomeUnknown) is not None
        self._nail_failed(
            agent, uid, "unknown" if unknown else "originate-failed", failure.getErrorMessage()
        )

    def _nail_failed(self, agent: str, uid: str, reason: str, detail: str) -> None:
        ep = self.endpoints[agent]
        ep.nailing, ep.answered, ep.leg_up = False, False, False
        self.by_nailed.pop(uid, None)
        ep.tries += 1
        if self.metrics:
            self.metrics.nailup_failures.labels(reason).inc()
        delay = self._retry_delay(ep)
        if delay is None:
            log.error(
                "agent {a}: nail-up of phone {e} failed ({d}); gave up after {n} tries in a row"
                " (the agent stays paused '{r}' until set ready or the next resync)",
                a=agent,
                e=ep.endpoint,
                d=detail,
                n=ep.tries,
                r=NO_PHONE,
            )
        else:
            log.warn(
                "agent {a}: nail-up of phone {e} failed ({d}); try {n} again in {s:g} s",
                a=agent,
                e=ep.endpoint,
                d=detail,
                n=ep.tries + 1,
                s=delay,
            )
        self._leg_down(agent, NO_PHONE)
        if delay is not None:
            self._schedule_nail(agent, delay)

    def _retry_delay(self, ep: AgentEndpoint) -> float | None:
        """1 s, 2 s, 4 s ... capped; None once ``nail_retries`` failed in a row."""
        if ep.tries >= self.nail_retries:
            return None
        return float(min(self.nail_retry_max, self.nail_retry_initial * 2 ** max(0, ep.tries - 1)))

    def _schedule_nail(self, agent: str, delay: float) -> None:
        ep = self.endpoints[agent]
        if ep.nailing or (ep.retry is not None and ep.retry.active()):
            return
        ep.retry = self.clock.callLater(delay, self._nail, agent)

    @staticmethod
    def _cancel_retry(ep: AgentEndpoint) -> None:
        if ep.retry is not None and ep.retry.active():
            ep.retry.cancel()
        ep.retry = None

    def _leg_down(self, agent: str, reason: str) -> None:
        """The agent has no leg: it shows ``reason`` (and keeps what to return to)."""
        ep = self.endpoints[agent]
        a = self.router.agents.get(agent)
        if a is None:
            return
        now = self.clock.seconds()
        if not a.logged_in:
            if ep.queues is not None:  # meant to be logged in: visible, not logged out
                self.router.login(agent, now, ep.queues, reason)
            return
        if a.pause_reason not in LEG_REASONS and a.pause_reason != PHONE_HUNG_UP:
            ep.resume = None if a.pause_reason == PREVIEW else a.pause_reason
        if a.pause_reason != reason:
            self.router.pause(agent, now, reason)

    def _leg_up(self, agent: str) -> None:
        """The leg is in its bridge: log in, or back to ready / the agent's own pause."""
        ep = self.endpoints[agent]
        self._cancel_retry(ep)
        ep.leg_up, ep.nailing, ep.answered, ep.tries, ep.hung_up_at = True, False, False, 0, None
        a = self.router.agents.get(agent)
        if a is None:
            return
        resume, ep.resume = ep.resume, None
        now = self.clock.seconds()
        if not a.logged_in:
            if ep.queues is not None:
                self._route(self.router.login(agent, now, ep.queues, resume))
            return
        if a.pause_reason in LEG_REASONS:
            log.info("agent {a}: phone leg up again", a=agent)
            if resume is None:
                self._route(self.router.ready(agent, now))
            else:
                self.router.pause(agent, now, resume)

    def leg_missing(self, agent: str) -> None:
        """Someone was about to move a call to ``agent`` whose leg is gone
        (the campaign runners ask :meth:`has_leg` first): pause the agent
        "no phone" and nail the leg up again."""
        log.warn("agent {a}: no phone leg in its bridge; not offered calls until it is", a=agent)
        self._leg_down(agent, NO_PHONE)
        self._schedule_nail(agent, 0)

    def _renail_all(self) -> None:
        """After a resync: every logged-in nailed agent without its leg (lost
        with the PBX, or never up) gets a new one, the first try after
        ``nail_retry_initial`` (Asterisk takes logins before it has booted)."""
        for agent, ep in self.endpoints.items():
            a = self.router.agents.get(agent)
            if ep.mode != "nailed" or a is None or not a.logged_in or ep.nailing:
                continue
            if a.pause_reason not in LEG_REASONS or self.has_leg(agent):
                continue
            self._cancel_retry(ep)
            ep.tries = 0
            self._schedule_nail(agent, self.nail_retry_initial)

    def _with_the_pbx(self, now: float) -> None:
        """The PBX is going (Shutdown) or gone (link lost): legs that hung up
        just before went with it, not by the agent's hand."""
        for agent, ep in self.endpoints.items():
            if ep.hung_up_at is None:
                continue
            recent, ep.hung_up_at = now - ep.hung_up_at <= SHUTDOWN_WINDOW, None
            a = self.router.agents.get(agent)
            if recent and a is not None and a.logged_in and a.pause_reason == PHONE_HUNG_UP:
                self.router.pause(agent, now, PBX_LOST)

    # -- events ---------------------------------------------------------------------------
    def on_event(self, event: TelephonyEvent) -> None:
        now = self.clock.seconds()
        match event:
            case CallWaiting():
                self._arrived(event, now)
            case AgentRingFailed():
                self._connect_failed(event, now)
            case CallFellBack():
                self._fallback(event, now)
            case CallBridged(call=uid) if uid in self.calls:
                self._connected(uid, now)
            case CallBridged(call=uid) if uid in self.by_nailed:
                agent = self.by_nailed[uid]
                if self.endpoints[agent].nailed_uniqueid == uid:
                    self._leg_up(agent)
            case CallEnded(call=uid) if uid in self.calls:
                self._caller_gone(uid, now, vanished=event.vanished)
            case CallEnded(call=uid) if uid in self.by_nailed:
                # with the PBX: vanished during a link loss, or cut by a shutdown/restart
                with_pbx = event.vanished or event.cut_by_pbx
                self._leg_gone(self.by_nailed.pop(uid), uid, now, with_pbx)
            case PbxGoingDown():
                self._pbx_going_down = True
                self._with_the_pbx(now)
            case PbxSynced():
                self.lost_at, self._pbx_going_down = None, False
                self._renail_all()
                self._route(self.router.route(now))
            case PbxLost():
                self.lost_at = now
                self._with_the_pbx(now)
                for ep in self.endpoints.values():
                    self._cancel_retry(ep)  # the resync decides what to nail up
                if not self.stopping:
                    log.warn(
                        "PBX link lost: {n} calls stay queued until resync",
                        n=len(self.router.waiting),
                    )
            case _:
                pass

    def _leg_gone(self, agent: str, uid: str, now: float, with_pbx: bool) -> None:
        ep = self.endpoints[agent]
        if ep.nailed_uniqueid != uid:
            return  # an older leg of this agent
        was_up, ep.leg_up = ep.leg_up, False
        if not was_up:
            if ep.nailing and ep.answered:  # answered, then hung up before the bridge
                self._nail_failed(agent, uid, "hung-up", "hung up before its bridge")
            elif ep.nailing and with_pbx:
                ep.nailing = False  # went with the PBX: the resync nails it up
            return  # still ringing: the Originate's result says how it ended
        with_pbx = with_pbx or self._pbx_going_down
        self._agent_lost(agent, now, PBX_LOST if with_pbx else PHONE_HUNG_UP)
        if not with_pbx:
            ep.hung_up_at = now  # unless the PBX turns out to be going down

    def _arrived(self, event: CallWaiting, now: float) -> None:
        uid = event.call
        queue = event.queue or "default"
        if uid in self.calls:
            return
        if queue not in self.router.queues:
            log.warn(
                "inbound call {uid} for unknown queue {q}: left to the dialplan fallback",
                uid=uid,
                q=queue,
            )
            return
        interaction = Interaction(uid, Channel.VOICE, queue, now, customer=event.caller)
        self.calls[uid] = _Call(interaction)
        if self.metrics:
            self.metrics.offered.labels(queue, "voice").inc()
        self._publish_interaction(Stage.QUEUED, interaction)
        self._route(self.router.enqueue(interaction, now))

    def route_offers(self, offers: list[Offer]) -> None:
        """Carry out offers made by someone else's routing step (a campaign's)."""
        self._route(offers)

    def _route(self, offers: list[Offer]) -> None:
        for owner in self.offer_owners:
            if not offers:
                return
            offers = owner(offers)
        for offer in offers:
            pending = self.router.offered.get(offer.interaction)
            if pending is not None:
                it = pending.interaction
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
                        offer.deadline,
                    )
                )
            call = self.calls.get(offer.interaction)
            if call is None:  # chat / e-mail / SMS: the agent accepts on the desktop
                continue
            call.agent = offer.agent
            ep = self.endpoints.get(offer.agent)
            if ep is None:
                self.router.decline(offer.agent, offer.interaction, self.clock.seconds())
                continue
            if ep.mode == "nailed":
                if not self.has_leg(offer.agent):  # an empty conference is no agent
                    call.agent = None
                    self.leg_missing(offer.agent)
                    now = self.clock.seconds()
                    self._route(self.router.decline(offer.agent, offer.interaction, now))
                    continue
                d = self.telephony.connect_to_agent(offer.interaction, offer.agent)
            else:
                d = self.telephony.connect_to_agent(offer.interaction, offer.agent, ep.endpoint)
            d.addErrback(self._redirect_failed, offer)

    def _redirect_failed(self, failure: Any, offer: Offer) -> None:
        log.warn(
            "connecting {i} to {a} failed: {e}",
            i=offer.interaction,
            a=offer.agent,
            e=failure.getErrorMessage(),
        )
        now = self.clock.seconds()
        if offer.interaction in self.router.offered:
            self._route(self.router.decline(offer.agent, offer.interaction, now))

    def _connected(self, uid: str, now: float) -> None:
        call = self.calls[uid]
        if call.answered_at is not None or call.agent is None or uid not in self.router.offered:
            return
        self.router.accept(call.agent, uid, now)
        call.answered_at = now
        self._publish_interaction(Stage.ANSWERED, call.interaction, agent=call.agent)
        wait = now - call.interaction.arrived
        queue = call.interaction.queue
        self.answers.append((now, queue, wait))
        target = self.router.queues[queue].service_level(Channel.VOICE).seconds
        day = self.today.setdefault(queue, [0, 0])
        day[0] += wait <= target
        day[1] += 1
        if self.metrics:
            self.metrics.answered.labels(queue, "voice").inc()
            self.metrics.wait.labels(queue, "voice", "answered").observe(wait)

    def _connect_failed(self, event: AgentRingFailed, now: float) -> None:
        uid = event.call
        call = self.calls.get(uid)
        if call is None or call.agent is None or uid not in self.router.offered:
            return
        agent = call.agent
        call.agent = None
        reason = PAUSE_FOR_RING_FAILURE[event.failure]
        offers = self.router.decline(agent, uid, now, timed_out=True)
        self.router.pause(agent, now, reason)
        self._route(offers)

    def _fallback(self, event: CallFellBack, now: float) -> None:
        """The dialplan gave up on us (wait too long, or we were down): the
        caller is in the fallback queue or voicemail now, not ours any more."""
        uid = event.call
        call = self.calls.pop(uid, None)
        if call is None:
            return
        self.router.abandon(uid, now)
        self.fallbacks += 1
        self._publish_interaction(Stage.FALLBACK, call.interaction)
        wait = now - call.interaction.arrived
        log.warn("caller {uid} went to the dialplan fallback after {w:.0f} s", uid=uid, w=wait)
        if self.metrics:
            self.metrics.fallback.labels(call.interaction.queue, "voice").inc()

    def _caller_gone(self, uid: str, now: float, vanished: bool) -> None:
        call = self.calls.pop(uid)
        queue = call.interaction.queue
        if call.answered_at is not None and call.agent is not None:
            # vanished with the link: it ended at the latest when the link was lost
            lost = vanished and self.lost_at is not None
            ended = max(call.answered_at, self.lost_at or now) if lost else now
            self._publish_interaction(
                Stage.ENDED,
                call.interaction,
                at=ended,
                agent=call.agent,
                outcome=ENDED_PBX_LOST if lost else None,
            )
            if uid in self.router.handling:
                self._route(self.router.finish(call.agent, uid, now, self.wrap_up))
            if self.metrics:
                self.metrics.handle.labels(queue, "voice").observe(ended - call.answered_at)
            return
        self.router.abandon(uid, now)
        wait = now - call.interaction.arrived
        self.abandoned.append((uid, wait))
        self._publish_interaction(Stage.ABANDONED, call.interaction, wait=wait)
        if self.metrics:
            self.metrics.abandoned.labels(queue, "voice").inc()
            self.metrics.wait.labels(queue, "voice", "abandoned").observe(wait)
        if call.agent is not None and call.agent in self.router.agents:
            self._route(self.router.route_agent(call.agent, now))

    def _agent_lost(self, agent: str, now: float, reason: str) -> None:
        a = self.router.agents.get(agent)
        if a is None or not a.logged_in:
            return
        ep = self.endpoints.get(agent)
        if ep is not None and a.pause_reason not in LEG_REASONS | {PHONE_HUNG_UP}:
            ep.resume = None if a.pause_reason == PREVIEW else a.pause_reason
        for iid in list(a.work):
            a.drop(now, iid, reason)
            self.router.handling.pop(iid, None)
            self.router.offered.pop(iid, None)
        self.router.pause(agent, now, reason)

    # -- time ------------------------------------------------------------------------------
    def tick(self) -> None:
        now = self.clock.seconds()
        offers, exits = self.router.tick(now)
        self._route(offers)
        for ex in exits:
            self._exit(ex)
        levels = {queue: self.service_level(queue, now) for queue in self.router.queues}
        self.low_service = {
            queue
            for queue, (window, _today) in levels.items()
            if window is not None
            and window < self.router.queues[queue].service_level(Channel.VOICE).fraction
        }
        self.update_gauges(now, levels)

    def _exit(self, ex: Exit) -> None:
        call = self.calls.get(ex.interaction)
        if call is None:
            return
        # the caller goes to the PBX's own fallback (queue / voicemail)
        self.telephony.to_fallback(call.interaction.id, call.interaction.queue)

    def service_level(self, queue: str, now: float) -> tuple[float | None, float | None]:
        """(last 30 minutes, today) shares answered within the voice target."""
        while self.answers and self.answers[0][0] < now - SL_WINDOW:
            self.answers.popleft()
        target = self.router.queues[queue].service_level(Channel.VOICE).seconds
        recent = [w for _, q, w in self.answers if q == queue]
        window = sum(w <= target for w in recent) / len(recent) if recent else None
        start = self.day_start(now)
        if start != self._today_start:
            self._today_start, self.today = start, {}
        within, total = self.today.get(queue, [0, 0])
        return window, (within / total if total else None)

    def update_gauges(
        self, now: float, levels: Mapping[str, tuple[float | None, float | None]]
    ) -> None:
        if not self.metrics:
            return
        m = self.metrics
        for queue in self.router.queues:
            for channel in Channel:
                bucket = self.router._buckets.get((queue, channel))
                m.waiting.labels(queue, channel.value).set(len(bucket) if bucket else 0)
                oldest = (
                    min((self.router.waiting[i].arrived for *_, i in bucket), default=None)
                    if bucket
                    else None
                )
                m.oldest.labels(queue, channel.value).set(now - oldest if oldest is not None else 0)
            window, today = levels[queue]
            if window is not None:
                m.service_level.labels(queue, "voice", "30m").set(window)
            if today is not None:
                m.service_level.labels(queue, "voice", "today").set(today)
        counts: dict[tuple[str, str], int] = {}
        for agent in self.router.agents.values():
            for channel, cap in agent.capacity.items():
                if cap > 0:
                    key = (agent.state.value, channel.value)
                    counts[key] = counts.get(key, 0) + 1
        for state in AgentState:
            for channel in Channel:
                m.agents.labels(state.value, channel.value).set(
                    counts.get((state.value, channel.value), 0)
                )


def _check_reason(reason: str | None) -> None:
    """Pause reasons are one line of text: a control character (CR, LF ...)
    is refused before it reaches the state log (the API refuses it first)."""
    if reason is not None and any(ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0 for ch in reason):
        raise ValueError("reason: must not contain control characters (CR, LF, tab ...)")
