"""An agent's day across a restart, through the hub's commands.

The assembled server (tests/test_restart_takeover.py, tests/test_clean_stop.py)
restores each agent's day from the report at start and ends the logged-in
agents' states at a clean stop; these are the hub's two commands it calls for
that, on their own: what a supervisor's board and the report show.
"""

from __future__ import annotations

from center.hub import Hub
from routing.agent import Agent, AgentState
from routing.model import QueueConfig
from routing.router import Router
from sim.clock import HeapClock


def _hub() -> tuple[HeapClock, Hub]:
    clock = HeapClock()
    router = Router({"q": QueueConfig("q")})
    for agent in ("b", "a"):  # configuration order, not the ids' order
        router.add_agent(Agent(agent))
    return clock, Hub(router, clock, wrap_up=0)


def test_the_day_before_a_restart_counts_and_the_agent_is_logged_out_from_the_restart() -> None:
    clock, hub = _hub()
    clock.advance(1000.0)
    hub.restore_agent_days(
        {
            "a": [(100.0, "ready"), (400.0, "busy"), (700.0, "no such state")],
            "gone": [(100.0, "ready")],  # an agent no longer configured
        },
        now=1000.0,
    )
    a = hub.known_agent("a")
    assert a.state is AgentState.LOGGED_OUT
    seconds = a.time_in_state(0.0, 1000.0)
    assert seconds[AgentState.READY] == 300.0 and seconds[AgentState.BUSY] == 600.0
    hub.login("a", ["q"])
    assert hub.known_agent("a").state is AgentState.READY
    assert hub.known_agent("b").time_in_state(0.0, 1000.0)[AgentState.LOGGED_OUT] == 1000.0


def test_a_clean_stop_ends_the_logged_in_agents_states_at_the_stop() -> None:
    clock, hub = _hub()
    hub.login("a", ["q"])
    hub.login("b", ["q"])
    clock.advance(50.0)
    hub.logout("a")
    hub.login("a", ["q"])
    clock.advance(10.0)
    closed = hub.close_agent_days(clock.seconds())
    assert [(e.at, e.agent, e.state, e.pause_reason) for e in closed] == [
        (60.0, "b", AgentState.LOGGED_OUT, "server stopped"),
        (60.0, "a", AgentState.LOGGED_OUT, "server stopped"),
    ]
    hub.logout("a")
    hub.logout("b")
    assert hub.close_agent_days(clock.seconds()) == []
