"""The HTTP API's authorisation and validation as a client meets them: the
role decorator refuses the wrong role with 403 before anything happens,
schema errors name the field by its path, unknown routes are 404 (401
without a token), and every answer is JSON (assembled service, real HTTP)."""

from __future__ import annotations

import pytest

from cti.auth import hash_password
from cti.schemas import CampaignChange
from dialer.campaign import LIVE_SETTINGS
from store import db
from tests.test_api import app, call, token
from tests.test_audit import campaign_app

__all__ = ["app", "campaign_app"]


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
    status, ben = call(app, "GET", "agents/ben", token=carla)
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


def test_the_campaign_list_of_a_setup_without_campaigns_is_empty(app):
    """No [[campaign]] table: the list is empty (200 []), not a 404; one
    campaign by name is still a 404 naming campaign."""
    boss = token(app, "boss")
    assert call(app, "GET", "campaigns", token=boss) == (200, [])
    status, error = call(app, "GET", "campaigns/winback", token=boss)
    assert (status, error["field"]) == (404, "campaign")


def test_a_campaign_a_list_import_made_says_it_has_no_campaign_table(app, tmp_path):
    """QA12 finding 4: a campaign ``lists import --create`` made (a row with
    records, no ``[[campaign]]`` table) was "unknown campaign" to its view and
    pool, while the import named it among the known ones.  What its pool may
    dial depends on the table it lacks: the 404 says so."""
    from store.lists_import import import_list

    path = tmp_path / "bulk.csv"
    path.write_text("phone\n+49 30 1234 5678\n+49 30 1234 5679\n")
    import_list(app.database.engine, path, "bulk", create=True)
    boss = token(app, "boss")
    for route in ("campaigns/bulk", "campaigns/bulk/pool"):
        status, error = call(app, "GET", route, token=boss)
        assert (status, error["field"]) == (404, "campaign"), route
        assert (
            "'bulk' has 2 records but no [[campaign]] table, so it does not dial"
            in (error["error"])
        ), route
    status, error = call(app, "GET", "campaigns/nope/pool", token=boss)
    assert (status, error["error"]) == (404, "campaign: unknown campaign 'nope'")


LIVE = ", ".join(LIVE_SETTINGS)
CONSENT = {"contact": 1, "channel": "voice", "granted": True, "source": "web"}
MERGE = {"campaign": "winback", "keep": "+4930123400001", "drop": ["+4930123400002"]}


@pytest.mark.parametrize(
    ("method", "path", "body", "field", "reason"),
    [
        # a misspelt key: it was dropped and the request went on without it
        ("POST", "consent", {**CONSENT, "proof_rf": "form-7"}, "proof_rf",
         "unknown key (allowed: contact, granted, channel, source, proof_ref)"),
        ("POST", "dnc", {"numbers": ["+442079460500"], "reasn": "asked"}, "reasn",
         "unknown key (allowed: numbers, campaign, region, source, reason)"),
        ("POST", "lists/merge", {**MERGE, "regoin": "DE"}, "regoin",
         "unknown key (allowed: campaign, keep, drop, region)"),
        ("PATCH", "lists/winback/a.csv", {"active": False, "campaing": "x"}, "campaing",
         "unknown key (allowed: active)"),
        ("POST", "interactions/winback-1/disposition", {"code": "callback", "callback": "x"},
         "callback", "unknown key (allowed: code, callback_at)"),
        ("PATCH", "campaigns/winback", {"abandon_targt": 0.02}, "abandon_targt",
         f"cannot be changed live (one of {LIVE})"),
        # a wrong type names the field by its path
        ("POST", "dnc", {"numbers": ["+442079460500", 5]}, "numbers.1", "must be text"),
        ("POST", "dnc", {"numbers": []}, "numbers", "a non-empty list of phone numbers"),
        ("POST", "consent", {**CONSENT, "granted": "yes"}, "granted",
         "true (a grant) or false (a withdrawal)"),
        ("POST", "consent", {**CONSENT, "proof_ref": 7}, "proof_ref", "must be text"),
        ("POST", "lists/merge", {**MERGE, "keep": 5}, "keep", "must be text"),
        ("POST", "lists/merge", {**MERGE, "campaign": ""}, "campaign", "required"),
        ("PATCH", "lists/winback/a.csv", {}, "active", "required"),
        ("POST", "interactions/winback-1/disposition", {"code": "callback", "callback_at": 5},
         "callback_at", "must be text"),
        ("POST", "interactions/winback-1/disposition",
         {"code": "callback", "callback_at": "2026-11-24T10:00:00"}, "callback_at",
         "give the offset, e.g. 2026-11-24T10:00:00+01:00"),
        ("POST", "interactions/winback-1/disposition",
         {"code": "callback", "callback_at": "9999-12-31T23:59:59-12:00"}, "callback_at",
         "'9999-12-31T23:59:59-12:00' is out of range"),
        ("PATCH", "campaigns/winback", {"ring_timeout": "30"}, "ring_timeout", "must be a number"),
        ("PATCH", "campaigns/winback", {"ring_timeout": None}, "ring_timeout", "must be a number"),
        ("PATCH", "campaigns/winback", {"mode": True}, "mode", "must be text"),
        ("PATCH", "campaigns/winback", b'{"ring_timeout": NaN}', "ring_timeout",
         "must be a finite number"),
    ],
    ids=[
        "consent-key", "dnc-key", "merge-key", "list-key", "disposition-key", "campaign-key",
        "dnc-number-type", "dnc-empty", "consent-granted", "consent-proof-type", "merge-keep",
        "merge-campaign", "list-active", "disposition-time-type", "disposition-no-offset",
        "disposition-year-10000",
        "campaign-text", "campaign-null", "campaign-mode", "campaign-nan",
    ],
)  # fmt: skip
def test_the_change_bodies_refuse_unknown_keys_and_wrong_types_naming_them(
    campaign_app, method, path, body, field, reason
):
    """The bodies of campaign, list, do-not-call, consent and disposition
    changes, by their schemas: a key a body does not know is refused with
    the keys it does (a consent's misspelt proof was dropped, and the grant
    refused for want of one; a DNC entry's misspelt reason was stored
    without it), and a value of the wrong type is named by its path."""
    app = campaign_app
    db.add_user(app.database.engine, "sue", hash_password("sue-password"), "supervisor", None)
    raw = body if isinstance(body, bytes) else None
    status, error = call(app, method, path, None if raw else body, token(app, "sue"), raw=raw)
    assert (status, error) == (400, {"error": f"{field}: {reason}", "field": field})


def test_a_refused_key_changes_nothing(campaign_app):
    app = campaign_app
    carl = token(app, "carl")
    status, _error = call(app, "POST", "dnc", {"numbers": ["+442079460500"], "resaon": "x"}, carl)
    assert status == 400
    status, answer = call(app, "GET", "dnc/%2B442079460500", token=carl)
    assert status == 200 and answer["blocked"] is None, "the number was not listed"


def test_the_campaign_change_schema_has_every_live_setting():
    assert list(CampaignChange.model_fields) == list(LIVE_SETTINGS)
