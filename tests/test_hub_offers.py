"""Screen pops through the hub: an agent is popped only for a call it is given.

The hub picks an agent for a person (router), then the adapter owning the
person (a campaign, a PBX's voice channel) carries the offer out.  An
adapter may refuse it on the spot: a nailed-up agent whose leg is out of
its bridge gets no caller (an empty conference is no agent), and the person
goes back to the queue for someone else.  The agent refused must not have
seen the person's screen pop (the number, the record's fields) for a call it
never gets: nothing on the WebSocket would ever take that pop back.
"""

from __future__ import annotations

from typing import Any

from channels.voice import NO_PHONE, AgentEndpoint
from core.events import AgentStateChanged, OfferEnded, OfferMade, to_message
from dialer.campaign import CampaignSettings, validate
from dialer.pacing import Progressive
from dialer.runner import CampaignRunner
from routing.agent import Agent
from routing.model import QueueConfig
from routing.router import Router
from sim.clock import HeapClock
from sim.inprocess import SimTelephony
from sim.pbx import SimPbx
from tests.acd import InboundAcd
from tests.test_dialer_runner import ListSource, workload


def _centre() -> tuple[HeapClock, SimPbx, Router, InboundAcd, CampaignRunner]:
    """Agents 1001 and 1002 on nailed-up lines working campaign "c" as the
    assembled server wires it (the runner asks the hub whether the agent's
    leg is in its bridge before moving a person there)."""
    clock = HeapClock()
    pbx = SimPbx(clock, seed=3, agents=2, workload=workload(live=1.0))
    tel = SimTelephony(pbx)
    router = Router({"c": QueueConfig("c")})
    endpoints = {}
    for a in ("1001", "1002"):
        router.add_agent(Agent(a))
        endpoints[a] = AgentEndpoint(a, a, "nailed")
    acd = InboundAcd(tel, router, clock, endpoints, wrap_up=5)
    for a in ("1001", "1002"):
        acd.nail_up(a, ["c"])
    clock.run_until(2.0)
    runner = CampaignRunner(
        validate(CampaignSettings("c", caller_id="+4930555000", amd_false_positive=0.0, wrap_up=5)),
        tel,
        acd,  # the runner's AgentDesk
        clock,
        ListSource(["+4930123400001"]),
        Progressive(),
        center=acd,
        can_connect=acd.has_leg,
        no_leg=acd.leg_missing,
        ticks_router=False,
    )
    return clock, pbx, router, acd, runner


def test_an_agent_whose_leg_left_its_bridge_gets_no_pop_for_the_person_a_colleague_takes() -> None:
    clock, pbx, _router, acd, runner = _centre()
    pushed: list[dict[str, Any]] = []  # what the agents' sockets carry (the push's messages)
    acd.bus.subscribe(OfferMade, lambda e: pushed.append(to_message(e)))
    acd.bus.subscribe(AgentStateChanged, lambda e: pushed.append(to_message(e)))
    acd.bus.subscribe(OfferEnded, lambda e: pushed.append(to_message(e)))

    def leg_out_of_its_bridge(what: str, attempt: Any) -> None:
        """The person is about to be offered; at that moment the leg of the
        agent the router picks (the longer idle, 1001) is out of its bridge,
        as between Asterisk's BridgeLeave and the Hangup of a phone hanging up."""
        if what == "queued":
            (leg,) = (c for c in pbx.channels.values() if c.uniqueid.startswith("agent-1001-"))
            pbx._leave_bridge(leg)

    runner.listeners.append(leg_out_of_its_bridge)
    acd.start()
    runner.start()
    clock.run_until(20.0)

    (attempt,) = runner.live.values()
    assert attempt.connected is not None and attempt.agent == "1002", "the colleague took it"
    refused = [m for m in pushed if m["type"] == "agent" and m["agent"] == "1001"]
    assert any(m.get("pause_reason") == NO_PHONE for m in refused), "1001 was picked, refused"
    pops = [(m["agent"], m["customer"]) for m in pushed if m["type"] == "offer"]
    assert pops == [("1002", "+4930123400001")], "no pop on 1001's screen for 1002's call"
    ends = [(m["agent"], m["end"]) for m in pushed if m["type"] == "offer_ended"]
    assert ends == [("1002", "accepted")], "no pop to take back from 1001; 1002's ends taken"
