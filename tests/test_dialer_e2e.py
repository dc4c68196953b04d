"""The campaign runner end to end over AMI (real TCP to the simulated Asterisk)
gives the same outcomes as the in-process path used by the benchmarks.

Ten nailed-up agents, a progressive campaign, four virtual minutes of the
standard outcome mix with shorter talk times, at five times real speed (about
48 s).  Fates are drawn from (seed, number, attempt), so a number dialed on
both paths meets the same customer: its outcome must be the same.

Five, not ten: at ten times the person's 2 s wait for an agent is 0.2 s of
wall time, and on CI's two loaded cores (the real-PBX tier beside it) a
stall of the reactor once took longer, so one person was abandoned over AMI
whom the in-process path put through."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from twisted.internet import reactor

from asterisk.telephony import AmiTelephony
from dialer.campaign import CampaignSettings, validate
from dialer.pacing import Progressive
from dialer.runner import CampaignRunner, MemoryAttemptLog
from routing.agent import Agent
from routing.model import QueueConfig
from routing.router import Router
from sim.ami_server import SimAmiServer
from sim.clock import HeapClock, ScaledClock
from sim.desk import RouterDesk
from sim.inprocess import SimTelephony
from sim.pbx import SimPbx
from sim.workload import Distribution, standard_workload
from tests.conftest import run, settle, stop_sim, wait_for
from tests.test_dialer_runner import ListSource

AGENTS = [str(1001 + i) for i in range(10)]
NUMBERS = [f"+49301234{i:04d}" for i in range(400)]
MINUTES = 4.0
SPEED = 5.0
SEED = 21


def quick_workload() -> Any:
    w = standard_workload()
    return replace(
        w,
        talk=Distribution("lognormal", mean=20.0, sd=8.0),
        amd=replace(w.amd, person_misread=0.0),
    )


def make_runner(telephony: Any, clock: Any) -> tuple[CampaignRunner, MemoryAttemptLog]:
    router = Router({"c": QueueConfig("c")})
    for a in AGENTS:
        router.add_agent(Agent(a))
    log = MemoryAttemptLog()
    runner = CampaignRunner(
        validate(
            CampaignSettings("c", caller_id="+4930555000", amd_false_positive=0.0, wrap_up=3.0)
        ),
        telephony,
        RouterDesk(router),
        clock,
        ListSource(NUMBERS),
        Progressive(),
        attempts=log,
    )
    return runner, log


def nail_up_and_login(runner: CampaignRunner, now: float) -> None:
    assert isinstance(runner.desk, RouterDesk)  # the test's own router, behind the desk
    for a in AGENTS:
        runner.desk.router.login(a, now, ["c"])


def outcomes(log: MemoryAttemptLog) -> dict[str, str]:
    return {a.lead.number: a.outcome for a in log.attempts.values() if a.outcome is not None}


def in_process() -> dict[str, str]:
    clock = HeapClock()
    pbx = SimPbx(clock, seed=SEED, agents=len(AGENTS), workload=quick_workload())
    tel = SimTelephony(pbx)
    for a in AGENTS:
        tel.originate(f"PJSIP/{a}", context="dirigent-agent", exten=a, channel_id=f"agent-{a}")
    clock.run_until(2.0)
    runner, log = make_runner(tel, clock)
    nail_up_and_login(runner, clock.seconds())
    runner.start()
    clock.run_until(2.0 + MINUTES * 60)
    runner.stop()
    clock.run_until(2.0 + MINUTES * 60 + 120)  # calls in progress end
    return outcomes(log)


def test_the_ami_path_gives_the_same_outcomes_as_the_in_process_path(session_factory):
    clock = ScaledClock(reactor, SPEED)
    pbx = SimPbx(clock, seed=SEED, agents=len(AGENTS), workload=quick_workload())
    server = SimAmiServer(pbx, reactor)
    server.listen(0)
    try:
        session = session_factory(server.address)
        session.start()
        run(wait_for(lambda: session.connected, what="AMI login"))
        tel = AmiTelephony(session)
        for a in AGENTS:
            tel.originate(f"PJSIP/{a}", context="dirigent-agent", exten=a, channel_id=f"agent-{a}")
        settle(2.0 / SPEED)
        runner, log = make_runner(tel, clock)
        run(wait_for(lambda: len(pbx.bridges) >= len(AGENTS), what="agents in their bridges"))
        nail_up_and_login(runner, clock.seconds())
        runner.start()
        settle(MINUTES * 60 / SPEED)
        runner.stop()
        run(wait_for(lambda: not runner.live, timeout=30, what="calls in progress to end"))
    finally:
        stop_sim(pbx, server)
    over_ami = outcomes(log)
    local = in_process()
    both = set(over_ami) & set(local)
    assert len(local) > 100, "the run is long enough to mean something"
    assert len(both) >= 0.85 * min(len(local), len(over_ami))
    print(f"AMI {len(over_ami)} attempts, in-process {len(local)}, both {len(both)}")
    differ = {n: (over_ami[n], local[n]) for n in both if over_ami[n] != local[n]}
    assert differ == {}
    # every outcome kind happened, and no person went without an agent
    assert {"answered", "machine", "no-answer", "busy", "invalid"} <= set(over_ami.values())
    assert "abandoned" not in over_ami.values() and runner.stats.abandoned == 0


def test_a_conversation_cut_by_a_pbx_crash_ends_when_the_link_was_lost(session_factory):
    """Issue 14, finding 10, outbound: the attempt whose channels vanished is
    closed "pbx-lost" with the talk time up to the link loss (not up to the
    resync), and the record counts as reached for the retry rules."""
    from asterisk.events import PbxDisconnected
    from dialer.pacing import Progressive
    from tests.test_dialer_runner import ListSource, workload

    wl = replace(workload(live=1.0), talk=Distribution("constant", value=600.0))
    pbx = SimPbx(reactor, seed=SEED, agents=1, workload=wl, agent_answer_delay=0.05)
    server = SimAmiServer(pbx, reactor)
    server.listen(0)
    try:
        session = session_factory(server.address)
        session.start()
        run(wait_for(lambda: session.connected, what="AMI login"))
        tel = AmiTelephony(session)
        lost: list[float] = []
        tel.subscribe(
            lambda e: lost.append(reactor.seconds()) if isinstance(e, PbxDisconnected) else None
        )
        tel.originate("PJSIP/1001", context="dirigent-agent", exten="1001", channel_id="agent-1001")
        run(wait_for(lambda: pbx.bridges, what="the agent in its bridge"))
        router = Router({"c": QueueConfig("c")})
        router.add_agent(Agent("1001"))
        router.login("1001", reactor.seconds(), ["c"])
        source = ListSource(["+4930123400001"])
        log = MemoryAttemptLog()
        runner = CampaignRunner(
            validate(
                CampaignSettings(
                    "c", caller_id="+4930555000", amd=False, amd_false_positive=0.0, ring_timeout=15
                )
            ),
            tel,
            RouterDesk(router),
            reactor,
            source,
            Progressive(),
            attempts=log,
        )
        runner.start()
        run(
            wait_for(lambda: runner.stats.connected == 1, timeout=60, what="a conversation"),
            timeout=70,
        )
        (attempt,) = log.attempts.values()

        pbx.unsubscribe(server.broadcast)  # the PBX crashes: nothing more on the wire
        server.stop()
        for chan in list(pbx.channels.values()):
            pbx.hangup_channel(chan, 16)
        run(wait_for(lambda: lost, what="link loss seen"))
        settle(0.6)
        server.restart()
        pbx.subscribe(server.broadcast)
        run(wait_for(lambda: not attempt.open, timeout=10, what="closed by the resync"))
        runner.stop()
    finally:
        stop_sim(pbx, server)
    assert attempt.outcome == "pbx-lost"
    # (the runner notes the loss a few microseconds after this test's listener)
    assert attempt.connected <= attempt.ended <= lost[0] + 0.01, "talk time ends with the link"
    assert source.done_calls == [("+4930123400001", "answered")], "a person was reached"
