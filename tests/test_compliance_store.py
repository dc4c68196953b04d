"""DNC lists and consent records in the database, read by the compliance
gate; on SQLite and PostgreSQL, and through the command line."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest
from sqlalchemy import insert

from core.numbers import normalize
from dialer.compliance import Campaign, Compliance, policy_for
from dialer.lists import ListError
from store import db
from store.consent import DbConsent, DbDnc, add_dnc, import_dnc, opt_out, record_consent

NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)  # Monday 10:00 in Berlin
BERLIN = normalize("+49 30 123456")


@pytest.fixture
def engine(database_url):
    db.upgrade(database_url)
    engine = db.make_engine(database_url)
    yield engine
    engine.dispose()


def gate(engine) -> Compliance:
    return Compliance(DbDnc(engine), DbConsent(engine))


def test_global_and_campaign_dnc_block_dials(engine):
    us = Campaign("spring", policy_for("DE"), "+4930999999", requires_consent=False)
    assert gate(engine).check(us, BERLIN, None, NOW).allowed
    result = add_dnc(engine, ["030 123456", "12"], campaign="spring", region="DE")
    assert (result.added, len(result.rejected)) == (1, 1)
    assert gate(engine).check(us, BERLIN, None, NOW).reason == "on the campaign do-not-call list"
    other = Campaign("autumn", policy_for("DE"), "+4930999999", requires_consent=False)
    assert gate(engine).check(other, BERLIN, None, NOW).allowed, "only the spring campaign's list"
    opt_out(engine, BERLIN.e164)
    assert gate(engine).check(other, BERLIN, None, NOW).reason == "on the global do-not-call list"
    assert add_dnc(engine, ["+4930123456"]).already == 1


def test_consent_grant_then_withdrawal_and_its_proof(engine):
    with engine.begin() as conn:
        contact = conn.execute(
            insert(db.contact).values(display_name="Eva", custom={})
        ).inserted_primary_key[0]
    de = Campaign("b2c", policy_for("DE"), "+4930999999")
    assert gate(engine).check(de, BERLIN, str(contact), NOW).check == "consent"
    with pytest.raises(ListError, match="proof_ref: required for a grant"):
        record_consent(engine, contact, "voice", True, source="web form")
    record_consent(
        engine,
        contact,
        "voice",
        True,
        source="web form",
        proof_ref="doi-4711",
        given_at=NOW - dt.timedelta(days=30),
    )
    assert gate(engine).check(de, BERLIN, str(contact), NOW).allowed
    record_consent(
        engine, contact, "voice", False, source="phone call", given_at=NOW - dt.timedelta(hours=1)
    )
    assert gate(engine).check(de, BERLIN, str(contact), NOW).check == "consent"
    assert gate(engine).check(de, BERLIN, str(contact), NOW - dt.timedelta(hours=2)).allowed, (
        "the grant was valid then"
    )
    with pytest.raises(ListError, match="contact: unknown contact"):
        record_consent(engine, 999_999, "voice", False, source="x")


def test_dnc_files_one_number_per_line_or_csv(engine, tmp_path):
    lines = tmp_path / "dnc.txt"
    lines.write_text("+4930123456\n+4930123457\n\nnot a number\n")
    result = import_dnc(engine, lines)
    assert result.added == 2 and len(result.rejected) == 1
    csv_file = tmp_path / "dnc.csv"
    csv_file.write_text("name;telefon\nA;030 555555\nB;0900 1234567\n")
    result = import_dnc(engine, csv_file, region="DE", campaign="spring")
    assert result.added == 1 and result.rejected[0][1].startswith("premium-rate")


def test_command_line_dnc_and_consent(tmp_path):
    url = f"sqlite:///{tmp_path / 'c.db'}"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "dirigent.cli", *args, "--db", url],
            capture_output=True,
            text=True,
        )

    out = cli("dnc", "add", "030 123456", "--region", "DE")
    assert out.returncode == 0 and "1 added" in out.stdout
    grant = (
        "consent",
        "add",
        "--contact",
        "1",
        "--channel",
        "voice",
        "--granted",
        "--source",
        "web",
    )
    out = cli(*grant)
    assert out.returncode == 2 and "proof_ref: required for a grant" in out.stderr
    out = cli(*grant, "--proof", "doi-1")
    assert out.returncode == 2 and "contact: unknown contact 1" in out.stderr
