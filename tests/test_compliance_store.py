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


def gate(engine) -> Compliance:
    return Compliance(DbDnc(engine), DbConsent(engine))


def test_global_and_campaign_dnc_block_dials(engine):
    us = Campaign("spring", policy_for("DE"), "+4930999999", requires_consent=False)
    assert gate(engine).check(us, BERLIN, None, NOW).allowed
    with engine.begin() as conn:  # a campaign's entry needs the campaign (test_dnc_campaigns)
        conn.execute(insert(db.campaign).values(name="spring", settings={}))
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
    result = import_dnc(engine, csv_file, region="DE", campaign="spring", configured=["spring"])
    assert result.added == 1 and result.rejected[0][1].startswith("premium-rate")


def test_a_dnc_file_that_is_no_text_is_refused_naming_file(engine, tmp_path):
    """A list of numbers saved as UTF-16 (Notepad's "Unicode"), a binary file
    or a folder: the first was read as UTF-8, every number rejected and
    printed with its NUL bytes (a binary file's bytes went to the terminal as
    they were); the folder was Python's "[Errno 21] Is a directory"."""
    utf16 = tmp_path / "dnc.txt"
    utf16.write_bytes("+4930123456\n+4930123457\n".encode("utf-16"))
    binary = tmp_path / "dnc.bin"
    binary.write_bytes(bytes(range(256)))
    for path in (utf16, binary, tmp_path):
        with pytest.raises(ListError, match=r"^file: "):
            import_dnc(engine, path)
    assert DbDnc(engine).blocked("+4930123456", "") is None, "nothing was written"


def test_an_empty_dnc_file_adds_nothing_and_is_no_error(engine, tmp_path):
    """A nightly export with no new numbers is an empty file: 0 added, as
    before the encoding check (found in review: it became "empty file", exit 2)."""
    empty = tmp_path / "dnc.txt"
    empty.write_bytes(b"")
    result = import_dnc(engine, empty)
    assert result.added == 0 and result.rejected == []


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


LONG = "r" * 201  # every dnc/consent text column here holds 200 (proof_ref 500)


def test_an_over_long_reason_or_source_is_refused_naming_it_and_nothing_is_written(engine):
    """On PostgreSQL a 201-character reason was a StringDataRightTruncation (a
    500, the opt-out lost); SQLite stored it.  Now both refuse it at the edge."""
    number = "+442079460077"
    for given, field in (({"reason": LONG}, "reason"), ({"source": LONG}, "source")):
        with pytest.raises(ListError, match=rf"^{field}: at most 200 characters \(201 given\)"):
            add_dnc(engine, [number, "+442079460078"], **given)
    with pytest.raises(ListError, match=r"^campaign: at most 120 characters"):
        add_dnc(engine, [number], campaign="c" * 121)
    assert DbDnc(engine).blocked(number, "") is None, "nothing half-written"
    with engine.connect() as conn:
        assert conn.execute(db.campaign.select()).first() is None, "no campaign made either"
    assert add_dnc(engine, [number], reason="r" * 200, source="s" * 200).added == 1, "200 fits"
    assert DbDnc(engine).blocked(number, "") == "global"

    with engine.begin() as conn:
        contact = conn.execute(
            insert(db.contact).values(display_name="Eva", custom={})
        ).inserted_primary_key[0]
    with pytest.raises(ListError, match=r"^source: at most 200 characters"):
        record_consent(engine, contact, "voice", False, source=LONG)
    with pytest.raises(ListError, match=r"^proof_ref: at most 500 characters \(501 given\)"):
        record_consent(engine, contact, "voice", True, source="web", proof_ref="p" * 501)
    with engine.connect() as conn:
        assert conn.execute(db.consent.select()).first() is None
    record_consent(engine, contact, "voice", False, source="s" * 200, proof_ref="p" * 500)


def test_the_api_operations_refuse_over_long_text_with_the_field(engine):
    """What ``POST /api/dnc`` and ``POST /api/consent`` run (a 400 naming the field)."""
    from core.errors import Invalid
    from store.list_ops import ListOps

    ops = ListOps(engine)
    for number, text, field in (
        ("+442079460077", {"reason": LONG}, "reason"),
        ("+442079460079", {"source": LONG}, "source"),
    ):
        with pytest.raises(Invalid, match=rf"^{field}: at most 200 characters") as caught:
            ops.add_dnc([number], **text)
        assert caught.value.field == field
    with engine.begin() as conn:
        contact = conn.execute(
            insert(db.contact).values(display_name="Eva", custom={})
        ).inserted_primary_key[0]
    with pytest.raises(Invalid, match=r"^source: at most 200 characters") as caught:
        ops.add_consent(contact, "voice", False, source=LONG)
    assert caught.value.field == "source"


def test_the_command_line_refuses_over_long_text_in_one_line(database_url):
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "dirigent.cli", *args, "--db", database_url],
            capture_output=True,
            text=True,
        )

    out = cli("dnc", "add", "+442079460077", "--reason", LONG)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines() == [
        "dirigent: reason: at most 200 characters (201 given)"
    ]
    out = cli("dnc", "add", "+442079460077", "--reason", "fits")
    assert out.returncode == 0 and "1 added" in out.stdout, out.stderr
    out = cli("dnc", "import", "--reason", LONG, "nothing-read.txt")
    assert out.returncode == 2 and "reason: at most 200 characters" in out.stderr
    out = cli(
        "consent", "add", "--contact", "1", "--channel", "voice", "--withdrawn", "--source", LONG
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "dirigent: source: at most 200 characters (201 given)"
    ]
