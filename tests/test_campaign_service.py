"""A predictive campaign in the assembled server: simulated PBX over real AMI/TCP,
SQLite, HTTP API, metrics, and a restart that reconciles what was left open."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import func, select
from twisted.internet import reactor

from asterisk.session import PbxSettings
from core.events import AgentStateChanged
from cti.auth import hash_password
from dialer.runner import Attempt
from dirigent.cli import DEMO_CAMPAIGN, _demo_campaign
from dirigent.config import AgentSettings, DatabaseSettings, HttpSettings, RoutingSettings, Settings
from dirigent.service import Dirigent
from routing.model import Channel, QueueConfig
from sim.ami_server import SimAmiServer
from sim.pbx import SimChannel, SimPbx
from sim.workload import parse_workload
from store import db
from tests.conftest import LOOP, run, settle, stop_sim, wait_for
from tests.test_api import call, token

FAST = {
    "outcomes": {"live": 0.5, "machine": 0.2, "no_answer": 0.0, "busy": 0.3, "invalid": 0.0},
    "ring": {"dist": "constant", "value": 0.3},
    "talk": {"dist": "constant", "value": 1.5},
    "wrapup": {"dist": "constant", "value": 0.5},
    "amd": {"delay": 0.2, "person_misread": 0.0, "machine_detected": 1.0},
}
AGENTS = ("agent1001", "agent1002", "agent1003")


@pytest.fixture
def fast_sim() -> Iterator[tuple[SimPbx, SimAmiServer]]:
    pbx = SimPbx(reactor, seed=11, agents=3, agent_answer_delay=0.05, workload=parse_workload(FAST))
    server = SimAmiServer(pbx, reactor)
    server.listen(0)
    yield pbx, server
    stop_sim(pbx, server)


@pytest.fixture
def setup(fast_sim, tmp_path) -> Iterator[Any]:
    _pbx, server = fast_sim
    host, port = server.address
    url = f"sqlite:///{tmp_path / 'campaign.db'}"
    db.upgrade(url)
    engine = db.make_engine(url)
    db.add_user(engine, "boss", hash_password("boss-password"), "supervisor", None)
    db.add_user(engine, "anna", hash_password("anna-password"), "agent", "agent1001")
    campaign = _demo_campaign(url, tmp_path)
    # agents are ready again 1 s after a call (the demo gives them 15 s)
    campaign = dataclasses.replace(campaign, settings=campaign.settings.with_changes(wrap_up=1.0))
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
    started: list[Dirigent] = []

    def start() -> Dirigent:
        app = Dirigent(settings, CollectorRegistry())
        app.service.startService()
        started.append(app)
        return app

    yield start, engine
    for app in started:
        if app.service.running:
            run(app.service.stopService().asFuture(LOOP))
    engine.dispose()


def test_a_campaign_dials_connects_is_controlled_over_the_api_and_survives_a_restart(
    setup, fast_sim
):
    start, engine = setup
    pbx, _server = fast_sim
    app = start()
    runner = app.campaigns.campaigns[DEMO_CAMPAIGN].runner
    # auto_start after the first resync; persons reach the nailed-up agents
    run(wait_for(lambda: runner.stats.connected >= 3, timeout=20, what="three connects"))
    assert runner.status == "running"

    boss, anna = token(app, "boss"), token(app, "anna")
    status, _body = call(app, "GET", "campaigns", token=anna)
    assert status == 403, "agents do not control campaigns"
    status, views = call(app, "GET", "campaigns", token=boss)
    assert status == 200 and [v["campaign"] for v in views] == [DEMO_CAMPAIGN]
    assert views[0]["dials"] >= 3 and views[0]["mode"] == "predictive"

    status, body = call(app, "PATCH", f"campaigns/{DEMO_CAMPAIGN}", {"abandon_target": 0.05}, boss)
    assert status == 400 and body["field"] == "abandon_target" and "3.0%" in body["error"]
    status, body = call(
        app,
        "PATCH",
        f"campaigns/{DEMO_CAMPAIGN}",
        {"abandon_target": 0.02, "max_lines_per_agent": 2, "ring_timeout": 9},
        boss,
    )
    assert status == 400 and body["field"] == "ring_timeout"
    assert runner.settings.max_lines_per_agent == 3.0, "a refused change changes nothing"
    status, view = call(
        app,
        "PATCH",
        f"campaigns/{DEMO_CAMPAIGN}",
        {"abandon_target": 0.02, "max_lines_per_agent": 2},
        boss,
    )
    assert status == 200 and view["abandon_target"] == 0.02
    assert runner.strategy.limit == 0.02
    status, _body = call(app, "PATCH", "campaigns/nope", {"abandon_target": 0.02}, boss)
    assert status == 404

    status, view = call(app, "POST", f"campaigns/{DEMO_CAMPAIGN}/pause", {}, boss)
    assert status == 200 and view["status"] == "paused"
    dials = runner.stats.dials
    settle(1.0)
    assert runner.stats.dials == dials, "no new dials while paused"

    # the live figures on /metrics, once a call has ended
    import urllib.request

    run(wait_for(lambda: runner.stats.outcomes.get("answered"), timeout=10, what="a call ended"))

    metrics = run(
        LOOP.run_in_executor(
            None,
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{app.http_port}/metrics").read(),
        )
    ).decode()
    assert (
        f'dirigent_dialer_calls_total{{campaign="{DEMO_CAMPAIGN}",outcome="answered"}}' in metrics
    )
    assert f'dirigent_dialer_abandon_ratio{{campaign="{DEMO_CAMPAIGN}",window="day"}}' in metrics
    assert f'dirigent_campaign_records{{campaign="{DEMO_CAMPAIGN}",status="new"}}' in metrics
    assert (
        f'dirigent_list_records{{campaign="{DEMO_CAMPAIGN}",list="demo-list.csv",status="new"}}'
        in metrics
    )

    # attempts and outbound interactions are in the database
    run(app.campaigns.flush().asFuture(LOOP))  # the dialer's writes are in their thread
    app.database.recorder.flush()
    with engine.connect() as conn:
        rows = conn.execute(select(db.attempt)).all()
        interactions = conn.execute(
            select(db.interaction.c.direction, db.interaction.c.agent_code)
        ).all()
        stored = conn.execute(
            select(db.campaign.c.settings, db.campaign.c.status).where(
                db.campaign.c.name == DEMO_CAMPAIGN
            )
        ).one()
    assert len(rows) == runner.stats.dials and all(r.ref for r in rows)
    assert {r.outcome for r in rows} - {None} <= {"busy", "machine", "answered", "abandoned"}
    assert any(d == "outbound" and agent in AGENTS for d, agent in interactions)
    assert stored.settings["abandon_target"] == 0.02 and stored.status == "paused"

    # a restart while calls are up: conversations with agents go on (taken over),
    # other open attempts are closed, nothing is redialed; the running campaign
    # resumes with its changed settings
    status, _view = call(app, "POST", f"campaigns/{DEMO_CAMPAIGN}/start", {}, boss)

    def customer_leg(attempt: Attempt) -> SimChannel | None:
        chan = pbx.channels.get(attempt.channel_id)
        return chan if chan is not None and chan.alive else None

    def conversations() -> list[Attempt]:
        return [a for a in runner.live.values() if a.connected and customer_leg(a)]

    run(wait_for(lambda: bool(conversations()), what="a conversation"))
    # these customers talk on until they are hung up below, however long the
    # restart takes: with the workload's 1.5 s talk a restart slowed by a busy
    # machine found them over (closed "unknown"), and the takeover went untested
    talking: dict[str, float] = {}
    for a in conversations():
        leg = customer_leg(a)
        assert leg is not None and a.connected is not None
        for timer in leg.timers:
            if timer.active():
                timer.cancel()
        talking[a.id] = a.connected
    open_before = {a.id: a.lead.number for a in runner.live.values()}
    live_before, _abandoned = runner.ledger.counts("day", runner.clock.seconds())
    run(app.service.stopService().asFuture(LOOP))
    again = start()
    states: list[tuple[str, str]] = []  # the new process's agent states, in order
    assert again.acd is not None
    again.acd.bus.subscribe(AgentStateChanged, lambda e: states.append((e.agent, e.state.value)))
    runner2 = again.campaigns.campaigns[DEMO_CAMPAIGN].runner
    # every conversation is taken over, keeping the moment it began (before the restart)
    run(wait_for(lambda: set(talking) <= set(runner2.live), what="the conversations taken over"))
    adopted = [runner2.live[ref] for ref in talking]
    for agent in {a.agent for a in adopted}:
        # held until its call is taken over, never ready with a customer in its
        # conference: an inbound caller would have been moved in (found in review)
        seen = [state for who, state in states if who == agent]
        assert seen[0] == "paused" and "busy" in seen, seen
    assert all(a.connected == pytest.approx(talking[a.id], abs=0.01) for a in adopted)
    for a in adopted:  # the customers hang up, the new process records the ends
        leg = customer_leg(a)
        assert leg is not None, "the conversation goes on through the restart"
        pbx.hangup_channel(leg, 16)
    run(wait_for(lambda: runner2.stats.dials > 0, timeout=10, what="the campaign resumed"))
    assert runner2.settings.abandon_target == 0.02 and runner2.settings.max_lines_per_agent == 2.0
    # the view says its counts start with this server, the day's go on (found by
    # exploratory testing: "abandoned 0" beside a day at 20 % after a restart)
    status, view = call(again, "GET", f"campaigns/{DEMO_CAMPAIGN}", token=token(again, "boss"))
    assert view["since"] > runner.stats.since and view["dials"] == runner2.stats.dials
    assert view["today"]["live"] >= round(live_before, 2) > 0, "the day's live answers go on"
    # the agents' nailed-up legs survived the restart and were taken over, not rung again
    assert all(runner2.desk.known_agent(a).logged_in for a in AGENTS)

    def outcomes() -> dict[str, tuple[str | None, str | None]]:
        with engine.connect() as conn:
            rows = conn.execute(
                select(db.attempt.c.ref, db.attempt.c.outcome, db.attempt.c.agent_code).where(
                    db.attempt.c.ref.in_(list(open_before))
                )
            ).all()
        return {r.ref: (r.outcome, r.agent_code) for r in rows}

    run(wait_for(lambda: all(o for o, _ in outcomes().values()), timeout=15, what="all ended"))
    ended = outcomes()
    assert len(ended) == len(open_before)
    for ref in talking:
        outcome, agent = ended[ref]
        assert outcome == "answered" and agent in AGENTS, "the conversation was not cut off"
    with engine.connect() as conn:
        began = dict(
            conn.execute(
                select(db.attempt.c.ref, db.attempt.c.connected_at).where(
                    db.attempt.c.ref.in_(list(talking))
                )
            ).all()
        )
    for ref, connected in talking.items():
        stored_at = began[ref].replace(tzinfo=began[ref].tzinfo or dt.UTC).timestamp()
        assert stored_at == pytest.approx(connected, abs=0.01), "talk time from the real start"
    with engine.connect() as conn:
        dials = dict(
            conn.execute(
                select(db.attempt.c.e164, func.count())
                .where(db.attempt.c.e164.in_(list(open_before.values())))
                .group_by(db.attempt.c.e164)
            ).all()
        )
    assert set(dials.values()) == {1}, "never redialed blindly"


def test_a_conversation_that_ended_while_the_server_was_down_closes_server_restart(setup):
    """QA4: a campaign call connected when Dirigent stopped and ended before it
    came back was closed "pbx-lost" (the PBX was never lost) and its report
    row ended 0.27 ms before its answer (a negative talk time); the start-up
    said "closed as unknown" of it."""
    start, engine = setup
    app = start()
    runner = app.campaigns.campaigns[DEMO_CAMPAIGN].runner
    run(
        wait_for(
            lambda: any(a.connected is not None for a in runner.live.values()),
            timeout=20,
            what="a person with an agent",
        )
    )
    talking = next(a.id for a in runner.live.values() if a.connected is not None)
    run(app.service.stopService().asFuture(LOOP))  # the PBX keeps the call
    settle(2.5)  # the conversation (1.5 s) ends while no Dirigent runs
    again = start()
    run(
        wait_for(lambda: again.campaigns.campaigns[DEMO_CAMPAIGN].runner.stats.dials > 0, what="on")
    )
    run(again.campaigns.flush().asFuture(LOOP))
    again.database.recorder.flush()
    with engine.connect() as conn:
        outcome = conn.execute(select(db.attempt.c.outcome).where(db.attempt.c.ref == talking))
        assert outcome.scalar() == "server-restart"
        row = conn.execute(
            select(db.interaction.c.answered_at, db.interaction.c.ended_at).where(
                db.interaction.c.uniqueid == talking
            )
        ).one()
    assert row.answered_at is not None and row.ended_at >= row.answered_at, row


def test_a_paused_campaign_is_paused_after_a_restart(setup):
    """QA4: paused before a restart, the campaign came back "stopped" while
    its row (and the supervisor) said paused."""
    start, _engine = setup
    app = start()
    runner = app.campaigns.campaigns[DEMO_CAMPAIGN].runner
    run(wait_for(lambda: runner.stats.dials > 0, timeout=20, what="dialing"))
    boss = token(app, "boss")
    status, view = call(app, "POST", f"campaigns/{DEMO_CAMPAIGN}/pause", {}, boss)
    assert status == 200 and view["status"] == "paused"
    run(app.service.stopService().asFuture(LOOP))
    again = start()
    run(
        wait_for(
            lambda: again.campaigns.campaigns[DEMO_CAMPAIGN].runner.status != "stopped",
            what="the campaign restored",
        )
    )
    status, view = call(again, "GET", f"campaigns/{DEMO_CAMPAIGN}", token=token(again, "boss"))
    assert status == 200 and view["status"] == "paused", view
    status, view = call(again, "POST", f"campaigns/{DEMO_CAMPAIGN}/start", {}, token(again, "boss"))
    assert status == 200 and view["status"] == "running"


def test_preview_mode_over_the_api_the_agent_sees_skips_and_dials(setup):
    start, _engine = setup
    app = start()
    runner = app.campaigns.campaigns[DEMO_CAMPAIGN].runner
    boss, anna = token(app, "boss"), token(app, "anna")
    status, view = call(app, "PATCH", f"campaigns/{DEMO_CAMPAIGN}", {"mode": "preview"}, boss)
    assert status == 200 and view["mode"] == "preview"
    run(wait_for(lambda: "agent1001" in runner.previews, timeout=20, what="a preview"))
    dials = runner.stats.dials
    status, shown = call(app, "GET", "agents/agent1001/preview", token=anna)
    assert status == 200 and shown["campaign"] == DEMO_CAMPAIGN
    assert shown["customer"].startswith("+44") and shown["name"].startswith(("Alex", "Sam"))
    assert shown["attributes"]["plan"] in ("basic", "premium")
    status, _body = call(app, "POST", "agents/agent1002/preview-dial", {}, anna)
    assert status == 403, "an agent decides only about their own preview"

    status, _body = call(app, "POST", "agents/agent1001/preview-skip", {}, anna)
    assert status == 200
    run(wait_for(lambda: "agent1001" in runner.previews, timeout=10, what="the next record"))
    status, again = call(app, "GET", "agents/agent1001/preview", token=anna)
    assert again["customer"] != shown["customer"]

    status, body = call(app, "POST", "agents/agent1001/preview-dial", {}, anna)
    assert status == 200 and body["dialing"] is True
    run(app.campaigns.flush().asFuture(LOOP))  # the row is written in the dialer's thread
    with _engine.connect() as conn:
        row = conn.execute(select(db.attempt).where(db.attempt.c.ref == body["attempt"])).one()
    assert row.agent_code == "agent1001" and row.e164 == again["customer"]
    status, err = call(app, "POST", "agents/agent1001/preview-dial", {}, anna)
    assert status == 400 and err["field"] == "agent"
    assert runner.stats.dials >= dials + 1


def test_a_preview_whose_number_went_on_the_dnc_list_while_on_screen_is_not_dialed(setup, fast_sim):
    """The gate judged the record when it was claimed; a preview may stay on
    the agent's screen for minutes.  A number put on the do-not-call list
    meanwhile must not be dialed when the agent clicks dial (the gate is
    asked again at the dial): 409 naming the record, no call on the PBX, no
    attempt, and the agent gets the next record (found by exploratory
    testing: it dialed)."""
    pbx, _server = fast_sim
    start, engine = setup
    app = start()
    runner = app.campaigns.campaigns[DEMO_CAMPAIGN].runner
    boss, anna = token(app, "boss"), token(app, "anna")
    status, _view = call(app, "PATCH", f"campaigns/{DEMO_CAMPAIGN}", {"mode": "preview"}, boss)
    assert status == 200
    run(wait_for(lambda: "agent1001" in runner.previews, timeout=20, what="a preview"))
    status, shown = call(app, "GET", "agents/agent1001/preview", token=anna)
    number = shown["customer"]
    seen: list[str] = []
    pbx.subscribe(lambda m: seen.append(repr(m)))
    status, _added = call(app, "POST", "dnc", {"numbers": [number], "reason": "asked"}, boss)
    assert status == 200
    status, err = call(app, "POST", "agents/agent1001/preview-dial", {}, anna)
    assert status == 409 and err["field"] == "record", err
    assert number in err["error"] and "do-not-call" in err["error"]
    run(wait_for(lambda: "agent1001" in runner.previews, timeout=10, what="the next record"))
    status, after = call(app, "GET", "agents/agent1001/preview", token=anna)
    assert after["customer"] != number
    settle(0.5)
    assert not any(number.lstrip("+") in m for m in seen), "the PBX never saw a call to it"
    with engine.connect() as conn:
        rows = conn.execute(select(db.attempt).where(db.attempt.c.e164 == number)).all()
    assert rows == [], "no attempt: it never was a dial"
    with engine.connect() as conn:
        record = conn.execute(select(db.record).where(db.record.c.e164 == number)).one()
        claimed = conn.execute(select(db.hopper).where(db.hopper.c.record_id == record.id)).all()
    assert record.status == "scheduled" and claimed == [], "back in the pool, not claimed"
    assert runner.stats.refused == {"dnc": 1}
    status, view = call(app, "GET", f"campaigns/{DEMO_CAMPAIGN}", token=boss)
    assert view["refused"] == {"dnc": 1}, "the supervisor sees it"
    labels = {"campaign": DEMO_CAMPAIGN, "check": "dnc"}
    assert app.registry.get_sample_value("dirigent_dialer_refused_total", labels) == 1


def test_a_predictive_dial_refused_by_the_gate_is_counted_where_the_supervisor_looks(setup):
    """The hopper holds records claimed minutes before their dial; numbers
    put on the do-not-call list meanwhile are refused at the dial (the gate
    asked again).  Outside preview (found in review: only the preview path
    had a test), each refusal reaches the runner's figures, the campaign
    view and the ``dirigent_dialer_refused_total`` counter alike, and no
    attempt is written for a listed number once the gate has seen it."""
    start, engine = setup
    app = start()
    runner = app.campaigns.campaigns[DEMO_CAMPAIGN].runner
    boss = token(app, "boss")
    run(wait_for(lambda: runner.stats.dials >= 2, timeout=30, what="the campaign dialling"))
    r, h = db.record, db.hopper
    with engine.connect() as conn:
        waiting = [
            row.e164
            for row in conn.execute(
                select(r.c.e164).join(h, h.c.record_id == r.c.id).where(r.c.status != "dialing")
            )
        ]
    assert waiting, "records claimed and not dialed yet"
    status, _added = call(app, "POST", "dnc", {"numbers": waiting, "reason": "asked"}, boss)
    assert status == 200
    run(wait_for(lambda: runner.stats.refused.get("dnc", 0) >= 1, timeout=30, what="a refusal"))

    def attempts_to_listed() -> int:
        with engine.connect() as conn:
            return conn.execute(
                select(func.count()).select_from(db.attempt).where(db.attempt.c.e164.in_(waiting))
            ).scalar_one()

    run(app.campaigns.flush().asFuture(LOOP))
    before = attempts_to_listed()
    dials = runner.stats.dials
    run(wait_for(lambda: runner.stats.dials >= dials + 3, timeout=30, what="more dials"))
    run(app.campaigns.flush().asFuture(LOOP))
    assert attempts_to_listed() == before, "no listed number dialed after the gate saw the list"
    refused = runner.stats.refused["dnc"]
    labels = {"campaign": DEMO_CAMPAIGN, "check": "dnc"}
    assert app.registry.get_sample_value("dirigent_dialer_refused_total", labels) == refused
    status, view = call(app, "GET", f"campaigns/{DEMO_CAMPAIGN}", token=boss)
    assert view["refused"]["dnc"] == refused, "the supervisor sees every one"


def test_campaign_figures_are_pushed_to_supervisors_only_and_the_cli_controls_it(
    setup, capsys, monkeypatch
):
    import asyncio
    import json

    import websockets

    from dirigent.cli import main

    start, _engine = setup
    app = start()
    boss, anna = token(app, "boss"), token(app, "anna")
    runner = app.campaigns.campaigns[DEMO_CAMPAIGN].runner
    run(wait_for(lambda: runner.status == "running", timeout=10, what="auto start"))
    seen: dict[str, list[dict]] = {"boss": [], "anna": []}

    async def listen() -> None:
        base = f"ws://127.0.0.1:{app.http_port}/ws"
        async with (
            websockets.connect(
                base, additional_headers={"Authorization": f"Bearer {boss}"}
            ) as ws_boss,
            websockets.connect(
                base, additional_headers={"Authorization": f"Bearer {anna}"}
            ) as ws_anna,
        ):

            async def reader(ws: Any, who: str) -> None:
                async for raw in ws:
                    seen[who].append(json.loads(raw))

            tasks = [
                asyncio.ensure_future(reader(ws_boss, "boss")),
                asyncio.ensure_future(reader(ws_anna, "anna")),
            ]
            await asyncio.sleep(0.1)
            monkeypatch.setenv("DIRIGENT_PASSWORD", "boss-password")
            server = f"http://127.0.0.1:{app.http_port}"
            code = await LOOP.run_in_executor(
                None,
                lambda: main(
                    ["campaign", "pause", DEMO_CAMPAIGN, "--server", server, "--user", "boss"]
                ),
            )
            assert code == 0
            await wait_for(
                lambda: any(m["type"] == "campaign" for m in seen["boss"]), what="figures"
            )
            await asyncio.sleep(0.2)
            for t in tasks:
                t.cancel()

    run(listen())
    out = capsys.readouterr().out
    assert f"{DEMO_CAMPAIGN} on PBX sim: paused" in out and "abandon rate" in out
    figures = [m for m in seen["boss"] if m["type"] == "campaign"]
    assert figures[-1]["status"] == "paused" and "abandon_rate" in figures[-1]
    assert not any(m["type"] == "campaign" for m in seen["anna"]), "figures are not for agents"

    server = f"http://127.0.0.1:{app.http_port}"
    argv = ["campaign", "set", DEMO_CAMPAIGN, "--server", server, "--user", "boss"]
    code = run(LOOP.run_in_executor(None, lambda: main([*argv, "--abandon-target", "0.05"])))
    assert code == 2 and "abandon_target" in capsys.readouterr().err
    code = run(
        LOOP.run_in_executor(None, lambda: main([*argv, "--max-lines-per-agent", "2", "--json"]))
    )
    assert code == 0 and json.loads(capsys.readouterr().out)["max_lines_per_agent"] == 2.0
    # every setting a PATCH may change can be set and is shown by the command line too
    more = ["--wrap-up", "45", "--machine-action", "message", "--ring-timeout", "25"]
    code = run(LOOP.run_in_executor(None, lambda: main([*argv, *more])))
    out = capsys.readouterr().out
    assert code == 0 and "ring 25 s, wrap-up 45 s, answering machines: message" in out
    code = run(LOOP.run_in_executor(None, lambda: main([*argv, "--ring-timeout", "10"])))
    assert code == 2 and "ring_timeout" in capsys.readouterr().err
    # the supervisor's pause outlives a restart, although the campaign auto-starts
    run(app.service.stopService().asFuture(LOOP))
    again = start()
    run(wait_for(lambda: again.campaigns._reconciled, what="the first resync"))
    settle(0.5)
    runner2 = again.campaigns.campaigns[DEMO_CAMPAIGN].runner
    assert runner2.status != "running" and runner2.stats.dials == 0
    app = again
    server = f"http://127.0.0.1:{app.http_port}"
    monkeypatch.setenv("DIRIGENT_PASSWORD", "wrong")
    code = run(LOOP.run_in_executor(None, lambda: main(["campaign", "list", "--server", server])))
    assert code == 2 and "password" in capsys.readouterr().err


def upload(app: Any, query: str, data: bytes, tok: str | None) -> tuple[int, dict]:
    """A list file as the body of ``POST /api/lists?<query>``."""
    return call(app, "POST", f"lists?{query}", token=tok, raw=data)


def test_lists_dnc_consent_and_the_pool_over_http(setup, tmp_path):
    from tests.test_lists import write_xlsx

    start, _engine = setup
    app = start()
    boss, anna = token(app, "boss"), token(app, "anna")
    csv_body = (
        "Vorname;Nachname;Telefon;Tarif\r\n"
        "Hans;Meyer;+44 121 496 0500;basic\r\n"
        "Bad;Number;0900 123;basic\r\n"
        "Eva;Groß;+44 117 496 0500;premium\r\n"
    ).encode("cp1252")
    status, _body = upload(app, f"campaign={DEMO_CAMPAIGN}&name=x.csv", csv_body, anna)
    assert status == 403, "agents do not load lists"
    status, body = upload(app, "name=x.csv", csv_body, boss)
    assert status == 400 and body["field"] == "campaign"
    # a misspelt campaign is refused with the API's way to make one (not the CLI's flag)
    status, body = upload(app, "campaign=sprnig&name=x.csv&region=GB", csv_body, boss)
    assert (status, body["field"]) == (400, "campaign")
    assert "unknown campaign 'sprnig'" in body["error"] and "--create" not in body["error"]
    assert body["error"].endswith("&create=1 makes a new one")
    status, report = upload(app, "campaign=sprnig&name=x.csv&region=GB&create=1", csv_body, boss)
    assert (status, report["imported"]) == (200, 2)
    status, report = upload(app, "campaign=sprnig&name=y.csv&region=GB", csv_body, boss)
    assert status == 200, "the campaign is known from then on"
    status, report = upload(
        app, f"campaign={DEMO_CAMPAIGN}&name=../../etc/winter.csv&region=GB", csv_body, boss
    )
    assert status == 200, report
    assert report["list"] == "winter.csv", "no path from the client reaches the disk"
    assert (report["rows"], report["imported"], report["rejected"]) == (3, 2, 1)
    assert report["problems"] == [
        {"row": 3, "field": "phone", "reason": report["problems"][0]["reason"]}
    ]
    assert report["encoding"] == "cp1252"
    status, again = upload(app, f"campaign={DEMO_CAMPAIGN}&name=winter.csv", csv_body, boss)
    assert (again["imported"], again["updated"]) == (0, 2), "re-importing only updates"
    xlsx = write_xlsx(tmp_path / "b.xlsx", [["phone", "name"], ["+44 29 2018 0600", "Ann"]])
    status, report = upload(app, f"campaign={DEMO_CAMPAIGN}&name=b.xlsx", xlsx.read_bytes(), boss)
    assert status == 200 and report["imported"] == 1 and report["encoding"] == "xlsx"

    status, body = call(app, "POST", "dnc", {"numbers": ["+44 121 496 0500", "12"]}, boss)
    assert status == 200 and body["added"] == 1 and body["rejected"][0]["number"] == "12"
    status, body = call(app, "GET", "dnc/+441214960500", token=boss)
    assert body == {"number": "+441214960500", "blocked": "global"}
    status, body = call(app, "POST", "dnc", {"numbers": "+442079460500"}, boss)
    assert status == 400 and body["field"] == "numbers"
    status, body = call(
        app,
        "POST",
        "consent",
        {"contact": 1, "channel": "voice", "granted": True, "source": "web"},
        boss,
    )
    assert status == 400 and body["field"] == "proof_ref", "a grant needs its proof"
    status, body = call(
        app,
        "POST",
        "consent",
        {"contact": 1, "channel": "voice", "granted": True, "source": "web", "proof_ref": "form-7"},
        boss,
    )
    assert status == 200 and body["granted"] is True

    body = {"campaign": DEMO_CAMPAIGN, "keep": "+44 117 496 0500", "drop": "+44 121 496 0500"}
    status, err = call(app, "POST", "lists/merge", body, boss)
    assert status == 400 and err["field"] == "drop"
    body["drop"] = ["+44 121 496 0500"]
    status, merged = call(app, "POST", "lists/merge", body, boss)
    assert status == 200 and len(merged["closed"]) == 1 and merged["contacts_folded"] == 1

    status, pool = call(app, "GET", f"campaigns/{DEMO_CAMPAIGN}/pool", token=boss)
    assert status == 200 and pool["campaign"] == DEMO_CAMPAIGN
    assert sum(pool["records"].values()) == 2000 + 3
    assert pool["blocked_now"].get("dnc", 0) <= 1
    status, _body = call(app, "GET", "campaigns/nope/pool", token=boss)
    assert status == 404
    lists = pool["lists"]
    assert set(lists) >= {"winter.csv", "b.xlsx"}
    assert lists["b.xlsx"]["records"] == {"new": 1} and lists["b.xlsx"]["active"] is True
    assert sum(sum(f["records"].values()) for f in lists.values()) == 2000 + 3
    assert pool["dialable_now"] == sum(f["dialable_now"] for f in lists.values())

    # a list switched off stays in the pool (with its history) but is not dialed
    status, body = call(app, "PATCH", f"lists/{DEMO_CAMPAIGN}/b.xlsx", {"active": "no"}, boss)
    assert status == 400 and body["field"] == "active"
    status, body = call(app, "PATCH", f"lists/{DEMO_CAMPAIGN}/nope.csv", {"active": False}, boss)
    assert status == 404 and body["field"] == "list"
    status, body = call(app, "PATCH", f"lists/{DEMO_CAMPAIGN}/b.xlsx", {"active": False}, boss)
    assert status == 200 and body == {
        "campaign": DEMO_CAMPAIGN,
        "list": "b.xlsx",
        "active": False,
        "was_active": True,
    }
    status, pool = call(app, "GET", f"campaigns/{DEMO_CAMPAIGN}/pool", token=boss)
    off = pool["lists"]["b.xlsx"]
    assert off["active"] is False and off["dialable_now"] == 0 and off["records"] == {"new": 1}


def test_every_answer_relayed_from_the_store_and_the_dialer_keeps_its_keys_over_http(setup):
    """The JSON contract of the routes whose answers the store and the dialer
    make (checked on the way out by cti.responses): each answer's keys, in
    their order, with null where null was."""
    import json

    start, engine = setup
    app = start()
    boss = token(app, "boss")
    runner = app.campaigns.campaigns[DEMO_CAMPAIGN].runner
    run(wait_for(lambda: runner.stats.connected >= 1, timeout=20, what="a connect"))
    campaign_keys = list(json.loads(VIEW_JSON))
    status, views = call(app, "GET", "campaigns", token=boss)
    assert status == 200 and [list(v) for v in views] == [campaign_keys]
    for method, path, body in (
        ("GET", f"campaigns/{DEMO_CAMPAIGN}", None),
        ("PATCH", f"campaigns/{DEMO_CAMPAIGN}", {"abandon_target": 0.02}),
        ("POST", f"campaigns/{DEMO_CAMPAIGN}/pause", None),
    ):
        status, view = call(app, method, path, body, boss)
        assert status == 200 and list(view) == campaign_keys, (method, path)

    csv_body = b"phone,first_name\n+44 121 496 0501,Hans\n+44 121 496 0502,Hanna\n12,Bad\n"
    status, report = upload(app, f"campaign={DEMO_CAMPAIGN}&name=keys.csv", csv_body, boss)
    assert status == 200 and list(report) == [
        "rows", "imported", "updated", "rejected", "duplicates", "phonetic_duplicate_groups",
        "formula_like_fields", "encoding", "delimiter", "dry_run", "region", "region_from",
        "list", "problems", "phonetic_groups",
    ]  # fmt: skip
    assert [list(p) for p in report["problems"]] == [["row", "field", "reason"]]
    status, found = call(app, "GET", "contacts?phone=%2B441214960501", token=boss)
    assert status == 200 and list(found) == ["e164", "do_not_call", "contacts"]
    [contact] = found["contacts"]
    assert list(contact) == [
        "id", "display_name", "company", "city", "phones", "consent", "records",
    ]  # fmt: skip
    assert [list(r) for r in contact["records"]] == [
        ["campaign", "list", "record", "status", "attempts", "last_outcome"]
    ]
    grant = {"contact": contact["id"], "channel": "voice", "granted": True, "source": "web"}
    status, body = call(app, "POST", "consent", {**grant, "proof_ref": "f-1"}, boss)
    assert status == 200 and body == {"contact": contact["id"], "channel": "voice", "granted": True}
    status, found = call(app, "GET", "contacts?phone=%2B441214960501", token=boss)
    assert [list(c) for c in found["contacts"][0]["consent"]] == [
        ["channel", "granted", "source", "given_at"]
    ]
    status, body = call(app, "POST", "dnc", {"numbers": ["+44 121 496 0502", "12"]}, boss)
    assert status == 200 and list(body) == ["added", "already", "rejected", "numbers"]
    assert body["rejected"][0]["number"] == "12" and body["numbers"] == {"+441214960502": "added"}
    status, body = call(app, "GET", "dnc/%2B441214960501", token=boss)
    assert (status, body) == (200, {"number": "+441214960501", "blocked": None})
    merge = {"campaign": DEMO_CAMPAIGN, "keep": "+44 121 496 0501", "drop": ["+44 121 496 0502"]}
    status, merged = call(app, "POST", "lists/merge", merge, boss)
    assert status == 200 and list(merged) == [
        "kept", "closed", "contacts_folded", "numbers_moved", "consents_moved",
        "interactions_moved",
    ]  # fmt: skip
    status, body = call(app, "PATCH", f"lists/{DEMO_CAMPAIGN}/keys.csv", {"active": False}, boss)
    assert status == 200 and list(body) == ["campaign", "list", "active", "was_active"]
    status, pool = call(app, "GET", f"campaigns/{DEMO_CAMPAIGN}/pool", token=boss)
    assert status == 200 and list(pool) == [
        "campaign", "records", "dialable_now", "due_later_today", "blocked_now", "exhausted",
        "sample", "sampled", "lists",
    ]  # fmt: skip
    assert list(pool["lists"]["keys.csv"]) == [
        "active", "records", "dialable_now", "due_later_today", "blocked_now", "exhausted",
        "sampled",
    ]  # fmt: skip

    with engine.connect() as conn:
        ref = conn.execute(
            select(db.attempt.c.ref).where(db.attempt.c.outcome.is_not(None)).limit(1)
        ).scalar_one()
    status, body = call(app, "POST", f"interactions/{ref}/disposition", {"code": "sale"}, boss)
    assert (status, body) == (
        200,
        {"interaction": ref, "disposition": "sale", "record_status": None},
    )


def test_the_queue_figures_and_the_preview_answers_keep_their_keys_over_http(setup):
    """The JSON contract of agents.py's answers the hub and the dialer make
    (checked on the way out by cti.responses): keys in their order, null
    where null was, whole numbers whole and seconds fractional."""
    start, _engine = setup
    app = start()
    runner = app.campaigns.campaigns[DEMO_CAMPAIGN].runner
    boss, anna = token(app, "boss"), token(app, "anna")
    status, queues = call(app, "GET", "queues", token=boss)
    assert status == 200 and [q["queue"] for q in queues] == sorted(("sales", DEMO_CAMPAIGN))
    for queue in queues:
        assert list(queue) == [
            "queue", "channels", "service_level_30m", "service_level_today", "abandoned",
        ]  # fmt: skip
        assert list(queue["channels"]) == ["voice", "chat", "email", "sms"]
        for figures in queue["channels"].values():
            assert list(figures) == ["waiting", "oldest_wait"]
            assert type(figures["waiting"]) is int and type(figures["oldest_wait"]) is float
        for level in (queue["service_level_30m"], queue["service_level_today"]):
            assert level is None or type(level) is float, "a share, or null before any answer"
        assert type(queue["abandoned"]) is int

    assert call(app, "GET", "agents/agent1001/preview", token=anna) == (200, None)
    status, _view = call(app, "PATCH", f"campaigns/{DEMO_CAMPAIGN}", {"mode": "preview"}, boss)
    assert status == 200
    run(wait_for(lambda: "agent1001" in runner.previews, timeout=20, what="a preview"))
    status, shown = call(app, "GET", "agents/agent1001/preview", token=anna)
    assert status == 200 and list(shown) == [
        "agent", "campaign", "record", "customer", "name", "attributes", "since",
        "auto_dial_at", "dialing",
    ]  # fmt: skip
    assert type(shown["record"]) is int and type(shown["since"]) is float
    assert shown == app.campaigns.preview("agent1001"), "the dialer's own view, unchanged"
    assert (shown["auto_dial_at"], shown["dialing"]) == (None, False)
    status, skipped = call(app, "POST", "agents/agent1001/preview-skip", {}, anna)
    assert (status, list(skipped.items())) == (
        200,
        [("campaign", DEMO_CAMPAIGN), ("skipped", True)],
    )
    run(wait_for(lambda: "agent1001" in runner.previews, timeout=10, what="the next record"))
    status, dialing = call(app, "POST", "agents/agent1001/preview-dial", {}, anna)
    assert status == 200 and list(dialing) == ["campaign", "attempt", "dialing"]
    assert (dialing["campaign"], dialing["dialing"]) == (DEMO_CAMPAIGN, True)
    assert isinstance(dialing["attempt"], str)


def test_an_agent_records_the_result_do_not_call_blocks_at_once_and_callback_reschedules(
    setup, tmp_path
):
    """The disposition of an outbound call: recorded on the attempt, in the
    results export; "do not call" is a global DNC entry at once and closes the
    record; "callback" schedules it at the agent's time.  Only the agent who
    took the call (or a supervisor) gives it; bad input names the field."""
    import csv

    from dirigent.cli import main

    start, engine = setup
    app = start()
    boss, anna = token(app, "boss"), token(app, "anna")

    def answered(agent: str) -> list[Any]:
        with engine.connect() as conn:
            return conn.execute(
                select(db.attempt.c.ref, db.attempt.c.e164, db.attempt.c.record_id)
                .where(db.attempt.c.outcome == "answered", db.attempt.c.agent_code == agent)
                .order_by(db.attempt.c.id)
            ).all()

    run(
        wait_for(
            lambda: len(answered("agent1001")) >= 2 and answered("agent1002"),
            timeout=30,
            what="answered calls",
        )
    )
    first, second = answered("agent1001")[:2]
    other = answered("agent1002")[0]
    path = f"interactions/{first.ref}/disposition"

    status, body = call(app, "POST", f"interactions/{other.ref}/disposition", {"code": "x"}, anna)
    assert status == 403 and body["field"] == "agent", "not anna's call"
    for bad, field in (
        ({"code": ""}, "code"),
        ({"code": "x" * 41}, "code"),
        ({"code": "callback"}, "callback_at"),
        ({"code": "callback", "callback_at": "tomorrow"}, "callback_at"),
        ({"code": "callback", "callback_at": "2030-01-01T10:00:00"}, "callback_at"),
        ({"code": "callback", "callback_at": "2020-01-01T10:00:00+00:00"}, "callback_at"),
    ):
        status, body = call(app, "POST", path, bad, anna)
        assert status == 400 and body["field"] == field, (bad, body)
    status, body = call(app, "POST", "interactions/nope/disposition", {"code": "x"}, boss)
    assert status == 404 and body["field"] == "interaction"

    at = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=1)
    status, body = call(
        app, "POST", path, {"code": "Call back", "callback_at": at.isoformat()}, anna
    )
    assert (
        status == 200
        and body["disposition"] == "callback"
        and body["record_status"] == ("scheduled")
    )
    status, body = call(
        app, "POST", f"interactions/{second.ref}/disposition", {"code": "Do not call"}, anna
    )
    assert status == 200 and body["disposition"] == "do-not-call"
    assert body["record_status"] == "closed"
    status, body = call(app, "GET", f"dnc/{second.e164}", token=boss)
    assert body["blocked"] == "global", "blocked for every campaign, at once"
    status, body = call(
        app, "POST", f"interactions/{other.ref}/disposition", {"code": "sale"}, boss
    )
    assert status == 200 and body["record_status"] is None, "recorded only"

    with engine.connect() as conn:
        rec = conn.execute(
            select(db.record.c.status, db.record.c.next_due_at).where(
                db.record.c.id == first.record_id
            )
        ).one()
    assert rec.status == "scheduled"
    assert rec.next_due_at.replace(tzinfo=rec.next_due_at.tzinfo or dt.UTC) == at

    out = tmp_path / "results.csv"
    url = engine.url.render_as_string(hide_password=False)
    code = run(
        LOOP.run_in_executor(
            None,
            lambda: main(
                ["lists", "export", "--campaign", DEMO_CAMPAIGN, "--out", str(out), "--db", url]
            ),
        )
    )
    assert code == 0
    with open(out, newline="") as fh:
        results = {r["e164"]: r for r in csv.DictReader(fh)}
    assert results[first.e164]["disposition"] == "callback"
    assert results[second.e164]["disposition"] == "do-not-call"
    assert results[second.e164]["status"] == "closed"
    assert results[other.e164]["disposition"] == "sale"


def test_an_answering_machine_disposition_takes_the_live_answer_back_from_the_ledger(setup):
    """Issue 15: the ledger counted every call that reached an agent as a
    person, the answering machines AMD missed included, so the abandon rate
    it stores (abandoned / persons who answered) was too low.  The agent's
    disposition "Answering machine" takes that live answer back in the
    database's ledger row (and from the hour rebuilt after a restart); the
    attempt ends "machine" and its record is retried by the machine rule."""
    from store.dialer import DbLedgerStore

    start, engine = setup
    app = start()
    runner = app.campaigns.campaigns[DEMO_CAMPAIGN].runner
    boss, anna = token(app, "boss"), token(app, "anna")

    def answered() -> list[Any]:
        with engine.connect() as conn:
            return conn.execute(
                select(db.attempt.c.ref, db.attempt.c.record_id)
                .where(db.attempt.c.outcome == "answered", db.attempt.c.agent_code == "agent1001")
                .order_by(db.attempt.c.id)
            ).all()

    run(wait_for(lambda: len(answered()) >= 1, timeout=30, what="an answered call"))
    status, _view = call(app, "POST", f"campaigns/{DEMO_CAMPAIGN}/pause", {}, boss)
    assert status == 200
    run(wait_for(lambda: not runner.live, timeout=30, what="the calls in progress ended"))
    run(app.campaigns.flush().asFuture(LOOP))

    def ledger_row() -> tuple[float, float]:
        with engine.connect() as conn:
            rows = conn.execute(
                select(db.abandon_count.c.live, db.abandon_count.c.abandoned).where(
                    db.abandon_count.c.grp == DEMO_CAMPAIGN
                )
            ).all()
        return sum(r.live for r in rows), sum(r.abandoned for r in rows)

    def hour_after_restart() -> float:
        now = app.clock.seconds()
        return sum(e[1] for e in DbLedgerStore(engine, DEMO_CAMPAIGN).recent(now))

    live, abandoned = ledger_row()
    hour = hour_after_restart()
    ref, record_id = answered()[0]
    path = f"interactions/{ref}/disposition"
    status, body = call(app, "POST", path, {"code": "Answering machine"}, anna)
    assert status == 200 and body["disposition"] == "machine", body
    run(app.campaigns.flush().asFuture(LOOP))
    assert ledger_row() == pytest.approx((live - 1.0, abandoned)), "one person fewer answered"
    assert hour_after_restart() == pytest.approx(hour - 1.0)
    with engine.connect() as conn:
        attempt = conn.execute(
            select(db.attempt.c.outcome, db.attempt.c.disposition, db.attempt.c.started_at).where(
                db.attempt.c.ref == ref
            )
        ).one()
        rec = conn.execute(
            select(db.record.c.status, db.record.c.last_outcome, db.record.c.next_due_at).where(
                db.record.c.id == record_id
            )
        ).one()
    assert tuple(attempt[:2]) == ("machine", "machine")
    assert tuple(rec[:2]) == ("scheduled", "machine"), "a machine is called again later"
    # the UK's rules: not within 24 h of the machine without an agent guaranteed (QA8 F18),
    # so the retry is due then, not at the machine rule's 4 h
    assert rec.next_due_at.replace(tzinfo=None) == attempt.started_at.replace(
        tzinfo=None
    ) + dt.timedelta(hours=24)

    # given twice (or by a supervisor as well): taken back once
    status, body = call(app, "POST", path, {"code": "AM"}, boss)
    assert status == 200 and body["disposition"] == "machine"
    run(app.campaigns.flush().asFuture(LOOP))
    assert ledger_row() == pytest.approx((live - 1.0, abandoned))

    # "machine" -> "sale" -> "machine" took a live answer back each time (one
    # call wiped the day's live answers: the campaign read 100 % abandoned),
    # and after "sale" the buyer was still redialed as a machine: once a call
    # was a machine, another result is refused, and nothing changes
    status, body = call(app, "POST", path, {"code": "sale"}, anna)
    assert status == 409 and body["field"] == "code", body
    assert "machine" in body["error"]
    status, body = call(app, "POST", path, {"code": "machine"}, anna)
    assert status == 200
    run(app.campaigns.flush().asFuture(LOOP))
    assert ledger_row() == pytest.approx((live - 1.0, abandoned)), "taken back once, ever"
    assert hour_after_restart() == pytest.approx(hour - 1.0)

    # but a "do not call" heard after a mistaken "machine" is the law: it goes
    # through (the number blocked everywhere), and is final: "machine" once
    # more after it is refused (QA5 F13: it overwrote the customer's word on
    # the attempt and in the export) and takes nothing back
    status, body = call(app, "POST", path, {"code": "do not call"}, anna)
    assert status == 200 and body["disposition"] == "do-not-call", body
    status, body = call(app, "POST", path, {"code": "machine"}, anna)
    assert (status, body["field"]) == (409, "code"), body
    run(app.campaigns.flush().asFuture(LOOP))
    assert ledger_row() == pytest.approx((live - 1.0, abandoned)), "taken back once, ever"
    with engine.connect() as conn:
        number = conn.execute(select(db.attempt.c.e164).where(db.attempt.c.ref == ref)).scalar_one()
        blocked = conn.execute(select(db.dnc.c.e164).where(db.dnc.c.e164 == number)).all()
    assert blocked, "the do-not-call reached the list"
    with engine.connect() as conn:
        attempt = conn.execute(
            select(db.attempt.c.outcome, db.attempt.c.disposition).where(db.attempt.c.ref == ref)
        ).one()
    assert tuple(attempt) == ("machine", "do-not-call")


def test_attempts_closed_unknown_at_start_up_are_counted_in_the_calls_metric(setup):
    """Issue 14, finding 12: restart recovery closes what a previous run left
    open as "unknown"; those attempts are dial attempts like any other."""
    import time

    from dialer.campaign import Lead
    from dialer.runner import Attempt
    from store.dialer import DbAttemptLog

    start, engine = setup
    # a previous process died with this call in progress
    DbAttemptLog(engine, DEMO_CAMPAIGN).begin(
        Attempt(
            "orphan-1",
            DEMO_CAMPAIGN,
            Lead("orphan-1", "+442079460999"),
            time.time() - 60,
            channel_id="dial-orphan-1",
        )
    )
    app = start()
    labels = {"campaign": DEMO_CAMPAIGN, "outcome": "unknown"}
    run(
        wait_for(
            lambda: app.registry.get_sample_value("dirigent_dialer_calls_total", labels) == 1,
            what="the orphan counted",
        )
    )
    run(app.campaigns.flush().asFuture(LOOP))  # its outcome is written in the dialer's thread
    with engine.connect() as conn:
        outcome = conn.execute(
            select(db.attempt.c.outcome).where(db.attempt.c.ref == "orphan-1")
        ).scalar()
    assert outcome == "unknown"


def test_predictive_pacing_does_not_dial_for_agents_in_a_two_minute_wrap_up(
    tmp_path, session_factory
):
    """Issue 14, finding 14: both agents in the campaign's 120 s wrap-up, no
    call in flight: a person answering in ~25 s would find no agent, so the
    predictive campaign (the server's wiring: Campaigns over AMI, the ACD's
    router) dials nothing in the first minute of it.  Twenty times real speed."""
    from asterisk.telephony import AmiTelephony
    from channels.voice import AgentEndpoint
    from dialer.campaigns import Campaigns
    from routing.agent import Agent, AgentState
    from routing.router import Router
    from sim.clock import ScaledClock
    from store.dialer import DbCampaignStore
    from tests.acd import InboundAcd

    speed = 20.0
    clock = ScaledClock(reactor, speed)
    wl = {**FAST, "talk": {"dist": "constant", "value": 3.0}}
    pbx = SimPbx(clock, seed=11, agents=2, agent_answer_delay=0.05, workload=parse_workload(wl))
    server = SimAmiServer(pbx, reactor)
    server.listen(0)
    url = f"sqlite:///{tmp_path / 'wrap.db'}"
    db.upgrade(url)
    engine = db.make_engine(url)
    campaign = _demo_campaign(url, tmp_path)
    campaign = dataclasses.replace(
        campaign, settings=campaign.settings.with_changes(wrap_up=120.0, mode="progressive")
    )
    agents = ("agent1001", "agent1002")
    session = session_factory(server.address)
    campaigns = None
    try:
        session.start()
        run(wait_for(lambda: session.connected, what="AMI login"))
        tel = AmiTelephony(session)
        router = Router({DEMO_CAMPAIGN: QueueConfig(DEMO_CAMPAIGN)})
        endpoints = {}
        for a in agents:
            router.add_agent(Agent(a))
            endpoints[a] = AgentEndpoint(a, a[-4:], "nailed")
        acd = InboundAcd(tel, router, clock, endpoints)
        registry = CollectorRegistry()
        store = DbCampaignStore(engine, registry=registry)
        campaigns = Campaigns((campaign,), store, tel, acd, clock, registry=registry)
        acd.start()
        for a in agents:
            acd.nail_up(a, [DEMO_CAMPAIGN])
        run(wait_for(lambda: all(router.agents[a].logged_in for a in agents), what="legs up"))
        runner = campaigns.campaigns[DEMO_CAMPAIGN].runner
        campaigns.control(DEMO_CAMPAIGN, "start")

        def both_wrapping() -> bool:
            return not runner.live and all(
                router.agents[a].state is AgentState.WRAP_UP for a in agents
            )

        run(wait_for(both_wrapping, timeout=20, what="both agents in wrap-up, no call up"))
        campaigns.change(DEMO_CAMPAIGN, {"mode": "predictive"})
        dials, since = runner.stats.dials, clock.seconds()
        while clock.seconds() - since < 60.0:  # virtual seconds: 3 s of real time
            settle(0.05)
            assert all(router.agents[a].state is AgentState.WRAP_UP for a in agents)
            assert runner.stats.dials == dials, (
                f"dialed {clock.seconds() - since:.0f} s into a 120 s wrap-up of both agents"
            )
        assert runner.stats.abandoned == 0
    finally:
        if campaigns is not None:
            campaigns.stop()
        stop_sim(pbx, server)
        engine.dispose()


def test_an_agent_gets_one_screen_pop_per_person_the_campaign_connects(setup):
    """Over the agent's WebSocket: each person the campaign put through to
    anna pops once, with the campaign, the number dialled and no time-out
    (the person is moved in at once); nothing pops twice."""
    import asyncio
    import json

    import websockets

    start, engine = setup
    app = start()
    anna = token(app, "anna")
    offers: list[dict[str, Any]] = []

    async def listen() -> None:
        url = f"ws://127.0.0.1:{app.http_port}/ws"
        headers = {"Authorization": f"Bearer {anna}"}
        async with websockets.connect(url, additional_headers=headers) as ws:

            async def reader() -> None:
                async for raw in ws:
                    message = json.loads(raw)
                    if message["type"] == "offer":
                        offers.append(message)

            task = asyncio.ensure_future(reader())
            await wait_for(lambda: len(offers) >= 3, timeout=30, what="three pops for anna")
            task.cancel()

    run(listen())
    ids = [o["interaction"] for o in offers]
    assert len(ids) == len(set(ids)), "one pop per person"
    for offer in offers:
        assert offer["agent"] == "agent1001" and offer["campaign"] == DEMO_CAMPAIGN
        assert offer["deadline"] is None and offer["customer"].startswith("+")
    with engine.connect() as conn:
        dialled = dict(conn.execute(select(db.attempt.c.ref, db.attempt.c.e164)).all())
    assert all(dialled[o["interaction"]] == o["customer"] for o in offers), "the number dialled"


def test_the_colleague_who_takes_a_transferred_campaign_call_gives_its_result(tmp_path):
    """Anna (agent1001, on the campaign) transfers a person to the sales
    queue, where only bert (agent1002) works: bert's screen pop names the
    campaign and the attempt, and bert may record the call's result on it
    (before, only anna could: the attempt row names her) -- also after a
    restart of the server (before: only while the hub remembered it)."""
    long_talk = {**FAST, "talk": {"dist": "constant", "value": 8.0}}
    pbx = SimPbx(
        reactor, seed=5, agents=2, agent_answer_delay=0.05, workload=parse_workload(long_talk)
    )
    server = SimAmiServer(pbx, reactor)
    server.listen(0)
    url = f"sqlite:///{tmp_path / 'transfer.db'}"
    db.upgrade(url)
    engine = db.make_engine(url)
    db.add_user(engine, "anna", hash_password("anna-password"), "agent", "agent1001")
    db.add_user(engine, "bert", hash_password("bert-password"), "agent", "agent1002")
    db.add_user(engine, "carl", hash_password("carl-password"), "agent", "agent1003")
    db.add_user(engine, "sue", hash_password("sue-password"), "supervisor", None)
    campaign = _demo_campaign(url, tmp_path)
    campaign = dataclasses.replace(campaign, settings=campaign.settings.with_changes(wrap_up=5.0))
    queues = {"agent1001": ("sales", DEMO_CAMPAIGN), "agent1002": ("sales",)}
    settings = Settings(
        http=HttpSettings(host="127.0.0.1", port=0),
        database=DatabaseSettings(url=url),
        pbxs=(PbxSettings("sim", *server.address, secret="secret", backoff_initial=0.05),),
        routing=RoutingSettings(
            queues=(QueueConfig("sales"), QueueConfig(DEMO_CAMPAIGN)),
            agents=(
                *(
                    AgentSettings(id=a, endpoint=a[-4:], mode="nailed", queues=q, auto_login=True)
                    for a, q in queues.items()
                ),
                # chats only: never has the person
                AgentSettings(
                    id="agent1003",
                    endpoint="1003",
                    capacity={Channel.CHAT: 1},
                    queues=("sales",),
                    auto_login=True,
                ),
            ),
        ),
        campaigns=(campaign,),
    )
    app = Dirigent(settings, CollectorRegistry())
    app.service.startService()
    try:
        runner = app.campaigns.campaigns[DEMO_CAMPAIGN].runner
        pops: list[Any] = []
        from core.events import OfferMade

        app.acd.bus.subscribe(OfferMade, pops.append)
        run(wait_for(lambda: app.router.handling, timeout=30, what="anna with a person"))
        runner.pause()  # no second person for anna meanwhile
        (ref,) = [i for i, a in app.router.handling.items() if a == "agent1001"]
        anna, bert = token(app, "anna"), token(app, "bert")
        status, body = call(app, "POST", f"interactions/{ref}/transfer", {"queue": "sales"}, anna)
        assert status == 200, body
        run(
            wait_for(
                lambda: "agent1002" in app.router.handling.values(), what="bert has the person"
            )
        )
        pop = next(p for p in pops if p.agent == "agent1002")
        assert pop.campaign == DEMO_CAMPAIGN and pop.attributes["attempt"] == ref
        status, body = call(app, "POST", f"interactions/{ref}/disposition", {"code": "sale"}, bert)
        assert status == 200 and body["disposition"] == "sale", body
        # after a restart bert may still correct it (the report row says he took
        # the person); anna, the first agent, too; carl never had the call
        app.database.recorder.flush()
        run(app.service.stopService().asFuture(LOOP))
        app = Dirigent(settings, CollectorRegistry())
        app.service.startService()
        run(wait_for(lambda: app.sessions["sim"].connected, what="PBX after the restart"))
        bert = token(app, "bert")
        status, body = call(
            app, "POST", f"interactions/{ref}/disposition", {"code": "no sale"}, bert
        )
        assert status == 200 and body["disposition"] == "no sale", body
        anna = token(app, "anna")
        assert (
            call(app, "POST", f"interactions/{ref}/disposition", {"code": "sale"}, anna)[0] == 200
        )
        # a chat whose attributes name the attempt gives carl no right to its result
        sue, carl = token(app, "sue"), token(app, "carl")
        chat = {"channel": "chat", "queue": "sales", "attributes": {"attempt": ref}}
        status, created = call(app, "POST", "interactions", chat, sue)
        assert status == 200, created
        status, body = call(app, "POST", f"interactions/{created['id']}/accept", None, carl)
        assert status == 200, body
        app.database.recorder.flush()
        status, body = call(app, "POST", f"interactions/{ref}/disposition", {"code": "x"}, carl)
        assert status == 403 and body["field"] == "agent", body
    finally:
        run(app.service.stopService().asFuture(LOOP))
        stop_sim(pbx, server)
        engine.dispose()


#: a campaign's view as ``GET /api/campaigns/<name>`` answered it when the view
#: was a dict (issue 16 typed it): the same keys, in the same order, with the same values
#: (and, since QA4 finding 6, the PBX it dials through)
VIEW_JSON = (
    '{"campaign": "winback", "status": "stopped", "idle_reason": null, "pbx": null,'
    ' "country": "GB",'
    ' "legal_max_abandon": 0.03, "abandon_target": 0.03, "max_lines_per_agent": 3.0,'
    ' "mode": "predictive", "power_ratio": 2.0, "ring_timeout": 22.0, "machine_action": "hangup",'
    ' "wrap_up": 120.0, "lines_in_use": 0, "agents": {"ready": 1, "paused": 1},'
    ' "since": 1764662400.0, "today": {"live": 4.0, "abandoned": 1.0}, "dials": 7, "connected": 3,'
    ' "abandoned": 1, "outcomes": {"answered": 4, "busy": 2, "no-answer": 1},'
    ' "refused": {"dnc": 2}, "abandon_rate": {"30d": 0.25, "day": 0.25, "1h": 0.25},'
    ' "drop_group": "uk"}'
)


def test_the_campaign_view_and_its_push_message_keep_their_json(tmp_path):
    """The API's answer and the WebSocket's ``campaign`` message are the
    same JSON, byte for byte, as before the figures were typed."""
    import json

    from pydantic_core import to_json

    from channels.voice import AgentEndpoint
    from core.events import CampaignFigures, to_message
    from cti.responses import CampaignAnswer
    from dialer.campaigns import Campaigns
    from dirigent.config import CampaignTable
    from routing.agent import Agent
    from routing.router import Router
    from sim.clock import HeapClock
    from sim.inprocess import SimTelephony
    from store.dialer import DbCampaignStore
    from tests.acd import InboundAcd

    clock = HeapClock()
    clock.advance(1_764_662_400.0)
    url = f"sqlite:///{tmp_path / 'view.db'}"
    db.upgrade(url)
    engine = db.make_engine(url)
    campaign = CampaignTable.model_validate(
        {"name": "winback", "country": "GB", "caller_id": "+442079460999", "drop_group": "uk"}
    ).build()
    tel = SimTelephony(SimPbx(clock, seed=1, agents=2))
    router = Router({"winback": QueueConfig("winback")})
    for a in ("a1", "a2"):
        router.add_agent(Agent(a))
    endpoints = {a: AgentEndpoint(a, f"100{a[-1]}", "nailed") for a in ("a1", "a2")}
    acd = InboundAcd(tel, router, clock, endpoints)
    campaigns = Campaigns((campaign,), DbCampaignStore(engine), tel, acd, clock)
    try:
        runner = campaigns.campaigns["winback"].runner
        router.login("a1", clock.seconds(), ["winback"])
        router.login("a2", clock.seconds(), ["winback"], paused="break")
        stats = runner.stats
        stats.dials, stats.connected, stats.abandoned = 7, 3, 1
        stats.outcomes.update({"answered": 4, "busy": 2, "no-answer": 1})
        stats.refused.update({"dnc": 2})
        for _ in range(3):
            runner.ledger.live(clock.seconds())
        runner.ledger.abandoned(clock.seconds())
        pushed: list[CampaignFigures] = []
        acd.bus.subscribe(CampaignFigures, pushed.append)
        campaigns.publish_figures()
        assert json.dumps(campaigns.view("winback")) == VIEW_JSON
        # and through the answer's model the API checks it with, still the same
        checked = CampaignAnswer.model_validate(campaigns.view("winback"))
        assert json.dumps(json.loads(to_json(checked))) == VIEW_JSON
        (event,) = pushed
        message = '{"type": "campaign", ' + VIEW_JSON[1:-1] + ', "at": 1764662400.0}'
        assert json.dumps(to_message(event)) == message
    finally:
        campaigns.stop()
        engine.dispose()


def test_an_auto_start_campaign_before_its_pbx_came_up_says_why_it_is_stopped(tmp_path):
    """QA12 finding 9: an ``auto_start`` campaign whose PBX never came up
    said ``stopped`` with no reason; it says that its PBX is down (then that
    it waits for the first resync), as an idle campaign says "PBX down"."""
    from channels.voice import AgentEndpoint
    from dialer.campaigns import Campaigns
    from dirigent.config import CampaignTable
    from routing.router import Router
    from sim.clock import HeapClock
    from sim.inprocess import SimTelephony
    from store.dialer import DbCampaignStore
    from tests.acd import InboundAcd

    clock = HeapClock()
    clock.advance(1_764_662_400.0)
    url = f"sqlite:///{tmp_path / 'auto.db'}"
    db.upgrade(url)
    engine = db.make_engine(url)
    table = {"name": "winback", "country": "GB", "caller_id": "+442079460999", "auto_start": True}
    pbx = SimPbx(clock, seed=1, agents=1)
    pbx.booted = False  # the PBX has not come up
    tel = SimTelephony(pbx)
    acd = InboundAcd(
        tel,
        Router({"winback": QueueConfig("winback")}),
        clock,
        {"a1": AgentEndpoint("a1", "1001", "nailed")},
    )
    campaigns = Campaigns(
        (CampaignTable.model_validate(table).build(),), DbCampaignStore(engine), tel, acd, clock
    )
    try:
        view = campaigns.view("winback")
        assert (view["status"], view["idle_reason"]) == (
            "stopped",
            "PBX down: auto_start starts it after the PBX's first resync",
        )
        pbx.booted = True  # logged in, its resync under way
        assert campaigns.view("winback")["idle_reason"] == (
            "auto_start starts it after the PBX's first resync"
        )
    finally:
        campaigns.stop()
        engine.dispose()


def test_every_metric_the_server_exposes_is_in_the_catalogue(setup):
    """QA5 finding 14: six families on /metrics were missing from
    docs/metrics.md, the catalogue dashboards are built from."""
    import re
    from pathlib import Path

    start, _engine = setup
    app = start()
    catalogue = (Path(__file__).resolve().parent.parent / "docs" / "metrics.md").read_text()
    documented = set(re.findall(r"^\| `(dirigent_[a-z_]+)`", catalogue, re.MULTILINE))
    exposed = {m.name for m in app.registry.collect() if m.name.startswith("dirigent_")}
    missing = sorted(
        name for name in exposed if name not in documented and f"{name}_total" not in documented
    )
    assert not missing, f"not in docs/metrics.md: {missing}"
