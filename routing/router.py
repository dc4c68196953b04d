"""The universal queue and the router: who takes what, for every channel.

Pure and clock-free: every call passes ``now``; decisions come back as
:class:`Offer` objects for the caller (the ACD service) to carry out.

Decisions do not scan every agent or interaction:

* waiting interactions sit in one sorted bucket per (queue, channel), in
  urgency order (which within a bucket does not change with time); an
  interaction re-queued after an unanswered offer goes back to its place;
* free agents are indexed per (queue, channel) with spare capacity, and per
  (skill, level); a new interaction looks at the smaller of its queue's free
  agents and the agents holding its rarest required skill;
* an agent who frees up looks only at the heads of the buckets of its
  queues, and picks the most urgent by priority and by how far the wait has
  eaten into each channel's service-level target (so e-mail never starves
  and voice never waits behind e-mail past its target).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sortedcontainers import SortedList

from core.events import OfferEnd
from routing.agent import Agent, Phase
from routing.agent import transfer_queue as transfer_queue  # the router's rule, the agent's data
from routing.blending import BlendingRules
from routing.model import (
    Channel,
    HistoryEntry,
    Interaction,
    OverflowAction,
    QueueConfig,
    RoutingError,
    UnknownName,
)
from routing.model import Exit as Exit  # what the router hands back, as values of the model
from routing.model import Offer as Offer

POLICIES = ("longest_idle", "best_skill", "least_occupied")

#: Weight of one priority step against SLA aging: a priority step is worth as
#: much as having waited the whole service-level target time.
PRIORITY_WEIGHT = 1.0


@dataclass
class RouterStats:
    decisions: int = 0
    candidates_examined: int = 0


@dataclass
class _Pending:
    interaction: Interaction
    agent: str
    deadline: float


@dataclass
class Router:
    queues: Mapping[str, QueueConfig]
    rules: BlendingRules = field(default_factory=BlendingRules)
    policy: str = "longest_idle"
    offer_timeout: float = 15.0

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise RoutingError(
                "policy", f"unknown policy {self.policy!r} (one of {', '.join(POLICIES)})"
            )
        self.agents: dict[str, Agent] = {}
        self.waiting: dict[str, Interaction] = {}
        self.offered: dict[str, _Pending] = {}  # interaction id -> pending offer
        self.handling: dict[str, str] = {}  # interaction id -> agent id
        self.handled_interactions: dict[str, Interaction] = {}
        self._buckets: dict[tuple[str, Channel], SortedList[tuple[int, float, int, str]]] = {}
        self._free: dict[tuple[str, Channel], set[str]] = {}
        self._skill_index: dict[tuple[str, int], set[str]] = {}
        self._wrapping: set[str] = set()  # agents with after-call work (the tick ends it)
        self._seq = 0
        self.stats = RouterStats()
        #: called after every change to an agent (state, work, capacity)
        self.agent_listeners: list[Callable[[Agent], None]] = []
        #: called when an offer ends, however it ends (agent, interaction, how, when):
        #: the hub takes the agent's screen pop back
        self.offer_listeners: list[Callable[[str, Interaction, OfferEnd, float], None]] = []

    # -- agents -----------------------------------------------------------------------------
    def add_agent(self, agent: Agent) -> None:
        if agent.id in self.agents:
            raise RoutingError("agent", f"{agent.id} already known")
        self.agents[agent.id] = agent
        for skill, level in agent.skills.items():
            self._skill_index.setdefault((skill, level), set()).add(agent.id)
        self._reindex(agent)

    def set_skills(self, agent_id: str, skills: Mapping[str, int]) -> None:
        agent = self._agent(agent_id)
        for skill, level in skills.items():
            if not 1 <= level <= 10:
                raise RoutingError(f"skills.{skill}", f"level must be 1..10, not {level}")
        for skill, level in agent.skills.items():
            self._skill_index.get((skill, level), set()).discard(agent.id)
        agent.skills = dict(skills)
        for skill, level in agent.skills.items():
            self._skill_index.setdefault((skill, level), set()).add(agent.id)

    def set_capacity(self, agent_id: str, capacity: Mapping[Channel, int]) -> None:
        agent = self._agent(agent_id)
        if any(n < 0 for n in capacity.values()):
            raise RoutingError("capacity", "must not be negative")
        agent.capacity = dict(capacity)
        self._reindex(agent)

    def _agent(self, agent_id: str) -> Agent:
        try:
            return self.agents[agent_id]
        except KeyError:
            raise UnknownName("agent", f"unknown agent {agent_id!r}") from None

    # -- queries: the hub and the channel adapters read the router through these -------------
    def agent(self, agent_id: str) -> Agent | None:
        """The agent of that id (None: not configured)."""
        return self.agents.get(agent_id)

    def known_agent(self, agent_id: str) -> Agent:
        """The agent of that id; an unknown one is :class:`UnknownName` (``agent``)."""
        return self._agent(agent_id)

    def all_agents(self) -> list[Agent]:
        """Every configured agent, by id."""
        return [a for _, a in sorted(self.agents.items())]

    def configured_agents(self) -> list[Agent]:
        """Every agent, in the order they were added (the configuration's)."""
        return list(self.agents.values())

    def has_queue(self, name: str) -> bool:
        return name in self.queues

    def in_offer(self, interaction_id: str) -> Interaction | None:
        """The interaction offered now (to :meth:`offered_to`'s agent; None: not offered)."""
        pending = self.offered.get(interaction_id)
        return pending.interaction if pending is not None else None

    def listen_agents(self, listener: Callable[[Agent], None]) -> None:
        """Call ``listener`` after every change to an agent (state, work, capacity)."""
        self.agent_listeners.append(listener)

    def listen_offers(self, listener: Callable[[str, Interaction, OfferEnd, float], None]) -> None:
        """Call ``listener`` when an offer ends, however it ends (agent, interaction, how, when)."""
        self.offer_listeners.append(listener)

    def handled(self, interaction_id: str) -> Interaction | None:
        """An interaction an agent has now (in wrap-up too), with its history."""
        return self.handled_interactions.get(interaction_id)

    def _reindex(self, agent: Agent) -> None:
        """Keep the free-agent index in step with one agent's state."""
        for key in [k for k, members in self._free.items() if agent.id in members]:
            self._free[key].discard(agent.id)
        if any(w.phase is Phase.WRAP_UP for w in agent.work.values()):
            self._wrapping.add(agent.id)
        else:
            self._wrapping.discard(agent.id)
        if agent.available:
            for queue in agent.queues:
                for channel, cap in agent.capacity.items():
                    if cap > agent.load(channel):
                        self._free.setdefault((queue, channel), set()).add(agent.id)
        for listener in self.agent_listeners:
            listener(agent)

    def login(
        self, agent_id: str, now: float, queues: Iterable[str], paused: str | None = None
    ) -> list[Offer]:
        queues = list(queues)
        for q in queues:
            if q not in self.queues:
                raise UnknownName("queues", f"unknown queue {q!r}")
        agent = self._agent(agent_id)
        agent.login(now, queues, paused)
        self._reindex(agent)
        return self.route_agent(agent_id, now)

    def logout(self, agent_id: str, now: float) -> None:
        agent = self._agent(agent_id)
        agent.logout(now)
        self._reindex(agent)

    def pause(self, agent_id: str, now: float, reason: str) -> None:
        agent = self._agent(agent_id)
        agent.pause(now, reason)
        self._reindex(agent)

    def ready(self, agent_id: str, now: float) -> list[Offer]:
        agent = self._agent(agent_id)
        agent.ready(now)
        self._reindex(agent)
        return self.route_agent(agent_id, now)

    # -- interactions ---------------------------------------------------------------------
    def calls_waiting(self) -> int:
        return sum(len(b) for (q, ch), b in self._buckets.items() if ch is Channel.VOICE)

    def waiting_in(self, queue: str, channel: Channel) -> tuple[int, float | None]:
        """(how many wait in ``queue`` on ``channel``, the arrival of the
        oldest or None): the figures the live KPIs and the gauges show."""
        bucket = self._buckets.get((queue, channel))
        if not bucket:
            return 0, None
        return len(bucket), min(self.waiting[i].arrived for *_, i in bucket)

    def enqueue(self, interaction: Interaction, now: float) -> list[Offer]:
        """A new interaction: apply the queue's rules, queue it, try to route it."""
        config = self.queues.get(interaction.queue)
        if config is None:
            raise UnknownName("queue", f"unknown queue {interaction.queue!r}")
        if (
            interaction.id in self.waiting
            or interaction.id in self.offered
            or interaction.id in self.handling
        ):
            raise RoutingError("id", f"interaction {interaction.id} already known")
        for skill, level in config.skills.items():
            interaction.skills.setdefault(skill, level)
        for rule in config.expertise:
            if rule.matches(interaction.attributes):
                if rule.skill:
                    interaction.skills[rule.skill] = max(
                        interaction.skills.get(rule.skill, 0), rule.level
                    )
                if rule.team:
                    interaction.team = rule.team
        interaction.priority = max(interaction.priority, config.priority)
        self._seq += 1
        interaction.seq = self._seq
        interaction.history.append(HistoryEntry.queued(interaction.queue, now))
        self._push(interaction)
        return self.route_interaction(interaction.id, now)

    def _bucket_key(self, interaction: Interaction) -> tuple[int, float, int, str]:
        """Order within a bucket, the same at any time: first the persons on
        the line who are lost unless connected (``connect_by``; they are
        abandoned, and leave, when it passes), then by urgency, which is
        ``W·priority + (now − arrived)/T`` with T the bucket's own target, so
        sorting by ``arrived/T − W·priority`` puts the most urgent first."""
        target = self.queues[interaction.queue].service_level(interaction.channel).seconds
        urgency_order = interaction.arrived / target - PRIORITY_WEIGHT * interaction.priority
        lost_soon = 0 if interaction.connect_by is not None else 1
        return (lost_soon, urgency_order, interaction.seq, interaction.id)

    def _push(self, interaction: Interaction) -> None:
        self.waiting[interaction.id] = interaction
        key = (interaction.queue, interaction.channel)
        self._buckets.setdefault(key, SortedList()).add(self._bucket_key(interaction))

    def _pull(self, interaction: Interaction) -> None:
        del self.waiting[interaction.id]
        self._buckets[(interaction.queue, interaction.channel)].remove(
            self._bucket_key(interaction)
        )

    def abandon(self, interaction_id: str, now: float) -> Interaction | None:
        """The customer left while waiting (or during the offer)."""
        if interaction_id in self.waiting:
            interaction = self.waiting[interaction_id]
            self._pull(interaction)
            return interaction
        pending = self.offered.pop(interaction_id, None)
        if pending is not None:
            agent = self.agents[pending.agent]
            agent.drop(now, interaction_id, "caller left")
            self._reindex(agent)
            self._offer_over(pending, OfferEnd.GONE, now)
            return pending.interaction
        return None

    def _offer_of(self, agent_id: str, interaction_id: str) -> _Pending:
        """The pending offer of ``interaction_id`` to ``agent_id``, or a RoutingError."""
        pending = self.offered.get(interaction_id)
        if pending is None or pending.agent != agent_id:
            raise RoutingError("interaction", f"{interaction_id} is not offered to {agent_id}")
        return pending

    def _offer_over(self, pending: _Pending, end: OfferEnd, now: float) -> None:
        for listener in self.offer_listeners:
            listener(pending.agent, pending.interaction, end, now)

    def campaign_of(self, interaction_id: str) -> str | None:
        """The campaign whose person an offered or handled interaction is
        (None: not a campaign's, or not with an agent)."""
        found = self.handled_interactions.get(interaction_id)
        if found is None:
            pending = self.offered.get(interaction_id)
            found = pending.interaction if pending is not None else None
        return found.campaign if found is not None else None

    def offered_to(self, interaction_id: str) -> str | None:
        """The agent ``interaction_id`` is offered to now (None: not offered)."""
        pending = self.offered.get(interaction_id)
        return pending.agent if pending is not None else None

    def handled_by(self, interaction_id: str) -> str | None:
        """The agent handling ``interaction_id`` now (in wrap-up too; None: nobody)."""
        return self.handling.get(interaction_id)

    def drop(self, interaction_id: str, now: float, reason: str) -> str | None:
        """The interaction is gone (its call closed "unknown" with the PBX):
        out of the queue, out of an offer, out of an agent's hands, whichever
        it was in; the agent's state log says ``reason``.  Returns the agent
        it freed (to be routed again), if any."""
        waiting = self.waiting.get(interaction_id)
        if waiting is not None:
            self._pull(waiting)
            return None
        pending = self.offered.pop(interaction_id, None)
        if pending is not None:
            agent_id: str | None = pending.agent
            self._offer_over(pending, OfferEnd.GONE, now)
        else:
            agent_id = self.handling.pop(interaction_id, None)
            self.handled_interactions.pop(interaction_id, None)
        agent = self.agents.get(agent_id) if agent_id is not None else None
        if agent is None or not agent.drop(now, interaction_id, reason):
            return None
        self._reindex(agent)
        return agent.id

    def is_waiting(self, interaction_id: str) -> bool:
        """Is ``interaction_id`` in the queue now (not offered, not handled)?"""
        return interaction_id in self.waiting

    def withdraw(self, agent_id: str, interaction_id: str, now: float, reason: str) -> list[Offer]:
        """The offer is taken back through no doing of the agent's (the
        agent's phone went away while the interaction was on its way to it):
        the interaction goes back to its place in the queue and is offered to
        the next agent.  Unlike :meth:`decline`, the agent is not paused "no
        answer" and may be offered it again once it is back (the caller
        pauses it with its own reason first, so that it is not picked again
        at once); its state log says ``reason``.  Returns the next offers."""
        pending = self._offer_of(agent_id, interaction_id)
        agent = self._agent(agent_id)
        agent.drop(now, interaction_id, reason)
        del self.offered[interaction_id]
        self._reindex(agent)
        self._offer_over(pending, OfferEnd.WITHDRAWN, now)
        self._push(pending.interaction)
        return self.route_interaction(interaction_id, now)

    def hold_offer(self, interaction_id: str) -> None:
        """No time-out for this offer until :meth:`renew_offer`: its move
        cannot be carried out now (the PBX link is down), and the time-out's
        "no answer" pause would blame the agent for the PBX.  Whoever holds
        it settles it (moves it again, or drops it)."""
        pending = self.offered.get(interaction_id)
        if pending is not None:
            pending.deadline = float("inf")

    def renew_offer(self, interaction_id: str, now: float) -> None:
        """The offer's time-out counts again, from ``now`` (a held move sent again)."""
        pending = self.offered.get(interaction_id)
        if pending is not None:
            pending.deadline = now + self.offer_timeout

    # -- eligibility --------------------------------------------------------------------------
    def eligible(self, agent: Agent, interaction: Interaction) -> bool:
        if interaction.agent is not None:
            return agent.id == interaction.agent and agent.id not in interaction.declined_by
        if interaction.queue not in agent.queues or agent.id in interaction.declined_by:
            return False
        if interaction.team is not None and agent.team != interaction.team:
            return False
        return all(agent.skills.get(s, 0) >= lvl for s, lvl in interaction.skills.items())

    def _sla_used(self, interaction: Interaction, now: float) -> float:
        """Share of its service-level target time the interaction has waited."""
        target = self.queues[interaction.queue].service_level(interaction.channel).seconds
        return (now - interaction.arrived) / target

    def _urgency(self, interaction: Interaction, now: float) -> float:
        return PRIORITY_WEIGHT * interaction.priority + self._sla_used(interaction, now)

    def _cannot_wait(self, interaction: Interaction, now: float) -> int:
        """1 for a contact lost unless connected now (an outbound person on the
        line), 0 for one that can wait.  The person goes ahead of any inbound
        caller, whatever the queues' priorities: the law gives the person 2 s
        before the call counts as abandoned, the caller loses the length of
        one conversation against a service-level target, and the campaign
        already yields agents to an inbound queue whose service level is at
        risk (it dials less), so the caller is not starved."""
        return int(interaction.connect_by is not None and interaction.connect_by >= now)

    def _policy_key(self, agent: Agent, interaction: Interaction) -> tuple[Any, ...]:
        if self.policy == "best_skill":
            return (
                -sum(agent.skills.get(s, 0) for s in interaction.skills),
                agent.idle_since,
                agent.id,
            )
        if self.policy == "least_occupied":
            return (agent.occupancy(), agent.idle_since, agent.id)
        return (agent.idle_since, agent.id)

    # -- decisions ----------------------------------------------------------------------------
    def _offer(self, agent: Agent, interaction: Interaction, now: float) -> Offer:
        self._pull(interaction)
        deadline = now + self.offer_timeout
        # known as offered before the agent's listeners hear of the reservation
        self.offered[interaction.id] = _Pending(interaction, agent.id, deadline)
        agent.reserve(now, interaction.id, interaction.channel)
        self._reindex(agent)
        self.stats.decisions += 1
        return Offer(agent.id, interaction.id, interaction.channel, deadline)

    def best_agent(
        self, interaction: Interaction, calls_waiting: int | None = None, now: float | None = None
    ) -> Agent | None:
        """The agent the policy picks for ``interaction`` (indexed look-up)."""
        free = self._free.get((interaction.queue, interaction.channel))
        if not free:
            return None
        candidates: Iterable[str] = free
        if interaction.skills:
            # the agents holding the rarest required skill at a sufficient level
            smallest: set[str] | None = None
            for skill, level in interaction.skills.items():
                holders: set[str] = set()
                for lvl in range(level, 11):
                    holders |= self._skill_index.get((skill, lvl), set())
                if smallest is None or len(holders) < len(smallest):
                    smallest = holders
            if smallest is not None and len(smallest) < len(free):
                candidates = (a for a in smallest if a in free)
        waiting = self.calls_waiting() if calls_waiting is None else calls_waiting
        overdue = now is not None and self._sla_used(interaction, now) >= 1.0
        best: Agent | None = None
        best_key: tuple[Any, ...] | None = None
        for agent_id in candidates:
            self.stats.candidates_examined += 1
            agent = self.agents[agent_id]
            if not self.eligible(agent, interaction) or not self.rules.may_offer(
                agent, interaction.channel, waiting, overdue
            ):
                continue
            key = self._policy_key(agent, interaction)
            if best_key is None or key < best_key:
                best, best_key = agent, key
        return best

    def route_interaction(self, interaction_id: str, now: float) -> list[Offer]:
        interaction = self.waiting.get(interaction_id)
        if interaction is None:
            return []
        agent = self.best_agent(interaction, now=now)
        return [self._offer(agent, interaction, now)] if agent else []

    def best_interaction(
        self, agent: Agent, now: float, calls_waiting: int | None = None
    ) -> Interaction | None:
        """The most urgent waiting interaction ``agent`` may take (bucket heads only)."""
        if not agent.available:
            return None
        waiting = self.calls_waiting() if calls_waiting is None else calls_waiting
        best: Interaction | None = None
        best_key: tuple[int, float, int] = (-1, float("-inf"), 0)
        for queue in agent.queues:
            for channel in agent.capacity:
                bucket = self._buckets.get((queue, channel))
                if not bucket:
                    continue
                for entry in bucket:  # in order; usually the head is eligible
                    self.stats.candidates_examined += 1
                    interaction = self.waiting[entry[-1]]  # no star target: a list each
                    if self.eligible(agent, interaction):
                        overdue = self._sla_used(interaction, now) >= 1.0
                        if self.rules.may_offer(agent, channel, waiting, overdue):
                            # a person on the line who is lost in a moment first, then
                            # the most urgent; on a tie, the earliest in the universal queue
                            key = (
                                self._cannot_wait(interaction, now),
                                self._urgency(interaction, now),
                                -interaction.seq,
                            )
                            if key > best_key:
                                best, best_key = interaction, key
                        break
        return best

    def route_agent(self, agent_id: str, now: float) -> list[Offer]:
        """Fill the agent's free capacity with the most urgent work it may take."""
        agent = self._agent(agent_id)
        offers: list[Offer] = []
        while True:
            interaction = self.best_interaction(agent, now)
            if interaction is None:
                return offers
            offers.append(self._offer(agent, interaction, now))

    def route(self, now: float) -> list[Offer]:
        """Match everything that can be matched (after a burst of changes)."""
        offers = []
        for agent_id in sorted({a for members in self._free.values() for a in members}):
            offers += self.route_agent(agent_id, now)
        return offers

    # -- offer protocol ---------------------------------------------------------------------
    def accept(self, agent_id: str, interaction_id: str, now: float) -> Interaction:
        pending = self._offer_of(agent_id, interaction_id)
        agent = self._agent(agent_id)
        agent.accept(now, interaction_id)
        for listener in self.agent_listeners:
            listener(agent)
        del self.offered[interaction_id]
        self.handling[interaction_id] = agent_id
        self.handled_interactions[interaction_id] = pending.interaction
        pending.interaction.history.append(HistoryEntry.answered(agent_id, now))
        self._offer_over(pending, OfferEnd.ACCEPTED, now)
        return pending.interaction

    def decline(
        self, agent_id: str, interaction_id: str, now: float, timed_out: bool = False
    ) -> list[Offer]:
        """Rejected or unanswered: the interaction goes back to its place; a
        timed-out agent is paused ("no answer").  Returns the next offers."""
        pending = self._offer_of(agent_id, interaction_id)
        agent = self._agent(agent_id)
        agent.decline(now, interaction_id, timed_out)
        del self.offered[interaction_id]
        pending.interaction.declined_by.add(agent_id)
        self._reindex(agent)
        self._offer_over(pending, OfferEnd.TIMED_OUT if timed_out else OfferEnd.DECLINED, now)
        self._push(pending.interaction)
        offers = self.route_interaction(interaction_id, now)
        if not timed_out:
            offers += self.route_agent(agent_id, now)
        return offers

    def finish(
        self, agent_id: str, interaction_id: str, now: float, wrap_up: float = 0.0
    ) -> list[Offer]:
        if self.handling.get(interaction_id) != agent_id:
            raise RoutingError("interaction", f"{interaction_id} is not handled by {agent_id}")
        agent = self._agent(agent_id)
        agent.finish(now, interaction_id, wrap_up)
        if wrap_up <= 0:
            del self.handling[interaction_id]
        interaction = self.handled_interactions.pop(interaction_id, None)
        if interaction is not None:
            interaction.history.append(HistoryEntry.ended(agent_id, now))
        self._reindex(agent)
        return self.route_agent(agent_id, now)

    def transfer(
        self,
        agent_id: str,
        interaction_id: str,
        now: float,
        *,
        queue: str | None = None,
        to_agent: str | None = None,
        wrap_up: float = 0.0,
    ) -> list[Offer]:
        """Blind transfer of a handled interaction to a queue or to one agent.

        The transferring agent goes to wrap-up; the interaction (same id, its
        history kept) waits again from ``now``, in ``queue`` and, for an agent
        transfer, for that agent only, in the queue :func:`transfer_queue`
        picks (its own if that agent serves it)."""
        if self.handling.get(interaction_id) != agent_id:
            raise RoutingError("interaction", f"{interaction_id} is not handled by {agent_id}")
        if (queue is None) == (to_agent is None):
            raise RoutingError("transfer", "give either a queue or an agent")
        if queue is not None and queue not in self.queues:
            raise UnknownName("queue", f"unknown queue {queue!r}")
        if to_agent is not None:
            self._agent(to_agent)
        interaction = self._find_handled(agent_id, interaction_id)
        agent = self._agent(agent_id)
        agent.finish(now, interaction_id, wrap_up)
        if wrap_up <= 0:
            del self.handling[interaction_id]
        else:
            self.handling.pop(interaction_id, None)
        self._reindex(agent)
        interaction.history.append(
            HistoryEntry.transferred(agent_id, now, to_queue=queue, to_agent=to_agent)
        )
        if to_agent is not None:
            interaction.agent = to_agent
            interaction.queue = (
                transfer_queue(interaction.queue, self._agent(to_agent)) or interaction.queue
            )
        else:
            interaction.queue = queue or interaction.queue
            interaction.agent = None
        interaction.arrived = now
        interaction.declined_by = set()
        self._seq += 1
        interaction.seq = self._seq
        interaction.history.append(HistoryEntry.queued(interaction.queue, now))
        self._push(interaction)
        return self.route_interaction(interaction_id, now) + self.route_agent(agent_id, now)

    def _find_handled(self, agent_id: str, interaction_id: str) -> Interaction:
        interaction = self.handled_interactions.get(interaction_id)
        if interaction is None:
            raise RoutingError("interaction", f"{interaction_id} is not known to the router")
        return interaction

    def end_wrap_up(self, agent_id: str, now: float) -> list[Offer]:
        agent = self._agent(agent_id)
        ended = [w.interaction for w in agent.work.values() if w.phase is Phase.WRAP_UP]
        agent.end_wrap_up(now)
        self._wrapped_up(agent_id, ended)
        self._reindex(agent)
        return self.route_agent(agent_id, now)

    def _wrapped_up(self, agent_id: str, ended: list[str]) -> None:
        """The agent's after-call work on ``ended`` is over.  An interaction it
        transferred may be handled by another agent by now: that one keeps it."""
        for iid in ended:
            if self.handling.get(iid) == agent_id:
                del self.handling[iid]

    # -- time -------------------------------------------------------------------------------------
    def tick(self, now: float) -> tuple[list[Offer], list[Exit]]:
        """Offer time-outs, wrap-up ends, overflow steps, maximum waits."""
        offers: list[Offer] = []
        exits: list[Exit] = []
        for iid, pending in list(self.offered.items()):
            if pending.deadline <= now:
                offers += self.decline(pending.agent, iid, now, timed_out=True)
        # in the agents' order, as the listeners have always heard them
        for agent_id in [a for a in self.agents if a in self._wrapping]:
            agent = self.agents[agent_id]
            ended = agent.expire_wrap_ups(now)
            self._wrapped_up(agent_id, ended)
            if ended:  # nothing changed otherwise: no re-indexing
                self._reindex(agent)
        for interaction in list(self.waiting.values()):
            config = self.queues[interaction.queue]
            waited = now - interaction.arrived
            if config.max_wait is not None and waited >= config.max_wait:
                self._pull(interaction)
                exits.append(Exit(interaction.id, "max wait"))
                continue
            leaving = self._apply_overflow(interaction, config, waited)
            if leaving is not None:
                exits.append(Exit(interaction.id, leaving.value))
        if self.waiting:  # nothing waits: nothing to offer
            offers += self.route(now)
        return offers, exits

    def _apply_overflow(
        self, interaction: Interaction, config: QueueConfig, waited: float
    ) -> OverflowAction | None:
        """Apply the overflow steps now due; the step that takes the
        interaction out of the queue (callback, voicemail: its exit's reason
        is the action's name), or None while it waits on."""
        steps = config.overflow
        while (
            interaction.overflow_step < len(steps)
            and steps[interaction.overflow_step].after <= waited
        ):
            step = steps[interaction.overflow_step]
            interaction.overflow_step += 1
            self._pull(interaction)
            if step.action.leaves_queue:
                return step.action
            if step.action is OverflowAction.WIDEN:
                interaction.skills = {
                    s: min(lvl, step.min_level or 1) for s, lvl in interaction.skills.items()
                }
            elif step.action is OverflowAction.DROP_SKILL and step.skill:
                interaction.skills.pop(step.skill, None)
            elif step.action is OverflowAction.TEAM:
                interaction.team = step.team
            elif step.action is OverflowAction.QUEUE and step.queue:
                interaction.queue = step.queue
            self._push(interaction)
        return None
