"""The simulated PBX's agent conferences behave as the shipped ConfBridge
profiles do on Asterisk 22 (asterisk/conf/confbridge_dirigent.conf: the
agent is the marked user, a caller joins with ``wait_marked`` and
``end_marked``), and a Redirect sent while the last one is still under
way is refused, as Asterisk's manager.c refuses it.
Simulated time (``task.Clock``)."""

from __future__ import annotations

import pytest
from twisted.internet import task

from sim.pbx import SimChannel, SimError, SimPbx


def simulated() -> tuple[task.Clock, SimPbx]:
    clock = task.Clock()
    # callers who never give up and never end a talk: only the PBX ends a call here
    pbx = SimPbx(clock, seed=3, agents=2, inbound_patience_mean=1e9, inbound_talk=1e9)
    pbx.fallback_after = 1e6
    return clock, pbx


def advance(clock: task.Clock, seconds: float) -> None:
    for _ in range(int(seconds / 0.1)):
        clock.advance(0.1)


def nail(clock: task.Clock, pbx: SimPbx, agent: str) -> SimChannel:
    """The agent's line, as Dirigent nails it up (Originate into dirigent-agent)."""
    fields = {"Channel": f"PJSIP/{agent}", "Context": "dirigent-agent", "Exten": agent}
    pbx.originate({**fields, "Priority": "1"}, f"nail-{agent}", lambda _headers: None)
    advance(clock, 3.0)
    (leg,) = [c for c in pbx.channels.values() if c.far == "agent" and c.agent == agent]
    assert leg.bridge is not None
    return leg


def test_a_caller_put_with_an_agent_is_put_out_when_the_agents_line_drops():
    clock, pbx = simulated()
    leg = nail(clock, pbx, "1001")
    caller = pbx.inbound_call(queue="sales")
    advance(clock, 1.0)
    pbx.redirect(caller.name, "dirigent-join", "1001", 1)
    advance(clock, 1.0)
    assert caller.bridge == leg.bridge
    pbx.hangup(leg.name)  # the agent's phone hangs up mid-call
    advance(clock, 0.5)
    assert not caller.alive, "end_marked: the caller leaves the conference, then Hangup()"


def test_a_caller_moved_into_an_agents_empty_conference_waits_for_the_agent():
    clock, pbx = simulated()
    caller = pbx.inbound_call(queue="sales")
    advance(clock, 1.0)
    pbx.redirect(caller.name, "dirigent-join", "1002", 1)  # the agent's line is not up
    advance(clock, 5.0)
    assert caller.alive and caller.bridge is not None, "wait_marked: waits in silence"
    leg = nail(clock, pbx, "1002")
    assert leg.bridge == caller.bridge and caller.variables.get("_talking") == "1"


def test_a_redirect_sent_while_the_last_one_is_under_way_is_refused():
    """Asterisk 22 (manager.c action_redirect): a channel whose Redirect has
    not run yet carries the soft hang-up AST_SOFTHANGUP_ASYNCGOTO, and a
    second Redirect is refused "Redirect failed, channel not up." (QA3
    finding 3 saw it on the real PBX); the first one runs.  Once it has
    run, the channel may be Redirected again."""
    clock, pbx = simulated()
    leg = nail(clock, pbx, "1001")
    caller = pbx.inbound_call(queue="sales")
    advance(clock, 1.0)
    pbx.redirect(caller.name, "dirigent-inbound", "support", 1)
    with pytest.raises(SimError, match=r"Redirect failed, channel not up\."):
        pbx.redirect(caller.name, "dirigent-join", "1001", 1)
    advance(clock, 1.0)
    assert caller.bridge is None and leg.bridge is not None
    assert caller.on_moh and caller.variables["DIRIGENT_QUEUE"] == "support"
    pbx.redirect(caller.name, "dirigent-join", "1001", 1)
    advance(clock, 1.0)
    assert caller.bridge == leg.bridge, "moved once the first Redirect had landed"


def test_the_abandon_message_is_played_from_the_dialplans_global():
    """``Playback(${DIRIGENT_ABANDON_SOUND})`` as the shipped dialplan has it
    (the sim played the extension, ``s``, which is no sound at all)."""
    clock, pbx = simulated()
    seen: list[dict[str, str]] = []
    pbx.subscribe(lambda m: seen.append(dict(m)))
    caller = pbx.inbound_call(queue="sales")
    advance(clock, 1.0)
    pbx.redirect(caller.name, "dirigent-abandon", "s", 1)
    advance(clock, 1.0)
    played = [
        e.get("AppData")
        for e in seen
        if e.get("Event") == "Newexten" and e.get("Application") == "Playback"
    ]
    assert played == ["dirigent/abandon"]
