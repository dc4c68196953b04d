"""One resync per login, after the PBX is fully booted (issue 14, finding 9).

Asterisk sends ``FullyBooted`` after every login; the session used to resync
on the login and again on that ``FullyBooted``, and the nail-ups downstream
ran on each.  After ``core restart now`` AMI accepts a login before the boot
is over; the one resync must come after the boot.  Over real TCP against the
simulated Asterisk.
"""

from __future__ import annotations

import asyncio

from asterisk import actions as ami
from asterisk.events import (
    ChannelHungUp,
    OriginateResult,
    Outcome,
    PbxConnected,
    PbxDisconnected,
    PbxEvent,
    PbxFullyBooted,
    PbxShutdown,
    ResyncCompleted,
)
from tests.conftest import run, settle, wait_for


def _per_connect(events: list[PbxEvent]) -> list[list[type]]:
    """The milestones of each link-up (cut where the link was lost).  A
    ``FullyBooted`` that came with the login answer precedes ``PbxConnected``."""
    out: list[list[type]] = [[]]
    for e in events:
        if isinstance(e, PbxDisconnected):
            out.append([])
        elif isinstance(e, PbxConnected | PbxFullyBooted | ResyncCompleted):
            out[-1].append(type(e))
    return [m for m in out if m]


def _one_resync_after_the_boot(milestones: list[type]) -> bool:
    """Connected once, FullyBooted once (it may come before or after our
    PbxConnected), and one resync, after the FullyBooted."""
    return (
        sorted(t.__name__ for t in milestones)
        == ["PbxConnected", "PbxFullyBooted", "ResyncCompleted"]
        and milestones[-1] is ResyncCompleted
    )


def test_a_login_to_a_booted_pbx_resyncs_once(sim, session_factory):
    _pbx, server = sim
    session = session_factory(server.address)
    events: list[PbxEvent] = []
    session.subscribe(events.append)
    session.start()
    run(wait_for(lambda: any(isinstance(e, ResyncCompleted) for e in events), what="resync"))
    settle(0.3)
    [milestones] = _per_connect(events)
    assert _one_resync_after_the_boot(milestones), milestones
    assert server.action_counts.get("coreshowchannels") == 1


def test_after_core_restart_a_login_during_boot_resyncs_once_after_the_boot(sim, session_factory):
    pbx, server = sim
    session = session_factory(server.address, backoff_initial=0.05, backoff_max=0.1)
    events: list[PbxEvent] = []
    session.subscribe(events.append)
    session.start()
    run(wait_for(lambda: any(isinstance(e, ResyncCompleted) for e in events), what="resync"))
    agent: OriginateResult = run(
        session.originate(
            ami.originate(
                "PJSIP/1001", context="dirigent-agent", exten="1001", channel_id="agent-1001"
            )
        )
    )
    assert agent.outcome is Outcome.ANSWERED
    caller = pbx.inbound_call(queue="sales", caller="+4930555")
    run(wait_for(lambda: caller.uniqueid in session.mirror.channels, what="the caller"))

    server.core_restart(down_for=0.3, boot_delay=0.6)
    run(wait_for(lambda: session.connects == 2, what="login during the boot"))
    assert not pbx.booted, "the scenario needs a login before the boot is over"
    assert len([e for e in events if isinstance(e, ResyncCompleted)]) == 1, "no resync yet"
    run(wait_for(lambda: len(_per_connect(events)[-1]) == 3, timeout=5, what="boot + resync"))
    settle(0.3)
    before, after = _per_connect(events)
    assert _one_resync_after_the_boot(before), before
    assert after == [PbxConnected, PbxFullyBooted, ResyncCompleted]  # the boot's own
    assert server.action_counts.get("coreshowchannels") == 2

    # the restart hung up every call, the nailed agent leg too, before Shutdown
    shutdown_at = next(i for i, e in enumerate(events) if isinstance(e, PbxShutdown))
    assert events[shutdown_at].restart
    hung = {e.uniqueid: e for e in events[:shutdown_at] if isinstance(e, ChannelHungUp)}
    assert {"agent-1001", caller.uniqueid} <= hung.keys()
    assert all(hung[u].cut_by_shutdown for u in ("agent-1001", caller.uniqueid))
    assert not session.mirror.channels and not pbx.channels


def test_without_fully_booted_in_time_it_resyncs_anyway_and_once_more_when_the_boot_ends(
    sim, session_factory
):
    """A boot longer than ``boot_wait``: the session does not wait for ever,
    and the real end of the boot still gets its resync."""
    pbx, server = sim
    d = server.shutdown()
    run(d.asFuture(asyncio.get_event_loop()) if d is not None else asyncio.sleep(0))
    server.restart(boot_delay=1.0)
    session = session_factory(server.address, boot_wait=0.2)
    events: list[PbxEvent] = []
    session.subscribe(events.append)
    session.start()
    run(wait_for(lambda: any(isinstance(e, ResyncCompleted) for e in events), what="resync"))
    assert not pbx.booted
    run(wait_for(lambda: pbx.booted, what="the boot"))
    run(wait_for(lambda: len(_per_connect(events)[-1]) == 4, what="the resync after the boot"))
    assert _per_connect(events) == [
        [PbxConnected, ResyncCompleted, PbxFullyBooted, ResyncCompleted]
    ]
