"""A person the dialer reached, caught by a PBX link loss on the way to an agent.

The runner picked an agent and sent the move into the agent's bridge; the
AMI link dropped before the PBX got it.  The person is still on the line,
on hold, and the agent is kept (reserved) for them.  After the resync the
runner settles it: within the connect deadline the person is moved again
(and talks to that agent); past it, the person hears the abandon message
as the law wants for a call not connected in time, the call counts
abandoned, and the agent is free for the next one.  Before, the agent sat
reserved for a move that never came until the person hung up in silence.

Real TCP against the simulated Asterisk: the link is cut by the server
going away, as in a network failure, and the resync is the session's own.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from twisted.internet import reactor

from asterisk.telephony import AmiTelephony
from core.telephony import PbxSynced
from dialer.campaign import CampaignSettings, validate
from dialer.pacing import Progressive
from dialer.runner import Attempt, CampaignRunner, MemoryAttemptLog
from routing.agent import NO_ANSWER, Agent, AgentState
from routing.model import QueueConfig
from routing.router import Router
from sim.ami_server import SimAmiServer
from sim.desk import RouterDesk
from sim.pbx import SimPbx
from sim.workload import Distribution
from tests.conftest import run, settle, stop_sim, wait_for
from tests.test_dialer_runner import ListSource, workload

SEED = 21


def _patient_number(pbx: SimPbx) -> str:
    """A number whose person waits on hold 7.5 s or more before hanging up
    (the simulated customer's patience, 3 to 8 s, drawn from the number)."""
    for i in range(1000):
        number = f"+4930123{i:05d}"
        if pbx.peek_fate(number).patience >= 7.5:
            return number
    raise AssertionError("no patient customer among 1000 numbers")


def _move_lost_with_the_link(
    session_factory: Any, outage: float, offer_timeout: float = 15.0
) -> dict[str, Any]:
    """A person reached, offered to an agent, the move into its bridge lost
    with the AMI link, the link back after ``outage`` seconds; what the
    runner, the router and the PBX then say (also who was paused "no
    answer" while the link was down, for a short ``offer_timeout``)."""
    wl = replace(
        workload(live=1.0),
        ring=Distribution("constant", value=0.5),
        talk=Distribution("constant", value=600.0),
    )
    pbx = SimPbx(reactor, seed=SEED, agents=2, workload=wl, agent_answer_delay=0.05)
    server = SimAmiServer(pbx, reactor)
    server.listen(0)
    try:
        session = session_factory(server.address)
        session.start()
        run(wait_for(lambda: session.connected, what="AMI login"))
        tel = AmiTelephony(session)
        for a in ("1001", "1002"):
            tel.originate(f"PJSIP/{a}", context="dirigent-agent", exten=a, channel_id=f"agent-{a}")
        run(wait_for(lambda: len(pbx.bridges) >= 2, what="the agents in their bridges"))
        router = Router({"c": QueueConfig("c")}, offer_timeout=offer_timeout)
        for a in ("1001", "1002"):
            router.add_agent(Agent(a))
            router.login(a, reactor.seconds(), ["c"])
        number = _patient_number(pbx)
        runner = CampaignRunner(
            validate(
                CampaignSettings("c", caller_id="+4930555000", amd=False, amd_false_positive=0.0)
            ),
            tel,
            RouterDesk(router),
            reactor,
            ListSource([number]),
            Progressive(),
            attempts=MemoryAttemptLog(),
        )
        synced: list[float] = []
        tel.listen(lambda e: synced.append(reactor.seconds()) if isinstance(e, PbxSynced) else None)
        offered: list[Attempt] = []

        def link_drops_with_the_move(what: str, attempt: Attempt) -> None:
            if what == "offered" and not offered:
                offered.append(attempt)  # the move is written, not sent yet: lost with the link
                pbx.unsubscribe(server.broadcast)
                server.stop()
                # the person waits on for the test, however long a loaded machine
                # takes (a 7.5 s patience ran out once during a loaded CI run)
                for chan in pbx.channels.values():
                    if chan.uniqueid == attempt.channel_id:
                        for timer in chan.timers:
                            if timer.active():
                                timer.cancel()

        runner.listeners.append(link_drops_with_the_move)
        runner.start()
        try:
            run(wait_for(lambda: bool(offered), timeout=30, what="a person offered to an agent"))
        except AssertionError as exc:  # say why (seen once under a loaded CI run)
            raise AssertionError(
                f"{exc}: runner {runner.status} ({runner.idle_reason}), {runner.stats}, "
                f"attempts {[(a.id, a.outcome, a.verdict) for a in runner.live.values()]}, "
                f"link up {session.connected}, PBX {dict(pbx.stats)}"
            ) from None
        (attempt,) = offered
        agent = attempt.agent
        assert agent is not None and router.agents[agent].state is AgentState.RESERVED
        settle(outage)
        no_answer_meanwhile = [a for a, g in router.agents.items() if g.pause_reason == NO_ANSWER]
        person = next(c for c in pbx.channels.values() if c.uniqueid == attempt.channel_id)
        assert person.bridge is None, "on the PBX the person was never moved"
        pbx.subscribe(server.broadcast)
        server.restart()
        run(wait_for(lambda: bool(synced), timeout=10, what="the resync"))
        settle(0.3)
        seen = {
            "attempt": attempt,
            "agent": agent,
            "state": router.agents[agent].state,
            "abandon_messages": pbx.stats.get("abandon_message", 0),
            "runner": runner,
            "router": router,
            "no_answer_meanwhile": no_answer_meanwhile,
        }
        runner.stop()
        return seen
    finally:
        stop_sim(pbx, server)


def test_past_the_deadline_the_person_hears_the_abandon_message_and_the_agent_is_free(
    session_factory: Any,
) -> None:
    seen = _move_lost_with_the_link(session_factory, outage=2.5)  # connect_within is 2 s
    attempt, runner = seen["attempt"], seen["runner"]
    assert seen["state"] is AgentState.READY, "the agent is not kept for a move that never came"
    assert seen["abandon_messages"] == 1, "the person is told, not left in silence"
    assert attempt.abandoned and attempt.connected is None
    assert runner.stats.abandoned == 1 and runner.ledger.rate("day", reactor.seconds()) == 1.0


def test_within_the_deadline_the_person_is_moved_again_to_the_agent_kept_for_them(
    session_factory: Any,
) -> None:
    seen = _move_lost_with_the_link(session_factory, outage=0.1)
    attempt, runner = seen["attempt"], seen["runner"]
    assert attempt.connected is not None and attempt.agent == seen["agent"]
    assert seen["state"] is AgentState.BUSY and seen["abandon_messages"] == 0
    assert runner.stats.abandoned == 0
