"""The AMI adapter against recorded Asterisk 22 streams, replayed over TCP.

Every scenario of ``fixtures/asterisk`` goes through the real session
(panoramisk protocol + our framer, normaliser, originate tracker, mirror);
the assertions are on the domain events and results a consumer sees.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from asterisk import actions as ami
from asterisk.events import (
    BridgeEntered,
    ChannelAnswered,
    ChannelCreated,
    ChannelHungUp,
    DialBegun,
    MusicOnHold,
    OriginateResult,
    Outcome,
    PbxConnected,
    PbxDisconnected,
    PbxEvent,
    PbxShutdown,
    ResyncCompleted,
    UserEventReceived,
)
from asterisk.metrics import AmiMetrics
from asterisk.session import ActionFailed, AmiSession
from tests.conftest import run, wait_for
from tests.replay import ReplayServer
from tests.transcript import load_transcript


class Harness:
    def __init__(
        self, name: str, make: Callable[..., AmiSession], refuse_between: int = 0, **kw: Any
    ):
        self.transcript = load_transcript(name)
        self.server = ReplayServer(self.transcript, refuse_between=refuse_between)
        address = run(self.server.start())
        self.registry = CollectorRegistry()
        kw.setdefault("metrics", None)
        self.session = make(address, **{k: v for k, v in kw.items() if k != "metrics"})
        self.session.metrics = AmiMetrics(self.registry)
        self.events: list[PbxEvent] = []
        self.session.subscribe(self.events.append)
        self.session.start()
        run(self.session.wait_connected(5))

    def recorded(self, action: str, **match: str) -> ami.Action:
        """The n-th recorded client action of that name, rebuilt through our validator."""
        for conn in self.transcript.connections:
            for msg in conn.sent:
                fields = dict(msg)
                if fields.get("Action") == action and all(
                    fields.get(k) == v for k, v in match.items()
                ):
                    return ami.action(
                        action, [(k, v) for k, v in msg if k not in ("Action", "ActionID")]
                    )
        raise LookupError(f"{action} {match} not recorded")

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    def close(self) -> None:
        run(self.session.stop())
        run(self.server.stop())


@pytest.fixture
def harness(session_factory):
    made: list[Harness] = []

    def make(name: str, **kw: Any) -> Harness:
        h = Harness(name, session_factory, **kw)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


def originate(h: Harness, channel_id: str) -> OriginateResult:
    return run(h.session.originate(h.recorded("Originate", ChannelId=channel_id)))


def test_login_with_a_refused_secret_is_reported_and_retried_without_logging_the_secret(
    harness, caplog
):
    caplog.set_level(logging.DEBUG)
    h = harness("connect.ami", secret="s3cr3t-not-for-logs")
    assert h.session.connected and h.server.connections == 2
    assert h.metric("dirigent_ami_connect_failures_total", pbx="pbx1", reason="auth") == 1
    assert len(h.of(PbxConnected)) == 1
    assert "s3cr3t-not-for-logs" not in caplog.text
    # an unknown action is an error naming Asterisk's reason; a second Login is harmless
    with pytest.raises(ActionFailed, match="Invalid/unknown command"):
        run(h.session.send(h.recorded("NoSuchAction")))
    reply = run(h.session.send(ami.action("CoreSettings")))
    assert reply.get("AsteriskVersion") == "22.10.1"


def test_answered_originate_gives_answered_and_the_whole_call_as_events(harness):
    h = harness("originate_answered.ami")
    result = originate(h, "dirigent-call-0001")
    assert result.outcome is Outcome.ANSWERED and result.reason == 4
    run(wait_for(lambda: not h.session.mirror.channels, what="all channels hung up"))
    created = {e.uniqueid for e in h.of(ChannelCreated)}
    assert "dirigent-call-0001" in created and "dirigent-call-0001-2" in created
    assert any(e.uniqueid == "dirigent-call-0001" for e in h.of(ChannelAnswered))
    hung = {e.uniqueid: e.cause for e in h.of(ChannelHungUp)}
    assert hung.keys() == created
    assert h.of(BridgeEntered), "the agent leg was bridged to the customer"
    assert (
        h.metric("dirigent_ami_actions_total", pbx="pbx1", action="Originate", result="success")
        == 1
    )


def test_originate_without_varset_events_after_a_server_side_filter(harness):
    h = harness("originate_answered_novarset.ami", exclude_events=("VarSet",))
    sent = [a.get("Action") for a in h.server.actions]
    assert "Filter" in sent
    assert originate(h, "dirigent-call-0001").outcome is Outcome.ANSWERED


def test_every_recorded_originate_failure_in_order(harness):
    h = harness("originate_failures.ami", exclude_events=("VarSet",))
    outcomes: list = []
    causes: list[int | None] = []
    for conn in h.transcript.connections:
        for msg in conn.sent:
            if dict(msg).get("Action") != "Originate":
                continue
            action = ami.action(
                "Originate", [(k, v) for k, v in msg if k not in ("Action", "ActionID")]
            )
            try:
                result = run(h.session.originate(action))
                outcomes.append(result.outcome)
                causes.append(result.cause)
            except ActionFailed as exc:
                outcomes.append(exc.message)
    assert outcomes == [
        Outcome.BUSY,
        Outcome.CONGESTION,
        Outcome.NO_ANSWER,
        Outcome.FAILED,  # unknown PJSIP endpoint: no channel at all
        Outcome.FAILED,  # endpoint without contact
        Outcome.FAILED,  # unknown extension
        Outcome.FAILED,  # unknown technology
        "Originate failed",  # the synchronous one: refused in the response itself
        Outcome.ANSWERED,
    ]
    assert causes[2] == 19, "the no-answer (ring timeout, Reason 3) keeps its cause"


def test_sip_trunk_outcomes_come_from_the_hangup_cause_not_the_reason(harness):
    h = harness("sip_calls.ami")
    answered = originate(h, "out-5080")
    assert answered.outcome is Outcome.ANSWERED
    run(h.session.send(h.recorded("Hangup", Channel="PJSIP/customers-00000016")))
    results = {cid: originate(h, cid) for cid in ("out-5081", "out-5082", "out-5083", "out-5084")}
    assert {cid: r.outcome for cid, r in results.items()} == {
        "out-5081": Outcome.BUSY,  # SIP 486, Reason 0, cause 17
        "out-5082": Outcome.CONGESTION,  # SIP 503, Reason 0, cause 34
        "out-5083": Outcome.INVALID,  # SIP 404, Reason 0, cause 1
        "out-5084": Outcome.NO_ANSWER,  # ring timeout, Reason 3
    }
    assert [results[c].reason for c in ("out-5081", "out-5082", "out-5083")] == [0, 0, 0]
    # the ring timeout's cause 19 comes in the Hangup after the OriginateResponse
    assert (results["out-5084"].reason, results["out-5084"].cause) == (3, 19)
    # the inbound calls before: the 486 from phone 1001 reached us as cause 17
    dials = [e for e in h.of(DialBegun) if e.dest_channel.startswith("PJSIP/1001")]
    assert len(dials) == 2
    assert 17 in [e.cause for e in h.of(ChannelHungUp) if e.channel.startswith("PJSIP/1001")]


def test_inbound_wait_then_redirect_and_bridge(harness):
    h = harness("inbound_wait_then_connect.ami")
    assert originate(h, "cust-A").outcome is Outcome.ANSWERED
    inbound = [e for e in h.of(UserEventReceived) if e.name == "DirigentInbound"]
    assert inbound and inbound[0].fields["Customer"] == "4711"
    assert any(e.playing for e in h.of(MusicOnHold))
    reply = run(h.session.send(h.recorded("Redirect")))
    assert reply.get("Message") == "Redirect successful"
    assert originate(h, "cust-B").outcome is Outcome.ANSWERED
    assert originate(h, "agent-B").outcome is Outcome.ANSWERED
    reply = run(h.session.send(h.recorded("Bridge")))
    assert reply.get("Message") == "Channels have been bridged"
    bridged = {e.channel for e in h.of(BridgeEntered)}
    assert {"Local/customer@sim-00000012;1", "Local/agent@sim-00000013;1"} <= bridged


def test_queue_call_is_seen_as_channels_and_a_bridge(harness):
    h = harness("queue_call.ami")
    run(h.session.send(h.recorded("QueueAdd")))
    assert originate(h, "queue-call-1").outcome is Outcome.ANSWERED
    run(wait_for(lambda: h.of(BridgeEntered), what="the caller bridged to the member"))
    by_bridge: dict[str, set[str]] = {}
    for e in h.of(BridgeEntered):
        by_bridge.setdefault(e.bridge_id, set()).add(e.uniqueid)
    assert any(len(members) == 2 for members in by_bridge.values())


def test_amd_results_arrive_as_user_events(harness):
    h = harness("amd.ami")
    for cid in ("amd-human", "amd-machine", "amd-silence"):
        assert originate(h, cid).outcome is Outcome.ANSWERED
    run(wait_for(lambda: len([e for e in h.of(UserEventReceived) if e.name == "DirigentAMD"]) == 3))
    amd = {e.uniqueid: e.fields for e in h.of(UserEventReceived) if e.name == "DirigentAMD"}
    assert amd["amd-human"]["Status"] == "HUMAN"
    assert (
        amd["amd-machine"]["Status"] == "MACHINE" and "LONGGREETING" in amd["amd-machine"]["Cause"]
    )
    assert (
        amd["amd-silence"]["Status"] == "MACHINE"
        and "INITIALSILENCE" in amd["amd-silence"]["Cause"]
    )


def test_message_send_success_and_errors(harness):
    h = harness("messaging.ami")
    assert run(h.session.send(h.recorded("MessageSend", To="pjsip:1001"))).response == "Success"
    with pytest.raises(ActionFailed, match="Message failed to send"):
        run(h.session.send(ami.message_send("pjsip:1004", "hello", sender="dirigent")))
    with pytest.raises(ActionFailed, match="technology not found"):
        run(h.session.send(ami.message_send("xmpp:nobody@example.invalid", "hello")))
    with pytest.raises(ami.ActionError, match="To"):
        ami.message_send("", "no recipient")


def test_list_actions_resync_the_mirror_and_answer_queries(harness):
    h = harness("list_actions.ami")
    # our resync after login consumed the recorded CoreShowChannels: six channels, one bridge
    run(wait_for(lambda: h.of(ResyncCompleted), what="resync"))
    assert h.of(ResyncCompleted)[-1].channels == 6
    assert len(h.session.mirror.channels) == 6
    assert any(len(m) == 2 for m in h.session.mirror.bridges.values())
    items = run(h.session.send_list(ami.status()))
    assert len(items) == 6 and all(i.event == "Status" for i in items)
    reply = run(h.session.send(ami.getvar("Local/agent@sim-00000019;1", "CALLERID(num)")))
    assert reply.get("Value") == "agent-sim"


def test_shutdown_then_restart_reconnects_and_resyncs(harness):
    h = harness("shutdown.ami", refuse_between=3)
    assert originate(h, "shutdown-call").outcome is Outcome.ANSWERED
    run(wait_for(lambda: h.of(PbxShutdown), what="Shutdown event"))
    run(wait_for(lambda: h.session.connects == 2, timeout=10, what="reconnect after restart"))
    assert h.of(PbxDisconnected)
    assert h.metric("dirigent_ami_reconnects_total", pbx="pbx1") >= 1
    run(wait_for(lambda: len(h.of(ResyncCompleted)) >= 2, what="resync after reconnect"))
    assert not h.session.mirror.channels
