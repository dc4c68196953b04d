"""The simulated PBX says what the recorded Asterisk 22 says.

Structural comparison, ignoring unique ids and times: the same event names in
the same order for the same scenario, and for every event name the sim emits
that the recordings contain, the same field names in the same order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from twisted.internet import task

from sim.pbx import SimPbx
from tests.conftest import run
from tests.transcript import all_transcripts, load_transcript

NOISE = {"DeviceStateChange", "VarSet", "Newexten", "NewCallerid", "NewConnectedLine"}


def recorded_field_layouts() -> dict[str, set[tuple[str, ...]]]:
    layouts: dict[str, set[tuple[str, ...]]] = {}
    for _, transcript in all_transcripts():
        for conn in transcript.connections:
            for msg in conn.received:
                if msg and msg[0][0] == "Event":
                    layouts.setdefault(msg[0][1], set()).add(tuple(k for k, _ in msg))
    return layouts


def recorded_case(channel_id: str) -> list[str]:
    """Event names of one recorded trunk originate (by its ChannelId)."""
    names = []
    for conn in load_transcript("sip_calls.ami").connections:
        for step in conn.steps:
            if step.sent and dict(step.sent).get("ChannelId") == channel_id:
                for msg in step.replies:
                    if msg[0][0] == "Event" and msg[0][1] not in NOISE:
                        names.append(msg[0][1])
    return names


def sim_case(outcome: str) -> list[str]:
    clock = task.Clock()
    pbx = SimPbx(clock, seed=3)
    seen: list[list[tuple[str, str]]] = []
    pbx.subscribe(seen.append)
    fields = {
        "Channel": "PJSIP/customers/sip:+49305555081@127.0.0.1:5081",
        "Context": "dirigent-connect",
        "Exten": "agent-sim",
        "Priority": "1",
        "Timeout": "6000",
        "CallerID": '"Dirigent" <4711>',
        "ChannelId": "case",
        "Variable": [f"SIM_OUTCOME={outcome}", "SIM_RING=1"],
    }
    pbx.originate(fields, "a1", seen.append)
    clock.advance(0)
    for _ in range(100):
        clock.advance(0.1)
    names = [m[0][1] for m in seen if m[0][1] not in NOISE]
    if outcome == "live":  # the recording continues with the agent dial; compare up to the answer
        names = names[: names.index("OriginateResponse") + 1]
    return names


@pytest.mark.parametrize(
    ("outcome", "channel_id"),
    [
        ("busy", "out-5081"),
        ("congestion", "out-5082"),
        ("invalid", "out-5083"),
        ("no_answer", "out-5084"),
    ],
)
def test_trunk_failures_emit_the_recorded_event_sequence(outcome, channel_id):
    recorded = recorded_case(channel_id)
    if outcome == "no_answer":
        recorded = [n for n in recorded if n != "DialEnd"]  # not recorded for a CANCEL
    assert sim_case(outcome) == recorded


def test_trunk_answer_emits_the_recorded_event_sequence_up_to_the_originate_response():
    recorded = recorded_case("out-5080")
    recorded = recorded[: recorded.index("OriginateResponse") + 1]
    assert sim_case("live") == recorded


def _busy_sim() -> Iterator[list[tuple[str, str]]]:
    """A varied run: inbound calls, agents, outbound calls of every outcome."""
    clock = task.Clock()
    pbx = SimPbx(clock, seed=11, agents=4, agent_answer_delay=0.2)
    seen: list[list[tuple[str, str]]] = []
    pbx.subscribe(seen.append)
    for ext in ("1001", "1002"):
        pbx.originate(
            {
                "Channel": f"PJSIP/{ext}",
                "Context": "dirigent-agent",
                "Exten": ext,
                "Timeout": "20000",
                "Variable": [],
            },
            f"ag{ext}",
            seen.append,
        )
    for i in range(40):
        pbx.originate(
            {
                "Channel": f"PJSIP/+4930{i:07d}@customers",
                "Context": "dirigent-outbound",
                "Exten": "s",
                "Timeout": "22000",
                "Variable": [f"DIRIGENT_ATTEMPT={i}"],
            },
            f"o{i}",
            seen.append,
        )
    callers = [pbx.inbound_call(queue="sales") for _ in range(3)]
    clock.advance(1)
    pbx.redirect(callers[0].name, "dirigent-connect", "1003", 1)
    pbx.redirect(callers[1].name, "dirigent-join", "1001", 1)
    for _ in range(1200):
        clock.advance(0.5)
    yield from seen


def test_every_event_the_sim_emits_has_a_recorded_field_layout():
    layouts = recorded_field_layouts()
    checked = set()
    for msg in _busy_sim():
        name = msg[0][1]
        if name not in layouts:
            continue
        fields = tuple(k for k, _ in msg)
        if name == "UserEvent":  # the body after the UserEvent name is the dialplan's own
            fields = fields[: fields.index("UserEvent") + 1]
            known = {f[: f.index("UserEvent") + 1] for f in layouts[name]}
        else:
            known = layouts[name]
        assert fields in known, f"{name}: {fields} not among the recorded layouts"
        checked.add(name)
    assert {
        "Newchannel",
        "Newstate",
        "Hangup",
        "DialBegin",
        "DialEnd",
        "OriginateResponse",
        "BridgeEnter",
        "BridgeLeave",
        "UserEvent",
        "MusicOnHoldStart",
    } <= checked


async def _raw_exchange(address: tuple[str, int], actions: list[list[tuple[str, str]]]) -> list:
    from asterisk.framing import AmiFramer, encode_message

    reader, writer = await asyncio.open_connection(*address)
    framer = AmiFramer()
    out: list = []
    for action in actions:
        writer.write(encode_message(action))
        await writer.drain()
        await asyncio.sleep(0.15)
        try:
            data = await asyncio.wait_for(reader.read(65536), 0.5)
        except TimeoutError:
            data = b""
        out.append(framer.feed(data))
        if not data:
            out.append("EOF")
            break
    writer.close()
    return out


def test_login_rules_on_the_wire_match_the_recording(sim):
    _pbx, server = sim
    replies = run(
        _raw_exchange(
            server.address,
            [
                [("Action", "Ping"), ("ActionID", "1")],
                [
                    ("Action", "Login"),
                    ("ActionID", "2"),
                    ("Username", "dirigent"),
                    ("Secret", "wrong"),
                ],
                [("Action", "Ping"), ("ActionID", "3")],
            ],
        )
    )
    banner, denied = replies[0][0], replies[0][1]
    assert banner.version == "11.0.0"
    assert denied.headers == (
        ("Response", "Error"),
        ("ActionID", "1"),
        ("Message", "Permission denied"),
    )
    assert replies[1][0].headers == (
        ("Response", "Error"),
        ("ActionID", "2"),
        ("Message", "Authentication failed"),
    )
    assert "EOF" in replies, "a wrong secret closes the socket"


def test_list_actions_are_framed_like_asterisk(sim):
    pbx, server = sim
    pbx.inbound_call(queue="sales")
    replies = run(
        _raw_exchange(
            server.address,
            [
                [
                    ("Action", "Login"),
                    ("ActionID", "1"),
                    ("Username", "dirigent"),
                    ("Secret", "secret"),
                ],
                [("Action", "CoreShowChannels"), ("ActionID", "2")],
                [("Action", "Logoff"), ("ActionID", "3")],
            ],
        )
    )
    listing = [m for m in replies[1] if m.action_id == "2"]
    assert (
        listing[0].get("EventList") == "start"
        and listing[0].get("Message") == "Channels will follow"
    )
    assert [m.event for m in listing[1:]] == ["CoreShowChannel", "CoreShowChannelsComplete"]
    assert listing[-1].get("ListItems") == "1" and listing[-1].get("EventList") == "Complete"
    recorded = next(
        tuple(k for k, _ in m)
        for m in load_transcript("list_actions.ami").connections[0].received
        if m[0] == ("Event", "CoreShowChannel")
    )
    assert tuple(k for k, _ in listing[1].headers) == recorded
    assert replies[2][0].headers[0] == ("Response", "Goodbye")


def test_shutdown_sends_the_event_closes_refuses_and_restarts_like_asterisk(sim, session_factory):
    from asterisk.events import PbxEvent, PbxShutdown

    pbx, server = sim
    session = session_factory(server.address, backoff_initial=0.05, backoff_max=0.1)
    events: list[PbxEvent] = []
    session.subscribe(events.append)
    session.start()
    run(session.wait_connected(5))
    caller = pbx.inbound_call(queue="sales")
    run(_until(lambda: caller.uniqueid in session.mirror.channels))
    d = server.shutdown()
    run(d.asFuture(asyncio.get_event_loop()) if d is not None else asyncio.sleep(0))
    run(_until(lambda: any(isinstance(e, PbxShutdown) for e in events)))
    run(_until(lambda: not session.connected))
    hangups = [
        e for e in events if type(e).__name__ == "ChannelHungUp" and e.uniqueid == caller.uniqueid
    ]
    assert hangups and not hangups[0].resynced, "calls were hung up before the Shutdown event"
    run(asyncio.sleep(0.3))
    assert not session.connected, "connections are refused while Asterisk is down"
    server.restart()
    run(session.wait_connected(5))
    assert session.connects == 2


async def _until(predicate, timeout: float = 5.0) -> None:
    from tests.conftest import wait_for

    await wait_for(predicate, timeout)


def test_local_channel_originate_starts_like_the_recording():
    """Both halves of a Local channel appear before its dialplan runs."""
    recorded = []
    for conn in load_transcript("originate_answered.ami").connections:
        for step in conn.steps:
            if step.sent and dict(step.sent).get("ChannelId") == "dirigent-call-0001":
                recorded = [m[0][1] for m in step.replies if m[0][0] == "Event"][:3]
    clock = task.Clock()
    pbx = SimPbx(clock, seed=1)
    seen: list[list[tuple[str, str]]] = []
    pbx.subscribe(seen.append)
    pbx.originate(
        {
            "Channel": "Local/answer@sim",
            "Context": "dirigent-connect",
            "Exten": "agent-sim",
            "ChannelId": "x",
            "Variable": [],
        },
        "a",
        seen.append,
    )
    clock.advance(0)
    assert recorded == ["Newchannel", "Newchannel", "Newexten"]
    assert [m[0][1] for m in seen][:3] == recorded


# -- what the live lab showed, where a recording shows it (issue 14) ------------------
def _recorded_from_shutdown() -> list[list[tuple[str, str]]]:
    """shutdown.ami from the first SHUTDOWN soft hang-up to the Shutdown event."""
    received = load_transcript("shutdown.ami").connections[0].received
    start = next(
        i
        for i, m in enumerate(received)
        if m[0] == ("Event", "SoftHangupRequest") and ("Cause", "4") in m
    )
    return [m for m in received[start:] if m and m[0][0] == "Event"]


def _summary(messages: list[list[tuple[str, str]]]) -> list[tuple[str, ...]]:
    """Event names (noise left out) with the Cause of the hang-up events and
    the Shutdown fields: what a consumer reads from a shutdown."""
    out: list[tuple[str, ...]] = []
    for m in messages:
        name = m[0][1]
        if name in NOISE:
            continue
        fields = dict(m)
        if name in ("SoftHangupRequest", "HangupRequest", "Hangup"):
            out.append((name, fields["Channel"][-2:], fields["Cause"]))
        elif name == "Shutdown":
            out.append((name, fields["Shutdown"], fields["Restart"]))
        else:
            out.append((name, fields.get("Channel", "")[-2:]))
    return out


def test_shutdown_with_a_call_up_hangs_up_with_soft_hangup_flags_as_recorded():
    """``core stop now`` with a Local call up (shutdown.ami): SHUTDOWN (4) on
    both halves, then each half's dialplan end (APPUNLOAD, 16), Hangup cause 0,
    then Shutdown; and every layout as recorded."""
    clock = task.Clock()
    pbx = SimPbx(clock, seed=1)
    seen: list[list[tuple[str, str]]] = []
    pbx.subscribe(seen.append)
    pbx.originate(
        {
            "Channel": "Local/customer@sim",
            "Context": "inbound",
            "Exten": "s",
            "Priority": "1",
            "CallerID": '"Customer" <+4930123456>',
            "ChannelId": "shutdown-call",
            "Variable": [],
        },
        "shutdown-2",
        seen.append,
    )
    clock.advance(0)
    clock.advance(1)
    start = len(seen)
    pbx.shutdown()
    recorded = _recorded_from_shutdown()
    assert _summary(seen[start:]) == _summary(recorded)
    layouts = recorded_field_layouts()
    for m in seen[start:]:
        assert tuple(k for k, _ in m) in layouts[m[0][1]], f"{m[0][1]} layout not recorded"


def test_a_restart_says_so_in_the_shutdown_event():
    clock = task.Clock()
    pbx = SimPbx(clock, seed=1)
    seen: list[list[tuple[str, str]]] = []
    pbx.subscribe(seen.append)
    pbx.shutdown(restart=True)
    assert seen[-1] == [
        ("Event", "Shutdown"),
        ("Privilege", "system,all"),
        ("Shutdown", "Cleanly"),
        ("Restart", "True"),
    ]


def _after_each_login(received_by_step: list[tuple[str, list]]) -> list[list[str]]:
    """Event names that follow each Login answer (before the next action)."""
    return [
        [m[0][1] for m in replies if m and m[0][0] == "Event" and m[0][1] != "SuccessfulAuth"]
        for name, replies in received_by_step
        if name == "Login"
    ]


def test_fully_booted_follows_every_login_but_not_a_second_login_as_recorded(sim):
    """connect.ami: Login -> FullyBooted (login layout); a second Login on the
    same session -> "Already authenticated" and no FullyBooted."""
    recorded: list[tuple[str, list]] = []
    layout = None
    for conn in load_transcript("connect.ami").connections:
        for step in conn.steps:
            fields = dict(step.sent or [])
            if fields.get("Action") == "Login" and fields.get("Secret") == "secret":
                recorded.append(("Login", step.replies))
                for m in step.replies:
                    if m[0] == ("Event", "FullyBooted"):
                        layout = tuple(k for k, _ in m)
    assert _after_each_login(recorded) == [["FullyBooted"], ["RequestBadFormat"]]
    _pbx, server = sim
    login = [("Action", "Login"), ("Username", "dirigent"), ("Secret", "secret")]
    replies = run(_raw_exchange(server.address, [[*login, ("ActionID", "1")], login]))
    got = [("Login", [list(m.headers) for m in r if hasattr(m, "headers")]) for r in replies]
    # RequestBadFormat was the recording's own bad action before; ours has none
    assert _after_each_login(got) == [["FullyBooted"], []]
    assert replies[1][0].get("Message") == "Already authenticated"
    booted = next(m for m in replies[0] if getattr(m, "event", None) == "FullyBooted")
    assert tuple(k for k, _ in booted.headers) == layout


def test_a_login_during_boot_gets_fully_booted_only_when_the_boot_ends_as_recorded(sim):
    """shutdown.ami, after the restart: the login is accepted with no
    FullyBooted; the boot's FullyBooted (its own field order) comes later."""
    conn = load_transcript("shutdown.ami").connections[1]
    login_step = next(s for s in conn.steps if dict(s.sent or []).get("Action") == "Login")
    recorded_names = [m[0][1] if m[0][0] == "Event" else m[0][0] for m in login_step.replies]
    assert recorded_names == ["Response", "SuccessfulAuth", "FullyBooted"]
    recorded_boot = next(m for m in login_step.replies if m[0] == ("Event", "FullyBooted"))

    _pbx, server = sim
    d = server.shutdown()
    run(d.asFuture(asyncio.get_event_loop()) if d is not None else asyncio.sleep(0))
    server.restart(boot_delay=0.4)
    login = [("Action", "Login"), ("ActionID", "1"), ("Username", "dirigent")]

    async def exchange() -> tuple[list, list]:
        from asterisk.framing import AmiFramer, encode_message

        reader, writer = await asyncio.open_connection(*server.address)
        framer = AmiFramer()
        writer.write(encode_message([*login, ("Secret", "secret")]))
        await writer.drain()
        await asyncio.sleep(0.15)
        at_login = framer.feed(await reader.read(65536))
        await asyncio.sleep(0.4)
        later = framer.feed(await reader.read(65536))
        writer.close()
        return at_login, later

    at_login, later = run(exchange())
    assert [getattr(m, "event", None) for m in at_login[1:]] == [None]  # the answer only
    assert at_login[1].get("Message") == "Authentication accepted"
    assert [tuple(k for k, _ in m.headers) for m in later] == [tuple(k for k, _ in recorded_boot)]
