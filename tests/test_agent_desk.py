"""A campaign runner's desk (``dialer.ports.AgentDesk``) on the hub and on a
bare router: the runner commands the agents' side only through it.

What a person a campaign reached goes through -- queued, offered to the free
agent, taken, finished into wrap-up -- is the same on both desks, and on the
hub it calls no agent's line and publishes nothing itself: the runner hands
the offers to ``Hub.route`` and reports its persons on its own."""

from __future__ import annotations

from typing import Any

from center.hub import Hub
from core.events import AgentStateChanged, InteractionChanged, OfferMade
from dialer.ports import AgentDesk
from routing.agent import Agent, AgentState
from routing.model import Channel, Direction, Interaction, QueueConfig
from routing.router import Router
from sim.clock import HeapClock
from sim.desk import RouterDesk


class RecordingLine:
    """An agent's phone that records every hook the hub calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def login(self, agent: str, queues: list[str], paused: str | None) -> bool:
        self.calls.append("login")
        return False

    def ready(self, agent: str) -> bool:
        self.calls.append("ready")
        return False

    def pause(self, agent: str, reason: str) -> bool:
        self.calls.append("pause")
        return False

    def logged_out(self, agent: str) -> None:
        self.calls.append("logged_out")

    def has_leg(self, agent: str) -> bool:
        return True

    def leg_missing(self, agent: str) -> None:
        self.calls.append("leg_missing")


def _router() -> Router:
    router = Router({"c": QueueConfig("c")})
    router.add_agent(Agent("1001"))
    return router


def _person(now: float) -> Interaction:
    return Interaction(
        "c-1", Channel.VOICE, "c", now, customer="+4930123", direction=Direction.OUTBOUND
    )


def _a_call_through(desk: AgentDesk, clock: HeapClock) -> list[Any]:
    """Log the agent in, queue a person, take and finish it: what the desk says."""
    seen: list[Any] = []
    desk.listen_agents(lambda a: seen.append(("agent", a.id, a.state)))
    desk.line_pause("1001", clock.seconds(), "preview")
    seen.append(("offers on ready", [o.agent for o in desk.line_ready("1001", 1.0)]))
    offers = desk.queue_owned(_person(2.0), 2.0)
    seen.append(("offered", [(o.agent, o.interaction) for o in offers], desk.offered_to("c-1")))
    desk.hold_offer("c-1")
    desk.accept_offer("1001", "c-1", 3.0)
    seen.append(("handler", desk.handler_of("c-1"), desk.handled("c-1") is not None))
    seen.append(("next", desk.agent_finishes("1001", "c-1", 10.0, 5.0)))
    seen.append(("state", desk.known_agent("1001").state))
    seen.append(("after wrap-up", desk.agent_wrapped_up("1001", 12.0)))
    seen.append(("state", desk.known_agent("1001").state))
    return seen


def test_the_hub_and_a_bare_routers_desk_take_a_campaigns_person_alike() -> None:
    on_router = _router()
    on_router.login("1001", 0.0, ["c"])
    lab = _a_call_through(RouterDesk(on_router), HeapClock())

    router = _router()
    clock = HeapClock()
    hub = Hub(router, clock, wrap_up=0)
    line = RecordingLine()
    hub.add_line("1001", line)
    published: list[Any] = []
    for kind in (AgentStateChanged, InteractionChanged, OfferMade):
        hub.bus.subscribe(kind, published.append)
    router.login("1001", 0.0, ["c"])
    published.clear()
    served = _a_call_through(hub, clock)

    assert served == lab
    assert ("offered", [("1001", "c-1")], "1001") in served
    assert ("agent", "1001", AgentState.WRAP_UP) in served, "the agent listener hears it"
    said = [entry for entry in served if entry[0] != "agent"]
    assert said[-3:] == [
        ("state", AgentState.WRAP_UP),
        ("after wrap-up", []),
        ("state", AgentState.READY),
    ]
    assert line.calls == [], "the desk's commands are the router's: no line hook runs"
    assert not [e for e in published if not isinstance(e, AgentStateChanged)], (
        "no interaction event nor screen pop: the runner routes and reports its persons"
    )
