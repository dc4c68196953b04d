"""Originate correlation cannot take another process's answer (issue 14, finding 3).

``OriginateResponse`` is an event Asterisk sends to every AMI session, and a
ring timeout sends it long after the action: after a kill -9 and restart the
new process used to receive the dead one's late responses under its own
ActionIDs (the counter began at 1 again) and took them as its answers.  All
over real TCP against the simulated Asterisk, which sends OriginateResponse
to every connected session as the real one does.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from asterisk import actions as ami
from asterisk.errors import ActionOutcomeUnknown
from asterisk.events import OriginateResult, Outcome, ResyncCompleted
from asterisk.framing import AmiFramer, encode_message
from asterisk.metrics import AmiMetrics
from asterisk.session import AmiSession
from tests.conftest import run, wait_for

ROOT = Path(__file__).resolve().parent.parent

_ONE_PROCESS = """
import asyncio, sys
from asterisk.session import AmiSession, PbxSettings

async def main() -> None:
    session = AmiSession(PbxSettings("pbx1", sys.argv[1], int(sys.argv[2]), secret="secret"))
    session.start()
    await session.wait_connected(10)
    await asyncio.sleep(0.2)  # its resync
    await session.stop()

asyncio.run(main())
"""


async def _process(address: tuple[str, int]) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _ONE_PROCESS, address[0], str(address[1]), cwd=ROOT
    )
    assert await proc.wait() == 0


def _stray(registry: CollectorRegistry, reason: str) -> float:
    return (
        registry.get_sample_value(
            "dirigent_ami_stray_responses_total", {"pbx": "pbx1", "reason": reason}
        )
        or 0.0
    )


def _trunk_call(number: str, channel_id: str, outcome: str, ring: float = 1.3) -> ami.Action:
    """A call that rings out after 1 s (``no_answer``) or is answered after ``ring`` s."""
    return ami.originate(
        f"PJSIP/{number}@customers",
        context="dirigent-outbound",
        exten="s",
        timeout_ms=1000 if outcome == "no_answer" else 5000,
        variables={"SIM_OUTCOME": outcome, "SIM_RING": str(ring), "DIRIGENT_AMD": "0"},
        channel_id=channel_id,
    )


def test_two_processes_on_the_same_pbx_name_never_send_the_same_action_id(sim):
    """The server before a restart and the one after (or two servers sharing
    a ``[[pbx]]`` name): every ActionID on the wire is different."""
    _pbx, server = sim
    run(_process(server.address))
    first = {aid for _, aid in server.action_log}
    del server.action_log[:]
    run(_process(server.address))
    second = {aid for _, aid in server.action_log}
    assert len(first) >= 3 and len(second) >= 3  # Login, CoreShowChannels, Logoff
    assert not first & second, f"ActionIDs repeated across processes: {sorted(first & second)}"


def _connect(session_factory, server, token: str | None = None):
    """A session, logged in and resynced (its ActionIDs so far: Login, CoreShowChannels)."""
    session: AmiSession = session_factory(server.address)
    if token is not None:
        session.instance_token = token
    registry = CollectorRegistry()
    session.metrics = AmiMetrics(registry)
    resynced: list[ResyncCompleted] = []
    session.subscribe(lambda e: resynced.append(e) if isinstance(e, ResyncCompleted) else None)
    session.start()
    run(wait_for(lambda: bool(resynced), what="logged in and resynced"))
    return session, registry


def test_a_late_originate_response_of_the_process_before_a_restart_is_ignored(
    sim, session_factory, caplog
):
    caplog.set_level(logging.WARNING, logger="dirigent.asterisk")
    _pbx, server = sim
    dead, _ = _connect(session_factory, server)
    ringing = asyncio.ensure_future(
        dead.originate(_trunk_call("+4930111", "old-call", "no_answer"))
    )
    run(wait_for(lambda: server.action_counts.get("originate"), what="the old Originate"))
    old_id = server.action_log[-1][1]
    server.drop_connections()  # kill -9: the call rings on at the PBX
    run(dead.stop())
    with pytest.raises(ActionOutcomeUnknown):
        run(ringing)

    restarted, registry = _connect(session_factory, server)
    result: OriginateResult = run(restarted.originate(_trunk_call("+4930222", "new-call", "live")))
    assert result.outcome is Outcome.ANSWERED and result.uniqueid == "new-call"
    run(wait_for(lambda: _stray(registry, "unknown-action") == 1, what="the late response"))
    warned = [r for r in caplog.records if "not ours" in r.getMessage()]
    assert len(warned) == 1 and old_id in warned[0].getMessage()


def test_a_late_response_echoing_our_action_id_for_another_channel_is_not_our_answer(
    sim, session_factory
):
    """Even when a process before ours used the very same ActionID (as the old
    per-process counter did after every restart), its late response names its
    own channel, not the ``ChannelId`` we set, and is not taken."""
    _pbx, server = sim
    dead, _ = _connect(session_factory, server)
    ringing = asyncio.ensure_future(
        dead.originate(_trunk_call("+4930111", "old-call", "no_answer"))
    )
    run(wait_for(lambda: server.action_counts.get("originate"), what="the old Originate"))
    server.drop_connections()
    run(dead.stop())
    with pytest.raises(ActionOutcomeUnknown):
        run(ringing)

    # the same ActionIDs again, 1, 2, 3...
    restarted, registry = _connect(session_factory, server, token=dead.instance_token)
    result = run(restarted.originate(_trunk_call("+4930222", "new-call", "live")))
    reused = [aid for name, aid in server.action_log if name == "Originate"]
    assert reused[0] == reused[1], "the scenario needs the ActionID of the dead process again"
    assert result.outcome is Outcome.ANSWERED and result.uniqueid == "new-call"
    assert _stray(registry, "foreign-channel") == 1


async def _raw_originate(address: tuple[str, int], action_id: str) -> None:
    """Another AMI client (a second server on the same PBX name) sends an
    Originate under an ActionID of ours, to an endpoint that does not exist:
    Asterisk answers it at once (Failure, Reason 0) to every session."""
    reader, writer = await asyncio.open_connection(*address)
    framer = AmiFramer()
    login = [("Action", "Login"), ("ActionID", "x1"), ("Username", "dirigent")]
    writer.write(encode_message([*login, ("Secret", "secret")]))
    writer.write(
        encode_message(
            [
                ("Action", "Originate"),
                ("ActionID", action_id),
                ("Channel", "PJSIP/9999"),
                ("Context", "dirigent-outbound"),
                ("Exten", "s"),
                ("Async", "true"),
                ("ChannelId", "their-call"),
            ]
        )
    )
    await writer.drain()
    seen: list = []
    while not any(
        getattr(m, "event", None) == "OriginateResponse" and m.get("Uniqueid") == "their-call"
        for m in seen
    ):
        seen += framer.feed(await asyncio.wait_for(reader.read(65536), 5))
    writer.close()


def test_an_originate_response_with_our_action_id_on_a_channel_we_did_not_create_is_ignored(
    sim, session_factory
):
    _pbx, server = sim
    session, registry = _connect(session_factory, server)
    ours = asyncio.ensure_future(
        session.originate(_trunk_call("+4930333", "our-call", "live", ring=1.5))
    )
    run(wait_for(lambda: server.action_counts.get("originate"), what="our Originate"))
    our_id = server.action_log[-1][1]
    assert our_id is not None
    run(_raw_originate(server.address, our_id))  # its failure reaches us first
    result = run(ours)
    assert result.outcome is Outcome.ANSWERED and result.uniqueid == "our-call"
    assert _stray(registry, "foreign-channel") == 1
