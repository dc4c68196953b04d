"""``GET /api/contacts?phone=``: a campaign manager finds the contact behind
a number over HTTP, with the same facts as ``dirigent contacts find``
(assembled service, real HTTP, the database the service writes)."""

from __future__ import annotations

import urllib.parse

from cti.auth import hash_password
from store import db
from store.consent import add_dnc, record_consent
from store.lists_import import import_list
from tests.test_api import app, call, token

__all__ = ["app"]


def find(app, phone: str, tok: str, region: str | None = None) -> tuple[int, dict]:
    args = {"phone": phone, **({"region": region} if region else {})}
    return call(app, "GET", f"contacts?{urllib.parse.urlencode(args)}", token=tok)


def test_a_number_leads_to_its_contact_consent_dnc_and_records(app, tmp_path):
    engine = app.database.engine
    path = tmp_path / "spring.csv"
    path.write_text(
        "phone,first_name,last_name,company\n+49 30 1234 5678,Ada,Lovelace,Acme\n"
        "+49 30 1234 5679,Ben,Other,\n"
    )
    import_list(engine, path, "spring", create=True)
    add_dnc(engine, ["+49 30 1234 5678"], campaign="spring", source="complaint")
    db.add_user(engine, "carla", hash_password("carla-password"), "campaign_manager", None)
    carla = token(app, "carla")

    status, view = find(app, "+49 (30) 1234-5678", carla)
    assert status == 200, view
    assert view["e164"] == "+493012345678" and view["do_not_call"] == ["spring"]
    [contact] = view["contacts"]
    assert contact["display_name"] == "Ada Lovelace" and contact["company"] == "Acme"
    assert contact["consent"] == []
    assert [(r["campaign"], r["list"], r["status"]) for r in contact["records"]] == [
        ("spring", "spring.csv", "new")
    ]

    record_consent(engine, contact["id"], "voice", True, source="web form", proof_ref="form-17")
    status, again = find(app, "030 1234 5678", token(app, "boss"), region="DE")
    assert status == 200, "a supervisor may look up contacts too; national numbers with region"
    assert [(c["channel"], c["granted"]) for c in again["contacts"][0]["consent"]] == [
        ("voice", True)
    ]

    status, nobody = find(app, "+44 20 7946 0500", carla)
    assert status == 200 and nobody["contacts"] == [] and nobody["do_not_call"] == []


def test_a_bad_number_is_a_400_naming_phone_and_agents_may_not_look(app):
    boss = token(app, "boss")
    status, error = find(app, "030 12", boss)
    assert status == 400 and error["field"] == "phone" and "'030 12'" in error["error"]
    # QA12 finding 2: the API's answer named the command line's --region
    assert "national numbers need a region, e.g. ?region=DE" in error["error"], error
    status, error = call(app, "GET", "contacts", token=boss)
    assert (status, error["field"], error["error"]) == (400, "phone", "phone: required")
    status, error = find(app, "+49 30 1234 5678", token(app, "anna"))
    assert status == 403 and error["field"] == "contacts"
    status, error = find(app, "+49 30 1234 5678", "no-such-token")
    assert status == 401 and error["field"] == "authorization"


def test_over_long_dnc_and_consent_text_is_a_400_naming_the_field(app):
    """On PostgreSQL these were a 500 and the opt-out was lost; the check is
    the same on SQLite, whose columns do not refuse the value themselves."""
    boss = token(app, "boss")
    long = "r" * 201
    numbers = ["+442079460077", "+442079460078"]
    for field in ("reason", "source"):
        status, error = call(app, "POST", "dnc", {"numbers": numbers, field: long}, boss)
        assert status == 400 and error["field"] == field, error
        assert "at most 200 characters (201 given)" in error["error"]
    status, body = call(app, "GET", "dnc/%2B442079460077", token=boss)
    assert body["blocked"] is None, "nothing was written"
    status, error = call(
        app,
        "POST",
        "consent",
        {"contact": 1, "channel": "voice", "granted": False, "source": long},
        boss,
    )
    assert status == 400 and error["field"] == "source", error
    status, body = call(app, "POST", "dnc", {"numbers": numbers, "reason": "r" * 200}, boss)
    assert status == 200 and body["added"] == 2


def test_an_unknown_region_is_refused_naming_region_before_any_number_is_read(app):
    """``region=XX`` was taken by ``POST /api/dnc`` (200, every number
    rejected one by one, as ``--region XX`` once did to a list import) and
    blamed on ``phone`` by the contact look-up; the command line refuses it
    up front, and so does the API now."""
    boss = token(app, "boss")
    status, error = find(app, "030 1234 5678", boss, region="XX")
    assert (status, error["field"]) == (400, "region"), error
    body = {"numbers": ["030 1234 5678"], "region": "XX"}
    status, error = call(app, "POST", "dnc", body, token=boss)
    assert (status, error["field"]) == (400, "region"), error
    body = {
        "campaign": "spring",
        "keep": "030 1234 5678",
        "drop": ["030 1234 5679"],
        "region": "XX",
    }
    status, error = call(app, "POST", "lists/merge", body, token=boss)
    assert (status, error["field"]) == (400, "region"), error
    status, added = call(app, "POST", "dnc", {"numbers": ["030 1234 5678"], "region": "de"}, boss)
    assert status == 200 and added["numbers"] == {"+493012345678": "added"}, (
        "lower case is a region"
    )
