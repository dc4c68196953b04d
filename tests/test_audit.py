"""Every supervisor action is in the audit log: who, what, on whom, when,
before and after, in the database and the log; an agent's own actions are not."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import select

from asterisk.session import PbxSettings
from cti.auth import hash_password
from cti.http.audit import CAMPAIGN_KEYS
from dialer.campaign import LIVE_SETTINGS
from dirigent.config import (
    CampaignTable,
    DatabaseSettings,
    HttpSettings,
    RoutingSettings,
    Settings,
)
from dirigent.service import Dirigent
from routing.model import QueueConfig
from store import db
from tests.conftest import LOOP, run, wait_for
from tests.test_api import app, call, token

__all__ = ["app"]


def audit_rows(app) -> list:
    with app.database.engine.connect() as conn:
        return conn.execute(select(db.audit).order_by(db.audit.c.id)).all()


def test_a_supervisor_action_is_audited_with_before_and_after(app):
    anna, boss = token(app, "anna"), token(app, "boss")
    assert call(app, "POST", "agents/anna/login", {"queues": ["sales"]}, anna)[0] == 200
    assert call(app, "POST", "agents/anna/pause", {"reason": "lunch"}, anna)[0] == 200
    assert call(app, "POST", "agents/anna/ready", {}, anna)[0] == 200
    status, _ = call(app, "PUT", "agents/anna/skills", {"skills": {"de": 7}}, boss)
    assert status == 200
    status, _ = call(app, "POST", "agents/anna/pause", {"reason": "coaching"}, boss)
    assert status == 200
    status, _ = call(app, "PUT", "agents/anna/skills", {"skills": {"de": 99}}, boss)
    assert status == 400
    run(wait_for(lambda: len(audit_rows(app)) >= 3, what="three audit rows"))
    rows = audit_rows(app)
    assert [(r.actor, r.action, r.status) for r in rows] == [
        ("boss", "PUT /api/agents/anna/skills", 200),
        ("boss", "POST /api/agents/anna/pause", 200),
        ("boss", "PUT /api/agents/anna/skills", 400),
    ], "anna's own actions are not audited; every one of the supervisor's is"
    skills, pause, refused = rows
    assert skills.target == "agent anna" and skills.role == "supervisor"
    assert skills.before["skills"] != skills.after["skills"] and skills.after["skills"] == {"de": 7}
    assert (pause.before["state"], pause.after["state"]) == ("ready", "paused")
    assert pause.after["pause_reason"] == "coaching" and pause.request == {"reason": "coaching"}
    assert refused.before == refused.after, "a refused change changes nothing"
    assert all(r.at is not None for r in rows)


@pytest.fixture
def campaign_app(sim, tmp_path):
    """A server with one campaign (never started) and a campaign manager."""
    _pbx, server = sim
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    db.upgrade(url)
    engine = db.make_engine(url)
    db.add_user(engine, "carl", hash_password("carl-password"), "campaign_manager", None)
    engine.dispose()
    campaign = CampaignTable.model_validate(
        {"name": "winback", "country": "DE", "caller_id": "+493055500000"}
    ).build()
    settings = Settings(
        http=HttpSettings(host="127.0.0.1", port=0),
        database=DatabaseSettings(url=url),
        pbxs=(PbxSettings("sim", *server.address, secret="secret", backoff_initial=0.05),),
        routing=RoutingSettings(queues=(QueueConfig("winback"),)),
        campaigns=(campaign,),
    )
    dirigent = Dirigent(settings, CollectorRegistry())
    dirigent.service.startService()
    run(wait_for(lambda: dirigent.sessions["sim"].connected, what="PBX"))
    yield dirigent
    run(dirigent.service.stopService().asFuture(LOOP))


def test_a_campaign_change_is_audited_with_every_setting_before_and_after(campaign_app):
    """Who switched the campaign to playing the machine message, and when?
    Every setting a PATCH may change is in the audit's before and after, and
    in the campaign's view (a supervisor sees what was set)."""
    assert set(LIVE_SETTINGS) <= set(CAMPAIGN_KEYS), "the audit shows every settable key"
    carl = token(campaign_app, "carl")
    status, before = call(campaign_app, "GET", "campaigns/winback", token=carl)
    assert status == 200 and set(LIVE_SETTINGS) <= set(before), "the view shows every setting"
    changes = {
        "abandon_target": 0.02,
        "max_lines_per_agent": 2.5,
        "mode": "power",
        "power_ratio": 1.5,
        "ring_timeout": 30.0,
        "machine_action": "message",
        "wrap_up": 45.0,
    }
    assert set(changes) == set(LIVE_SETTINGS), "the test changes every settable key"
    assert all(before[k] != v for k, v in changes.items()), "each one really changes"
    status, after = call(campaign_app, "PATCH", "campaigns/winback", changes, carl)
    assert status == 200 and {k: after[k] for k in changes} == changes
    view = call(campaign_app, "GET", "campaigns/winback", token=carl)[1]
    assert view["machine_action"] == "message" and view["wrap_up"] == 45.0
    run(wait_for(lambda: audit_rows(campaign_app), what="the audit row"))
    (row,) = audit_rows(campaign_app)
    assert (row.actor, row.action, row.target) == (
        "carl",
        "PATCH /api/campaigns/winback",
        "campaign winback",
    )
    assert row.request == changes
    assert {k: row.before[k] for k in changes} == {k: before[k] for k in changes}
    assert {k: row.after[k] for k in changes} == changes
    assert row.before["status"] == row.after["status"] == "stopped"


def test_a_list_upload_is_audited_naming_the_list_and_its_campaign(campaign_app):
    """QA4: the audit row of ``POST /api/lists`` said only "list" (and the
    log line not what was asked): which list went into which campaign?"""
    from tests.test_campaign_service import upload

    carl = token(campaign_app, "carl")
    body = b"phone\r\n+49 30 9460 0100\r\n"
    status, report = upload(campaign_app, "campaign=winback&name=herbst.csv", body, carl)
    assert status == 200, report
    run(wait_for(lambda: audit_rows(campaign_app), what="the audit row"))
    (row,) = audit_rows(campaign_app)
    assert (row.action, row.target) == ("POST /api/lists", "list herbst.csv of campaign winback")
    assert row.request["name"] == ["herbst.csv"]


def test_an_audit_row_of_any_request_fits_its_columns(database_url):
    """On PostgreSQL the audit row of an odd request was lost (logged and
    counted, never stored): a path longer than its column (``POST
    /api/agents/<300 characters>/pause``, answered 404), a NUL in it
    (``%00``: PostgreSQL text holds none) or a body with NaN or 1e400 (its
    JSON holds neither).  Who tried what is the row an audit must keep."""
    import datetime as dt

    db.upgrade(database_url)
    engine = db.make_engine(database_url)
    name = "a" * 300
    base = {"at": dt.datetime.now(dt.UTC), "actor": "boss", "role": "supervisor", "status": 404}
    try:
        db.add_audit(
            engine,
            {
                **base,
                "action": f"POST /api/agents/{name}/pause",
                "target": f"agent {name}",
                "request": {"reason": float("nan"), "wrap_up": [float("inf"), -float("inf")]},
                "before": None,
                "after": None,
            },
        )
        nul = {"action": "POST /api/agents/a\x00b/pause", "target": "agent a\x00b"}
        db.add_audit(engine, {**base, **nul, "request": None, "before": None, "after": None})
        with engine.connect() as conn:
            rows = conn.execute(select(db.audit).order_by(db.audit.c.id)).all()
    finally:
        engine.dispose()
    long, nul = rows
    assert len(long.action) <= 200 and long.action.startswith("POST /api/agents/aaa")
    assert len(long.target) <= 200 and long.target.startswith("agent aaa")
    assert long.request == {"reason": "NaN", "wrap_up": ["Infinity", "-Infinity"]}
    assert "\x00" not in nul.action + nul.target and nul.target.startswith("agent a")
