"""Campaigns that share agents, in the assembled server (QA5 finding 1).

Each campaign paced on the same ready agents: three progressive campaigns
with the same three nailed agents dialed seven lines for them at once, and
the persons who found every agent taken by another campaign's heard the
abandon message (one campaign abandoned every person it reached, on the
simulated PBX and on the real Asterisk).  A campaign now leaves to the
others the agents their lines in flight will want."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import func, select
from twisted.internet import reactor

from asterisk.session import PbxSettings
from core.events import DialMode
from dialer.campaign import CampaignSettings, CampaignSetup, validate
from dialer.compliance import Policy
from dirigent.cli.server import DEMO_POLICY
from dirigent.config import (
    AgentSettings,
    DatabaseSettings,
    HttpSettings,
    RoutingSettings,
    Settings,
)
from dirigent.service import Dirigent
from routing.model import QueueConfig
from sim.ami_server import SimAmiServer
from sim.pbx import SimPbx
from sim.workload import parse_workload
from store import db
from store.lists_import import import_list
from tests.conftest import LOOP, run, settle, stop_sim, wait_for

#: every answer a person, at once; short calls, so agents come free often
PERSONS = {
    "outcomes": {"live": 1.0, "machine": 0.0, "no_answer": 0.0, "busy": 0.0, "invalid": 0.0},
    "ring": {"dist": "constant", "value": 0.4},
    "talk": {"dist": "constant", "value": 1.0},
    "wrapup": {"dist": "constant", "value": 0.2},
    "amd": {"delay": 0.1, "person_misread": 0.0, "machine_detected": 1.0},
}
AGENTS = ("agent1001", "agent1002", "agent1003")
CAMPAIGNS = ("north", "south", "west")


def campaign(name: str, mode: str) -> CampaignSetup:
    caller_id = "+442079460999"
    return CampaignSetup(
        settings=validate(
            CampaignSettings(
                name,
                mode=DialMode(mode),
                caller_id=caller_id,
                country="GB",
                windows=("day",),
                wrap_up=1.0,
            )
        ),
        policy=Policy.parse(DEMO_POLICY, "test policy"),
        caller_id=caller_id,
        timezone="Europe/London",
        auto_start=True,
    )


@pytest.fixture
def persons() -> Iterator[SimAmiServer]:
    pbx = SimPbx(
        reactor, seed=5, agents=3, agent_answer_delay=0.05, workload=parse_workload(PERSONS)
    )
    server = SimAmiServer(pbx, reactor)
    server.listen(0)
    yield server
    stop_sim(pbx, server)


def serve(server: SimAmiServer, tmp_path: Any, mode: str) -> tuple[Dirigent, Any]:
    host, port = server.address
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    db.upgrade(url)
    engine = db.make_engine(url)
    for n, name in enumerate(CAMPAIGNS):
        path = tmp_path / f"{name}.csv"
        path.write_text(
            "phone,first_name\n" + "".join(f"+44 20 7946 {n}{i:03d},P{i}\n" for i in range(300))
        )
        import_list(engine, path, name, create=True)
    settings = Settings(
        http=HttpSettings(host="127.0.0.1", port=0),
        database=DatabaseSettings(url=url),
        pbxs=(PbxSettings("sim", host, port, secret="secret", backoff_initial=0.05),),
        routing=RoutingSettings(
            queues=tuple(QueueConfig(q) for q in CAMPAIGNS),
            agents=tuple(
                AgentSettings(
                    id=a, endpoint=a[-4:], mode="nailed", queues=CAMPAIGNS, auto_login=True
                )
                for a in AGENTS
            ),
        ),
        campaigns=tuple(campaign(name, mode) for name in CAMPAIGNS),
    )
    app = Dirigent(settings, CollectorRegistry())
    app.service.startService()
    return app, engine


def test_progressive_campaigns_sharing_agents_abandon_no_one(persons, tmp_path):
    """Progressive dialing promises an agent to every line: with three
    campaigns on three agents that promise holds across them (before: 6 of
    38 persons abandoned; three predictive campaigns 44 of 74)."""
    app, engine = serve(persons, tmp_path, "progressive")
    try:
        runners = [app.campaigns.campaigns[name].runner for name in CAMPAIGNS]
        run(
            wait_for(
                lambda: sum(r.stats.connected for r in runners) >= 30,
                timeout=40,
                what="thirty persons put through",
            )
        )
        for r in runners:
            r.pause()
        settle(2.0)  # the last lines end
    finally:
        run(app.service.stopService().asFuture(LOOP))
    with engine.connect() as conn:
        answered = conn.execute(
            select(func.count()).where(db.attempt.c.answered_at.is_not(None))
        ).scalar_one()
        abandoned = conn.execute(
            select(db.attempt.c.ref).where(db.attempt.c.abandoned.is_(True))
        ).scalars()
        lost = list(abandoned)
    engine.dispose()
    assert answered >= 30
    assert not lost, f"{len(lost)} of {answered} persons abandoned: {lost[:5]}"
    assert all(r.stats.connected for r in runners), "every campaign had its share"
