"""The Telephony port: one contract, two implementations (AMI over TCP and
the in-process simulated PBX), the same outcomes for the same seed."""

from __future__ import annotations

import asyncio

import pytest
from twisted.internet import task
from twisted.internet.defer import Deferred

from asterisk.errors import ActionFailed
from asterisk.events import (
    ChannelHungUp,
    OriginateResponse,
    OriginateResult,
    Outcome,
    PbxEvent,
    UserEventReceived,
)
from asterisk.port import PbxLink as Telephony
from asterisk.telephony import AmiTelephony
from core.telephony import (
    CallBridged,
    CallEnded,
    CallWaiting,
    CommandRefused,
    DialResult,
    InvalidCommand,
    PbxUnavailable,
    Prompt,
)
from core.telephony import Telephony as DomainTelephony
from sim.inprocess import SimTelephony
from sim.pbx import SimPbx
from tests.conftest import LOOP, run

NUMBERS = [f"+49301234{n:03d}" for n in range(40)]


def tick(clock: task.Clock, seconds: float, step: float = 0.1) -> None:
    for _ in range(round(seconds / step)):
        clock.advance(step)


def quick_workload():
    """The standard outcome mix with short rings, so the real-time run is quick."""
    from dataclasses import replace

    from sim.workload import Distribution, Timeouts, standard_workload

    return replace(
        standard_workload(),
        ring=Distribution("lognormal", mean=1.0, sd=0.5),
        timeouts=Timeouts(no_answer=15.0, busy_detect=0.5, invalid_detect=0.3),
    )


def dial(phone: Telephony, number: str) -> Deferred[OriginateResult]:
    """One customer call into the outbound context, as the dialer places it."""
    return phone.originate(
        f"PJSIP/{number}@customers",
        context="dirigent-outbound",
        exten="s",
        timeout_ms=2_500,
        channel_id=f"a-{number}",
    )


def inprocess_outcomes(seed: int) -> tuple[list[Outcome], list[str]]:
    clock = task.Clock()
    phone = SimTelephony(SimPbx(clock, seed=seed, agents=2, workload=quick_workload()))
    events: list[PbxEvent] = []
    phone.subscribe(events.append)
    outcomes = []
    for number in NUMBERS:
        d = dial(phone, number)
        results: list[OriginateResult] = []
        d.addCallback(results.append)
        while not results:
            clock.advance(0.25)
        outcomes.append(results[0].outcome)
    for _ in range(400):
        clock.advance(1)
    return outcomes, [f"{type(e).__name__}:{getattr(e, 'uniqueid', '')}" for e in events]


def test_both_implementations_satisfy_the_port(sim, session_factory):
    _pbx, server = sim
    assert isinstance(SimTelephony(SimPbx(task.Clock())), Telephony)
    assert isinstance(AmiTelephony(session_factory(server.address)), Telephony)


def test_in_process_runs_are_deterministic_for_a_seed_and_differ_between_seeds():
    first, events1 = inprocess_outcomes(seed=5)
    second, events2 = inprocess_outcomes(seed=5)
    other, _ = inprocess_outcomes(seed=6)
    assert first == second and events1 == events2
    assert first != other
    assert {Outcome.ANSWERED, Outcome.NO_ANSWER} <= set(first)


def test_in_process_events_are_what_the_ami_normaliser_makes_of_the_same_headers():
    """The in-process path reads the model's headers as a dict; every event
    it emits must equal the one the wire path builds from an AmiMessage."""
    from asterisk.events import KNOWN_EVENTS, normalize
    from asterisk.framing import AmiMessage
    from asterisk.mirror import ChannelMirror

    clock = task.Clock()
    pbx = SimPbx(clock, seed=3, agents=2, workload=quick_workload())
    over_wire: list[PbxEvent | None] = []
    wire_mirror = ChannelMirror("sim")  # the session annotates hang-ups from its mirror

    def on_wire(headers: list[tuple[str, str]]) -> None:
        event = normalize("sim", AmiMessage(tuple(headers)))
        if event is not None:
            event = wire_mirror.annotate(event)
            wire_mirror.apply(event)
        over_wire.append(event)

    pbx.subscribe(on_wire, KNOWN_EVENTS)
    phone = SimTelephony(pbx)
    in_process: list[PbxEvent] = []
    phone.subscribe(in_process.append)
    for number in NUMBERS[:20]:
        dial(phone, number)
        clock.advance(0.5)
    for _ in range(100):
        clock.advance(1)
    # the tracker's results are not PBX events; in process an OriginateResponse
    # goes to the Originate's sender only (over AMI Asterisk sends it to every session)
    derived = (OriginateResult, OriginateResponse)
    got = [e for e in in_process if not isinstance(e, derived)]
    assert got == [e for e in over_wire if e is not None]
    assert len({type(e) for e in got}) >= 8 and any(isinstance(e, ChannelHungUp) for e in got)


def test_ami_path_gives_the_same_outcomes_as_the_in_process_path(session_factory):
    from twisted.internet import reactor

    from sim.ami_server import SimAmiServer

    expected, _ = inprocess_outcomes(seed=5)
    pbx = SimPbx(reactor, seed=5, agents=2, workload=quick_workload())
    server = SimAmiServer(pbx, reactor)
    server.listen(0)
    session = session_factory(server.address)
    session.start()
    run(session.wait_connected(5))
    phone = AmiTelephony(session)

    async def dial_all() -> list[Outcome]:
        tasks = [dial(phone, n).asFuture(LOOP) for n in NUMBERS]
        return [r.outcome for r in await asyncio.gather(*tasks)]

    # real time: dial them all at once; each number's fate is its own
    try:
        got = run(dial_all(), timeout=60)
    finally:
        for chan in list(pbx.channels.values()):
            pbx.hangup_channel(chan)
        server.stop()
    assert got == expected


def test_port_errors_are_the_same_on_both_paths(sim, session_factory):
    _pbx, server = sim
    session = session_factory(server.address)
    session.start()
    run(session.wait_connected(5))
    over_ami = AmiTelephony(session)
    in_process = SimTelephony(SimPbx(task.Clock()))
    for phone in (over_ami, in_process):
        failure = phone.redirect("PJSIP/nobody-00000000", "dirigent-join", "1001")
        with pytest.raises(ActionFailed, match="No such channel"):
            run(failure.asFuture(LOOP))
        with pytest.raises(Exception, match="control character"):
            run(phone.hangup("PJSIP/1001\r\nAction: Originate").asFuture(LOOP))


def test_nailed_up_agent_gets_a_customer_without_ringing_in_virtual_time():
    clock = task.Clock()
    pbx = SimPbx(clock, seed=1, agents=2)
    phone = SimTelephony(pbx)
    events: list[PbxEvent] = []
    phone.subscribe(events.append)
    agent: list[OriginateResult] = []
    phone.originate(
        "PJSIP/1001", context="dirigent-agent", exten="1001", channel_id="agent"
    ).addCallback(agent.append)
    tick(clock, 1)
    customer: list[OriginateResult] = []
    phone.originate(
        "PJSIP/+4930999@customers",
        context="dirigent-outbound",
        exten="s",
        channel_id="cust",
        variables={"SIM_OUTCOME": "live", "SIM_RING": "2", "SIM_TALK": "30"},
    ).addCallback(customer.append)
    tick(clock, 2.5)
    assert customer[0].outcome is Outcome.ANSWERED
    tick(clock, 1.6)  # AMD verdict after 1.5 s
    amd = [e for e in events if isinstance(e, UserEventReceived) and e.name == "DirigentAMD"]
    assert amd and amd[0].fields["Status"] == "HUMAN"
    phone.redirect(phone.mirror.get("cust").name, "dirigent-join", "1001")
    tick(clock, 0.1)
    assert phone.mirror.get("cust").bridge_id == phone.mirror.get("agent").bridge_id is not None
    tick(clock, 31)
    assert phone.mirror.get("cust") is None, "the customer hung up after talking"
    assert phone.mirror.get("agent") is not None, "the nailed-up agent stays on the line"
    assert any(
        isinstance(e, ChannelHungUp) and e.uniqueid == "cust" and e.cause == 16 for e in events
    )


def test_a_listener_naming_its_events_gets_only_those_and_the_others_still_get_all():
    """The in-process path asks only for the events it normalises; an AMI
    client on the same simulated PBX must still see everything Asterisk sends."""
    clock = task.Clock()
    pbx = SimPbx(clock, seed=5, agents=2, workload=quick_workload())
    picky: list[str] = []
    pbx.subscribe(lambda h: picky.append(h[0][1]), frozenset({"Newchannel", "Hangup"}))

    def dial_all() -> None:
        phone = SimTelephony(pbx)
        for number in NUMBERS[:3]:
            phone.originate(f"PJSIP/{number}@customers", context="dirigent-outbound", exten="s")
        for _ in range(100):
            clock.advance(1)

    dial_all()
    assert set(picky) == {"Newchannel", "Hangup"}
    assert "Newexten" not in pbx._wanted  # nobody asked for it: never built
    everything: list[str] = []
    pbx.subscribe(lambda h: everything.append(h[0][1]))
    picky.clear()
    dial_all()
    assert {"Newexten", "VarSet", "DialBegin", "Newchannel", "Hangup"} <= set(everything)
    assert set(picky) == {"Newchannel", "Hangup"}


def test_the_domain_port_turns_pbx_failures_into_domain_errors_on_both_paths(sim, session_factory):
    """The ACD and the dialer catch the errors of core.telephony, never AMI's."""
    _pbx, server = sim
    session = session_factory(server.address)
    session.start()
    run(session.wait_connected(5))
    over_ami = AmiTelephony(session)
    in_process = SimTelephony(SimPbx(task.Clock()))
    for phone in (over_ami, in_process):
        assert isinstance(phone, DomainTelephony)
        with pytest.raises(CommandRefused, match="No such channel"):
            run(phone.connect_to_agent("nobody-00000000", "1001").asFuture(LOOP))
        with pytest.raises(InvalidCommand, match="control character") as err:
            run(phone.hang_up("PJSIP/1001\r\nAction: Originate").asFuture(LOOP))
        assert err.value.field
    offline = AmiTelephony(session_factory(server.address))  # never started
    with pytest.raises(PbxUnavailable):
        run(offline.play_prompt("some-call", Prompt.ABANDON).asFuture(LOOP))


def test_the_domain_port_reports_an_inbound_call_in_domain_words_in_virtual_time():
    clock = task.Clock()
    pbx = SimPbx(clock, seed=1, agents=2, inbound_talk=5)
    phone = SimTelephony(pbx)
    events: list[object] = []
    phone.listen(events.append)
    line: list[DialResult] = []
    phone.keep_line("agent0", "1001", call="agent-agent0-1").addCallback(line.append)
    tick(clock, 1)
    assert line[0].outcome is Outcome.ANSWERED and line[0].call == "agent-agent0-1"
    assert CallBridged("sim", "agent-agent0-1") in events
    caller = pbx.inbound_call(queue="sales", caller="+4930333")
    tick(clock, 0.5)
    assert [e for e in events if isinstance(e, CallWaiting)] == [
        CallWaiting("sim", caller.uniqueid, "sales", "+4930333")
    ]
    phone.connect_to_agent(caller.uniqueid, "agent0")
    tick(clock, 0.5)
    assert phone.bridged_with(caller.uniqueid) == {"agent-agent0-1"}
    assert phone.live_call(caller.uniqueid).bridge is not None
    tick(clock, 10)
    assert CallEnded("sim", caller.uniqueid) in events, "the caller hung up after talking"
    assert phone.live_call("agent-agent0-1") is not None, "the agent's line is kept"
    assert not any(type(e).__module__ != "core.telephony" for e in events)
