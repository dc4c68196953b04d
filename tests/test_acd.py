"""The inbound ACD end to end: simulated PBX callers, router, agents.

Queue mechanics run in virtual time (task.Clock, in-process PBX); the AMI
path and PBX link loss run over real TCP against the simulated Asterisk.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from twisted.internet import task

from asterisk.telephony import AmiTelephony
from channels.voice import PBX_LOST, AgentEndpoint
from core.events import InteractionChanged, OfferEnded, Stage, to_message
from routing.agent import Agent, AgentState
from routing.model import QueueConfig
from routing.router import Router
from sim.inprocess import SimTelephony
from sim.pbx import SimPbx
from tests.acd import InboundAcd
from tests.conftest import run, settle, wait_for


def build(clock, n_agents=3, mode="ring", registry=None, **pbx_kw):
    pbx = SimPbx(clock, seed=3, agents=n_agents, **pbx_kw)
    phone = SimTelephony(pbx)
    router = Router({"sales": QueueConfig("sales")}, offer_timeout=30)
    endpoints = {}
    for i in range(n_agents):
        agent_id = f"agent{i}"
        router.add_agent(Agent(agent_id))
        endpoints[agent_id] = AgentEndpoint(agent_id, str(1001 + i), mode)
    acd = InboundAcd(phone, router, clock, endpoints, registry=registry, wrap_up=5)
    return pbx, phone, router, acd


def advance(clock: task.Clock, seconds: float, step: float = 0.1) -> None:
    for _ in range(round(seconds / step)):
        clock.advance(step)


def test_an_inbound_call_rings_the_longest_idle_agent_and_is_answered():
    clock = task.Clock()
    registry = CollectorRegistry()
    pbx, phone, router, acd = build(clock, registry=registry, inbound_talk=30)
    acd.start()
    for i, agent in enumerate(router.agents):
        router.login(agent, clock.seconds() + i, ["sales"])
    caller = pbx.inbound_call(queue="sales", caller="+4930111")
    advance(clock, 1)
    assert router.agents["agent0"].state is AgentState.BUSY
    assert phone.mirror.get(caller.uniqueid).bridge_id is not None
    advance(clock, 120)  # talk, hang-up, wrap-up
    assert router.agents["agent0"].state is AgentState.READY
    assert (
        registry.get_sample_value(
            "dirigent_interactions_answered_total", {"queue": "sales", "channel": "voice"}
        )
        == 1
    )
    assert (
        registry.get_sample_value(
            "dirigent_interaction_handle_seconds_count", {"queue": "sales", "channel": "voice"}
        )
        == 1
    )


def test_poisson_arrivals_for_an_hour_every_call_is_answered_abandoned_or_waiting():
    clock = task.Clock()
    registry = CollectorRegistry()
    pbx, _phone, router, acd = build(
        clock, n_agents=4, registry=registry, inbound_talk=120, inbound_patience_mean=60
    )
    acd.start()
    for agent in router.agents:
        router.login(agent, 0, ["sales"])
    pbx.start_inbound(150)  # calls per hour: 5 Erlangs on 4 agents, so some callers give up
    offered_seen = 0
    for _ in range(3600):
        advance(clock, 1, step=0.25)
        busy = [
            a for a in router.agents.values() if a.state in (AgentState.BUSY, AgentState.RESERVED)
        ]
        assert len({w for a in busy for w in a.work}) == sum(len(a.work) for a in busy), (
            "never offered twice"
        )
        offered_seen = max(offered_seen, len(router.offered))
    pbx.stop_inbound()
    labels = {"queue": "sales", "channel": "voice"}
    offered = registry.get_sample_value("dirigent_interactions_offered_total", labels)
    answered = registry.get_sample_value("dirigent_interactions_answered_total", labels)
    abandoned = registry.get_sample_value("dirigent_interactions_abandoned_total", labels)
    in_flight = len(acd.calls)
    assert offered == pbx.stats["inbound"] > 100
    assert answered > 0 and abandoned > 0
    # every call is answered, abandoned, or still in the system (waiting or talking)
    assert (
        answered + abandoned + acd.fallbacks + len(router.waiting) + len(router.offered)
        >= offered - in_flight
    )
    unanswered = len([c for c in acd.calls.values() if c.answered_at is None])
    assert answered + abandoned + acd.fallbacks + unanswered == offered
    assert acd.fallbacks == pbx.stats.get("inbound_fallback", 0)
    assert all(w >= 0 for _, w in acd.abandoned)
    window, today = acd.service_level("sales", clock.seconds())
    assert 0 <= window <= 1 and 0 <= today <= 1
    acd.tick()  # gauges are refreshed by the tick
    assert (
        registry.get_sample_value("dirigent_queue_service_level", {**labels, "window": "30m"})
        == window
    )


def test_busy_agent_phone_pauses_the_agent_and_the_call_goes_to_another():
    clock = task.Clock()
    pbx, _phone, router, acd = build(clock, n_agents=2, inbound_talk=60)
    ends: list[OfferEnded] = []
    acd.bus.subscribe(OfferEnded, ends.append)
    acd.start()
    router.login("agent0", 0, ["sales"])
    router.login("agent1", 1, ["sales"])
    pbx.phones["1001"].channel = "someone-else"  # agent0's phone is busy with a private call
    caller = pbx.inbound_call(queue="sales")
    advance(clock, 2)
    a0, a1 = router.agents["agent0"], router.agents["agent1"]
    assert a0.state is AgentState.PAUSED and a0.pause_reason == "endpoint busy"
    assert a1.state is AgentState.BUSY and caller.uniqueid in a1.work
    # agent0's desktop: the pop taken back as not its doing (it did not let it ring)
    assert [(e.agent, e.end.value) for e in ends] == [
        ("agent0", "withdrawn"),
        ("agent1", "accepted"),
    ]


def test_unregistered_phone_is_reported_unreachable():
    clock = task.Clock()
    pbx, _phone, router, acd = build(clock, n_agents=1)
    acd.start()
    router.login("agent0", 0, ["sales"])
    pbx.set_registered("1001", False)
    pbx.inbound_call(queue="sales")
    advance(clock, 2)
    assert router.agents["agent0"].pause_reason == "endpoint unreachable"
    assert len(router.waiting) == 1, "the caller waits for the next agent"


def test_nailed_up_agent_gets_the_caller_without_ringing():
    clock = task.Clock()
    pbx, phone, router, acd = build(clock, n_agents=1, mode="nailed", inbound_talk=20)
    acd.start()
    acd.nail_up("agent0", ["sales"])
    assert not router.agents["agent0"].logged_in, "not before the leg is in its bridge"
    advance(clock, 1)
    assert router.agents["agent0"].logged_in
    caller = pbx.inbound_call(queue="sales")
    clock.advance(0)
    advance(clock, 0.2)
    assert router.agents["agent0"].state is AgentState.BUSY, "connected within 0.2 s, no phone rang"
    agent_leg = phone.mirror.get(acd.endpoints["agent0"].line_call)
    assert phone.mirror.get(caller.uniqueid).bridge_id == agent_leg.bridge_id
    advance(clock, 200)
    assert phone.mirror.get(acd.endpoints["agent0"].line_call) is not None, (
        "the agent stays on the line"
    )
    assert router.agents["agent0"].state is AgentState.READY


def test_caller_hanging_up_while_waiting_is_abandoned_with_its_wait():
    clock = task.Clock()
    registry = CollectorRegistry()
    pbx, _phone, router, acd = build(clock, n_agents=1, registry=registry)
    acd.start()
    caller = pbx.inbound_call(queue="sales")  # nobody logged in
    advance(clock, 12)
    pbx.hangup_channel(caller, 16)
    assert not router.waiting and acd.abandoned[0][0] == caller.uniqueid
    assert 11.9 <= acd.abandoned[0][1] <= 12.1
    labels = {"queue": "sales", "channel": "voice"}
    assert registry.get_sample_value("dirigent_interactions_abandoned_total", labels) == 1


def test_a_fallback_at_once_after_the_arrival_names_the_hold_music_as_the_likely_cause():
    """QA3 (minor): on a PBX whose ``default`` hold music had no files every
    caller went to the fallback at once, and the log said only "after 0 s"."""
    from twisted.logger import formatEvent, globalLogPublisher

    clock = task.Clock()
    pbx, _phone, _router, acd = build(clock, n_agents=1)
    pbx.inbound_patience_mean = 1e9  # only the dialplan ends a wait
    acd.start()
    seen: list[dict] = []
    globalLogPublisher.addObserver(seen.append)
    try:
        pbx.fallback_after = 0.0  # MusicOnHold returned at once
        quick = pbx.inbound_call(queue="sales")
        advance(clock, 1)
        pbx.fallback_after = 60.0
        slow = pbx.inbound_call(queue="sales")
        advance(clock, 61)
    finally:
        globalLogPublisher.removeObserver(seen.append)
    assert acd.kpi.fallbacks == 2
    hints = [formatEvent(e) for e in seen if "hold music" in formatEvent(e)]
    assert len(hints) == 1 and quick.uniqueid in hints[0], hints
    assert slow.uniqueid not in hints[0]


def test_each_queue_counts_its_own_callers_who_left_today():
    """``GET /api/queues`` showed every queue the whole centre's abandoned
    callers since the server started (campaign queues that never had a
    caller too): a team supervisor read other teams' figures as its own."""
    clock = task.Clock()
    clock.advance(86_400 * 3 + 3600)  # 01:00 on the fourth day
    pbx = SimPbx(clock, seed=3, agents=1)
    router = Router({"sales": QueueConfig("sales"), "support": QueueConfig("support")})
    router.add_agent(Agent("agent0"))
    acd = InboundAcd(SimTelephony(pbx), router, clock, {}, wrap_up=5)
    acd.start()

    def figures() -> dict[str, int]:
        return {q["queue"]: q["abandoned"] for q in acd.queue_figures()}

    for queue in ("sales", "sales", "support"):
        caller = pbx.inbound_call(queue=queue)  # nobody logged in
        advance(clock, 5)
        pbx.hangup_channel(caller, 16)
        advance(clock, 1)
    assert figures() == {"sales": 2, "support": 1}
    advance(clock, 86_400 - 3600 - 18 + 60, step=60)  # past midnight
    assert figures() == {"sales": 0, "support": 0}, "today's figure starts again at midnight"
    assert [w > 4.9 for _, w in acd.abandoned] == [True] * 3, "the latest kept for reports"


def test_over_ami_with_a_link_loss_waiting_calls_survive_and_vanished_ones_are_closed(
    sim, session_factory
):
    from twisted.internet import reactor

    pbx, server = sim
    pbx.inbound_talk = 60
    session = session_factory(server.address, backoff_initial=0.05, backoff_max=0.1)
    phone = AmiTelephony(session)
    router = Router({"sales": QueueConfig("sales")}, offer_timeout=30)
    endpoints = {
        "nailed": AgentEndpoint("nailed", "1001", "nailed"),
        "ringer": AgentEndpoint("ringer", "1002"),
    }
    for agent in endpoints:
        router.add_agent(Agent(agent))
    acd = InboundAcd(phone, router, reactor, endpoints, wrap_up=1)
    session.start()
    run(session.wait_connected(5))
    acd.start()
    try:
        acd.nail_up("nailed", ["sales"])
        run(
            wait_for(lambda: router.agents["nailed"].logged_in, what="agent logged in once bridged")
        )
        assert phone.mirror.get(endpoints["nailed"].line_call).bridge_id is not None
        talking = pbx.inbound_call(queue="sales")
        run(wait_for(lambda: router.agents["nailed"].state is AgentState.BUSY, what="connected"))
        waiting = pbx.inbound_call(queue="sales")
        leaving = pbx.inbound_call(queue="sales")
        run(wait_for(lambda: len(router.waiting) == 2, what="two callers queued"))

        # link down: meanwhile one waiting caller hangs up and the agent's leg drops
        pbx.unsubscribe(server.broadcast)
        server.drop_connections()
        pbx.hangup_channel(leaving, 16)
        pbx.hangup_channel(pbx.channels[endpoints["nailed"].line_call], 16)
        pbx.subscribe(server.broadcast)
        run(
            wait_for(
                lambda: session.connects == 2 and leaving.uniqueid not in acd.calls, what="resync"
            )
        )

        assert waiting.uniqueid in router.waiting, "still queued after the outage"
        assert [uid for uid, _ in acd.abandoned] == [leaving.uniqueid]
        nailed = router.agents["nailed"]
        assert nailed.state is AgentState.PAUSED and nailed.pause_reason == PBX_LOST, (
            "not left busy forever"
        )
        assert talking.uniqueid not in router.handling
        # a ring-mode agent logs in: the surviving caller is connected over AMI
        acd.login("ringer", ["sales"])
        run(
            wait_for(
                lambda: router.agents["ringer"].state is AgentState.BUSY, what="ringer answers"
            )
        )
    finally:
        acd.stop()


def test_over_ami_a_caller_whose_wait_ran_out_during_a_link_loss_is_left_to_the_fallback(
    sim, session_factory
):
    """QA3 (minor): the dialplan gave a waiting caller to its fallback queue
    while the link was down (its DirigentFallback event unheard); after the
    resync Dirigent still had it waiting and rang the next agent for it,
    pulling it out of the fallback queue."""
    from twisted.internet import reactor

    pbx, server = sim
    session = session_factory(server.address, backoff_initial=0.05, backoff_max=0.1)
    phone = AmiTelephony(session)
    router = Router({"sales": QueueConfig("sales")}, offer_timeout=30)
    endpoints = {"ringer": AgentEndpoint("ringer", "1002")}
    router.add_agent(Agent("ringer"))
    acd = InboundAcd(phone, router, reactor, endpoints, wrap_up=1)
    session.start()
    run(session.wait_connected(5))
    acd.start()
    try:
        waiting = pbx.inbound_call(queue="sales")  # nobody logged in
        run(wait_for(lambda: waiting.uniqueid in router.waiting, what="queued"))
        pbx.unsubscribe(server.broadcast)
        server.drop_connections()
        pbx._inbound_fallback(waiting)  # DIRIGENT_WAIT ran out meanwhile
        pbx.subscribe(server.broadcast)
        run(wait_for(lambda: session.connects == 2, what="resync"))
        run(wait_for(lambda: waiting.uniqueid not in router.waiting, what="no longer queued"))
        assert acd.kpi.fallbacks == 1
        acd.login("ringer", ["sales"])
        settle(0.3)
        assert router.agents["ringer"].state is AgentState.READY, "not rung for it"
        assert waiting.app == "Queue" and waiting.bridge is None, "in the PBX's fallback queue"
    finally:
        acd.stop()


def test_blind_transfer_to_another_queue_keeps_the_history():
    clock = task.Clock()
    pbx = SimPbx(clock, seed=3, agents=2, inbound_talk=300)
    phone = SimTelephony(pbx)
    router = Router(
        {"sales": QueueConfig("sales"), "billing": QueueConfig("billing")}, offer_timeout=30
    )
    router.add_agent(Agent("seller"))
    router.add_agent(Agent("biller"))
    acd = InboundAcd(
        phone,
        router,
        clock,
        {"seller": AgentEndpoint("seller", "1001"), "biller": AgentEndpoint("biller", "1002")},
        wrap_up=5,
    )
    acd.start()
    acd.login("seller", ["sales"])
    caller = pbx.inbound_call(queue="sales")
    advance(clock, 1)
    assert router.agents["seller"].state is AgentState.BUSY
    acd.transfer("seller", caller.uniqueid, queue="billing")
    advance(clock, 1)
    assert router.agents["seller"].state is AgentState.WRAP_UP
    assert caller.uniqueid in router.waiting, "waiting in billing, nobody there yet"
    assert phone.mirror.get(caller.uniqueid).bridge_id is None, (
        "on hold, not with the seller any more"
    )
    acd.login("biller", ["billing"])
    advance(clock, 1)
    assert router.agents["biller"].state is AgentState.BUSY
    history = router.handled_interactions[caller.uniqueid].history
    assert [h.event for h in history] == [
        "queued",
        "answered",
        "transferred",
        "queued",
        "answered",
    ]
    assert history[2].to_queue == "billing" and history[4].agent == "biller"
    assert acd.calls[caller.uniqueid].answered_at is not None


def test_blind_transfer_to_an_agent_waits_for_that_agent_only():
    clock = task.Clock()
    pbx, _phone, router, acd = build(clock, n_agents=3, inbound_talk=300)
    acd.start()
    for agent in ("agent0", "agent1"):
        acd.login(agent, ["sales"])
    caller = pbx.inbound_call(queue="sales")
    advance(clock, 1)
    first = next(a for a in router.agents.values() if a.state is AgentState.BUSY)
    acd.transfer(first.id, caller.uniqueid, to_agent="agent2")
    advance(clock, 2)
    idle_other = next(a for a in router.agents.values() if a.id not in (first.id, "agent2"))
    assert idle_other.state is AgentState.READY, (
        "a free agent does not take a call meant for agent2"
    )
    acd.login("agent2", ["sales"])
    advance(clock, 1)
    assert router.agents["agent2"].state is AgentState.BUSY


def test_a_caller_transferred_to_an_agent_waits_in_the_queue_the_router_shows():
    """F19: the caller is put on hold (the dialplan's wait, its music and
    its fallback) in the queue the router has the call wait in: its own when
    the target agent serves it, else the agent's first configured queue --
    before, the hold went to the agent's alphabetically first queue, and a
    caller of "support" sent to an agent of support and sales heard sales'."""
    for own, target_queues, expected in (
        ("support", ["support", "sales"], "support"),
        ("sales", ["support", "billing"], "support"),
    ):
        clock = task.Clock()
        pbx = SimPbx(clock, seed=3, agents=2, inbound_talk=300)
        phone = SimTelephony(pbx)
        router = Router({n: QueueConfig(n) for n in ("sales", "support", "billing")})
        router.add_agent(Agent("first"))
        router.add_agent(Agent("target"))
        acd = InboundAcd(
            phone,
            router,
            clock,
            {"first": AgentEndpoint("first", "1001"), "target": AgentEndpoint("target", "1002")},
            wrap_up=5,
        )
        acd.start()
        acd.login("first", [own])
        acd.login("target", target_queues, paused="break")
        caller = pbx.inbound_call(queue=own)
        advance(clock, 1)
        assert router.agents["first"].state is AgentState.BUSY
        acd.transfer("first", caller.uniqueid, to_agent="target")
        advance(clock, 1)
        assert router.waiting[caller.uniqueid].queue == expected
        assert caller.variables["DIRIGENT_QUEUE"] == expected, "on hold in that queue"
        assert caller.bridge is None


def test_a_caller_taken_by_the_dialplan_fallback_leaves_our_queue():
    clock = task.Clock()
    registry = CollectorRegistry()
    pbx, _phone, router, acd = build(clock, n_agents=1, registry=registry, fallback_after=60)
    acd.start()
    pbx.inbound_call(queue="sales")  # nobody logged in: the dialplan's 60 s run out
    advance(clock, 61)
    assert not router.waiting and not acd.calls and acd.fallbacks == 1
    labels = {"queue": "sales", "channel": "voice"}
    assert registry.get_sample_value("dirigent_interactions_fallback_total", labels) == 1
    acd.login("agent0", ["sales"])
    assert router.agents["agent0"].state is AgentState.READY, "nothing left to offer"


def crash_and_come_back(pbx, server, lost: list[float]) -> None:
    """The PBX crashes: link gone, every channel gone, Asterisk back a while later."""
    pbx.unsubscribe(server.broadcast)
    server.stop()
    for chan in list(pbx.channels.values()):
        pbx.hangup_channel(chan, 16)
    run(wait_for(lambda: bool(lost), what="link loss seen"))
    settle(0.6)
    server.restart()
    pbx.subscribe(server.broadcast)


def test_a_conversation_lost_with_the_pbx_ends_when_the_link_was_lost_and_says_so(
    sim, session_factory
):
    """Issue 14, finding 10: the channels vanish in a crash; the resync that
    finds them gone comes later.  The talk time ends when the link was lost,
    the outcome says why, and the agent gets a new leg by itself."""
    from twisted.internet import reactor

    pbx, server = sim
    pbx.inbound_talk = 600
    session = session_factory(server.address, backoff_initial=0.05, backoff_max=0.1)
    phone = AmiTelephony(session)
    router = Router({"sales": QueueConfig("sales")}, offer_timeout=30)
    router.add_agent(Agent("nailed"))
    endpoints = {"nailed": AgentEndpoint("nailed", "1001", "nailed")}
    acd = InboundAcd(phone, router, reactor, endpoints, wrap_up=1, nail_retry_initial=0.5)
    ended: list[dict] = []
    acd.bus.subscribe(
        InteractionChanged,
        lambda e: ended.append(to_message(e)) if e.stage is Stage.ENDED else None,
    )
    lost: list[float] = []
    phone.subscribe(
        lambda e: lost.append(reactor.seconds()) if type(e).__name__ == "PbxDisconnected" else None
    )
    session.start()
    run(session.wait_connected(5))
    acd.start()
    try:
        acd.nail_up("nailed", ["sales"])
        run(wait_for(lambda: router.agents["nailed"].logged_in, what="agent logged in"))
        caller = pbx.inbound_call(queue="sales")
        run(wait_for(lambda: router.agents["nailed"].state is AgentState.BUSY, what="connected"))
        answered = acd.calls[caller.uniqueid].answered_at

        crash_and_come_back(pbx, server, lost)
        run(wait_for(lambda: ended, timeout=10, what="the conversation closed by the resync"))

        (msg,) = ended
        assert msg["interaction"] == caller.uniqueid and msg["outcome"] == "pbx-lost"
        assert answered <= msg["at"] <= lost[0] + 0.01, "talk time ends when the link was lost"
        assert router.agents["nailed"].pause_reason == PBX_LOST
        run(
            wait_for(
                lambda: router.agents["nailed"].state is AgentState.READY and acd.has_leg("nailed"),
                what="a new leg nailed up after the resync, agent ready again",
            )
        )
    finally:
        acd.stop()


def test_a_caller_waiting_when_the_pbx_crashes_is_lost_with_it_not_abandoned(sim, session_factory):
    """QA3 finding 7: a caller on hold when Asterisk dies used to be recorded
    "abandoned" at the resync (its wait stretched over the outage, counted in
    the queue's abandoned callers and the abandon metric).  It vanished with
    the PBX: it ends when the link was lost, "pbx-lost", and is no abandon."""
    from twisted.internet import reactor

    pbx, server = sim
    registry = CollectorRegistry()
    session = session_factory(server.address, backoff_initial=0.05, backoff_max=0.1)
    phone = AmiTelephony(session)
    router = Router({"sales": QueueConfig("sales")}, offer_timeout=30)
    router.add_agent(Agent("ringer"))
    endpoints = {"ringer": AgentEndpoint("ringer", "1001")}
    acd = InboundAcd(phone, router, reactor, endpoints, registry=registry, wrap_up=1)
    gone: list[dict] = []
    acd.bus.subscribe(
        InteractionChanged,
        lambda e: gone.append(to_message(e)) if e.stage is not Stage.QUEUED else None,
    )
    lost: list[float] = []
    phone.subscribe(
        lambda e: lost.append(reactor.seconds()) if type(e).__name__ == "PbxDisconnected" else None
    )
    session.start()
    run(session.wait_connected(5))
    acd.start()
    try:
        caller = pbx.inbound_call(queue="sales")  # nobody logged in: it waits
        run(wait_for(lambda: caller.uniqueid in router.waiting, what="the caller waits"))

        crash_and_come_back(pbx, server, lost)
        run(wait_for(lambda: gone, timeout=10, what="the caller closed by the resync"))

        (msg,) = gone
        assert msg["interaction"] == caller.uniqueid
        assert (msg["event"], msg.get("outcome")) == ("ended", "pbx-lost"), msg
        assert msg["at"] <= lost[0] + 0.01, "its wait ends when the link was lost"
        assert not router.waiting and caller.uniqueid not in acd.calls
        assert acd.kpi.abandoned_in("sales", reactor.seconds()) == 0 and not acd.kpi.abandoned
        labels = {"queue": "sales", "channel": "voice"}
        abandons = registry.get_sample_value("dirigent_interactions_abandoned_total", labels)
        assert not abandons, "a PBX crash counted as the caller's abandon"
    finally:
        acd.stop()


def test_a_caller_waiting_when_the_pbx_shuts_down_is_lost_with_it_not_abandoned(
    sim, session_factory
):
    """``core restart now``: the PBX hangs up every channel (SHUTDOWN soft
    hang-ups, as recorded): a waiting caller cut so is no abandon either."""
    from twisted.internet import reactor

    pbx, server = sim
    session = session_factory(server.address, backoff_initial=0.05, backoff_max=0.1)
    phone = AmiTelephony(session)
    router = Router({"sales": QueueConfig("sales")}, offer_timeout=30)
    router.add_agent(Agent("ringer"))
    acd = InboundAcd(phone, router, reactor, {"ringer": AgentEndpoint("ringer", "1001")}, wrap_up=1)
    gone: list[dict] = []
    acd.bus.subscribe(
        InteractionChanged,
        lambda e: gone.append(to_message(e)) if e.stage is not Stage.QUEUED else None,
    )
    session.start()
    run(session.wait_connected(5))
    acd.start()
    try:
        caller = pbx.inbound_call(queue="sales")
        run(wait_for(lambda: caller.uniqueid in router.waiting, what="the caller waits"))
        pbx.shutdown(restart=True)
        run(wait_for(lambda: gone, timeout=10, what="the caller's end"))
        (msg,) = gone
        assert (msg["event"], msg.get("outcome")) == ("ended", "pbx-lost"), msg
        assert not acd.kpi.abandoned and acd.kpi.abandoned_in("sales", reactor.seconds()) == 0
    finally:
        acd.stop()


def test_a_caller_the_queues_overflow_sends_to_voicemail_is_a_fallback_not_an_abandon():
    """QA round 3: a caller sent to the PBX's fallback by a queue's overflow
    step was written "abandoned" when the fallback's conversation ended,
    while the dialplan's own fallback is written "fallback"."""
    from routing.model import OverflowStep

    clock = task.Clock()
    pbx = SimPbx(clock, seed=3, agents=1, inbound_patience_mean=1e9, inbound_talk=20)
    phone = SimTelephony(pbx)
    queue = QueueConfig("sales", overflow=(OverflowStep(8, "voicemail"),))
    router = Router({"sales": queue}, offer_timeout=30)
    router.add_agent(Agent("agent0"))
    acd = InboundAcd(phone, router, clock, {"agent0": AgentEndpoint("agent0", "1001", "ring")})
    acd.start()
    stages: list[tuple[str, float]] = []
    acd.bus.subscribe(InteractionChanged, lambda e: stages.append((e.stage.value, round(e.at, 1))))
    caller = pbx.inbound_call(queue="sales")  # nobody logged in
    advance(clock, 12)
    assert ("fallback", 8.0) in [(s, round(t)) for s, t in stages], stages
    pbx.hangup_channel(caller, 16)  # after its conversation in the fallback queue
    advance(clock, 1)
    assert "abandoned" not in [s for s, _ in stages], stages
    assert acd.kpi.fallbacks == 1 and not acd.kpi.abandoned


def test_a_call_for_a_queue_dirigent_does_not_know_goes_to_the_fallback_at_once():
    """QA round 3 (minor): a DID routed to an unknown queue was logged, and the
    caller still waited the whole DIRIGENT_WAIT in music for nobody."""
    from asterisk.port import FALLBACK_PRIORITY

    clock = task.Clock()
    registry = CollectorRegistry()
    pbx, _phone, router, acd = build(clock, registry=registry, inbound_patience_mean=1e9)
    acd.start()
    for agent in router.agents:
        router.login(agent, clock.seconds(), ["sales"])
    caller = pbx.inbound_call(queue="billing")
    advance(clock, 1)
    assert caller.priority >= FALLBACK_PRIORITY and caller.app == "Queue", (
        caller.app,
        caller.priority,
    )
    labels = {"queue": "billing", "channel": "voice"}
    assert registry.get_sample_value("dirigent_interactions_fallback_total", labels) == 1
