"""How calls end, as the real Asterisk 22 reports it (issue 14, findings 7, 12).

``SoftHangupRequest``'s ``Cause`` is an AST_SOFTHANGUP_* flag set (4 is a
shutdown), not a Q.850 cause: calls cut by a restart were stored as
no-answer/failed with cause 4, and a flag of 1 would have read "unallocated
number" (invalid, record closed).  A ring timeout's cause 19 comes in the
Hangup *after* the OriginateResponse and was lost.  And a Redirect to an
extension that does not exist answers "Redirect successful", then the
channel is hung up.
"""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st

from asterisk import actions as ami
from asterisk.events import (
    ChannelHungUp,
    HangupCauseSeen,
    OriginateResult,
    Outcome,
    PbxEvent,
    SoftHangup,
    SoftHangupRequested,
    normalize,
)
from asterisk.framing import AmiMessage
from asterisk.originate import OriginateTracker
from sim.pbx import SimPbx
from tests.conftest import run, wait_for


def _event(name: str, uid: str, *extra: tuple[str, str]) -> AmiMessage:
    return AmiMessage((("Event", name), ("Privilege", "call,all"), ("Uniqueid", uid), *extra))


@given(st.integers(min_value=0, max_value=0xFFFF))
def test_soft_hangup_cause_is_read_as_flags_never_as_a_hangup_cause(flags):
    event = normalize("pbx1", _event("SoftHangupRequest", "u1", ("Cause", str(flags))))
    assert isinstance(event, SoftHangupRequested)
    assert int(event.flags) == flags
    assert not isinstance(event, HangupCauseSeen)


def _originate_cut(flag: int) -> OriginateResult:
    """A ringing originate whose channel gets ``SoftHangupRequest`` ``flag``,
    then the OriginateResponse (Reason 1) and a Hangup with cause 0."""
    tracker = OriginateTracker("pbx1")
    tracker.expect("a1", "call-1")
    stream = [
        _event("Newchannel", "call-1", ("Channel", "PJSIP/customers-1")),
        _event("SoftHangupRequest", "call-1", ("Cause", str(flag))),
        AmiMessage(
            (
                ("Event", "OriginateResponse"),
                ("ActionID", "a1"),
                ("Response", "Failure"),
                ("Channel", "PJSIP/+4930111@customers"),
                ("Reason", "1"),
                ("Uniqueid", "call-1"),
            )
        ),
        _event("Hangup", "call-1", ("Cause", "0"), ("Cause-txt", "Unknown")),
    ]
    results = []
    for message in stream:
        event = normalize("pbx1", message)
        assert event is not None
        if (result := tracker.on_event(event, 0.0)) is not None:
            results.append(result)
    assert len(results) == 1
    return results[0]


def test_a_call_cut_by_a_shutdown_has_an_unknown_outcome_and_no_cause():
    result = _originate_cut(int(SoftHangup.SHUTDOWN))
    assert result.outcome is Outcome.UNKNOWN and result.cause is None


def test_a_soft_hangup_flag_of_1_is_not_an_unallocated_number():
    result = _originate_cut(int(SoftHangup.DEV))
    assert result.outcome is not Outcome.INVALID and result.cause is None


def test_a_ringing_call_cut_by_core_restart_is_unknown_over_ami(sim, session_factory):
    _pbx, server = sim
    session = session_factory(server.address)
    events: list[PbxEvent] = []
    session.subscribe(events.append)
    session.start()
    run(session.wait_connected(5))
    ringing = asyncio.ensure_future(
        session.originate(
            ami.originate(
                "PJSIP/+4930111@customers",
                context="dirigent-outbound",
                exten="s",
                timeout_ms=30_000,
                variables={"SIM_OUTCOME": "live", "SIM_RING": "20"},
                channel_id="ringing-call",
            )
        )
    )
    run(wait_for(lambda: "ringing-call" in session.mirror.channels, what="the call ringing"))
    server.core_restart(down_for=0.2)
    result: OriginateResult = run(ringing)
    assert result.outcome is Outcome.UNKNOWN and result.cause is None
    hung = [e for e in events if isinstance(e, ChannelHungUp) and e.uniqueid == "ringing-call"]
    assert hung and hung[0].cut_by_shutdown and not hung[0].resynced


def test_ring_timeout_carries_cause_19_and_no_answer_over_ami(sim, session_factory):
    """As sip_calls.ami: OriginateResponse Reason 3, then the Hangup with 19."""
    _pbx, server = sim
    session = session_factory(server.address)
    session.start()
    run(session.wait_connected(5))
    result = run(
        session.originate(
            ami.originate(
                "PJSIP/+4930111@customers",
                context="dirigent-outbound",
                exten="s",
                timeout_ms=500,
                variables={"SIM_OUTCOME": "no_answer"},
                channel_id="rings-out",
            )
        )
    )
    assert (result.outcome, result.reason, result.cause) == (Outcome.NO_ANSWER, 3, 19)


def test_redirect_to_a_missing_extension_succeeds_then_the_channel_is_hung_up(sim, session_factory):
    pbx, server = sim
    session = session_factory(server.address)
    events: list[PbxEvent] = []
    session.subscribe(events.append)
    session.start()
    run(session.wait_connected(5))
    caller = pbx.inbound_call(queue="sales", caller="+4930555")
    other = pbx.inbound_call(queue="sales", caller="+4930556")
    run(wait_for(lambda: other.uniqueid in session.mirror.channels, what="the callers"))
    for chan, context, exten in (
        (caller, "dirigent-nosuch", "s"),  # no such context
        (other, "dirigent-connect", "#1"),  # no extension of the context matches
    ):
        reply = run(session.send(ami.redirect(chan.name, context, exten)))
        assert reply.get("Message") == "Redirect successful"
    run(wait_for(lambda: not session.mirror.channels, what="both hung up"))
    hung = {e.uniqueid: e.cause for e in events if isinstance(e, ChannelHungUp)}
    assert hung == {caller.uniqueid: 0, other.uniqueid: 0}
    assert pbx.stats.get("invalid_extension") == 2


def test_the_sim_knows_the_shipped_contexts_and_matches_extensions_like_asterisk():
    from twisted.internet import task

    from sim.pbx import extension_matches

    dialplan = SimPbx(task.Clock()).dialplan
    for context in (
        "dirigent-inbound",
        "dirigent-outbound",
        "dirigent-agent",
        "dirigent-join",
        "dirigent-connect",
        "dirigent-abandon",
    ):
        assert context in dialplan.contexts, f"{context} not read from the shipped dialplan"
    assert dialplan.exists("dirigent-outbound", "s")
    assert not dialplan.exists("dirigent-outbound", "t")
    # the rules of pbx.c's _extension_match_core
    assert extension_matches("_X.", "1001") and not extension_matches("_X.", "alice")
    assert not extension_matches("_X.", "7"), "'.' needs one character or more"
    assert extension_matches("_X!", "7")
    assert extension_matches("_[a-zA-Z0-9].", "alice") and not extension_matches("_[a-z].", "Bo")
    assert extension_matches("_1-800-NXX", "1800234") and extension_matches("s", "s")
    assert not extension_matches("_NXX", "123")
