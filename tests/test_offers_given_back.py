"""What is on its way to an agent who cannot take it goes on to the next agent.

An offer the voice channel cannot carry out (the agent's phone hung up
while the interaction was being moved to it; an agent with no phone on
this PBX) is given back to the queue and offered to the next agent at
once: dropped, it was neither waiting nor offered, and nobody routed it
again.  The agent is paused for its phone, never "no answer".

Virtual time (task.Clock), the simulated PBX in process.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import task

from channels.voice import PHONE_HUNG_UP, AgentEndpoint
from core.events import OfferMade
from routing.agent import NO_ANSWER, Agent, AgentState
from routing.model import Channel, QueueConfig
from routing.router import Router
from sim.inprocess import SimTelephony
from sim.pbx import SimPbx
from tests.acd import InboundAcd


def build(clock: task.Clock, endpoints: dict[str, AgentEndpoint], agents: list[Agent]) -> Any:
    pbx = SimPbx(clock, seed=3, agents=len(endpoints), inbound_talk=60)
    phone = SimTelephony(pbx)
    router = Router({"sales": QueueConfig("sales")}, offer_timeout=30)
    for agent in agents:
        router.add_agent(agent)
    acd = InboundAcd(phone, router, clock, endpoints, wrap_up=5)
    acd.start()
    return pbx, phone, router, acd


def advance(clock: task.Clock, seconds: float, step: float = 0.1) -> None:
    for _ in range(round(seconds / step)):
        clock.advance(step)


def never_no_answer(agent: Agent) -> bool:
    return all(t.reason != NO_ANSWER for t in agent.history) and agent.pause_reason != NO_ANSWER


def test_a_chat_on_its_way_to_an_agent_whose_phone_hangs_up_goes_to_the_next_agent() -> None:
    clock = task.Clock()
    both = {Channel.VOICE: 1, Channel.CHAT: 1}
    endpoints = {a: AgentEndpoint(a, str(1001 + i), "nailed") for i, a in enumerate(("a0", "a1"))}
    pbx, _phone, router, acd = build(
        clock, endpoints, [Agent("a0", capacity=dict(both)), Agent("a1", capacity=dict(both))]
    )
    acd.nail_up("a0", ["sales"])
    advance(clock, 1)
    acd.nail_up("a1", ["sales"])  # a0 has waited longest: it gets the chat
    advance(clock, 1)
    pops: list[OfferMade] = []
    acd.bus.subscribe(OfferMade, pops.append)
    chat = acd.create_interaction(Channel.CHAT, "sales", customer="ann@example.com")
    assert router.offered_to(chat) == "a0"

    leg = acd.endpoints["a0"].line_call
    pbx.hangup_channel(pbx.channels[leg], 16)  # a0 puts the phone down as the chat comes in
    assert router.agents["a0"].pause_reason == PHONE_HUNG_UP
    assert router.offered_to(chat) == "a1", "the chat goes on to the next agent at once"
    assert [p.agent for p in pops] == ["a0", "a1"], "and a1 sees it"
    acd.accept("a1", chat)
    assert router.handled_by(chat) == "a1"
    advance(clock, 60)  # past the offer time-out: nothing is left pending for a0
    assert never_no_answer(router.agents["a0"]) and never_no_answer(router.agents["a1"])


def test_a_chat_in_the_hands_of_an_agent_whose_phone_hangs_up_stays_there() -> None:
    clock = task.Clock()
    endpoints = {"a0": AgentEndpoint("a0", "1001", "nailed")}
    capacity = {Channel.VOICE: 1, Channel.CHAT: 1}
    pbx, _phone, router, acd = build(clock, endpoints, [Agent("a0", capacity=capacity)])
    acd.nail_up("a0", ["sales"])
    advance(clock, 1)
    chat = acd.create_interaction(Channel.CHAT, "sales", customer="ann@example.com")
    acd.accept("a0", chat)
    leg = acd.endpoints["a0"].line_call
    pbx.hangup_channel(pbx.channels[leg], 16)
    assert router.agents["a0"].pause_reason == PHONE_HUNG_UP
    assert router.handled_by(chat) == "a0", "the desktop still has the chat"
    acd.finish("a0", chat, 0)  # and the agent ends it as usual
    assert router.handled_by(chat) is None and not router.agents["a0"].work


def test_a_caller_offered_to_an_agent_without_a_phone_here_goes_to_the_next_agent_at_once() -> None:
    clock = task.Clock()
    # "a0" has no phone on this PBX (a desktop-only agent logged in to the queue)
    endpoints = {"a1": AgentEndpoint("a1", "1001", "nailed")}
    pbx, phone, router, acd = build(clock, endpoints, [Agent("a0"), Agent("a1")])
    acd.nail_up("a1", ["sales"])
    advance(clock, 1)
    acd.login("a0", ["sales"])
    router.agents["a0"].idle_since = 0.0  # a0 has waited longest: the router picks it first
    caller = pbx.inbound_call(queue="sales")
    advance(clock, 0.5)
    assert router.agents["a1"].state is AgentState.BUSY, "put through to a1 at once"
    a1_leg = phone.mirror.get(acd.endpoints["a1"].line_call)
    assert phone.mirror.get(caller.uniqueid).bridge_id == a1_leg.bridge_id
    advance(clock, 40)  # past the offer time-out
    assert never_no_answer(router.agents["a1"]), "a1 is not paused for an offer it never got"


def test_an_agent_without_a_phone_here_is_not_kept_reserved_for_callers_it_cannot_take() -> None:
    clock = task.Clock()
    endpoints = {"a1": AgentEndpoint("a1", "1001", "nailed")}
    pbx, _phone, router, acd = build(clock, endpoints, [Agent("a0"), Agent("a1")])
    callers = [pbx.inbound_call(queue="sales") for _ in range(3)]  # nobody logged in yet
    advance(clock, 1)
    acd.login("a0", ["sales"])  # offered each caller in turn, none of which it can take
    assert router.agents["a0"].state is AgentState.READY, "not reserved for a call it never gets"
    assert all(router.is_waiting(c.uniqueid) for c in callers)
    acd.nail_up("a1", ["sales"])
    advance(clock, 1)
    assert router.handled_by(callers[0].uniqueid) == "a1"
    advance(clock, 40)  # past the offer time-out (the callers' wait is 60 s)
    assert never_no_answer(router.agents["a0"])
    assert all(router.offered_to(c.uniqueid) != "a0" for c in callers), "none stuck on a0"
