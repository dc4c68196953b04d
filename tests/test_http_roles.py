"""The HTTP API's authorisation and validation as a client meets them: the
role decorator refuses the wrong role with 403 before anything happens,
schema errors name the field by its path, unknown routes are 404 (401
without a token), and every answer is JSON (assembled service, real HTTP)."""

from __future__ import annotations

import pytest

from cti.auth import hash_password
from store import db
from tests.test_api import app, call, token

__all__ = ["app"]


def test_the_role_decorator_refuses_a_wrong_role_and_changes_nothing(app):
    db.add_user(
        app.database.engine, "carla", hash_password("carla-password"), "campaign_manager", None
    )
    anna, carla = token(app, "anna"), token(app, "carla")
    chat = {"channel": "chat", "queue": "sales"}
    status, error = call(app, "POST", "interactions", chat, anna)
    assert (status, error["field"]) == (403, "interactions"), "an agent creates no interactions"
    status, error = call(app, "PUT", "agents/ben/skills", {"skills": {"de": 5}}, carla)
    assert status == 403 and error["error"].startswith("agent: carla may not")
    status, error = call(app, "GET", "campaigns", token=anna)
    assert status == 403 and error["field"] == "campaign"
    status, error = call(app, "POST", "dnc", {"numbers": ["+442079460500"]}, anna)
    assert status == 403 and error["field"] == "lists"
    status, ben = call(app, "GET", "agents/ben", token=anna)
    assert status == 200 and ben["skills"] == {}, "the refused change did not happen"
    status, queues = call(app, "GET", "queues", token=anna)
    assert status == 200 and all(q.get("waiting", 0) == 0 for q in queues)


@pytest.mark.parametrize(
    ("path", "body", "field", "reason"),
    [
        ("agents/anna/login", {"queues": ["sales", 3]}, "queues.1", "must be text"),
        ("agents/anna/login", {"queues": "sales"}, "queues", "must be a list"),
        ("interactions", {"channel": "chat", "queue": "sales", "skills": {"de": 0}}, "skills.de",
         "level must be a whole number from 1 to 10"),
        ("interactions", {"channel": "chat", "queue": "sales", "priority": True}, "priority",
         "must be a whole number"),
        ("interactions", {"channel": "chat", "queue": "sales", "priority": 5000}, "priority",
         "must be from -1000 to 1000"),
        ("interactions", {"channel": "chat", "queue": "sales", "customer": "x" * 201}, "customer",
         "at most 200 characters"),
        ("interactions", {"queue": "sales"}, "channel", "required"),
    ],
)  # fmt: skip
def test_a_schema_error_names_the_field_by_its_path(app, path, body, field, reason):
    status, error = call(app, "POST", path, body, token(app, "boss"))
    assert status == 400 and error == {"error": f"{field}: {reason}", "field": field}


def test_unknown_routes_and_methods(app):
    boss = token(app, "boss")
    status, error = call(app, "GET", "nowhere", token=boss)
    assert status == 404 and error["field"] == "path" and "/api/nowhere" in error["error"]
    status, error = call(app, "DELETE", "agents/anna", token=boss)
    assert status == 404 and error["field"] == "path"
    status, error = call(app, "GET", "nowhere")
    assert status == 401, "no route tells nothing to a caller without a token"
    status, error = call(app, "POST", "agents/zoe/pause", {"reason": "x"}, boss)
    assert (status, error["field"]) == (404, "agent")
