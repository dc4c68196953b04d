"""A list import keeps to the database's columns and to the campaign's
country, on SQLite and PostgreSQL alike: a field longer than its column is
one rejected row naming the field (on PostgreSQL it failed the whole import,
``--dry-run`` too: "value too long for type character varying(100)"), and a
campaign whose country is known reads national numbers as that country's
(they were all rejected: "Missing or invalid default region.")."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from store import db
from store.list_ops import ListOps
from store.lists_import import import_list

DIRIGENT = [sys.executable, "-m", "dirigent.cli"]

#: the QA session's file (finding "one over-long name ... fails the whole list
#: import"), with a 30-character postcode and a 300-character e-mail beside it
LONG_FIELDS = "\n".join(
    [
        "phone,first_name,last_name,postal_code,city,email,company",
        f"+44 114 496 0601,A,{'L' * 150},1,c,a@b.c,co",
        f"+44 114 496 0602,B,b,{'9' * 30},c,a@b.c,co",
        f"+44 114 496 0603,C,c,1,c,{'e' * 290}@b.example,co",
        "+44 114 496 0604,D,d,1,c,a@b.c,co",
        # exactly the columns' sizes fit; the derived display name (first and
        # last: 201) and phonetic key (over 64) are the store's to fit
        f"+44 114 496 0605,{'abcdefghij' * 10},{'klmnopqrst' * 10},{'2' * 20},{'c' * 100},"
        f"{'m' * 250}@b.c,{'o' * 200}",
        "",
    ]
)
EXPECTED = [
    (2, "last_name", "at most 100 characters (150 given)"),
    (3, "postal_code", "at most 20 characters (30 given)"),
    (4, "email", "at most 254 characters (300 given)"),
]


def records(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(db.record)).scalar_one()


@pytest.mark.parametrize("dry_run", [False, True], ids=["import", "dry-run"])
def test_a_field_longer_than_its_column_is_a_rejected_row_naming_it(tmp_path, engine, dry_run):
    path = tmp_path / "longf2.csv"
    path.write_text(LONG_FIELDS)
    report = import_list(engine, path, "c1", create=True, dry_run=dry_run)
    assert [(p.row, p.field, p.reason) for p in report.problems] == EXPECTED
    assert (report.rows, report.imported, report.rejected) == (5, 2, 3)
    assert records(engine) == (0 if dry_run else 2)
    if not dry_run:
        with engine.connect() as conn:
            full = conn.execute(
                select(db.contact).where(db.contact.c.first_name == "abcdefghij" * 10)
            ).one()
        assert full.last_name == "klmnopqrst" * 10 and len(full.email) == 254
        assert full.display_name.startswith("abcdefghij") and len(full.display_name) <= 200


def test_an_upload_rejects_the_row_and_imports_the_rest(engine):
    """``POST /api/lists`` (its operation): the rows in the answer, not a 500."""
    ops = ListOps(engine)
    for dry_run in (True, False):
        answer = ops.import_upload(
            io.BytesIO(LONG_FIELDS.encode()), "longf2.csv", "c1", create=True, dry_run=dry_run
        )
        assert [(p["row"], p["field"], p["reason"]) for p in answer["problems"]] == EXPECTED
        assert answer["imported"] == 2
    assert records(engine) == 2


def test_a_priority_the_column_cannot_hold_is_a_rejected_row_a_toll_free_number_imports(
    tmp_path, engine
):
    """A US toll-free number rings in every US zone (727 characters of zone
    names): it was a rejected row, as its zones overflowed their column; the
    column holds them all now (calling hours are checked in each)."""
    path = tmp_path / "p.csv"
    path.write_text(
        "phone,priority\n+44 114 496 0601,99999999999\n+1 800 555 0199,1\n+44 114 496 0604,7\n"
    )
    report = import_list(engine, path, "c1", create=True)
    assert [(p.row, p.field) for p in report.problems] == [(2, "priority")]
    assert "-2147483648 to 2147483647" in report.problems[0].reason
    assert report.imported == 2 and records(engine) == 2
    with engine.connect() as conn:
        zones = conn.execute(
            select(db.contact_phone.c.timezones).where(db.contact_phone.c.e164 == "+18005550199")
        ).scalar_one()
    assert len(zones) > 200 and "America/Los_Angeles" in zones and "America/New_York" in zones


def test_a_list_file_name_longer_than_its_column_is_refused(tmp_path, engine):
    from dialer.lists import ListError

    path = tmp_path / f"{'n' * 197}.csv"  # 201 characters
    path.write_text("phone\n+44 114 496 0601\n")
    with pytest.raises(ListError, match=r"^file: .*at most 200 characters \(201 given\)"):
        import_list(engine, path, "c1", create=True)
    short = tmp_path / "x.csv"
    short.write_text("phone\n+44 114 496 0601\n")
    with pytest.raises(ListError, match=r"^campaign: at most 120 characters"):
        import_list(engine, short, "c" * 121, create=True)
    assert records(engine) == 0


# -- the campaign's country --------------------------------------------------------------
NATIONAL = "phone,name\n020 7946 0500,X\n0114 496 0601,Y\n"


def gb_campaign(engine, name: str = "uk-test") -> None:
    """The campaign's row as the server leaves it (``ensure_campaign``: its country)."""
    with engine.begin() as conn:
        conn.execute(insert(db.campaign).values(name=name, country="GB", settings={}))


def test_national_numbers_are_read_as_the_campaigns_country(tmp_path, engine):
    path = tmp_path / "nat.csv"
    path.write_text(NATIONAL)
    gb_campaign(engine)
    report = import_list(engine, path, "uk-test")
    assert (report.imported, report.rejected) == (2, 0), report.problems
    assert (report.region, report.region_from) == ("GB", "campaign")
    with engine.connect() as conn:
        numbers = set(conn.execute(select(db.record.c.e164)).scalars())
    assert numbers == {"+442079460500", "+441144960601"}


def test_an_explicit_region_wins_over_the_campaigns_country(tmp_path, engine):
    path = tmp_path / "de.csv"
    path.write_text("phone\n030 1234 5678\n")
    gb_campaign(engine)
    report = import_list(engine, path, "uk-test", region="DE")
    assert (report.region, report.region_from) == ("DE", "given")
    # read as DE (+49 30 ...), so a number the GB campaign's rules do not govern (F3)
    assert report.imported == 0
    assert "number is in DE; campaign 'uk-test' dials under GB rules" in report.problems[0].reason


def test_a_configured_campaigns_country_counts_before_its_row(tmp_path, engine):
    """``--config`` / the server's ``[[campaign]]``: the campaign may have no row yet."""
    path = tmp_path / "nat.csv"
    path.write_text(NATIONAL)
    report = import_list(engine, path, "uk-test", configured=("uk-test",), country="GB")
    assert (report.imported, report.region, report.region_from) == (2, "GB", "campaign")


def test_without_any_region_a_national_number_names_the_fix(tmp_path, engine):
    path = tmp_path / "nat.csv"
    path.write_text(NATIONAL)
    report = import_list(engine, path, "nowhere", create=True)
    assert report.imported == 0 and report.region is None
    assert "national numbers need a region (the import's region, or a country column)" in (
        report.problems[0].reason
    )


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DIRIGENT, *args], capture_output=True, text=True, timeout=120)


def test_the_command_line_uses_and_names_the_campaigns_country(tmp_path, database_url, engine):
    path = tmp_path / "nat.csv"
    path.write_text(NATIONAL)
    config = tmp_path / "d.toml"
    config.write_text(
        f'[database]\nurl = "{database_url}"\n\n'
        '[[campaign]]\nname = "uk-test"\ncountry = "UK"\ncaller_id = "+442079460999"\n'
    )
    out = cli("lists", "import", str(path), "--campaign", "uk-test", "--config", str(config))
    assert out.returncode == 0, out.stderr
    assert "2 imported" in out.stdout
    assert "national numbers read as GB (the campaign's country; --region overrides)" in out.stdout
    out = cli(
        "lists", "import", str(path), "--campaign", "uk-test", "--config", str(config), "--json"
    )
    assert json.loads(out.stdout.strip().splitlines()[-1])["region"] == "GB"

    gb_campaign(engine, "demo")
    out = cli("lists", "import", str(path), "--campaign", "demo", "--db", database_url, "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1])["imported"] == 2

    de = tmp_path / "de.csv"
    de.write_text("phone\n030 1234 5678\n")
    out = cli(
        "lists", "import", str(de), "--campaign", "demo", "--db", database_url, "--region", "de"
    )
    # read as DE (--region wins), and so refused for the GB campaign (F3): nothing imported
    assert out.returncode == 1, out.stderr
    assert "imported nothing" in out.stderr


def test_the_command_line_rejects_an_over_long_field_on_both_databases(tmp_path, database_url):
    path = tmp_path / "longf2.csv"
    path.write_text(LONG_FIELDS)
    for extra in (["--dry-run"], []):
        out = cli(
            "lists",
            "import",
            str(path),
            "--campaign",
            "c1",
            "--create",
            "--db",
            database_url,
            *extra,
        )
        assert out.returncode == 0, out.stderr
        assert "2 imported" in out.stdout or "dry run" in out.stdout
        assert "row 2: last_name: at most 100 characters (150 given)" in out.stdout
        assert "Traceback" not in out.stderr
    assert Path(f"{path}.rejected.csv").read_text().count("\n") == 4
