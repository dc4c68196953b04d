"""The agent board pacing reads: kept up to date from the router's listener,
it must always say what a full recount of the agents says."""

from __future__ import annotations

import contextlib
import itertools
import math

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from dialer.agent_board import AgentBoard
from routing.agent import Agent, IllegalTransition, Phase
from routing.model import Channel, Interaction, QueueConfig, RoutingError
from routing.router import Router

V, C = Channel.VOICE, Channel.CHAT
AGENTS = ("a1", "a2", "a3", "a4")


def recount(router: Router, members: set[str], now: float, reserved: set[str]):
    """What pacing counts, agent by agent (the walk the board replaces)."""
    counted = ready = ours = 0
    talking, wrapping = [], []
    for agent_id in members - reserved:
        a = router.agents[agent_id]
        only_ours = a.queues == {"camp"}  # no inbound caller can take it
        if not a.work:
            if a.pause_reason is None:
                counted += 1
                ready += 1
                ours += only_ours
            continue
        counted += 1
        voice = [w for w in a.work.values() if w.channel is V]
        if not voice:
            ready += a.pause_reason is None
            ours += only_ours and a.pause_reason is None
        elif voice[0].phase is Phase.WRAP_UP:
            wrapping.append(now - voice[0].since)
        else:
            talking.append(now - voice[0].since if voice[0].phase is Phase.ACTIVE else 0.0)
    return counted, ready, ours, sorted(talking), sorted(wrapping)


class BoardMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.router = Router({"camp": QueueConfig("camp"), "chat": QueueConfig("chat")})
        for agent_id in AGENTS:
            self.router.add_agent(Agent(agent_id, capacity={V: 1, C: 2}))
        self.board = AgentBoard("camp")
        self.members: set[str] = set()
        self.router.agent_listeners.append(self._changed)
        self.now = 0.0
        self.ids = itertools.count()

    def _changed(self, agent: Agent) -> None:
        if agent.logged_in and "camp" in agent.queues:
            self.members.add(agent.id)
        else:
            self.members.discard(agent.id)
        self.board.update(agent)

    def _try(self, op) -> None:
        with contextlib.suppress(IllegalTransition, RoutingError):  # refused: nothing changes
            op()

    @rule(
        agent=st.sampled_from(AGENTS),
        queues=st.sampled_from([["camp"], ["chat"], ["camp", "chat"]]),
    )
    def login(self, agent: str, queues: list[str]) -> None:
        self._try(lambda: self.router.login(agent, self.now, queues))

    @rule(agent=st.sampled_from(AGENTS))
    def logout(self, agent: str) -> None:
        self._try(lambda: self.router.logout(agent, self.now))

    @rule(agent=st.sampled_from(AGENTS))
    def pause(self, agent: str) -> None:
        self._try(lambda: self.router.pause(agent, self.now, "break"))

    @rule(agent=st.sampled_from(AGENTS))
    def ready(self, agent: str) -> None:
        self._try(lambda: self.router.ready(agent, self.now))

    @rule(channel=st.sampled_from([V, C]))
    def arrive(self, channel: Channel) -> None:
        queue = "camp" if channel is V else "chat"
        iid = f"i{next(self.ids)}"
        self.router.enqueue(Interaction(iid, channel, queue, self.now), self.now)

    @rule(data=st.data())
    def accept(self, data: st.DataObject) -> None:
        if self.router.offered:
            iid = data.draw(st.sampled_from(sorted(self.router.offered)))
            self.router.accept(self.router.offered[iid].agent, iid, self.now)

    @rule(data=st.data(), wrap=st.sampled_from([0.0, 5.0, 30.0]))
    def finish(self, data: st.DataObject, wrap: float) -> None:
        if self.router.handling:
            iid = data.draw(st.sampled_from(sorted(self.router.handling)))
            self._try(lambda: self.router.finish(self.router.handling[iid], iid, self.now, wrap))

    @rule(agent=st.sampled_from(AGENTS))
    def end_wrap_up(self, agent: str) -> None:
        self._try(lambda: self.router.end_wrap_up(agent, self.now))

    @rule(data=st.data())
    def caller_leaves(self, data: st.DataObject) -> None:
        pending = sorted(self.router.offered) + sorted(self.router.waiting)
        if pending:
            self.router.abandon(data.draw(st.sampled_from(pending)), self.now)

    @rule(dt=st.sampled_from([0.5, 1.0, 7.0, 40.0]))
    def tick(self, dt: float) -> None:
        self.now += dt
        self.router.tick(self.now)

    @invariant()
    def board_matches_a_recount(self) -> None:
        assert set(self.board.members) == self.members
        for reserved in (set(), {"a1", "a3"}):
            b = self.board.board(self.now, reserved)
            counted, ready, ours, talking, wrapping = recount(
                self.router, self.members, self.now, reserved
            )
            assert (b.counted, b.ready, b.ready_only_ours) == (counted, ready, ours)
            assert sorted(b.talking.tolist()) == talking
            assert sorted(b.wrapping.tolist()) == wrapping
            assert len(b.busy) == len(talking) + len(wrapping)
            # each wrapping agent's elapsed and remaining wrap-up, in the board's order
            wrappers = b.busy[len(b.talking) :]
            for agent_id, elapsed, left in zip(
                wrappers, b.wrapping.tolist(), b.wrap_left.tolist(), strict=True
            ):
                voice = next(
                    w for w in self.router.agents[agent_id].work.values() if w.channel is V
                )
                until = voice.wrap_until if voice.wrap_until is not None else math.inf
                assert (elapsed, left) == (self.now - voice.since, max(until - self.now, 0.0))

    @invariant()
    def no_wrap_up_outlives_its_time_after_a_tick(self) -> None:
        wrapping = {
            a.id
            for a in self.router.agents.values()
            if any(w.phase is Phase.WRAP_UP for w in a.work.values())
        }
        assert self.router._wrapping == wrapping


BoardMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
test_the_board_says_what_a_recount_of_the_agents_says = BoardMachine.TestCase


def test_a_reserved_agent_is_neither_counted_nor_ready():
    router = Router({"camp": QueueConfig("camp")})
    board = AgentBoard("camp")
    router.agent_listeners.append(board.update)
    for agent_id in ("a1", "a2"):
        router.add_agent(Agent(agent_id))
        router.login(agent_id, 0.0, ["camp"])
    router.enqueue(Interaction("call", V, "camp", 1.0), 1.0)
    router.accept(router.offered["call"].agent, "call", 2.0)
    talking_agent = router.handling["call"]
    b = board.board(12.0)
    assert (b.counted, b.ready, b.talking.tolist(), b.busy) == (2, 1, [10.0], [talking_agent])
    b = board.board(12.0, reserved={talking_agent})
    assert (b.counted, b.ready, len(b.talking)) == (1, 1, 0)
    assert np.array_equal(board.board(12.0).talking, [10.0])


def test_each_wrapping_agent_has_its_own_time_left_in_the_boards_order() -> None:
    router = Router({"camp": QueueConfig("camp")})
    board = AgentBoard("camp")
    router.agent_listeners.append(board.update)
    for agent_id in ("a1", "a2", "a3"):
        router.add_agent(Agent(agent_id))
        router.login(agent_id, 0.0, ["camp"])
    ends = {}
    for i, wrap in enumerate((30.0, 5.0, 60.0)):
        iid = f"call{i}"
        router.enqueue(Interaction(iid, V, "camp", 1.0), 1.0)
        agent = router.offered[iid].agent
        router.accept(agent, iid, 2.0)
        router.finish(agent, iid, 10.0 + i, wrap)
        ends[agent] = 10.0 + i + wrap
    for reserved in (set(), {"a2"}):
        b = board.board(12.0, reserved)
        wrappers = b.busy[len(b.talking) :]
        assert sorted(wrappers) == sorted(set(ends) - reserved)
        assert b.wrap_left.tolist() == [ends[a] - 12.0 for a in wrappers]
