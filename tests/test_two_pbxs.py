"""Two PBXs for real: two simulated Asterisks over AMI/TCP, one Dirigent.

Each agent, queue and campaign belongs to a PBX.  Callers on either PBX are
answered by that PBX's own agents (seen on each PBX: the customer's channel
is bridged with a phone of that PBX, never one of the other's), and a
campaign on the second PBX dials there only: the first sees no Originate.
Both PBXs number their channels alike and both have phones 1001 and 1002,
so nothing may be told apart by a call id or an endpoint alone.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from twisted.internet import reactor

from asterisk.session import PbxSettings
from core.events import InteractionChanged, Stage
from dirigent.cli import DEMO_CAMPAIGN, _demo_campaign
from dirigent.config import (
    AgentSettings,
    DatabaseSettings,
    HttpSettings,
    RoutingSettings,
    Settings,
    parse_settings,
)
from dirigent.service import Dirigent
from routing.model import QueueConfig
from sim.ami_server import SimAmiServer
from sim.pbx import SimPbx
from sim.workload import parse_workload
from store import db
from tests.conftest import LOOP, run, stop_sim, wait_for
from tests.test_campaign_service import FAST

#: agent -> (its PBX, its phone there): the same phone numbers on both PBXs
AGENTS = {
    "anna": ("east", "1001"),
    "arne": ("east", "1002"),
    "bea": ("west", "1001"),
    "ben": ("west", "1002"),
}


@pytest.fixture
def sims() -> Iterator[dict[str, tuple[SimPbx, SimAmiServer]]]:
    made: dict[str, tuple[SimPbx, SimAmiServer]] = {}
    for seed, name in enumerate(("east", "west"), start=1):
        pbx = SimPbx(
            reactor,
            seed=seed,
            agents=2,
            agent_answer_delay=0.05,
            inbound_talk=30.0,
            workload=parse_workload(FAST),
        )
        server = SimAmiServer(pbx, reactor, secret=f"secret-{name}")
        server.listen(0)
        made[name] = (pbx, server)
    yield made
    for pbx, server in made.values():
        stop_sim(pbx, server)


def _bridged_phones(pbx: SimPbx) -> dict[str, str]:
    """Customer channel -> the phone (endpoint) it is bridged with, on this PBX."""
    out = {}
    for bridge in pbx.bridges.values():
        members = [pbx.channels[m] for m in bridge.members if m in pbx.channels]
        customers = [c for c in members if c.far == "customer"]
        phones = [c.agent or bridge.owner for c in members if c.far == "agent"]
        if bridge.owner is not None:  # an agent's nailed-up bridge
            phones.append(bridge.owner)
        for c in customers:
            if phones and phones[0] is not None:
                out[c.uniqueid] = phones[0]
    return out


def _two_pbx_settings(addresses: dict[str, Any], tmp_path: Any) -> Settings:
    """East and west, each with two agents and a queue; the demo campaign on west."""
    url = f"sqlite:///{tmp_path / 'two.db'}"
    db.upgrade(url)
    campaign = _demo_campaign(url, tmp_path)
    campaign = dataclasses.replace(
        campaign, settings=campaign.settings.with_changes(wrap_up=1.0), pbx="west"
    )
    queues = {"east": ("sales-east",), "west": ("sales-west", DEMO_CAMPAIGN)}
    settings = Settings(
        http=HttpSettings(host="127.0.0.1", port=0),
        database=DatabaseSettings(url=url),
        pbxs=tuple(
            PbxSettings(
                name,
                addresses[name][0],
                addresses[name][1],
                secret=f"secret-{name}",
                backoff_initial=0.05,
            )
            for name in ("east", "west")
        ),
        routing=RoutingSettings(
            queues=(
                QueueConfig("sales-east"),
                QueueConfig("sales-west"),
                QueueConfig(DEMO_CAMPAIGN),
            ),
            agents=tuple(
                AgentSettings(
                    id=agent,
                    endpoint=phone,
                    # the campaign's agents are nailed up (as predictive dialing needs)
                    mode="nailed" if pbx == "west" else "ring",
                    queues=queues[pbx],
                    auto_login=True,
                    pbx=pbx,
                )
                for agent, (pbx, phone) in AGENTS.items()
            ),
            queue_pbx={"sales-east": "east", "sales-west": "west", DEMO_CAMPAIGN: "west"},
        ),
        campaigns=(campaign,),
    )
    return settings


def test_calls_on_two_pbxs_go_to_their_own_agents_and_a_campaign_dials_only_on_its_pbx(
    sims, tmp_path
):
    addresses: dict[str, Any] = {name: server.address for name, (_pbx, server) in sims.items()}
    pbxs = {name: pbx for name, (pbx, _server) in sims.items()}
    settings = _two_pbx_settings(addresses, tmp_path)
    app = Dirigent(settings, CollectorRegistry())
    answered: dict[str, str] = {}  # interaction -> agent

    def on_change(event: InteractionChanged) -> None:
        if event.stage is Stage.ANSWERED and event.agent is not None:
            answered[event.interaction] = event.agent

    assert app.acd is not None
    app.acd.bus.subscribe(InteractionChanged, on_change)
    app.service.startService()
    try:
        run(wait_for(lambda: all(s.connected for s in app.sessions.values()), what="both PBXs"))
        run(
            wait_for(
                lambda: all(app.router.agents[a].logged_in for a in AGENTS),
                timeout=15,
                what="every agent logged in",
            )
        )
        east, west = pbxs["east"], pbxs["west"]
        # the campaign on the west PBX is dialing there
        runner = app.campaigns.campaigns[DEMO_CAMPAIGN].runner
        run(wait_for(lambda: runner.stats.dials >= 2, timeout=20, what="the campaign dials"))
        # one caller on each PBX, into that PBX's queue
        seen: dict[str, dict[str, str]] = {"east": {}, "west": {}}
        callers = {
            "east": east.inbound_call(queue="sales-east").uniqueid,
            "west": west.inbound_call(queue="sales-west").uniqueid,
        }

        def both_bridged() -> bool:
            for name, pbx in pbxs.items():
                seen[name].update(_bridged_phones(pbx))
            return all(callers[n] in seen[n] for n in callers)

        run(wait_for(both_bridged, timeout=20, what="both callers with an agent"))
        phones = {pbx: {p for _a, (home, p) in AGENTS.items() if home == pbx} for pbx in pbxs}
        for name in pbxs:
            # on each PBX, the caller talks to a phone of that PBX
            assert seen[name][callers[name]] in phones[name]
        # and in Dirigent, to an agent of that PBX
        run(
            wait_for(
                lambda: all(f"{n}:{callers[n]}" in answered for n in callers),
                what="both answers recorded",
            )
        )
        for name in pbxs:
            agent = answered[f"{name}:{callers[name]}"]
            assert AGENTS[agent][0] == name, f"{name}'s caller went to {agent}"
        assert west.stats.get("originate", 0) > 0, "the campaign and west's agents dial on west"
        assert east.stats.get("originate", 0) == 0, "nothing is dialled on east"
    finally:
        run(app.service.stopService().asFuture(LOOP))


def test_a_call_on_one_pbx_for_a_queue_of_the_other_goes_to_the_fallback_at_once(sims, tmp_path):
    """A DID routed to the wrong PBX: no agent of that PBX may take a caller
    of the other's queue, so the caller is sent to the PBX's fallback at once
    with a warning naming both PBXs (it waited a minute of music for nothing,
    then fell back with nothing said: found by exploratory testing)."""
    from twisted.logger import globalLogPublisher

    addresses: dict[str, Any] = {name: server.address for name, (_pbx, server) in sims.items()}
    east = sims["east"][0]
    app = Dirigent(_two_pbx_settings(addresses, tmp_path), CollectorRegistry())
    said: list[str] = []

    def observe(event: dict[str, Any]) -> None:
        if "which is on PBX" in event.get("log_format", ""):
            said.append(event["log_format"].format(**event))

    globalLogPublisher.addObserver(observe)
    app.service.startService()
    try:
        run(wait_for(lambda: all(s.connected for s in app.sessions.values()), what="both PBXs"))
        caller = east.inbound_call(queue="sales-west")  # the west's queue, on east
        run(wait_for(lambda: said, timeout=10, what="the warning"))
        assert "on PBX east for queue sales-west, which is on PBX west" in said[0]
        run(
            wait_for(
                lambda: caller.context == "dirigent-inbound" and caller.priority >= 7,
                timeout=5,
                what="the caller sent to the fallback",
            )
        )
        assert not caller.on_moh and caller.alive, "in the PBX's fallback queue, not waiting"
        counted = {"queue": "sales-west", "channel": "voice"}
        assert app.registry.get_sample_value("dirigent_interactions_fallback_total", counted) == 1
    finally:
        globalLogPublisher.removeObserver(observe)
        run(app.service.stopService().asFuture(LOOP))


def test_each_queue_agent_and_campaign_names_its_pbx_when_there_are_several():
    base = {
        "pbx": [
            {"name": "east", "host": "127.0.0.1", "secret": "x"},
            {"name": "west", "host": "127.0.0.1", "secret": "y"},
        ],
        "queue": [{"name": "sales", "pbx": "east"}],
        "agent": [{"id": "anna", "endpoint": "1001", "queues": ["sales"], "pbx": "east"}],
    }
    settings = parse_settings(base, env={})
    assert settings.routing.queue_pbx == {"sales": "east"}
    assert settings.routing.agents[0].pbx == "east"
    with pytest.raises(ValueError, match=r"agent\[0\]\.pbx: required with several PBXs"):
        parse_settings({**base, "agent": [{"id": "anna", "endpoint": "1001"}]}, env={})
    with pytest.raises(ValueError, match=r"queue\[0\]\.pbx: unknown PBX 'north'"):
        parse_settings({**base, "queue": [{"name": "sales", "pbx": "north"}]}, env={})
    wrong = [{"id": "bea", "endpoint": "1001", "queues": ["sales"], "pbx": "west"}]
    with pytest.raises(ValueError, match=r"agent\[0\]\.queues: queue 'sales' is on PBX 'east'"):
        parse_settings({**base, "agent": wrong}, env={})
    # with one PBX, nothing needs naming
    one = {
        "pbx": [base["pbx"][0]],
        "queue": [{"name": "sales"}],
        "agent": [{"id": "anna", "endpoint": "1001", "queues": ["sales"]}],
    }
    assert parse_settings(one, env={}).routing.agents[0].pbx == "east"


def test_a_transfer_to_a_queue_or_an_agent_of_the_other_pbx_is_refused_and_nothing_moves():
    """A call cannot leave its PBX: the hub refuses the transfer, naming the
    field, and the call stays with the agent handling it."""
    from twisted.internet.task import Clock

    from center.hub import Hub
    from routing.agent import Agent
    from routing.model import Channel, Interaction
    from routing.model import RoutingError as Refused
    from routing.router import Router

    router = Router({"sales": QueueConfig("sales"), "support": QueueConfig("support")})
    for agent in ("anna", "ben"):
        router.add_agent(Agent(agent))
    hub = Hub(
        router,
        Clock(),
        agent_pbx={"anna": "first", "ben": "second"},
        queue_pbx={"sales": "first", "support": "second"},
    )
    hub.login("anna", ["sales"])
    hub.login("ben", ["support"])
    hub.enqueue(Interaction("i-1", Channel.VOICE, "sales", 0.0))
    hub.accept("anna", "i-1")
    with pytest.raises(Refused, match="queue 'support' is on PBX 'second'") as err:
        hub.transfer("anna", "i-1", queue="support")
    assert err.value.field == "queue"
    with pytest.raises(Refused, match="agent ben is on PBX 'second'") as err:
        hub.transfer("anna", "i-1", to_agent="ben")
    assert err.value.field == "agent"
    assert router.handling["i-1"] == "anna" and not router.waiting


def test_a_campaign_resumes_on_its_own_pbxs_first_resync_not_another_ones(sims, tmp_path):
    """West is down when Dirigent starts; east syncs first.  The campaign on
    west is not recovered then: a call a previous run left open on west is
    not closed while nobody can know whether it still talks, and nothing is
    dialled; once west is up and synced, the call is settled (west has no
    such channel: "unknown") and the campaign resumes there."""
    from dialer.campaign import Lead
    from dialer.runner import Attempt
    from store.dialer import DbAttemptLog, ensure_campaign

    addresses: dict[str, Any] = {name: server.address for name, (_pbx, server) in sims.items()}
    west, west_server = sims["west"]
    west_server.stop()
    settings = _two_pbx_settings(addresses, tmp_path)
    engine = db.make_engine(settings.database.url)
    ensure_campaign(engine, DEMO_CAMPAIGN)
    lead = Lead(None, "+4930111222")
    earlier = Attempt("earlier-1", DEMO_CAMPAIGN, lead, 1.0e9, "1700000000.1", pbx="west")
    DbAttemptLog(engine, DEMO_CAMPAIGN).begin(earlier)

    def outcome() -> str | None:
        with engine.connect() as conn:
            return (
                conn.execute(db.attempt.select().where(db.attempt.c.ref == "earlier-1"))
                .one()
                .outcome
            )

    app = Dirigent(settings, CollectorRegistry())
    app.service.startService()
    try:
        run(wait_for(lambda: app.sessions["east"].connected, what="east"))
        runner = app.campaigns.campaigns[DEMO_CAMPAIGN].runner
        east_agents = [a for a, (pbx, _phone) in AGENTS.items() if pbx == "east"]
        run(
            wait_for(
                lambda: all(app.router.agents[a].logged_in for a in east_agents),
                timeout=15,
                what="east synced and its agents logged in",
            )
        )
        run(asyncio.sleep(1.0))  # what a recovery after east's resync would have done by now
        assert outcome() is None, "west's call is not settled by east's resync"
        assert runner.stats.dials == 0
        west_server.restart()
        run(wait_for(lambda: outcome() == "unknown", timeout=15, what="settled after west's"))
        run(wait_for(lambda: runner.status == "running", timeout=15, what="resumed on west"))
        run(wait_for(lambda: runner.stats.dials >= 1, timeout=15, what="dials on west"))
        assert west.stats.get("originate", 0) > 0
        assert sims["east"][0].stats.get("originate", 0) == 0
    finally:
        run(app.service.stopService().asFuture(LOOP))


def test_agents_and_campaigns_name_their_pbx_and_show_it_down(sims, tmp_path, monkeypatch, capsys):
    """QA4 finding 6: with two PBXs the agent list (both have a 1001), the
    campaigns and their idle reason say which PBX, an agent whose PBX is
    down shows it, and the PBX's channel gauge keeps no stale count."""
    from cti.auth import hash_password
    from dirigent.cli import main
    from tests.test_api import call_sync

    addresses: dict[str, Any] = {name: server.address for name, (_pbx, server) in sims.items()}
    settings = _two_pbx_settings(addresses, tmp_path)
    engine = db.make_engine(settings.database.url)
    db.add_user(engine, "boss", hash_password("boss-password"), "supervisor", None)
    engine.dispose()
    app = Dirigent(settings, CollectorRegistry())
    app.service.startService()

    def api(path: str, tok: str | None = None, body: object = None) -> tuple[int, Any]:
        method = "GET" if body is None else "POST"
        return run(LOOP.run_in_executor(None, lambda: call_sync(app, method, path, body, tok)))

    try:
        run(wait_for(lambda: all(s.connected for s in app.sessions.values()), what="both PBXs"))
        run(
            wait_for(
                lambda: all(app.router.agents[a].logged_in for a in AGENTS),
                timeout=15,
                what="every agent logged in",
            )
        )
        _status, login = api("login", body={"username": "boss", "password": "boss-password"})
        boss = login["token"]
        status, agents = api("agents", boss)
        assert status == 200
        assert {a["id"]: (a["pbx"], a["pbx_up"]) for a in agents} == {
            agent: (pbx, True) for agent, (pbx, _phone) in AGENTS.items()
        }
        status, campaigns = api("campaigns", boss)
        assert status == 200 and [c["pbx"] for c in campaigns] == ["west"]
        assert app.registry.get_sample_value("dirigent_pbx_channels", {"pbx": "west"}) is not None

        _west, west_server = sims["west"]
        west_server.drop_connections()
        west_server.stop()
        run(wait_for(lambda: not app.sessions["west"].connected, what="west down"))
        status, bea = api("agents/bea", boss)
        assert status == 200 and (bea["pbx"], bea["pbx_up"]) == ("west", False)
        status, anna = api("agents/anna", boss)
        assert status == 200 and (anna["pbx"], anna["pbx_up"]) == ("east", True)
        runner = app.campaigns.campaigns[DEMO_CAMPAIGN].runner
        run(wait_for(lambda: runner.idle_reason == "PBX west down", what="the reason", timeout=5))
        status, view = api(f"campaigns/{DEMO_CAMPAIGN}", boss)
        assert (view["status"], view["idle_reason"], view["pbx"]) == (
            "idle",
            "PBX west down",
            "west",
        )
        # no channel count is known for a PBX that is down: the series goes
        assert app.registry.get_sample_value("dirigent_pbx_channels", {"pbx": "west"}) is None
        assert app.registry.get_sample_value("dirigent_pbx_channels", {"pbx": "east"}) is not None
        # the CLI names the PBX too
        monkeypatch.setenv("DIRIGENT_PASSWORD", "boss-password")
        server = f"http://127.0.0.1:{app.http_port}"
        argv = ["campaign", "status", DEMO_CAMPAIGN, "--server", server, "--user", "boss"]
        capsys.readouterr()
        assert run(LOOP.run_in_executor(None, lambda: main(argv))) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"{DEMO_CAMPAIGN} on PBX west: idle (PBX west down);"), out
    finally:
        run(app.service.stopService().asFuture(LOOP))
