"""The hub's two sets of agent and offer commands, side by side.

The faces' commands (``Hub.login``, ``ready``, ``pause``, ``accept``,
``finish``, ``transfer``) reach the agent's line or the interaction's owner
first: the voice adapter decides whether a nailed-up agent without its leg
may be ready.  The line's own commands (``line_login``, ``accept_offer``,
``call_ended`` ...) are what that adapter reports: they must not call it back
(it would be asked again what it just reported: a nailed-up agent's leg
coming up would start a second nail-up instead of making the agent ready),
and the offers they cause come back to the adapter, which routes them once
its own bookkeeping is done (an agent paused "no answer" before its caller
goes on to the next agent)."""

from __future__ import annotations

import pytest

from center.hub import Exit, Hub, Offer
from core.errors import Conflict
from core.events import InteractionChanged, OfferMade, Stage
from routing.agent import Agent, AgentState
from routing.model import Channel, Interaction, QueueConfig
from routing.router import Router
from sim.clock import HeapClock


class _Line:
    """An agent's line that takes every face's command itself (as the voice
    adapter does for a nailed-up agent whose leg is down), and an adapter
    that owns its calls: what reached it is noted."""

    def __init__(self) -> None:
        self.told: list[str] = []
        self.carried: list[Offer] = []

    def login(self, agent: str, queues: list[str], paused: str | None) -> bool:
        self.told.append(f"login {agent}")
        return True

    def ready(self, agent: str) -> bool:
        self.told.append(f"ready {agent}")
        return True

    def pause(self, agent: str, reason: str) -> bool:
        self.told.append(f"pause {agent}")
        return True

    def logged_out(self, agent: str) -> None:
        self.told.append(f"logged out {agent}")

    def has_leg(self, agent: str) -> bool:
        return True

    def leg_missing(self, agent: str) -> None:
        self.told.append(f"leg missing {agent}")

    def carry_out(self, offer: Offer) -> None:
        self.carried.append(offer)

    def on_exit(self, ex: Exit) -> None:
        self.told.append(f"exit {ex.interaction}")

    def transfer(
        self, agent: str, interaction: str, queue: str | None, to_agent: str | None
    ) -> list[Offer]:
        self.told.append(f"transfer {interaction}")
        return []

    def waiting_inbound(self) -> list[str]:
        return []

    def stop(self) -> None:
        pass


def _hub() -> tuple[HeapClock, Hub, _Line]:
    clock = HeapClock()
    router = Router({"q": QueueConfig("q"), "r": QueueConfig("r")}, offer_timeout=20)
    line = _Line()
    hub = Hub(router, clock, wrap_up=7)
    for agent in ("a", "b"):
        router.add_agent(Agent(agent))
        hub.add_line(agent, line)
    hub.add_adapter(line)
    return clock, hub, line


def _call(hub: Hub, line: _Line, iid: str = "pbx-1") -> None:
    hub.enqueue(Interaction(iid, Channel.VOICE, "q", hub.clock.seconds()), owner=line)


def test_the_line_s_own_agent_commands_reach_the_router_and_never_the_line() -> None:
    clock, hub, line = _hub()
    hub.login("a", ["q"])  # the face's: the line takes it (the leg is down)
    assert line.told == ["login a"] and not hub.known_agent("a").logged_in
    line.told.clear()
    now = clock.seconds()
    assert hub.line_login("a", now, ["q"], "no phone") == []  # the line's: paused, no offer
    assert hub.known_agent("a").pause_reason == "no phone"
    assert hub.line_ready("a", now) == []
    assert hub.known_agent("a").state is AgentState.READY
    hub.line_pause("a", now, "pbx lost")
    assert hub.known_agent("a").pause_reason == "pbx lost"
    assert line.told == []


def test_an_offer_the_line_gives_back_goes_on_only_when_the_adapter_routes_it() -> None:
    clock, hub, line = _hub()
    pops: list[OfferMade] = []
    hub.bus.subscribe(OfferMade, pops.append)
    now = clock.seconds()
    hub.route(hub.line_login("a", now, ["q"]) + hub.line_login("b", now, ["q"]))
    _call(hub, line)
    (first,) = line.carried
    assert [p.agent for p in pops] == [first.agent]
    offers = hub.decline_offer(first.agent, "pbx-1", now, timed_out=True)
    hub.line_pause(first.agent, now, "no answer")
    other = "b" if first.agent == "a" else "a"
    assert [o.agent for o in offers] == [other]
    assert line.carried == [first] and len(pops) == 1  # not carried out, nor popped, yet
    hub.route(offers)
    assert [o.agent for o in line.carried] == [first.agent, other]
    assert [p.agent for p in pops] == [first.agent, other]
    assert hub.offered_to("pbx-1") == other


def test_a_call_is_answered_and_ended_by_its_line_which_the_desktop_may_not() -> None:
    clock, hub, line = _hub()
    hub.route(hub.line_login("a", clock.seconds(), ["q"]))
    _call(hub, line)
    with pytest.raises(Conflict, match="answered on the phone"):
        hub.accept("a", "pbx-1")  # the desktop's
    answered = hub.accept_offer("a", "pbx-1", clock.seconds())
    assert answered.id == "pbx-1" and hub.handler_of("pbx-1") == "a"
    assert hub.known_agent("a").state is AgentState.BUSY
    with pytest.raises(Conflict, match="ends when it is hung up"):
        hub.finish("a", "pbx-1", 0)  # the desktop's
    clock.advance(30.0)
    assert hub.call_ended("a", "pbx-1", clock.seconds()) == []
    agent = hub.known_agent("a")
    assert agent.state is AgentState.WRAP_UP  # the hub's wrap-up (7 s)
    clock.advance(7.5)
    hub.tick()
    assert hub.known_agent("a").state is AgentState.READY
    assert line.told == []


def test_the_owner_s_half_of_a_transfer_does_not_ask_the_owner_again() -> None:
    clock, hub, line = _hub()
    now = clock.seconds()
    hub.route(hub.line_login("a", now, ["q"]) + hub.line_login("b", now, ["r"]))
    _call(hub, line)
    hub.accept_offer("a", "pbx-1", now)
    hub.transfer("a", "pbx-1", queue="r")  # the face's: through the owner
    assert line.told == ["transfer pbx-1"] and hub.handler_of("pbx-1") == "a"
    offers = hub.transfer_owned("a", "pbx-1", now, queue="r")
    assert [(o.agent, o.interaction) for o in offers] == [("b", "pbx-1")]
    assert hub.known_agent("a").state is AgentState.WRAP_UP
    assert line.told == ["transfer pbx-1"]


def test_a_caller_queued_again_is_not_announced_again() -> None:
    clock, hub, line = _hub()
    stages: list[Stage] = []
    hub.bus.subscribe(InteractionChanged, lambda e: stages.append(e.stage))
    _call(hub, line, "pbx-1")
    assert stages == [Stage.QUEUED]
    hub.own("pbx-2", line)
    offers = hub.queue_owned(Interaction("pbx-2", Channel.VOICE, "q", 0.0), clock.seconds())
    assert offers == [] and hub.is_waiting("pbx-2") and stages == [Stage.QUEUED]
    hub.abandon("pbx-2", clock.seconds())
    assert not hub.is_waiting("pbx-2")
    hub.route(hub.line_login("a", clock.seconds(), ["q"]))
    assert [o.interaction for o in line.carried] == ["pbx-1"]
