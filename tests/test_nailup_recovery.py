"""Nailed-up agents keep a phone leg, or are offered nothing (issue 14, findings 2 and 8).

A nail-up that fails is logged, counted and retried, backed off on the
injected clock, with the agent shown "no phone"; a leg lost with the PBX
(restart, link loss) is nailed up again by itself after the resync and the
agent returns to what it was.  Ready set through the API while the leg is
down does not open routing.  The backoff runs in virtual time (task.Clock,
in-process PBX); the PBX restart runs over real AMI against the simulated
Asterisk, with the assembled server and a running campaign.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from twisted.internet import reactor, task
from twisted.logger import ILogObserver, LogLevel, globalLogPublisher
from zope.interface import provider

from asterisk.session import PbxSettings
from channels.voice import NO_PHONE, PBX_LOST, PHONE_HUNG_UP, AgentEndpoint
from cti.auth import hash_password
from dirigent.cli import DEMO_CAMPAIGN, _demo_campaign
from dirigent.config import AgentSettings, DatabaseSettings, HttpSettings, RoutingSettings, Settings
from dirigent.service import Dirigent
from routing.agent import Agent, AgentState
from routing.model import QueueConfig
from routing.router import Router
from sim.ami_server import SimAmiServer
from sim.inprocess import SimTelephony
from sim.pbx import SimPbx
from sim.workload import parse_workload
from store import db
from tests.acd import InboundAcd
from tests.conftest import LOOP, run, settle, stop_sim, wait_for
from tests.test_api import call, token


def build(clock: task.Clock, registry: CollectorRegistry, **kw: Any) -> Any:
    pbx = SimPbx(clock, seed=3, agents=1, inbound_talk=30)
    phone = SimTelephony(pbx)
    router = Router({"sales": QueueConfig("sales")}, offer_timeout=30)
    router.add_agent(Agent("agent0"))
    endpoints = {"agent0": AgentEndpoint("agent0", "1001", "nailed")}
    acd = InboundAcd(phone, router, clock, endpoints, registry=registry, wrap_up=5, **kw)
    acd.start()
    return pbx, phone, router, acd


def advance(clock: task.Clock, seconds: float, step: float = 0.05) -> None:
    for _ in range(round(seconds / step)):
        clock.advance(step)


def failures(registry: CollectorRegistry, reason: str) -> float:
    value = registry.get_sample_value("dirigent_agent_nailup_failures_total", {"reason": reason})
    return value or 0.0


@pytest.fixture
def warnings() -> Iterator[list[str]]:
    seen: list[str] = []

    @provider(ILogObserver)
    def observer(event: dict[str, Any]) -> None:
        level = event.get("log_level")
        if event.get("log_namespace") == "channels.voice" and level in (
            LogLevel.warn,
            LogLevel.error,
        ):
            from twisted.logger import formatEvent

            seen.append(formatEvent(event))

    globalLogPublisher.addObserver(observer)
    yield seen
    globalLogPublisher.removeObserver(observer)


def test_a_failed_nail_up_is_logged_counted_and_retried_backed_off(warnings):
    clock, registry = task.Clock(), CollectorRegistry()
    pbx, phone, router, acd = build(clock, registry)
    pbx.set_registered("1001", False)  # the phone is not there yet
    acd.nail_up("agent0", ["sales"])
    advance(clock, 0.2)
    agent = router.agents["agent0"]
    assert agent.logged_in and agent.pause_reason == NO_PHONE, "visible, not silently logged out"
    assert failures(registry, "failed") == 1
    assert any("agent0" in w and "nail-up" in w and "failed" in w for w in warnings), warnings

    # retries after 1 s, then 2 s, then 4 s (virtual time)
    advance(clock, 1.0)
    assert failures(registry, "failed") == 2
    advance(clock, 1.8)
    assert failures(registry, "failed") == 2, "the second retry waits 2 s"
    advance(clock, 0.4)
    assert failures(registry, "failed") == 3

    # a caller meanwhile is not offered to an agent without a phone
    caller = pbx.inbound_call(queue="sales")
    advance(clock, 0.5)
    assert caller.uniqueid in router.waiting and agent.state is AgentState.PAUSED

    # busy on the next try: counted with its reason, retried again
    pbx.set_registered("1001", True)
    pbx.phones["1001"].channel = "a-private-call"
    advance(clock, 4.0)
    assert failures(registry, "busy") == 1 and agent.pause_reason == NO_PHONE
    pbx.phones["1001"].channel = None
    advance(clock, 8.5)
    leg = phone.mirror.get(acd.endpoints["agent0"].line_call)
    assert leg is not None and leg.bridge_id is not None, "the leg is in its bridge"
    assert agent.state is AgentState.BUSY, "ready by itself, and the waiting caller is put through"
    assert phone.mirror.get(caller.uniqueid).bridge_id == leg.bridge_id


def test_retries_are_bounded_and_ready_while_the_leg_is_down_does_not_open_routing(warnings):
    clock, registry = task.Clock(), CollectorRegistry()
    pbx, _phone, router, acd = build(clock, registry, nail_retries=3)
    pbx.set_registered("1001", False)
    acd.nail_up("agent0", ["sales"])
    advance(clock, 120)
    assert failures(registry, "failed") == 3, "at most nail_retries in a row"
    assert any("gave up" in w for w in warnings)
    agent = router.agents["agent0"]
    assert agent.pause_reason == NO_PHONE

    # ready through the API: remembered, not applied without a leg; it starts a nail-up
    acd.ready("agent0")
    assert agent.state is AgentState.PAUSED and agent.pause_reason == NO_PHONE
    advance(clock, 0.2)
    assert failures(registry, "failed") == 4, "ready tried the phone again"
    pbx.set_registered("1001", True)
    advance(clock, 3)  # the retry after 1 s, and the phone's answer
    assert acd.has_leg("agent0") and agent.state is AgentState.READY


def test_a_hung_up_phone_is_not_rung_again_until_the_agent_is_set_ready():
    clock, registry = task.Clock(), CollectorRegistry()
    pbx, phone, router, acd = build(clock, registry)
    acd.nail_up("agent0", ["sales"])
    advance(clock, 1)
    acd.pause("agent0", "coaching")
    leg = acd.endpoints["agent0"].line_call
    pbx.hangup_channel(pbx.channels[leg], 16)  # the agent put the phone down
    advance(clock, 30)
    agent = router.agents["agent0"]
    assert agent.pause_reason == PHONE_HUNG_UP and not acd.has_leg("agent0")
    caller = pbx.inbound_call(queue="sales")
    acd.ready("agent0")
    assert agent.pause_reason == NO_PHONE, "no routing before the leg is back"
    advance(clock, 1)
    assert acd.has_leg("agent0") and agent.state is AgentState.BUSY
    assert phone.mirror.get(caller.uniqueid).bridge_id is not None


def test_a_nailed_agent_who_logs_out_has_the_phone_hung_up_and_rung_at_the_next_login():
    """QA round 3 (minor): a logout left the agent's phone in its conference
    for good -- the phone "in a call" after the shift, a channel on the PBX."""
    clock, registry = task.Clock(), CollectorRegistry()
    pbx, _phone, router, acd = build(clock, registry)
    acd.login("agent0", ["sales"])
    advance(clock, 1)
    leg = acd.endpoints["agent0"].line_call
    assert leg in pbx.channels and acd.has_leg("agent0")
    acd.logout("agent0")
    advance(clock, 1)
    assert leg not in pbx.channels, "the phone still on the line after the logout"
    assert not router.agents["agent0"].logged_in
    advance(clock, 30)
    assert not [c for c in pbx.channels.values() if c.far == "agent"], "rung again by itself"
    acd.login("agent0", ["sales"])
    advance(clock, 1)
    assert acd.has_leg("agent0") and router.agents["agent0"].state is AgentState.READY


# -- over AMI: the assembled server, a PBX restart, a running campaign ----------------
FAST = {
    "outcomes": {"live": 0.6, "machine": 0.1, "no_answer": 0.0, "busy": 0.3, "invalid": 0.0},
    "ring": {"dist": "constant", "value": 0.3},
    "talk": {"dist": "constant", "value": 1.0},
    "wrapup": {"dist": "constant", "value": 0.5},
    "amd": {"delay": 0.2, "person_misread": 0.0, "machine_detected": 1.0},
}
AGENTS = ("agent1001", "agent1002")


@pytest.fixture
def assembled(tmp_path) -> Iterator[Any]:
    pbx = SimPbx(reactor, seed=5, agents=2, agent_answer_delay=0.05, workload=parse_workload(FAST))
    server = SimAmiServer(pbx, reactor)
    server.listen(0)
    url = f"sqlite:///{tmp_path / 'nail.db'}"
    db.upgrade(url)
    engine = db.make_engine(url)
    db.add_user(engine, "boss", hash_password("boss-password"), "supervisor", None)
    campaign = _demo_campaign(url, tmp_path)
    campaign = dataclasses.replace(campaign, settings=campaign.settings.with_changes(wrap_up=0.5))
    queues = ("sales", DEMO_CAMPAIGN)
    settings = Settings(
        http=HttpSettings(host="127.0.0.1", port=0),
        database=DatabaseSettings(url=url),
        pbxs=(
            PbxSettings(
                "sim", *server.address, secret="secret", backoff_initial=0.05, backoff_max=0.2
            ),
        ),
        routing=RoutingSettings(
            queues=tuple(QueueConfig(q) for q in queues),
            agents=tuple(
                AgentSettings(id=a, endpoint=a[-4:], mode="nailed", queues=queues, auto_login=True)
                for a in AGENTS
            ),
        ),
        campaigns=(campaign,),
    )
    app = Dirigent(settings, CollectorRegistry())
    app.service.startService()
    try:
        yield app, pbx, server
    finally:
        if app.service.running:
            run(app.service.stopService().asFuture(LOOP))
        stop_sim(pbx, server)
        engine.dispose()


def test_after_a_pbx_restart_agents_are_nailed_up_again_and_nobody_joins_an_empty_bridge(
    assembled,
):
    app, pbx, server = assembled
    acd = app.acd
    (voice,) = app.voices.values()  # the one PBX's voice channel
    runner = app.campaigns.campaigns[DEMO_CAMPAIGN].runner
    empty_joins: list[str] = []

    def watch(headers: Any) -> None:
        h = dict(headers)
        joining = h.get("Event") == "Newexten" and h.get("Context") == "dirigent-join"
        if joining and h.get("Application") == "Hangup":  # no bridge of that agent there
            empty_joins.append(h.get("Uniqueid", ""))

    pbx.subscribe(watch)
    run(wait_for(lambda: all(acd.has_leg(a) for a in AGENTS), what="legs up"))
    run(wait_for(lambda: runner.stats.connected >= 2, timeout=20, what="the campaign connects"))
    boss = token(app, "boss")
    status, _ = call(app, "POST", "agents/agent1002/pause", {"reason": "lunch"}, boss)
    assert status == 200

    # core restart now: every call hung up, agent legs too, then the link closes
    server.shutdown()
    run(
        wait_for(
            lambda: all(acd.router.agents[a].pause_reason == PBX_LOST for a in AGENTS),
            what="agents shown 'pbx lost'",
        )
    )
    run(wait_for(lambda: not app.sessions["sim"].connected, what="link down"))
    # ready through the API while the leg is down does not open routing
    status, view = call(app, "POST", "agents/agent1001/ready", {}, boss)
    assert status == 200 and view["state"] == "paused" and view["pause_reason"] == PBX_LOST

    server.restart()
    run(wait_for(lambda: app.sessions["sim"].connected, what="reconnected"))
    run(
        wait_for(
            lambda: all(acd.has_leg(a) for a in AGENTS),
            timeout=15,
            what="every agent nailed up again by itself",
        )
    )
    # each agent has a leg in its own bridge on the PBX side
    for agent in AGENTS:
        uid = voice.endpoints[agent].line_call
        chan = pbx.channels[uid]
        assert chan.bridge is not None and pbx.bridges[chan.bridge].owner == agent
    # back to what they were: ready (and working the campaign), and the lunch pause
    run(
        wait_for(
            lambda: acd.router.agents["agent1001"].state is not AgentState.PAUSED,
            what="agent1001 working again",
        )
    )
    assert acd.router.agents["agent1002"].pause_reason == "lunch"
    connected = runner.stats.connected
    run(wait_for(lambda: runner.stats.connected > connected, timeout=20, what="calls again"))
    settle(0.5)
    assert empty_joins == [], "a person was moved into an agent's bridge that was not there"
