"""Inbound ACD: Asterisk callers to agents, through the Telephony port.

The dialplan context ``dirigent-inbound`` answers a call, announces it with
``UserEvent(DirigentInbound, Queue: <q>, CallUniqueid: <id>)`` and plays
music on hold.  This service turns that into a voice interaction in the
router's universal queue and carries out the router's offers:

* agents rung per call (``mode = "ring"``): the caller is redirected to
  ``dirigent-connect,<phone>,1``, which dials the agent's phone; the call is
  accepted when the caller enters a bridge; a failed dial
  (``UserEvent DirigentConnectFailed``: busy, unavailable, no answer)
  declines the offer, pauses the agent with that reason and re-routes the
  caller, who is back on music on hold;
* nailed-up agents (``mode = "nailed"``, as the predictive dialer needs):
  the agent's phone sits in its own ConfBridge (``dirigent-agent``); the
  caller is redirected to ``dirigent-join,<agent>,1`` and joins without
  ringing.

A caller hanging up while waiting is counted abandoned (with the wait); one
hanging up while connected ends the interaction (agent to wrap-up).  After a
PBX link loss, waiting calls stay queued; the resync reports calls that ended
meanwhile (closed with the right outcome) and nailed agent legs that
vanished (agent paused, reason "pbx lost").

Time comes from an ``IReactorTime`` (the reactor, or ``task.Clock``).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from asterisk.events import (
    BridgeEntered,
    ChannelHungUp,
    PbxDisconnected,
    PbxEvent,
    ResyncCompleted,
    UserEventReceived,
)
from asterisk.port import Telephony
from cti.bus import EventBus
from routing.agent import Agent, AgentState
from routing.model import Channel, Interaction, RoutingError
from routing.router import Exit, Offer, Router

log = Logger(namespace="dirigent.acd")

PBX_LOST = "pbx lost"
SL_WINDOW = 1800.0  # "service level over the last 30 minutes"


@dataclass
class AgentEndpoint:
    agent: str
    endpoint: str  # e.g. "1001" for PJSIP/1001
    mode: str = "ring"  # "ring" or "nailed"
    nailed_uniqueid: str | None = None


@dataclass
class _Call:
    interaction: Interaction
    channel: str  # the caller's channel name
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
        self._login_when_bridged: dict[str, list[str]] = {}
        self.answers: deque[tuple[float, str, float]] = deque()  # (answered at, queue, wait)
        self.today: dict[str, list[int]] = {}  # queue -> [within target, answered]
        self._today_start = day_start(clock.seconds())
        self.abandoned: list[tuple[str, float]] = []  # (interaction, wait) for reporting
        self.fallbacks = 0
        self.bus = bus or EventBus()
        self._published: dict[str, tuple[str, str | None]] = {}
        self._ids = itertools.count(1)
        #: other owners of interactions in the shared router (campaign runners):
        #: each carries out its own offers and returns the rest
        self.offer_owners: list[Callable[[list[Offer]], list[Offer]]] = []
        #: queues whose service level over 30 minutes is below target (each tick)
        self.low_service: set[str] = set()
        router.agent_listeners.append(self._agent_changed)
        telephony.subscribe(self.on_event)
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

    # -- agents -------------------------------------------------------------------------
    # Agent operations go through here, not straight to the router, so that
    # the offers they cause are carried out at once.
    def login(self, agent: str, queues: list[str], paused: str | None = None) -> None:
        self._route(self.router.login(agent, self.clock.seconds(), queues, paused))

    def ready(self, agent: str) -> None:
        self._route(self.router.ready(agent, self.clock.seconds()))

    def pause(self, agent: str, reason: str) -> None:
        self.router.pause(agent, self.clock.seconds(), reason)

    def logout(self, agent: str) -> None:
        self.router.logout(agent, self.clock.seconds())

    def end_wrap_up(self, agent: str) -> None:
        self._route(self.router.end_wrap_up(agent, self.clock.seconds()))

    def _publish_interaction(self, event: str, interaction: Interaction, **extra: Any) -> None:
        self.bus.publish(
            "interaction",
            event=event,
            interaction=interaction.id,
            channel=interaction.channel.value,
            queue=interaction.queue,
            customer=interaction.customer,
            at=self.clock.seconds(),
            history=list(interaction.history),
            **extra,
        )

    def _agent_changed(self, agent: Agent) -> None:
        now_state = (agent.state.value, agent.pause_reason)
        if self._published.get(agent.id) != now_state:
            self._published[agent.id] = now_state
            self.bus.publish(
                "agent",
                agent=agent.id,
                state=now_state[0],
                pause_reason=now_state[1],
                at=self.clock.seconds(),
            )

    # -- non-voice interactions (chat, e-mail, SMS until their gateways exist) --------------
    def create_interaction(self, channel: Channel, queue: str, **fields: Any) -> str:
        iid = f"{channel.value}-{int(self.clock.seconds())}-{next(self._ids)}"
        interaction = Interaction(iid, channel, queue, self.clock.seconds(), **fields)
        if self.metrics:
            self.metrics.offered.labels(queue, channel.value).inc()
        self._publish_interaction("queued", interaction)
        self._route(self.router.enqueue(interaction, self.clock.seconds()))
        return iid

    def accept(self, agent: str, interaction: str) -> None:
        pending = self.router.offered.get(interaction)
        if pending is None or pending.agent != agent:
            raise RoutingError("interaction", f"{interaction} is not offered to {agent}")
        now = self.clock.seconds()
        self.router.accept(agent, interaction, now)
        self._publish_interaction("answered", pending.interaction, agent=agent)
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
            self._publish_interaction("ended", handled, agent=agent)

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
            self.telephony.redirect(call.channel, "dirigent-inbound", target_queue)
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
                bucket = self.router._buckets.get((name, channel)) or []
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
        for uid, chan in self.telephony.mirror.channels.items():
            if uid.startswith(prefix) and chan.bridge_id is not None:
                self.endpoints[agent].nailed_uniqueid = uid
                self.by_nailed[uid] = agent
                self.login(agent, queues)
                log.info("agent {a}: nailed-up leg {uid} taken over", a=agent, uid=uid)
                return True
        return False

    def nail_up(self, agent: str, queues: list[str] | None = None) -> Any:
        """Bring a nailed-up agent's phone into its own bridge (dirigent-agent).

        With ``queues``, the agent is logged in once the leg is in its bridge
        (not before: a caller moved in earlier would find no bridge)."""
        ep = self.endpoints[agent]
        uid = f"agent-{agent}-{int(self.clock.seconds() * 1000)}"
        ep.nailed_uniqueid = uid
        self.by_nailed[uid] = agent
        if queues is not None:
            self._login_when_bridged[uid] = list(queues)
        return self.telephony.originate(
            f"PJSIP/{ep.endpoint}",
            context="dirigent-agent",
            exten=agent,
            channel_id=uid,
            timeout_ms=30_000,
        )

    # -- events ---------------------------------------------------------------------------
    def on_event(self, event: PbxEvent) -> None:
        now = self.clock.seconds()
        match event:
            case UserEventReceived(name="DirigentInbound"):
                self._arrived(event, now)
            case UserEventReceived(name="DirigentConnectFailed"):
                self._connect_failed(event, now)
            case UserEventReceived(name="DirigentFallback"):
                self._fallback(event, now)
            case BridgeEntered(uniqueid=uid) if uid in self.calls:
                self._connected(uid, now)
            case BridgeEntered(uniqueid=uid) if uid in self._login_when_bridged:
                agent = self.by_nailed.get(uid)
                queues = self._login_when_bridged.pop(uid)
                if agent is not None and not self.router.agents[agent].logged_in:
                    self.login(agent, queues)
            case ChannelHungUp(uniqueid=uid) if uid in self.calls:
                self._caller_gone(uid, now, vanished=event.resynced)
            case ChannelHungUp(uniqueid=uid) if uid in self.by_nailed:
                agent = self.by_nailed.pop(uid)
                self._login_when_bridged.pop(uid, None)
                self._agent_lost(agent, now, PBX_LOST if event.resynced else "phone hung up")
            case ResyncCompleted():
                self._route(self.router.route(now))
            case PbxDisconnected() if not self.stopping:
                log.warn(
                    "PBX link lost: {n} calls stay queued until resync", n=len(self.router.waiting)
                )
            case _:
                pass

    def _arrived(self, event: UserEventReceived, now: float) -> None:
        uid = event.fields.get("CallUniqueid") or event.uniqueid
        queue = event.fields.get("Queue") or "default"
        if not uid or uid in self.calls:
            return
        if queue not in self.router.queues:
            log.warn(
                "inbound call {uid} for unknown queue {q}: left to the dialplan fallback",
                uid=uid,
                q=queue,
            )
            return
        chan = self.telephony.mirror.get(uid)
        interaction = Interaction(
            uid, Channel.VOICE, queue, now, customer=event.fields.get("CallerIDNum")
        )
        self.calls[uid] = _Call(interaction, chan.name if chan else (event.channel or ""))
        if self.metrics:
            self.metrics.offered.labels(queue, "voice").inc()
        self._publish_interaction("queued", interaction)
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
                    "offer",
                    agent=offer.agent,
                    interaction=it.id,
                    channel=it.channel.value,
                    queue=it.queue,
                    customer=it.customer,
                    attributes=it.attributes,
                    deadline=offer.deadline,
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
                d = self.telephony.redirect(call.channel, "dirigent-join", offer.agent)
            else:
                d = self.telephony.redirect(call.channel, "dirigent-connect", ep.endpoint)
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
        self._publish_interaction("answered", call.interaction, agent=call.agent)
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

    def _connect_failed(self, event: UserEventReceived, now: float) -> None:
        uid = event.uniqueid
        call = self.calls.get(uid or "")
        if call is None or call.agent is None or uid not in self.router.offered:
            return
        status = event.fields.get("DialStatus", "")
        agent = call.agent
        call.agent = None
        reason = {"BUSY": "endpoint busy", "CHANUNAVAIL": "endpoint unreachable"}.get(
            status, "no answer"
        )
        offers = self.router.decline(agent, uid, now, timed_out=True)
        self.router.pause(agent, now, reason)
        self._route(offers)

    def _fallback(self, event: UserEventReceived, now: float) -> None:
        """The dialplan gave up on us (wait too long, or we were down): the
        caller is in the fallback queue or voicemail now, not ours any more."""
        uid = event.fields.get("CallUniqueid") or event.uniqueid or ""
        call = self.calls.pop(uid, None)
        if call is None:
            return
        self.router.abandon(uid, now)
        self.fallbacks += 1
        self._publish_interaction("fallback", call.interaction)
        wait = now - call.interaction.arrived
        log.warn("caller {uid} went to the dialplan fallback after {w:.0f} s", uid=uid, w=wait)
        if self.metrics:
            self.metrics.fallback.labels(call.interaction.queue, "voice").inc()

    def _caller_gone(self, uid: str, now: float, vanished: bool) -> None:
        call = self.calls.pop(uid)
        queue = call.interaction.queue
        if call.answered_at is not None and call.agent is not None:
            self._publish_interaction("ended", call.interaction, agent=call.agent)
            if uid in self.router.handling:
                self._route(self.router.finish(call.agent, uid, now, self.wrap_up))
            if self.metrics:
                self.metrics.handle.labels(queue, "voice").observe(now - call.answered_at)
            return
        self.router.abandon(uid, now)
        wait = now - call.interaction.arrived
        self.abandoned.append((uid, wait))
        self._publish_interaction("abandoned", call.interaction, wait=wait)
        if self.metrics:
            self.metrics.abandoned.labels(queue, "voice").inc()
            self.metrics.wait.labels(queue, "voice", "abandoned").observe(wait)
        if call.agent is not None and call.agent in self.router.agents:
            self._route(self.router.route_agent(call.agent, now))

    def _agent_lost(self, agent: str, now: float, reason: str) -> None:
        a = self.router.agents.get(agent)
        if a is None or not a.logged_in:
            return
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
        # the caller goes to the dialplan fallback (queue / voicemail)
        self.telephony.redirect(call.channel, "dirigent-inbound", call.interaction.queue, 7)

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
