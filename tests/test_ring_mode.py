"""Ring-mode agents and transfers as the simulated PBX plays the shipped
dialplan (QA3 findings 1-3; tests/realpbx/test_ring.py shows the same on
the real Asterisk 22):

* the phone rings as long as Dirigent's offer has left, less a second
  (``DIRIGENT_RING``, set on the caller before the Redirect): the PBX gives
  up first, and an answer after the offer's time-out never reaches the
  caller while Dirigent shows the agent paused "no answer";
* a ring that failed sends the caller back to ``dirigent-inbound``'s
  ``wait`` (not announced again): the dialplan's fallback still comes;
* a blind transfer to a queue with a free agent: the move to that agent
  waits until the caller's hold has landed (Asterisk refuses a Redirect
  while the last one is under way, and so does the simulated PBX now), and
  a refused move is never the agent's decline.

Virtual time (task.Clock), the simulated PBX in process.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import task

from asterisk.port import FALLBACK_PRIORITY, RING_VARIABLE, WAIT_PRIORITY
from channels.voice import AgentEndpoint
from core.events import InteractionChanged, OfferEnd, OfferEnded, Stage
from routing.agent import NO_ANSWER, Agent, AgentState
from routing.model import QueueConfig
from routing.router import Router
from sim.inprocess import SimTelephony
from sim.pbx import SimChannel, SimPbx, shipped_dialplan_path
from tests.acd import InboundAcd

OFFER_TIMEOUT = 15.0


def build(clock: task.Clock, endpoints: dict[str, AgentEndpoint]) -> Any:
    pbx = SimPbx(clock, seed=5, agents=4, inbound_patience_mean=1e9, inbound_talk=1e9)
    pbx.fallback_after = 10.0  # DIRIGENT_WAIT
    phone = SimTelephony(pbx)
    router = Router(
        {"sales": QueueConfig("sales"), "support": QueueConfig("support")},
        offer_timeout=OFFER_TIMEOUT,
    )
    for agent in endpoints:
        router.add_agent(Agent(agent))
    acd = InboundAcd(phone, router, clock, endpoints, wrap_up=5)
    acd.start()
    seen: list[dict[str, str]] = []
    pbx.subscribe(lambda m: seen.append(dict(m)))
    return pbx, router, acd, seen


def advance(clock: task.Clock, seconds: float, step: float = 0.1) -> None:
    for _ in range(round(seconds / step)):
        clock.advance(step)


def bridged_with(pbx: SimPbx, caller: SimChannel, endpoint: str) -> bool:
    bridge = pbx.bridges.get(caller.bridge or "")
    return bridge is not None and any(
        (m := pbx.channels.get(uid)) is not None and m.agent == endpoint for uid in bridge.members
    )


def user_events(seen: list[dict[str, str]], name: str) -> list[dict[str, str]]:
    return [e for e in seen if e.get("Event") == "UserEvent" and e.get("UserEvent") == name]


def test_a_phone_answering_after_the_offer_timed_out_never_gets_the_caller() -> None:
    clock = task.Clock()
    pbx, router, acd, seen = build(clock, {"anna": AgentEndpoint("anna", "1001", "ring")})
    pbx.phones["1001"].answer_delay = 17.5  # 2.5 s after the offer's 15 s time-out
    acd.login("anna", ["sales"])
    caller = pbx.inbound_call(queue="sales")
    advance(clock, 0.5)
    assert router.offered_to(caller.uniqueid) == "anna" and pbx.phones["1001"].channel
    assert caller.variables.get("DIRIGENT_RING") == "14.0", "rung the offer's time less 1 s"
    advance(clock, 15.0)
    assert pbx.phones["1001"].channel is None, "the PBX stopped ringing 1001 at 14 s"
    assert [e["DialStatus"] for e in user_events(seen, "DirigentConnectFailed")] == ["NOANSWER"]
    assert caller.on_moh and caller.context == "dirigent-inbound", "the caller is back on hold"
    assert router.agents["anna"].pause_reason == NO_ANSWER
    assert router.is_waiting(caller.uniqueid)
    advance(clock, 5.0)  # past the moment the phone would have answered
    assert not bridged_with(pbx, caller, "1001"), "a late answer put the caller through to anna"
    assert router.is_waiting(caller.uniqueid) and not router.agents["anna"].work
    assert len(user_events(seen, "DirigentInbound")) == 1, "announced again after the ring"


def test_an_offer_timed_out_while_the_phone_still_rings_stops_the_ringing() -> None:
    """A dialplan whose Dial outlasts the offer (an operator's own, or a PBX
    slow to give up): once Dirigent times the offer out, the caller is taken
    off the ringing phone and back on hold; its late answer finds nobody."""
    clock = task.Clock()
    pbx, router, acd, _seen = build(clock, {"anna": AgentEndpoint("anna", "1001", "ring")})
    pbx.phones["1001"].answer_delay = 12.0
    acd.login("anna", ["sales"])
    caller = pbx.inbound_call(queue="sales")
    advance(clock, 0.5)
    assert pbx.phones["1001"].channel, "1001 rings"
    router.offered[caller.uniqueid].deadline = clock.seconds() + 5  # times out before the PBX
    advance(clock, 7.0)
    assert router.agents["anna"].pause_reason == NO_ANSWER
    assert pbx.phones["1001"].channel is None, "1001 still rings for an offer that timed out"
    assert caller.on_moh and caller.context == "dirigent-inbound"
    advance(clock, 8.0)  # past the moment the phone would have answered
    assert not bridged_with(pbx, caller, "1001")
    assert router.is_waiting(caller.uniqueid) and not router.agents["anna"].work


def test_a_caller_whose_ring_failed_gets_the_fallback_not_a_hang_up() -> None:
    clock = task.Clock()
    pbx, router, acd, seen = build(clock, {"anna": AgentEndpoint("anna", "1001", "ring")})
    stages: list[Stage] = []
    acd.bus.subscribe(InteractionChanged, lambda e: stages.append(e.stage))
    pbx.set_registered("1001", False)  # anna's phone is unplugged: CHANUNAVAIL
    acd.login("anna", ["sales"])
    caller = pbx.inbound_call(queue="sales")
    advance(clock, 1.0)
    assert router.agents["anna"].pause_reason == "endpoint unreachable"
    assert caller.on_moh and caller.context == "dirigent-inbound", "back to waiting"
    advance(clock, 10.0)  # DIRIGENT_WAIT of the wait after the failed ring
    assert caller.alive, "the PBX hung the caller up"
    assert len(user_events(seen, "DirigentFallback")) == 1
    assert caller.app == "Queue" and caller.app_data.startswith("fallback"), caller.app
    assert Stage.FALLBACK in stages and Stage.ABANDONED not in stages, stages
    assert acd.kpi.fallbacks == 1


def transfer_to_support(target_mode: str) -> None:
    clock = task.Clock()
    endpoints = {
        "anna": AgentEndpoint("anna", "1001", "ring"),
        "carl": AgentEndpoint("carl", "1003", target_mode),
    }
    pbx, router, acd, _seen = build(clock, endpoints)
    ended: list[OfferEnded] = []
    acd.bus.subscribe(OfferEnded, ended.append)
    acd.login("anna", ["sales"])
    if target_mode == "nailed":
        acd.nail_up("carl", ["support"])
    else:
        acd.login("carl", ["support"])
    advance(clock, 1.0)
    caller = pbx.inbound_call(queue="sales")
    advance(clock, 1.0)
    assert router.handled_by(caller.uniqueid) == "anna" and bridged_with(pbx, caller, "1001")
    acd.transfer("anna", caller.uniqueid, queue="support")
    advance(clock, 1.0)
    assert bridged_with(pbx, caller, "1003"), "the caller never reached carl, who was free"
    assert router.handled_by(caller.uniqueid) == "carl"
    assert router.agents["carl"].state is AgentState.BUSY
    how = [(e.agent, e.end) for e in ended if e.agent == "carl"]
    assert how == [("carl", OfferEnd.ACCEPTED)], how


def test_a_transfer_to_a_queue_reaches_its_free_ring_mode_agent() -> None:
    transfer_to_support("ring")


def test_a_transfer_to_a_queue_reaches_its_free_nailed_agent() -> None:
    transfer_to_support("nailed")


def test_a_move_the_pbx_refuses_while_the_caller_is_on_its_way_is_sent_again() -> None:
    """Someone else's Redirect of the caller is under way when Dirigent moves
    it to the agent who just became ready: Asterisk refuses ("channel not
    up"); the move is sent again and the agent gets the caller, its pop
    never ending "declined"."""
    clock = task.Clock()
    pbx, router, acd, _seen = build(clock, {"anna": AgentEndpoint("anna", "1001", "ring")})
    ended: list[OfferEnded] = []
    acd.bus.subscribe(OfferEnded, ended.append)
    caller = pbx.inbound_call(queue="sales")
    advance(clock, 1.0)
    assert router.is_waiting(caller.uniqueid)
    pbx.redirect(caller.name, "dirigent-inbound", "sales", 5)  # e.g. an operator's own action
    acd.login("anna", ["sales"])  # offered at once: its Redirect meets the pending one
    advance(clock, 2.0)
    assert bridged_with(pbx, caller, "1001"), "anna never got the caller"
    assert router.handled_by(caller.uniqueid) == "anna"
    assert [e.end for e in ended] == [OfferEnd.ACCEPTED], ended
    assert router.agents["anna"].pause_reason is None


def test_the_shipped_dialplan_has_the_priorities_dirigent_and_the_sim_name() -> None:
    """``dirigent-inbound``'s label ``wait`` (where a failed ring returns) is
    priority WAIT_PRIORITY, its GotoIf (where Dirigent sends a caller to the
    fallback) FALLBACK_PRIORITY; dirigent-connect rings ``${DIRIGENT_RING}``."""
    text = shipped_dialplan_path().read_text()
    section = text.split("[dirigent-inbound]", 1)[1].split("\n[", 1)[0]
    steps = []  # "<priority>,<application>(...)" of each line, the pattern left out
    for line in section.splitlines():
        if "=>" in line:
            rhs = line.split("=>", 1)[1].strip()
            steps.append(rhs.split(",", 1)[1] if rhs.startswith("_") else rhs)
    assert steps[WAIT_PRIORITY - 1].startswith("n(wait),MusicOnHold("), steps
    assert steps[FALLBACK_PRIORITY - 1].startswith("n,GotoIf("), steps
    connect = text.split("[dirigent-connect]", 1)[1].split("\n[", 1)[0]
    assert f"Dial(PJSIP/${{EXTEN}},${{{RING_VARIABLE}}})" in connect
    assert "Goto(dirigent-inbound,${DIRIGENT_QUEUE},wait)" in connect
