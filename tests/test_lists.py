"""List import: real exports (encodings, delimiters, quoting), bad input,
all-or-nothing writes, idempotent re-import; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from dialer.lists import ListError, ListReader, PhoneticGroups, export_safe, phonetic_key
from store import db
from store.lists_import import import_list

GERMAN = [
    "Vorname;Nachname;Telefon;PLZ;Ort;Kundennr;Notiz",
    'Hans;Meyer;030 123456;10115;Berlin;K1;"zwei\nZeilen"',
    "Hans;Meier;030 123457;10115;Berlin;K2;",
    "Jürgen;Maier;0900 1234567;80331;München;K3;",
    'Eva;Groß;0151 23456789;80331;München;K4;=HYPERLINK("x")',
    "Bad;Row;030 999;1",
    "Eva;Groß;0151 23456789;80331;München;K4-dup;",
]


def write(
    tmp_path: Path, name: str, lines: list[str], encoding: str = "utf-8", newline: str = "\r\n"
) -> Path:
    path = tmp_path / name
    path.write_bytes(newline.join(lines).encode(encoding))
    return path


def counts(url: str) -> tuple[int, int, int]:
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            records, contacts, lists = (
                conn.execute(select(func.count()).select_from(t)).scalar_one()
                for t in (db.record, db.contact, db.dial_list)
            )
            return records, contacts, lists
    finally:
        engine.dispose()


def test_german_excel_export_imports_and_reimports_idempotently(tmp_path, database_url, engine):
    path = write(tmp_path, "kunden.csv", GERMAN, "cp1252")
    report = import_list(engine, path, "spring", region="DE", create=True)
    assert report.summary() | {"rejected_file": None} == {
        "rows": 6,
        "imported": 3,
        "updated": 0,
        "rejected": 2,
        "duplicates": 1,
        "phonetic_duplicate_groups": 1,
        "formula_like_fields": 1,
        "encoding": "cp1252",
        "delimiter": ";",
        "dry_run": False,
        "rejected_file": None,
        "region": "DE",
        "region_from": "given",
    }
    assert [(p.row, p.field) for p in report.problems] == [(4, "phone"), (6, "row")]
    assert (
        Path(report.rejected_file).read_text().startswith("row,field,reason\n4,phone,premium-rate")
    )
    with engine.connect() as conn:
        eva = conn.execute(select(db.contact).where(db.contact.c.last_name == "Groß")).one()
        assert eva.city == "München" and eva.custom["Kundennr"] == "K4"
        record = conn.execute(select(db.record).where(db.record.c.e164 == "+4930123456")).one()
        assert record.extra["Notiz"] == "zwei\nZeilen"
    again = import_list(engine, path, "spring", region="DE", create=True)
    assert (again.imported, again.updated) == (0, 3)
    assert counts(database_url) == (3, 3, 1)


def test_a_reimport_brings_the_crms_corrected_names_and_keeps_what_it_leaves_out(tmp_path, engine):
    """QA4: a re-import updated records but not their contacts, so a name
    corrected in the CRM stayed wrong in pops, exports and the duplicate
    search.  A field the new file gives replaces the stored one; a column it
    lacks, or an empty cell, keeps what is there."""
    first = tmp_path / "crm.csv"
    first.write_text(
        "first_name,last_name,phone,email\n"
        "Hans,Meier,+49 30 1234560,hans@example.org\n"
        "Eva,Groß,+49 30 1234561,eva@example.org\n"
    )
    import_list(engine, first, "spring", create=True)
    fixed = tmp_path / "crm.csv"
    fixed.write_text(
        "first_name,last_name,phone\n"  # no e-mail column this time
        "Hans,Meyer,+49 30 1234560\n"
        "Eva,,+49 30 1234561\n"
    )
    again = import_list(engine, fixed, "spring", create=True)
    assert (again.imported, again.updated) == (0, 2)
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                db.contact.c.first_name,
                db.contact.c.last_name,
                db.contact.c.display_name,
                db.contact.c.email,
            ).order_by(db.contact.c.id)
        ).all()
    assert [tuple(r) for r in rows] == [
        ("Hans", "Meyer", "Hans Meyer", "hans@example.org"),
        ("Eva", "Groß", "Eva Groß", "eva@example.org"),
    ]


@pytest.mark.parametrize(
    ("encoding", "delimiter", "bom"),
    [("utf-8", ",", True), ("utf-8", "\t", False), ("cp1252", ",", False), ("utf-8", "|", False)],
)
def test_encodings_and_delimiters_are_detected(tmp_path, encoding, delimiter, bom):
    lines = [
        delimiter.join(["first_name", "last_name", "phone", "city"]),
        delimiter.join(["Zoë", "Ørsted", "+44 20 7946 0018", "Köln"]),
        delimiter.join(["Ana", "Núñez", "+1 212 555 0100", "New York"]),
    ]
    path = tmp_path / "list.csv"
    data = "\r\n".join(lines).encode(encoding)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    reader = ListReader(path)
    rows = list(reader)
    assert reader.dialect.delimiter == delimiter
    assert [r.number.e164 for r in rows] == ["+442079460018", "+12125550100"]
    assert rows[0].fields["first_name"] == "Zoë" and rows[0].fields["city"] == "Köln"


def test_a_mapping_file_names_unusual_headers(tmp_path):
    path = write(tmp_path, "crm.csv", ["Kontakt;Tel. privat;Segment", "A. Kunde;030 123456;gold"])
    with pytest.raises(ListError, match="header: no phone column"):
        list(ListReader(path, region="DE"))
    mapping = tmp_path / "map.toml"
    mapping.write_text('[columns]\nphone = "Tel. privat"\nlast_name = "Kontakt"\n')
    from dialer.lists import load_mapping

    (row,) = list(ListReader(path, region="DE", mapping=load_mapping(mapping)))
    assert row.number.e164 == "+4930123456" and row.fields["last_name"] == "A. Kunde"
    assert row.extra == {"Segment": "gold"}
    mapping.write_text('[columns]\ntelephone = "x"\n')
    with pytest.raises(ListError, match=r"mapping\.columns\.telephone: unknown field"):
        load_mapping(mapping)


@pytest.mark.parametrize(
    ("content", "error"),
    [(b"", "file: empty file"), (b"\x00\x01\x02PK\x03\x04", "binary file"), (b"phone\r\n", None)],
)
def test_empty_binary_and_header_only_files(tmp_path, content, error):
    path = tmp_path / "f.csv"
    path.write_bytes(content)
    if error:
        with pytest.raises(ListError, match=error):
            list(ListReader(path, region="DE"))
    else:
        reader = ListReader(path, region="DE")
        assert list(reader) == [] and reader.rows_read == 0


def test_absurdly_long_fields_and_bad_country_are_rejected_per_row(tmp_path):
    path = write(
        tmp_path,
        "f.csv",
        ["phone,notes,country", f"030 123456,{'x' * 5000},DE", "030 123457,ok,Germany"],
    )
    reader = ListReader(path)
    assert list(reader) == []
    assert [(p.row, p.field) for p in reader.problems] == [(2, "notes"), (3, "country")]


def test_a_quote_never_closed_is_a_rejected_row_not_the_rest_of_the_file_in_one_field(tmp_path):
    """The rows after an unclosed quote vanished into one field of the row
    before ("2 rows, 2 imported, 0 rejected"): now that row is rejected,
    naming where the quote opened, and nothing is counted as imported that
    was not read."""
    path = tmp_path / "quote.csv"
    path.write_text(
        "name,phone,notes\n"
        "A,02079461190,a\n"
        'B,02079461191,"two\nlines"\n'  # a quoted field over two lines is fine
        'C,02079461192,"unclosed quote\n'
        "D,02079461193,d\n"
        "E,02079461194,e\n"
    )
    reader = ListReader(path, region="GB")
    rows = list(reader)
    assert [r.number.e164 for r in rows] == ["+442079461190", "+442079461191"]
    assert rows[1].extra == {"notes": "two\nlines"}
    assert [(p.row, p.reason) for p in reader.problems] == [
        (
            5,
            "a quote opened on line 5 is never closed: "
            "lines 5-7 (the end of the file) read as one row",
        )
    ]
    assert reader.rows_read == 3


def test_a_quote_inside_a_quoted_field_that_is_not_doubled_still_imports(tmp_path):
    """Hand-edited files and some CRM exports do not double a quote inside a
    quoted field; such rows always imported (the quote kept), and the strict
    reading that catches an unclosed quote must not reject them."""
    path = tmp_path / "crm.csv"
    path.write_text('company,phone\n"ACME "Best" GmbH",02079461190\n"Plain Ltd",02079461191\n')
    reader = ListReader(path, region="GB")
    rows = list(reader)
    assert [r.number.e164 for r in rows] == ["+442079461190", "+442079461191"]
    assert not reader.problems
    assert rows[0].fields["company"].startswith("ACME ") and "Best" in rows[0].fields["company"]


def test_a_file_that_fails_midway_leaves_the_list_as_it_was(tmp_path, database_url, engine):
    lines = ["phone,last_name"] + [f"+4930{1000000 + i},Name{i}" for i in range(3000)]
    path = tmp_path / "long.csv"
    path.write_bytes("\r\n".join(lines).encode() + b"\r\n+4930999999,Bad\xff\xfeName\r\n")
    with pytest.raises(ListError, match="encoding: not utf-8"):
        import_list(engine, path, "spring", create=True)
    assert counts(database_url) == (0, 0, 0), "two batches were written, and rolled back"
    report = import_list(engine, path, "spring", encoding="cp1252", create=True)
    assert report.imported == 3001


def test_dry_run_writes_nothing(tmp_path, database_url, engine):
    path = write(tmp_path, "kunden.csv", GERMAN, "cp1252")
    report = import_list(engine, path, "spring", region="DE", dry_run=True, create=True)
    assert report.imported == 3 and report.dry_run
    assert counts(database_url) == (0, 0, 0)


def test_numbers_already_in_another_active_list_of_the_campaign_are_duplicates(
    tmp_path, database_url, engine
):
    first = write(tmp_path, "a.csv", ["phone", "+4930123456", "+4930123457"])
    second = write(tmp_path, "b.csv", ["phone", "+4930123456", "+4930123458"])
    import_list(engine, first, "c", create=True)
    report = import_list(engine, second, "c", create=True)
    assert (report.imported, report.duplicates) == (1, 1)
    other = import_list(engine, second, "another-campaign", create=True)
    assert other.imported == 2
    assert counts(database_url)[1] == 3, "contacts are matched by number across campaigns"


def test_contacts_written_beside_imports_keep_their_own_ids(tmp_path, database_url, engine):
    """The import numbers its contacts itself (one write per batch); the
    server's own contacts, before and after, must not collide with them."""
    with engine.begin() as conn:
        conn.execute(db.contact.insert().values(display_name="inbound caller"))
    first = write(tmp_path, "a.csv", ["phone"] + [f"+4930{1000000 + i}" for i in range(1500)])
    assert import_list(engine, first, "c", create=True).imported == 1500
    with engine.begin() as conn:
        conn.execute(db.contact.insert().values(display_name="another caller"))
    second = write(tmp_path, "b.csv", ["phone", "+4930123456"])
    assert import_list(engine, second, "c", create=True).imported == 1
    with engine.connect() as conn:
        ids = conn.execute(select(db.contact.c.id)).scalars().all()
        numbered = conn.execute(
            select(func.count()).select_from(db.contact_phone.join(db.contact))
        ).scalar()
    assert len(ids) == len(set(ids)) == 1503
    assert numbered == 1501, "every imported number belongs to its own contact"


def test_cologne_phonetics_groups_meyer_meier_maier():
    assert (
        phonetic_key("Hans", "Meyer")
        == phonetic_key("Hans", "Meier")
        == phonetic_key("Hans", "Maier")
    )
    groups = PhoneticGroups()
    for number, last in (("+1", "Meyer"), ("+2", "Meier"), ("+3", "Maier"), ("+4", "Schmidt")):
        groups.add(
            number,
            {"first_name": "Hans", "last_name": last, "street": "Hauptstr. 1", "city": "Köln"},
        )
    (group,) = groups.groups()
    assert sorted(group["numbers"]) == ["+1", "+2", "+3"]


def test_two_different_people_with_one_name_each_keep_their_own_duplicates():
    groups = PhoneticGroups()
    people = [
        ("+1", "Meyer", "Hauptstraße 1", "Hans Meyer, Kundennr K1"),
        ("+2", "Meier", "Hauptstr. 1", ""),
        ("+3", "Maier", "Lindenallee 77", ""),
        ("+4", "Meyer", "Lindenallee 77", ""),
        ("+5", "Meyer", "Am Berg 5", ""),  # a third Hans Meyer: nobody's duplicate
    ]
    for number, last, street, note in people:
        fields = {"first_name": "Hans", "last_name": last, "street": street, "postal_code": "50667"}
        if note:
            fields["note"] = note
        groups.add(number, fields)
    found = sorted((sorted(g["numbers"]), g["suggested_keep"]) for g in groups.groups())
    assert found == [(["+1", "+2"], "+1"), (["+3", "+4"], "+3")]


def test_exports_neutralise_formulas():
    assert export_safe('=HYPERLINK("x")') == '\'=HYPERLINK("x")'
    assert export_safe("+4930") == "'+4930" and export_safe("Berlin") == "Berlin"


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=3000))
def test_any_bytes_give_rows_problems_or_a_clear_error(tmp_path, data):
    path = tmp_path / "fuzz.csv"
    path.write_bytes(b"phone;name\r\n" + data)
    try:
        reader = ListReader(path, region="DE")
        rows = list(reader)
    except ListError:
        return
    assert len(rows) + len(reader.problems) <= reader.rows_read


def test_command_line_json_report_and_exit_codes(tmp_path):
    path = write(tmp_path, "kunden.csv", GERMAN, "cp1252")
    url = f"sqlite:///{tmp_path / 'l.db'}"
    run = [sys.executable, "-m", "dirigent.cli", "lists", "import"]
    out = subprocess.run(
        [
            *run,
            str(path),
            "--campaign",
            "spring",
            "--create",
            "--region",
            "DE",
            "--db",
            url,
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert {
        k: report[k]
        for k in (
            "rows",
            "imported",
            "updated",
            "rejected",
            "duplicates",
            "phonetic_duplicate_groups",
        )
    } == {
        "rows": 6,
        "imported": 3,
        "updated": 0,
        "rejected": 2,
        "duplicates": 1,
        "phonetic_duplicate_groups": 1,
    }
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    out = subprocess.run(
        [*run, str(empty), "--campaign", "x", "--db", url], capture_output=True, text=True
    )
    assert out.returncode == 2 and "file: empty file" in out.stderr
    out = subprocess.run(
        [*run, str(path), "--campaign", "x", "--db", url, "--region", "Germany"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "--region" in out.stderr


def write_xlsx(path: Path, rows: list[list[object]]) -> Path:
    from openpyxl import Workbook
    from openpyxl.worksheet.worksheet import Worksheet

    book = Workbook()
    sheet = book.active
    assert isinstance(sheet, Worksheet)  # a new workbook's one sheet
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


def test_an_excel_workbook_imports_like_its_csv_export(tmp_path, database_url, engine):
    import datetime as dt

    path = write_xlsx(
        tmp_path / "kunden.xlsx",
        [
            ["Vorname", "Nachname", "Telefon", "Geburtstag", "Kundennr", None],
            ["Hans", "Meyer", "030 123456", dt.date(1970, 5, 1), 1001, None],
            ["Eva", "Groß", 15123456789, None, 1002.0, None],  # a number Excel stored as a number
            [None, None, None, None, None, None],  # blank row
            ["Jürgen", "Maier", "0900 1234567", None, "K3", None],  # premium rate
            ["Anna", "Formel", "=A2", None, "K4", None],  # a formula with no cached value
        ],
    )
    report = import_list(engine, path, "spring", region="DE", create=True)
    assert (report.rows, report.imported, report.rejected) == (4, 2, 2)
    assert report.encoding == "xlsx" and report.delimiter == ""
    assert [(p.row, p.field) for p in report.problems] == [(5, "phone"), (6, "phone")]
    with engine.connect() as conn:
        rows = {
            r.e164: r.extra for r in conn.execute(select(db.record.c.e164, db.record.c.extra)).all()
        }
    assert rows["+4930123456"] == {"Geburtstag": "1970-05-01", "Kundennr": "1001"}
    assert rows["+4915123456789"]["Kundennr"] == "1002", "no trailing .0"


def test_old_binary_excel_and_broken_workbooks_are_refused_clearly(tmp_path):
    xls = tmp_path / "old.xls"
    xls.write_bytes(bytes.fromhex("d0cf11e0a1b11ae1") + b"\x00" * 512)
    with pytest.raises(ListError, match=r"\.xls\): save it as \.xlsx or CSV"):
        ListReader(xls)
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    with pytest.raises(ListError, match=r"not a readable \.xlsx workbook"):
        list(ListReader(broken))


def test_merging_duplicates_keeps_one_contact_with_the_whole_history(
    tmp_path, database_url, engine
):
    import datetime as dt

    from sqlalchemy import insert

    from store.consent import record_consent
    from store.lists_merge import MergeError, merge

    path = write(
        tmp_path,
        "dupes.csv",
        [
            "Vorname;Nachname;Telefon;Straße;PLZ;Ort;Email;Kundennr",
            "Hans;Meyer;030 123456;Hauptstr. 1;10115;Berlin;;K1",
            "Hans;Meier;030 654321;Hauptstr. 1;10115;Berlin;hans@example.org;",
            "Eva;Groß;0151 23456789;;80331;München;;K4",
        ],
    )
    report = import_list(engine, path, "spring", region="DE", create=True)
    assert report.phonetic_duplicate_groups == 1
    (group,) = report.groups
    assert sorted(group["numbers"]) == ["+4930123456", "+4930654321"]
    with engine.begin() as conn:
        rec = {r.e164: r for r in conn.execute(select(db.record)).all()}
        conn.execute(
            insert(db.attempt).values(
                record_id=rec["+4930654321"].id,
                e164="+4930654321",
                pbx="x",
                started_at=dt.datetime(2026, 11, 20, 10, tzinfo=dt.UTC),
                outcome="busy",
            )
        )
        conn.execute(
            insert(db.interaction).values(
                channel="voice",
                direction="outbound",
                contact_id=rec["+4930654321"].contact_id,
                arrived_at=dt.datetime(2026, 11, 20, 10, tzinfo=dt.UTC),
                attributes={},
            )
        )
    record_consent(
        engine, rec["+4930654321"].contact_id, "voice", True, source="web", proof_ref="f-1"
    )
    with pytest.raises(MergeError, match="drop: no record with number"):
        merge(engine, "spring", "+4930123456", ["+4930999999"])
    with pytest.raises(MergeError, match="campaign: unknown campaign"):
        merge(engine, "autumn", "+4930123456", ["+4930654321"])
    # a record a dialer has claimed (in the hopper) is not merged under its feet
    with engine.begin() as conn:
        claimed = {"record_id": rec["+4930654321"].id, "campaign_id": 1}
        conn.execute(insert(db.hopper).values(claimed_at=dt.datetime.now(dt.UTC), **claimed))
    with pytest.raises(MergeError, match=r"drop: record .* is being dialed"):
        merge(engine, "spring", "+4930123456", ["+4930654321"])
    with engine.begin() as conn:
        conn.execute(db.hopper.delete())

    done = merge(engine, "spring", "+4930123456", ["+4930654321"])
    assert done.closed == [rec["+4930654321"].id] and done.contacts_folded == 1
    assert (done.numbers_moved, done.consents_moved, done.interactions_moved) == (1, 1, 1)
    with engine.connect() as conn:
        kept_contact = rec["+4930123456"].contact_id
        contact = conn.execute(select(db.contact).where(db.contact.c.id == kept_contact)).one()
        assert (contact.last_name, contact.city, contact.email) == (
            "Meyer",
            "Berlin",
            "hans@example.org",
        ), "empty fields filled from the merged contact, the kept values stay"
        phones = {
            r.e164
            for r in conn.execute(
                select(db.contact_phone.c.e164).where(db.contact_phone.c.contact_id == kept_contact)
            )
        }
        assert phones == {"+4930123456", "+4930654321"}
        closed = conn.execute(select(db.record).where(db.record.c.e164 == "+4930654321")).one()
        assert closed.status == "closed" and closed.contact_id == kept_contact
        assert closed.closed_reason == f"merged into record {rec['+4930123456'].id}"
        assert conn.execute(select(func.count()).select_from(db.attempt)).scalar() == 1
        assert conn.execute(select(db.consent.c.contact_id)).scalar() == kept_contact
        assert conn.execute(select(db.interaction.c.contact_id)).scalar() == kept_contact
        assert conn.execute(select(func.count()).select_from(db.contact)).scalar() == 2


def test_merge_on_the_command_line(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    path = write(
        tmp_path,
        "d.csv",
        [
            "name;phone",
            "Ann Lee;+1 212 555 0100",
            "Ann Li;+1 212 555 0101",
            "A Lee;+1 212 555 0102",
        ],
    )
    run = lambda *a: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "dirigent.cli", *a], capture_output=True, text=True
    )
    assert (
        run("lists", "import", str(path), "--campaign", "c", "--create", "--db", url).returncode
        == 0
    )
    merge = ["lists", "merge", "--campaign", "c", "--keep", "+1 212 555 0100", "--db", url]
    bad = run(*merge, "--drop", "12")
    assert bad.returncode == 2 and "--drop" in bad.stderr
    ok = run(*merge, "--drop", "+1 212 555 0101", "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["closed"], "--json prints the JSON alone"
    human = run(*merge, "--drop", "+1 212 555 0102")
    assert human.returncode == 0 and human.stdout.startswith("kept record"), human.stderr
    assert not [x for x in human.stdout.splitlines() if x.startswith("{")], "the text alone"


def test_the_import_reports_progress_through_the_file(tmp_path, database_url, engine, capsys):
    from store.lists_import import BATCH, TerminalProgress

    lines = ["phone,name"] + [f"+1 212 555 {i % 10000:04d},N{i}" for i in range(3 * BATCH)]
    path = write(tmp_path, "big.csv", lines)
    seen: list[tuple[int, float]] = []
    import_list(
        engine, path, "c", progress=lambda rows, share: seen.append((rows, share)), create=True
    )
    assert len(seen) >= 2
    assert [r for r, _ in seen] == sorted(r for r, _ in seen)
    shares = [s for _, s in seen]
    assert shares == sorted(shares) and 0 < shares[0] < 1 and shares[-1] > 0.5
    bar = TerminalProgress(path)
    bar(1234, 0.5)
    bar.close()
    err = capsys.readouterr().err
    assert "big.csv" in err and "1,234 rows" in err and "100%" in err


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.integers(1, 999)
        .map(str)
        .flatmap(
            lambda cc: st.text("0123456789", min_size=4, max_size=15 - len(cc)).map(
                lambda rest: f"+{cc}{rest}"
            )
        ),
        max_size=300,
    )
)
def test_seen_numbers_say_new_exactly_once_per_number(numbers):
    """The compact duplicate check of the import agrees with a plain set,
    across its merges (merged every 8 numbers here)."""
    from store.lists_import import SeenNumbers

    seen = SeenNumbers()
    seen.MERGE_EVERY = 8
    plain: set[str] = set()
    for n in numbers:
        assert seen.add(n) == (n not in plain), n
        plain.add(n)
    assert len(seen) == len(plain)


def test_rejected_rows_beyond_the_first_thousand_are_counted_and_all_in_the_file(tmp_path):
    """Rejects are spooled to disk, not held: the report keeps the first
    1,000, the count and the .rejected.csv have them all."""
    import csv

    path = tmp_path / "bad.csv"
    path.write_text("phone\n" + "".join(f"12{i}\n" for i in range(1005)) + "+4930123456\n")
    engine = db.make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    db.upgrade(f"sqlite:///{tmp_path / 'x.db'}")
    report = import_list(engine, path, "c", region="DE", create=True)
    assert (report.rejected, report.imported) == (1005, 1)
    assert len(report.problems) == 1000 and report.problems[0].row == 2
    with open(report.rejected_file, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1005 and rows[-1]["row"] == "1006" and rows[-1]["field"] == "phone"


def test_a_number_of_another_country_is_rejected_at_import_naming_both(tmp_path, engine):
    # QA6 F3: the reject file says why, the US campaign never holds the GB number
    path = tmp_path / "mixed.csv"
    path.write_text("phone,first_name\n+1 212 555 0100,Ann\n+44 20 7946 0018,Bob\n")
    report = import_list(engine, path, "x", create=True, country="US")
    assert report.imported == 1 and report.rejected == 1
    text = Path(report.rejected_file).read_text()
    assert "number is in GB; campaign 'x' dials under US rules" in text
