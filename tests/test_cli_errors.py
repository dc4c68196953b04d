"""Bad input on the command line gets a named error and exit 2, never a
traceback; figures that have no finite value are said so in valid JSON."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

DIRIGENT = [sys.executable, "-m", "dirigent.cli"]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DIRIGENT, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "is a folder, not a TOML file"),
        (bytes(range(256)), "is not UTF-8 text (byte 128)"),
        ('[http]\nhost = "caf\xe9"\n'.encode("latin-1"), "is not UTF-8 text (byte 18)"),
    ],
    ids=["folder", "binary", "latin-1"],
)
def test_a_config_that_is_not_a_utf8_file_is_named(tmp_path, content, expected):
    path = tmp_path / "dirigent.toml"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    result = cli("serve", "--config", str(path))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"config: {path} {expected}" in result.stderr
    # the simulator's workload files are read the same way (a folder was a traceback)
    result = cli("sim", "dialer", "--workload", str(path), "--hours", "0.1")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert f"workload: {path} {expected}" in result.stderr


def test_erlang_with_too_few_agents_prints_valid_json_and_says_why():
    args = ("erlang", "--calls", "100", "--interval", "1800", "--aht", "180", "--agents", "5")
    result = cli(*args, "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)  # strict JSON: no Infinity; the JSON alone
    assert figures["stable"] is False and figures["asa"] is None
    assert figures["p_wait"] == 1.0 and figures["service_level"] == 0.0
    text = cli(*args)
    assert text.returncode == 0 and "cannot carry 10 Erlangs" in text.stdout
    assert not [x for x in text.stdout.splitlines() if x.startswith("{")], "the text alone"


def test_erlang_without_calls_needs_nobody_and_nobody_waits():
    result = cli("erlang", "--calls", "0", "--interval", "1800", "--aht", "180", "--json")
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["agents"] == 0 and figures["asa"] == 0.0 and figures["service_level"] == 1.0


@pytest.mark.parametrize(
    ("calls", "expected"),
    [
        ("1e9", "--calls: 1e+09 calls of 180 s in 1800 s: more than"),
        ("inf", "--calls: must be a finite number"),
    ],
)
def test_erlang_beyond_what_it_computes_is_a_named_usage_error(calls, expected):
    result = cli("erlang", "--calls", calls, "--interval", "1800", "--aht", "180")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and expected in result.stderr


def test_a_contact_id_beyond_any_database_integer_is_refused(tmp_path):
    result = cli(
        "consent", "add", "--contact", str(10**30), "--channel", "voice", "--withdrawn",
        "--source", "call", "--db", f"sqlite:///{tmp_path / 'c.db'}",
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--contact: 1000000000000000000000000000000 is not an id" in result.stderr


def test_output_cut_short_by_its_reader_is_no_traceback(tmp_path):
    """QA4: ``dirigent campaign list | head`` ended in a BrokenPipeError
    traceback; a reader that stops early (head, less, grep -m) is normal."""
    from sqlalchemy import insert

    from store import db

    url = f"sqlite:///{tmp_path / 'u.db'}"
    db.upgrade(url)
    engine = db.make_engine(url)
    with engine.begin() as conn:  # more than a pipe holds (64 KB): the writer meets the closed end
        conn.execute(
            insert(db.user),
            [
                {"username": f"user{i:05d}", "password_hash": "x", "role": "agent"}
                for i in range(4000)
            ],
        )
    engine.dispose()
    cut = subprocess.run(
        f"{' '.join(DIRIGENT)} user list --db {url} | head -1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cut.stdout.startswith("user00000"), cut
    assert "Traceback" not in cut.stderr and "BrokenPipe" not in cut.stderr, cut.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        # a usage error found inside the reactor's set-up was a critical log line
        # with its traceback and exit 1
        (("sim", "pbx", "--listen", "127.0.0.1:0", "--workload", "{missing}"),
         "workload: file not found"),
        # a pydantic traceback, after the demo had migrated, added users and imported
        (("demo", "--http-port", "99999", "--duration", "1", "--data", "{data}"),
         "argument --http-port: '99999' is not a port"),
        # taken, and every national number then failed ("Missing or invalid default region")
        (("dnc", "add", "2125550111", "--region", "XX", "--db", "sqlite:///{data}.db"),
         "argument --region: 'XX' is not a country code"),
    ],
    ids=["sim-workload", "demo-port", "dnc-region"],
)  # fmt: skip
def test_bad_input_to_servers_and_lists_is_one_line_and_exit_2(tmp_path, args, expected):
    """QA5 finding 8."""
    data = tmp_path / "data"
    given = [a.format(missing=tmp_path / "nope.toml", data=data) for a in args]
    result = cli(*given)
    assert result.returncode == 2, (result.returncode, result.stderr[-800:])
    assert "Traceback" not in result.stderr and expected in result.stderr, result.stderr
    assert not data.exists(), "nothing was made before the input was checked"
