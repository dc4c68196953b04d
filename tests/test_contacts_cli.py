"""A campaign manager finds the contact behind a phone number (the ids that
consent and merge take) and records consent by number."""

from __future__ import annotations

import json
import subprocess
import sys

DIRIGENT = [sys.executable, "-m", "dirigent.cli"]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DIRIGENT, *args], capture_output=True, text=True, timeout=120)


def test_a_number_leads_to_its_contact_its_consent_and_its_records(tmp_path):
    url = f"sqlite:///{tmp_path / 'c.db'}"
    path = tmp_path / "spring.csv"
    path.write_text(
        "phone,first_name,last_name,company\n+49 30 1234 5678,Ada,Lovelace,Acme\n"
        "+49 30 1234 5679,Ben,Other,\n"
    )
    assert (
        cli(
            "lists", "import", str(path), "--campaign", "spring", "--create", "--db", url
        ).returncode
        == 0
    )
    granted = cli(
        "consent", "add", "--phone", "030 1234 5678", "--region", "DE", "--channel", "voice",
        "--granted", "--source", "web form 2026-11", "--proof", "form-17", "--db", url,
    )  # fmt: skip
    assert granted.returncode == 0, granted.stderr
    found = cli("contacts", "find", "+49 (30) 1234-5678", "--db", url, "--json")
    assert found.returncode == 0, found.stderr
    view = json.loads(found.stdout.strip().splitlines()[-1])
    assert view["e164"] == "+493012345678"
    [contact] = view["contacts"]
    assert contact["display_name"] == "Ada Lovelace" and contact["company"] == "Acme"
    assert [(c["channel"], c["granted"]) for c in contact["consent"]] == [("voice", True)]
    assert [(r["campaign"], r["list"], r["status"]) for r in contact["records"]] == [
        ("spring", "spring.csv", "new")
    ]
    assert json.loads(found.stdout) == view, "--json prints the JSON alone"
    text = cli("contacts", "find", "+49 30 1234 5678", "--db", url).stdout
    assert f"contact {contact['id']}: Ada Lovelace (Acme)" in text
    assert not [x for x in text.splitlines() if x.startswith("{")], "the text alone (QA12 1)"


def test_unknown_and_bad_numbers_are_said_so(tmp_path):
    url = f"sqlite:///{tmp_path / 'c.db'}"
    nobody = cli("contacts", "find", "+49 30 1234 5678", "--db", url)
    assert nobody.returncode == 1 and "+493012345678: 0 contact(s)" in nobody.stdout
    bad = cli("contacts", "find", "030 12", "--db", url)
    assert bad.returncode == 2 and "phone: '030 12'" in bad.stderr and "--region" in bad.stderr
    unknown = cli(
        "consent", "add", "--phone", "+49 30 1234 5678", "--channel", "voice", "--withdrawn",
        "--source", "call", "--db", url,
    )  # fmt: skip
    assert unknown.returncode == 2 and "--phone: no contact has +493012345678" in unknown.stderr
