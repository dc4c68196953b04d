"""The campaign manager's path through ``dirigent lists import``: a
misspelt campaign, a region nobody has, a list that imports nothing -- each
said at once with exit 2 or 1, nothing written."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest
from sqlalchemy import func, select

from store import db
from store.list_ops import ListOps

DIRIGENT = [sys.executable, "-m", "dirigent.cli"]
GOOD = "phone,first_name\n+49 30 1234 5678,Ada\n+49 30 1234 5679,Ben\n"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DIRIGENT, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def url(tmp_path):
    url = f"sqlite:///{tmp_path / 'lists.db'}"
    db.upgrade(url)
    return url


def counts(url: str) -> tuple[int, int]:
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            campaigns = conn.execute(select(func.count()).select_from(db.campaign)).scalar_one()
            records = conn.execute(select(func.count()).select_from(db.record)).scalar_one()
        return campaigns, records
    finally:
        engine.dispose()


def test_a_misspelt_campaign_is_refused_and_create_makes_it(tmp_path, url):
    path = tmp_path / "spring.csv"
    path.write_text(GOOD)
    made = cli("lists", "import", str(path), "--campaign", "spring", "--create", "--db", url)
    assert made.returncode == 0, made.stderr
    typo = cli("lists", "import", str(path), "--campaign", "sprnig", "--db", url)
    assert typo.returncode == 2
    assert "--campaign: unknown campaign 'sprnig' (known: spring); --create" in typo.stderr
    assert counts(url) == (1, 2), "the typo made no campaign and no records"


def test_a_campaign_of_the_config_counts_as_known(tmp_path, url):
    path = tmp_path / "spring.csv"
    path.write_text(GOOD)
    config = tmp_path / "dirigent.toml"
    config.write_text(f'[database]\nurl = "{url}"\n\n[[campaign]]\nname = "winter"\n')
    result = cli(
        "lists", "import", str(path), "--campaign", "winter", "--db", url, "--config", str(config)
    )
    assert result.returncode == 0, result.stderr


def test_an_unknown_region_is_refused_before_any_row_is_read(tmp_path, url):
    path = tmp_path / "spring.csv"
    path.write_text(GOOD)
    result = cli(
        "lists", "import", str(path), "--campaign", "s", "--create", "--region", "XX", "--db", url
    )
    assert result.returncode == 2
    assert "--region: 'XX' is not a country code phonenumbers knows" in result.stderr
    assert counts(url) == (0, 0)


def test_an_import_that_imports_nothing_fails(tmp_path, url):
    path = tmp_path / "bad.csv"
    path.write_text("phone\n0900 123\nnot a number\n")
    result = cli(
        "lists", "import", str(path), "--campaign", "s", "--create", "--region", "DE", "--db", url
    )
    assert result.returncode == 1
    assert "imported nothing (2 rows, 2 rejected" in result.stderr


def test_an_upload_into_an_unknown_campaign_names_the_field(url):
    engine = db.make_engine(url)
    try:
        ops = ListOps(engine)
        with pytest.raises(ValueError, match=r"^campaign: unknown campaign 'nope'"):
            ops.import_upload(io.BytesIO(GOOD.encode()), "x.csv", "nope")
        with pytest.raises(ValueError, match=r"^region: 'XX' is not a country code"):
            ops.import_upload(io.BytesIO(GOOD.encode()), "x.csv", "nope", region="XX")
    finally:
        engine.dispose()
    assert counts(url) == (0, 0)


@pytest.mark.parametrize("name", ["Spring 2026", "spring/uk", "c" * 41, "new\nline", "-x"])
def test_a_new_campaign_gets_only_a_name_a_campaign_table_can_give(url, name):
    """``--create`` (``&create=1``) made a campaign of any name up to 120
    characters, "Spring 2026" or one with a newline, that no ``[[campaign]]``
    table may name (letters, digits, - and _, at most 40): its records could
    never be dialed.  Refused naming campaign, nothing written; the
    configuration refuses the same names."""
    from dirigent.config import ConfigError, parse_settings

    engine = db.make_engine(url)
    try:
        with pytest.raises(ValueError, match=r"^campaign: .*\[\[campaign\]\]"):
            ListOps(engine).import_upload(io.BytesIO(GOOD.encode()), "x.csv", name, create=True)
    finally:
        engine.dispose()
    assert counts(url) == (0, 0)
    table = {"name": name, "country": "DE", "caller_id": "+493012345600"}
    with pytest.raises(ConfigError, match=r"^campaign\[0\]\.name: "):
        parse_settings({"campaign": [table]}, env={}, pbxs=False)


def test_a_large_duplicate_group_shows_its_first_numbers_and_how_many_more(tmp_path, url):
    """QA12 finding 3: each suspected-duplicate group printed every number
    (thousands for a list with many identical names).  The terminal shows
    the first five and how many more; ``--json`` is unchanged."""
    path = tmp_path / "same.csv"
    rows = [f"+49 30 1234 56{n:02d},Hans,Meyer,Hauptstr. 1,50667" for n in range(12)]
    path.write_text("phone,first_name,last_name,street,postal_code\n" + "\n".join(rows) + "\n")
    result = cli("lists", "import", str(path), "--campaign", "s", "--create", "--db", url)
    assert result.returncode == 0, result.stderr
    [line] = [x for x in result.stdout.splitlines() if "maybe the same person" in x]
    shown = line.split(": ", 1)[1].split(" … and ")[0].split(", ")
    assert len(shown) == 5 and " … and 7 more (keep +49301234" in line, line
    as_json = cli("lists", "import", str(path), "--campaign", "s", "--db", url, "--json")
    assert json.loads(as_json.stdout)["phonetic_duplicate_groups"] == 1


def test_a_list_without_a_phone_column_names_the_fix_each_face_has(tmp_path, url):
    """QA12 finding 2: the upload's 400 said ``use --mapping``, an option
    the API does not have; the command line still names it."""
    nophone = "name,city\nAda,Berlin\n"
    engine = db.make_engine(url)
    try:
        with pytest.raises(ValueError, match=r"^header: no phone column") as refused:
            ListOps(engine).import_upload(io.BytesIO(nophone.encode()), "x.csv", "s", create=True)
    finally:
        engine.dispose()
    assert "--" not in str(refused.value) and "headed e.g. phone" in str(refused.value)
    path = tmp_path / "nophone.csv"
    path.write_text(nophone)
    result = cli("lists", "import", str(path), "--campaign", "s", "--create", "--db", url)
    assert result.returncode == 2 and "headed e.g. phone" in result.stderr
    assert "or name it with --mapping FILE" in result.stderr
