"""The AMI session under faults, over real TCP: unreachable PBX, wrong
credentials, links that drop or go silent, resync after reconnect."""

from __future__ import annotations

import asyncio
import logging
import random

import pytest
from prometheus_client import CollectorRegistry

from asterisk import actions as ami
from asterisk.events import (
    ChannelCreated,
    ChannelHungUp,
    OriginateResult,
    Outcome,
    PbxDisconnected,
    PbxEvent,
)
from asterisk.framing import NEED_DATA, AmiFramer, AmiMessage, encode_message
from asterisk.metrics import AmiMetrics
from asterisk.session import ActionOutcomeUnknown, NotConnected, backoff_delay
from tests.conftest import run, settle, wait_for
from tests.pg import free_port
from tests.replay import empty_list


def test_backoff_grows_is_capped_and_jittered():
    rng = random.Random(1)
    delays = [backoff_delay(n, 0.5, 30.0, rng) for n in range(12)]
    assert all(0.25 <= d <= 30.0 for d in delays)
    assert max(delays[8:]) > 5 * max(delays[:2])
    same_attempt = {round(backoff_delay(6, 0.5, 30.0, rng), 3) for _ in range(20)}
    assert len(same_attempt) > 10, "jitter spreads reconnects"


def test_unreachable_pbx_is_retried_and_connects_once_it_appears(session_factory, sim):
    from twisted.internet import reactor

    pbx, _server = sim
    port = free_port()
    session = session_factory(("127.0.0.1", port))
    session.metrics = AmiMetrics(CollectorRegistry())
    session.start()
    settle(0.5)
    assert not session.connected
    with pytest.raises(NotConnected):
        run(session.send(ami.ping()))
    failures = session.metrics.connect_failures.labels("pbx1", "unreachable")._value.get()
    assert failures >= 2
    from sim.ami_server import SimAmiServer

    late = SimAmiServer(pbx, reactor)
    late.listen(port)
    try:
        run(session.wait_connected(5))
        assert session.connected
    finally:
        run(session.stop())
        late.stop()


def test_wrong_secret_is_retried_never_crashes_and_never_connects(session_factory, sim):
    _pbx, server = sim
    session = session_factory(server.address, secret="wrong")
    session.metrics = AmiMetrics(CollectorRegistry())
    session.start()
    run(wait_for(lambda: server.action_counts.get("login", 0) >= 2, what="a second login attempt"))
    assert not session.connected
    assert session.metrics.connect_failures.labels("pbx1", "auth")._value.get() >= 1
    # what /healthz shows beside "connected": false (QA round 3: it said nothing)
    assert session.refused == "login as 'dirigent' refused: Authentication failed"
    assert "wrong" not in session.refused


def test_in_flight_originate_fails_as_unknown_and_is_never_replayed(session_factory, sim):
    _pbx, server = sim
    session = session_factory(server.address)
    events: list[PbxEvent] = []
    session.subscribe(events.append)
    session.start()
    run(session.wait_connected(5))
    action = ami.originate(
        "PJSIP/+4930111222@customers",
        context="dirigent-outbound",
        exten="s",
        timeout_ms=25_000,
        channel_id="attempt-1",
        variables={"SIM_OUTCOME": "no_answer", "DIRIGENT_ATTEMPT": "1"},
    )

    async def scenario() -> None:
        pending = asyncio.ensure_future(session.originate(action))
        await wait_for(lambda: "attempt-1" in session.mirror.channels, what="the dial started")
        server.drop_connections()
        with pytest.raises(ActionOutcomeUnknown, match="not re-sent"):
            await pending
        await session.wait_connected(5)
        await asyncio.sleep(0.3)

    run(scenario())
    assert server.action_counts["originate"] == 1
    assert session.connects == 2
    assert any(isinstance(e, PbxDisconnected) for e in events)
    # the dial is still ringing at the PBX: resync found it, nobody dials again
    assert "attempt-1" in session.mirror.channels
    assert session.mirror.channels["attempt-1"].variables == {"DIRIGENT_ATTEMPT": "1"}


def user_event_echo(msg: AmiMessage) -> bytes:
    """Asterisk's answer to a UserEvent action: Success, and the event itself
    to every session that may read class ``user`` (the login's probe)."""
    aid = msg.action_id or ""
    body = [(k, v) for k, v in msg.headers if k not in ("Action", "ActionID")]
    return encode_message([("Response", "Success"), ("ActionID", aid)]) + encode_message(
        [("Event", "UserEvent"), ("Privilege", "user,all"), *body]
    )


class SilentAsterisk:
    """Accepts a login (and its probe), then never answers another action
    (a half-open link)."""

    def __init__(self) -> None:
        self.connections = 0
        self.actions: list[str] = []

    async def start(self) -> tuple[str, int]:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[:2]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        framer = AmiFramer(expect_banner=False)
        try:
            while data := await reader.read(4096):
                framer.receive_data(data)
                while (msg := framer.next_message()) is not NEED_DATA:
                    assert isinstance(msg, AmiMessage)
                    self.actions.append(msg.get("Action") or "")
                    if msg.get("Action") == "Login":
                        writer.write(
                            encode_message(
                                [("Response", "Success"), ("ActionID", msg.action_id or "")]
                            )
                        )
                    elif msg.get("Action") == "UserEvent" and self.actions.count("UserEvent") == 1:
                        writer.write(user_event_echo(msg))
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        self.server.close()


def test_silent_link_is_detected_by_keepalive_and_actions_in_flight_fail_unknown(session_factory):
    silent = SilentAsterisk()
    address = run(silent.start())
    session = session_factory(
        address, keepalive_interval=0.2, keepalive_timeout=0.2, action_timeout=0.5
    )
    session.start()
    try:
        run(session.wait_connected(5))
        with pytest.raises(ActionOutcomeUnknown):
            run(session.send(ami.hangup("PJSIP/customers-00000001")))
        run(wait_for(lambda: silent.connections >= 2, timeout=5, what="reconnect after silence"))
        assert silent.actions.count("Hangup") == 1, "never replayed"
    finally:
        run(session.stop())
        run(silent.stop())


def test_resync_after_reconnect_reports_calls_that_ended_or_started_meanwhile(session_factory, sim):
    pbx, server = sim
    session = session_factory(server.address)
    events: list[PbxEvent] = []
    session.subscribe(events.append)
    session.start()
    run(session.wait_connected(5))
    result: OriginateResult = run(
        session.originate(
            ami.originate(
                "PJSIP/1001", context="dirigent-agent", exten="1001", channel_id="agent-1001"
            )
        )
    )
    assert result.outcome is Outcome.ANSWERED
    caller = pbx.inbound_call(queue="sales", caller="+4930555")
    run(wait_for(lambda: caller.uniqueid in session.mirror.channels, what="inbound call seen"))

    # the link goes down; meanwhile the agent leg ends and a new customer calls
    pbx.unsubscribe(server.broadcast)
    server.drop_connections()
    pbx.hangup_channel(pbx.channels["agent-1001"], 16)
    newcomer = pbx.inbound_call(queue="sales", caller="+4930777")
    pbx.subscribe(server.broadcast)
    before = len(events)
    run(wait_for(lambda: session.connects == 2, what="reconnect"))
    run(wait_for(lambda: newcomer.uniqueid in session.mirror.channels, what="resync"))

    after = events[before:]
    gone = [e for e in after if isinstance(e, ChannelHungUp) and e.resynced]
    new = [e for e in after if isinstance(e, ChannelCreated) and e.resynced]
    assert [e.uniqueid for e in gone] == ["agent-1001"] and gone[0].cause is None
    assert [e.uniqueid for e in new] == [newcomer.uniqueid]
    assert caller.uniqueid in session.mirror.channels, "the waiting caller survived the outage"
    assert not session.mirror.bridges, "the agent's bridge went with the agent"


def test_the_channel_count_follows_calls_between_resyncs(session_factory, sim):
    """A supervisor's dirigent_pbx_channels stayed at the count of the last
    resync (0 after the login) while calls came and went (QA4 minor)."""
    pbx, server = sim
    session = session_factory(server.address)
    registry = CollectorRegistry()
    session.metrics = AmiMetrics(registry)
    session.start()
    run(session.wait_connected(5))

    def channels() -> float | None:
        return registry.get_sample_value("dirigent_pbx_channels", {"pbx": "pbx1"})

    run(wait_for(lambda: channels() == 0, what="the first resync's count"))
    callers = [pbx.inbound_call(queue="sales", caller=f"+493055500{i}") for i in range(3)]
    run(wait_for(lambda: channels() == 3, what="three callers counted"))
    pbx.hangup_channel(callers[0], 16)
    run(wait_for(lambda: channels() == 2, what="one caller gone"))
    resyncs = registry.get_sample_value(
        "dirigent_ami_resync_duration_seconds_count", {"pbx": "pbx1"}
    )
    assert resyncs == 1, "no resync in between"


class GarbageAsterisk:
    """Logs the client in, then sends broken messages between good events."""

    async def start(self) -> tuple[str, int]:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[:2]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        framer = AmiFramer(expect_banner=False)
        try:
            while data := await reader.read(4096):
                for msg in framer.feed(data):
                    if not isinstance(msg, AmiMessage):
                        continue
                    aid = msg.action_id or ""
                    if msg.get("Action") == "Login":
                        writer.write(encode_message([("Response", "Success"), ("ActionID", aid)]))
                        writer.write(
                            b"Event: Newchannel\r\nthis line has no colon\r\nUniqueid: bad-1\r\n\r\n"
                        )
                        writer.write(b"Event: Newchannel\r\nData: " + b"x" * 70_000 + b"\r\n\r\n")
                        writer.write(
                            b"Event: Newchannel\r\nChannel: PJSIP/1001-1\r\nChannelState: 4\r\n"
                            b"Uniqueid: good-1\r\nLinkedid: good-1\r\nCallerIDNum: \xff\xfe\r\n\r\n"
                        )
                    elif msg.get("Action") == "CoreShowChannels":
                        for message in empty_list(aid, "CoreShowChannelsComplete"):
                            writer.write(encode_message(message))
                    elif msg.get("Action") == "UserEvent":
                        writer.write(user_event_echo(msg))
                    else:
                        writer.write(
                            encode_message(
                                [("Response", "Success"), ("ActionID", aid), ("Ping", "Pong")]
                            )
                        )
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


def test_malformed_messages_are_logged_counted_and_skipped_and_the_session_goes_on(
    session_factory, caplog
):
    garbage = GarbageAsterisk()
    address = run(garbage.start())
    session = session_factory(address)
    registry = CollectorRegistry()
    session.metrics = AmiMetrics(registry)
    created: list[PbxEvent] = []
    session.subscribe(lambda e: created.append(e) if isinstance(e, ChannelCreated) else None)
    session.start()
    run(session.wait_connected(5))
    run(wait_for(lambda: created, what="the good event after the bad ones"))
    assert [e.uniqueid for e in created] == ["good-1"]
    assert created[0].caller_num == "\ufffd\ufffd"
    assert registry.get_sample_value("dirigent_ami_bad_messages_total", {"pbx": "pbx1"}) == 2
    assert "skipped a malformed AMI message" in caplog.text
    assert run(session.send(ami.ping())).get("Ping") == "Pong", "the session still works"
    garbage.server.close()


def test_an_ami_user_that_cannot_read_user_events_is_refused_saying_which_class(
    session_factory, sim
):
    """QA round 3, finding 4: an operator trims the AMI user's ``read =`` to
    ``system,call,agent,dialplan``; Dirigent logged in, resynced and showed
    healthy while every inbound caller went to the fallback and every
    person a campaign reached got silence (the dialplan's UserEvents never
    arrived).  The login's probe UserEvent does not come back: the PBX is
    refused naming the class, counted, and taken once the class is given."""
    _pbx, server = sim
    server.read_classes = frozenset({"system", "call", "agent", "dialplan"})
    registry = CollectorRegistry()
    session = session_factory(server.address, probe_timeout=0.3)
    session.metrics = AmiMetrics(registry)
    session.start()
    failures = {"pbx": "pbx1", "reason": "permission"}
    run(
        wait_for(
            lambda: registry.get_sample_value("dirigent_ami_connect_failures_total", failures),
            what="the login refused for the missing class",
        )
    )
    assert not session.connected
    assert session.refused is not None and "read class 'user'" in session.refused
    server.read_classes = None  # the operator adds it and reloads the manager
    run(session.wait_connected(5))
    assert session.refused is None


def test_a_clean_stop_logs_off_without_a_warning_of_a_lost_link(session_factory, sim, caplog):
    """QA3 (minor): a SIGTERM'd server logged "link lost (closed by peer)",
    a warning an operator's alerting reads as the PBX going away."""
    _pbx, server = sim
    session = session_factory(server.address)
    session.start()
    run(session.wait_connected(5))
    with caplog.at_level(logging.INFO, logger="dirigent.asterisk"):
        run(session.stop())
    assert caplog.text.count("logged off") == 1, caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
