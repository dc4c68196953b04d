"""A campaign's do-not-call entry needs the campaign to exist.

QA found ``POST /api/dnc {"campaign": "nope"}`` answered "added 1" and
``dirigent dnc add N --campaign uk-pwo`` exited 0: each made a campaign row
of the misspelt name, and the real campaign kept dialling the number.  Now
such an entry is refused naming ``campaign`` (HTTP 400 like an unknown
campaign of ``POST /api/lists``, exit 2), nothing is written and no campaign
is made; an entry for a campaign that exists (a row, or a ``[[campaign]]``
of the configuration) still works.  The audit of an entry says what changed.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import func, insert, select

from asterisk.session import PbxSettings
from cti.auth import hash_password
from dialer.lists import ListError
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
from store.consent import DbDnc, add_dnc, import_dnc
from store.list_ops import ListOps
from tests.conftest import LOOP, run, wait_for
from tests.test_api import call, token

NUMBER = "+442079460100"
UNKNOWN = "campaign: unknown campaign 'uk-pwo'"


def campaigns(engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(conn.execute(select(db.campaign.c.name)).scalars())


def dnc_rows(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(db.dnc)).scalar_one()


def make_campaign(engine, name: str) -> None:
    with engine.begin() as conn:
        conn.execute(insert(db.campaign).values(name=name, settings={}))


def test_an_entry_for_an_unknown_campaign_is_refused_and_makes_no_campaign(engine, tmp_path):
    make_campaign(engine, "uk-pow")
    with pytest.raises(ListError) as refused:
        add_dnc(engine, [NUMBER], campaign="uk-pwo")
    assert (refused.value.field, str(refused.value)) == ("campaign", UNKNOWN)
    listing = tmp_path / "dnc.txt"
    listing.write_text(f"{NUMBER}\n")
    with pytest.raises(ListError, match=UNKNOWN):
        import_dnc(engine, listing, campaign="uk-pwo")
    with pytest.raises(ListError, match=UNKNOWN):  # a CSV file goes another way
        (tmp_path / "dnc.csv").write_text(f"phone;name\n{NUMBER};A\n")
        import_dnc(engine, tmp_path / "dnc.csv", campaign="uk-pwo")
    assert campaigns(engine) == ["uk-pow"], "no phantom campaign"
    assert dnc_rows(engine) == 0, "nothing written"
    assert DbDnc(engine).blocked(NUMBER, "uk-pwo") is None

    result = add_dnc(engine, [NUMBER], campaign="uk-pow")
    assert (result.added, result.numbers) == (1, {NUMBER: "added"})
    assert DbDnc(engine).blocked(NUMBER, "uk-pow") == "campaign"
    assert import_dnc(engine, listing, campaign="uk-pow").numbers == {NUMBER: "already"}
    assert add_dnc(engine, [NUMBER]).added == 1, "the global list needs no campaign"


def test_a_configured_campaign_without_a_row_yet_takes_entries(engine):
    """A ``[[campaign]]`` exists before the server first starts it (as for
    ``lists import``): its entry makes its row, the one a start fills in."""
    assert add_dnc(engine, [NUMBER], campaign="de-prog", configured=("de-prog",)).added == 1
    assert campaigns(engine) == ["de-prog"]
    assert DbDnc(engine).blocked(NUMBER, "de-prog") == "campaign"
    with pytest.raises(ListError, match="campaign: unknown campaign 'de-porg'"):
        add_dnc(engine, [NUMBER], campaign="de-porg", configured=("de-prog",))
    assert campaigns(engine) == ["de-prog"]


def test_the_api_operations_refuse_an_unknown_campaign_naming_it(engine):
    """What ``POST /api/dnc`` and ``GET /api/dnc/<n>?campaign=`` run: a
    look-up for a misspelt campaign is not "not blocked"."""
    ops = ListOps(engine)
    make_campaign(engine, "uk-pow")
    with pytest.raises(ListError, match=UNKNOWN):
        ops.add_dnc([NUMBER], campaign="uk-pwo")
    with pytest.raises(ListError, match=UNKNOWN):
        ops.check_dnc(NUMBER, "uk-pwo")
    assert campaigns(engine) == ["uk-pow"] and dnc_rows(engine) == 0
    answer = ops.add_dnc([NUMBER, "12"], campaign="uk-pow")
    assert (answer["added"], answer["numbers"]) == (1, {NUMBER: "added"})
    assert ops.check_dnc(NUMBER, "uk-pow") == {"number": NUMBER, "blocked": "campaign"}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dirigent.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_the_command_line_refuses_an_unknown_campaign_with_exit_2(database_url, tmp_path):
    db.upgrade(database_url)
    engine = db.make_engine(database_url)
    try:
        make_campaign(engine, "uk-pow")
        listing = tmp_path / "dnc.txt"
        listing.write_text(f"{NUMBER}\n")
        for args in (("add", NUMBER), ("import", str(listing))):
            out = cli("dnc", *args, "--campaign", "uk-pwo", "--db", database_url)
            assert out.returncode == 2, out
            assert UNKNOWN in out.stderr and "added" not in out.stdout
        assert campaigns(engine) == ["uk-pow"] and dnc_rows(engine) == 0

        out = cli("dnc", "add", NUMBER, "--campaign", "uk-pow", "--db", database_url)
        assert out.returncode == 0 and "1 added" in out.stdout, out
        config = tmp_path / "dirigent.toml"
        config.write_text(
            f'[database]\nurl = "{database_url}"\n\n[[campaign]]\nname = "de-prog"\n'
            'country = "DE"\ncaller_id = "+493055500000"\n'
        )
        out = cli("dnc", "import", str(listing), "--campaign", "de-prog", "--config", str(config))
        assert out.returncode == 0 and "1 added" in out.stdout, out
        assert campaigns(engine) == ["de-prog", "uk-pow"], "a configured campaign exists"
        assert DbDnc(engine).blocked(NUMBER, "de-prog") == "campaign"
        # QA4: a number taken over the phone in national format is read in the
        # campaign's country, as its lists are (it was refused: no region)
        out = cli("dnc", "add", "030 9460 0123", "--campaign", "de-prog", "--config", str(config))
        assert out.returncode == 0 and "1 added" in out.stdout, out
        assert "read as DE (the campaign's country)" in out.stdout
        assert DbDnc(engine).blocked("+493094600123", "de-prog") == "campaign"
    finally:
        engine.dispose()


@pytest.fixture
def server(sim, tmp_path):
    """A server with one configured campaign, winback, and a campaign manager."""
    _pbx, pbx = sim
    url = f"sqlite:///{tmp_path / 'dnc.db'}"
    db.upgrade(url)
    engine = db.make_engine(url)
    db.add_user(engine, "carl", hash_password("carl-password"), "campaign_manager", None)
    engine.dispose()
    campaign = CampaignTable.model_validate(
        {"name": "winback", "country": "GB", "caller_id": "+442079460999"}
    ).build()
    settings = Settings(
        http=HttpSettings(host="127.0.0.1", port=0),
        database=DatabaseSettings(url=url),
        pbxs=(PbxSettings("sim", *pbx.address, secret="secret", backoff_initial=0.05),),
        routing=RoutingSettings(queues=(QueueConfig("winback"),)),
        campaigns=(campaign,),
    )
    dirigent = Dirigent(settings, CollectorRegistry())
    dirigent.service.startService()
    run(wait_for(lambda: dirigent.sessions["sim"].connected, what="PBX"))
    yield dirigent
    run(dirigent.service.stopService().asFuture(LOOP))


def audit_rows(app) -> list:
    with app.database.engine.connect() as conn:
        return conn.execute(select(db.audit).order_by(db.audit.c.id)).all()


def test_over_http_an_unknown_campaign_is_a_400_and_the_audit_says_what_changed(server):
    engine = server.database.engine
    carl = token(server, "carl")
    before = campaigns(engine)
    status, error = call(server, "POST", "dnc", {"numbers": [NUMBER], "campaign": "nope"}, carl)
    assert (status, error) == (
        400,
        {"error": "campaign: unknown campaign 'nope'", "field": "campaign"},
    )
    status, error = call(server, "GET", "dnc/%2B442079460100?campaign=nope", token=carl)
    assert (status, error["error"]) == (400, "campaign: unknown campaign 'nope'")
    assert campaigns(engine) == before and "nope" not in before, "no campaign row made"
    assert dnc_rows(engine) == 0, "the number is on no list"

    status, body = call(server, "POST", "dnc", {"numbers": [NUMBER], "campaign": "winback"}, carl)
    assert status == 200 and (body["added"], body["numbers"]) == (1, {NUMBER: "added"}), body
    status, body = call(server, "GET", "dnc/%2B442079460100?campaign=winback", token=carl)
    assert body == {"number": NUMBER, "blocked": "campaign"}
    status, body = call(server, "POST", "dnc", {"numbers": [NUMBER, "+442079460101"]}, carl)
    assert status == 200 and body["added"] == 2
    status, body = call(server, "POST", "dnc", {"numbers": [NUMBER], "campaign": "winback"}, carl)
    assert status == 200 and body["numbers"] == {NUMBER: "already"}

    with engine.begin() as conn:
        contact = conn.execute(insert(db.contact).values(display_name="Eva", custom={}))
        contact_id = contact.inserted_primary_key[0]
    withdrawal = {"contact": contact_id, "channel": "voice", "granted": False, "source": "call"}
    assert call(server, "POST", "consent", withdrawal, carl)[0] == 200

    run(wait_for(lambda: len(audit_rows(server)) >= 5, what="five audit rows"))
    refused, entry, global_entry, again, consent = audit_rows(server)
    assert consent.after == {"contact": contact_id, "channel": "voice", "granted": False}
    assert (refused.status, refused.before, refused.after) == (400, None, None)
    assert (entry.status, entry.target) == (200, "dnc")
    assert entry.before == {"list": "campaign winback", "listed": []}
    assert entry.after == {"list": "campaign winback", "listed": [NUMBER]}
    assert global_entry.before == {"list": "global", "listed": []}
    assert global_entry.after == {"list": "global", "listed": [NUMBER, "+442079460101"]}
    assert again.before == again.after == {"list": "campaign winback", "listed": [NUMBER]}
