"""A clean stop of the assembled server while campaign lines ring (QA5 F10).

The stop used to log off the PBX at once: lines still ringing were left to
the dialplan's net, so a person who answered then heard the abandon message
while no Dirigent ran (counted abandoned at the next start: a deploy made
abandoned calls), and the attempts stayed open, their records "dialing",
until a next start.  Now the stop first stops dialing, lets the lines placed
resolve with the PBX session, the connect path and the ACD still running,
and only then logs off."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import select
from twisted.internet import reactor
from twisted.logger import ILogObserver, formatEvent, globalLogPublisher

from asterisk.session import PbxSettings
from cti.auth import hash_password
from dirigent.cli import DEMO_CAMPAIGN, _demo_campaign
from dirigent.config import AgentSettings, DatabaseSettings, HttpSettings, RoutingSettings, Settings
from dirigent.service import Dirigent
from routing.model import QueueConfig
from sim.ami_server import SimAmiServer
from sim.pbx import SimPbx
from sim.workload import parse_workload
from store import db
from tests.conftest import LOOP, run, stop_sim, wait_for
from tests.test_api import call, token

#: every line rings 2 s: a person answers (and talks on past the test), or busy
RINGING = {
    "outcomes": {"live": 0.7, "machine": 0.0, "no_answer": 0.0, "busy": 0.3, "invalid": 0.0},
    "ring": {"dist": "constant", "value": 2.0},
    "talk": {"dist": "constant", "value": 120.0},
    "wrapup": {"dist": "constant", "value": 0.5},
    "timeouts": {"busy_detect": 2.0},
    "amd": {"delay": 0.2, "person_misread": 0.0, "machine_detected": 1.0},
}
AGENTS = ("agent1001", "agent1002", "agent1003")


@pytest.fixture
def ringing_sim() -> Iterator[tuple[SimPbx, SimAmiServer]]:
    pbx = SimPbx(
        reactor, seed=5, agents=3, agent_answer_delay=0.05, workload=parse_workload(RINGING)
    )
    server = SimAmiServer(pbx, reactor)
    server.listen(0)
    yield pbx, server
    stop_sim(pbx, server)


@pytest.fixture
def logged() -> Iterator[list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []
    observer = cast(ILogObserver, events.append)  # an observer is a callable of the event
    globalLogPublisher.addObserver(observer)
    yield events
    globalLogPublisher.removeObserver(observer)


def test_a_stop_while_lines_ring_lets_them_resolve_before_it_logs_off(
    ringing_sim, tmp_path, logged
):
    pbx, server = ringing_sim
    host, port = server.address
    url = f"sqlite:///{tmp_path / 'stop.db'}"
    db.upgrade(url)
    engine = db.make_engine(url)
    db.add_user(engine, "boss", hash_password("boss-password"), "supervisor", None)
    campaign = _demo_campaign(url, tmp_path)
    # one line per ready agent: every person answering has an agent free
    campaign = campaign.model_copy(
        update={"settings": campaign.settings.with_changes(mode="progressive", wrap_up=1.0)}
    )
    queues = ("sales", DEMO_CAMPAIGN)
    settings = Settings(
        http=HttpSettings(host="127.0.0.1", port=0),
        database=DatabaseSettings(url=url),
        pbxs=(PbxSettings("sim", host, port, secret="secret", backoff_initial=0.05),),
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
        assert app.campaigns is not None
        runner = app.campaigns.campaigns[DEMO_CAMPAIGN].runner

        def ringing() -> list[str]:
            return [a.id for a in runner.live.values() if a.answered is None]

        run(wait_for(lambda: len(ringing()) >= 3, timeout=20, what="three lines ringing"))
        placed = set(ringing())
        boss = token(app, "boss")
        stopping = app.service.stopService()
        # while it stops: no new dials, and a supervisor's start is refused
        status, body = call(app, "POST", f"campaigns/{DEMO_CAMPAIGN}/start", {}, boss)
        assert status == 503 and "stopping" in body["error"], body
        run(stopping.asFuture(LOOP))
    finally:
        if app.service.running:
            run(app.service.stopService().asFuture(LOOP))

    assert runner.stats.dials == len(placed), "no new dials once the stop began"
    with engine.connect() as conn:
        attempts = conn.execute(select(db.attempt)).all()
        records = dict(conn.execute(select(db.record.c.id, db.record.c.status)).all())
    engine.dispose()
    assert {a.ref for a in attempts} == placed
    for a in attempts:
        # each line resolved before the PBX session stopped: rang out busy, or
        # the person was put through to an agent -- none was left ringing
        assert a.outcome == "busy" or (a.connected_at is not None and a.agent_code in AGENTS), a
        assert not a.abandoned, "no person answered into the abandon message"
        if a.outcome is not None:
            assert records[a.record_id] != "dialing", "a line that ended leaves its record"
    assert any(a.connected_at is not None for a in attempts), "a person was put through"
    # the conversations go on on the PBX (the next start takes them over)
    talking = [a.channel_id for a in runner.live.values() if a.connected is not None]
    assert talking and all(pbx.channels[c].alive for c in talking)
    text = "\n".join(str(formatEvent(e)) for e in logged)
    assert f"waiting for {len(placed)} lines in progress" in text, text
    assert f"the {len(placed)} lines in progress resolved" in text
    assert "left to the PBX" not in text, "the stop waited for the ringing, not its bound"
