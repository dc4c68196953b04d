"""A move the PBX could not carry out (its link was down) is sent after the resync.

An agent picked for a caller while the link is down is kept for the
caller, is not paused "no answer" when the outage outlasts the offer
time-out, and gets the caller once the PBX is back.  Before, an inbound
caller offered during the outage was declined at once by every agent who
came free (the move failed) and was never offered to them again: it
waited, with agents free, until the dialplan's fallback.

For a campaign:

The runner picked an agent for a person it reached and sent the move into
the agent's bridge; the AMI link dropped before the PBX got it and stayed
down past the router's offer time-out.  Before, the time-out took the
offer back as unanswered: the agent was paused "no answer" (and so was
the next one, offered the person while the link was still down), and both
had to set themselves ready after the PBX came back.  The agent did
nothing wrong: the PBX could not carry the move out.  The offer waits for
the resync, which settles it (here, past the connect deadline: the abandon
message, and the agent free again).

Real TCP against the simulated Asterisk, the link cut by the server going
away (the set-up of tests/test_campaign_link_loss.py, with a short offer
time-out so that the outage outlasts it in a few seconds).
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor

from asterisk.telephony import AmiTelephony
from channels.voice import AgentEndpoint
from routing.agent import NO_ANSWER, Agent, AgentState
from routing.model import QueueConfig
from routing.router import Router
from tests.acd import InboundAcd
from tests.conftest import run, settle, wait_for
from tests.test_campaign_link_loss import _move_lost_with_the_link


def test_an_outage_past_the_offer_time_out_pauses_no_agent_no_answer(
    session_factory: Any,
) -> None:
    # the outage: past the offer time-out (1 s, the shortest the configuration
    # takes) and the connect deadline (2 s)
    seen = _move_lost_with_the_link(session_factory, outage=2.5, offer_timeout=1.0)
    assert seen["no_answer_meanwhile"] == [], "nobody is paused 'no answer' while the PBX is away"
    assert seen["attempt"].abandoned and seen["abandon_messages"] == 1
    for a, agent in seen["router"].agents.items():
        assert agent.state is not AgentState.PAUSED, f"{a} works on after the outage"
        assert all(t.reason != NO_ANSWER for t in agent.history), f"{a} never 'no answer'"


def test_a_caller_offered_while_the_link_is_down_is_put_through_after_the_resync(
    sim: Any, session_factory: Any
) -> None:
    pbx, server = sim
    pbx.inbound_talk = 60
    session = session_factory(server.address, backoff_initial=0.05, backoff_max=0.1)
    phone = AmiTelephony(session)
    router = Router({"sales": QueueConfig("sales")}, offer_timeout=1.0)
    router.add_agent(Agent("ringer"))
    acd = InboundAcd(phone, router, reactor, {"ringer": AgentEndpoint("ringer", "1002")})
    session.start()
    run(session.wait_connected(5))
    acd.start()
    try:
        caller = pbx.inbound_call(queue="sales")
        run(wait_for(lambda: router.is_waiting(caller.uniqueid), what="the caller queued"))
        pbx.unsubscribe(server.broadcast)
        server.stop()
        run(wait_for(lambda: not session.connected, what="the link down"))
        acd.login("ringer", ["sales"])  # the agent comes in while the PBX is away
        settle(1.5)  # past the offer time-out
        ringer = router.agents["ringer"]
        assert ringer.pause_reason != NO_ANSWER, "not 'no answer' for a move never sent"
        assert router.offered_to(caller.uniqueid) == "ringer", "kept for the caller"
        pbx.subscribe(server.broadcast)
        server.restart()
        run(wait_for(lambda: ringer.state is AgentState.BUSY, what="the caller put through"))
        assert caller.bridge is not None and caller.alive
        assert all(t.reason != NO_ANSWER for t in ringer.history)
    finally:
        acd.stop()
