"""Every supervisor action is in the audit log: who, what, on whom, when,
before and after, in the database and the log; an agent's own actions are not."""

from __future__ import annotations

from sqlalchemy import select

from store import db
from tests.conftest import run, wait_for
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
