"""A database that cannot be opened -- a URL we do not take, an SQLite file
in a folder that is not there, a PostgreSQL that is not listening (yet) --
is one line naming where the URL came from (``--db``, ``database.url``)
and why, never a traceback and never the URL's password.  Exit 2: the URL
itself is bad input; exit 1: the database at a good URL cannot be opened
(as ``dirigent db upgrade`` says of any failure)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

DIRIGENT = [sys.executable, "-m", "dirigent.cli"]
PASSWORD = "s3cr3t-pw"


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DIRIGENT_DATABASE_URL"}
    return subprocess.run(
        [*DIRIGENT, *args], capture_output=True, text=True, timeout=120, env=env, cwd=cwd
    )


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (a PostgreSQL not up yet)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    assert PASSWORD not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def in_process(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """The command as ``main`` runs it (a traceback would fail the test):
    its exit code and its one line.  Each case is also run once as a real
    process (:func:`cli`); the rest here, as a process costs seconds."""
    from dirigent.cli import main

    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    assert PASSWORD not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return code, lines[0]


def db_commands(tmp_path: Path, url: str) -> list[list[str]]:
    csv = tmp_path / "us.csv"
    csv.write_text("phone,first_name\n+12025550143,Ann\n")
    return [
        ["user", "list", "--db", url],
        ["lists", "import", str(csv), "--campaign", "us-test", "--db", url],
        ["db", "upgrade", "--db", url],
    ]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("notaurl", "--db: must start with sqlite:// or postgresql://"),
        (f"mysql://x:{PASSWORD}@y/z", "--db: must start with sqlite:// or postgresql://"),
        (f"postgresql://u:{PASSWORD}@127.0.0.1:notaport/db", "--db: not a database URL"),
        ("postgresql+nosuchdriver://u@127.0.0.1/db", "--db: no database driver"),
    ],
    ids=["not-a-url", "mysql", "bad-port", "unknown-driver"],
)
def test_a_db_url_we_do_not_take_is_bad_input(tmp_path, capsys, url, reason):
    for command in db_commands(tmp_path, url):
        code, line = in_process(capsys, *command)
        assert code == 2 and reason in line, (command, line)


def test_an_sqlite_file_in_a_missing_folder_is_named(tmp_path, capsys):
    folder = tmp_path / "no" / "such"
    for command in db_commands(tmp_path, f"sqlite:///{folder / 'x.db'}"):
        code, line = in_process(capsys, *command)
        assert code == 1, (command, line)
        assert f"--db: cannot open the database: folder {folder} does not exist" in line
    assert not folder.exists()


def test_a_postgresql_not_listening_is_named_without_its_password(tmp_path, capsys):
    port = closed_port()
    for command in db_commands(tmp_path, f"postgresql://u:{PASSWORD}@127.0.0.1:{port}/db"):
        code, line = in_process(capsys, *command)
        assert code == 1, (command, line)
        assert f"--db: cannot open the database: cannot connect to 127.0.0.1:{port}" in line


def test_as_a_process_a_bad_url_and_an_unreachable_database_are_one_line_each(tmp_path):
    bad = cli("user", "list", "--db", f"mysql://x:{PASSWORD}@y/z")
    assert bad.returncode == 2
    assert "--db: must start with sqlite:// or postgresql://" in one_line(bad)
    port = closed_port()
    csv = tmp_path / "us.csv"
    csv.write_text("phone,first_name\n+12025550143,Ann\n")
    gone = cli(
        "lists",
        "import",
        str(csv),
        "--campaign",
        "us-test",
        "--db",
        f"postgresql://u:{PASSWORD}@127.0.0.1:{port}/db",
    )
    assert gone.returncode == 1
    assert f"cannot connect to 127.0.0.1:{port}" in one_line(gone)


def serve_config(tmp_path: Path, url: str, auto_upgrade: bool) -> Path:
    path = tmp_path / "dirigent.toml"
    path.write_text(
        f'[http]\nport = {closed_port()}\n[database]\nurl = "{url}"\n'
        f"auto_upgrade = {str(auto_upgrade).lower()}\n"
        '[[pbx]]\nname = "a"\nport = 1\nsecret = "x"\n'
        '[[queue]]\nname = "support"\n'
        '[[agent]]\nid = "alice"\nendpoint = "1001"\nskills = { support = 5 }\n'
    )
    return path


@pytest.mark.parametrize("auto_upgrade", [True, False], ids=["migrating", "not-migrating"])
def test_serve_with_an_unreachable_database_says_so_and_exits(tmp_path, auto_upgrade):
    port = closed_port()
    for url, reason in [
        (f"postgresql://u:{PASSWORD}@127.0.0.1:{port}/db", f"cannot connect to 127.0.0.1:{port}"),
        (f"sqlite:///{tmp_path / 'gone' / 'x.db'}", f"folder {tmp_path / 'gone'} does not exist"),
    ]:
        result = cli("serve", "--config", str(serve_config(tmp_path, url, auto_upgrade)))
        assert result.returncode == 1, result.stderr
        line = one_line(result)
        assert f"database.url: cannot open the database: {reason}" in line


def test_the_environment_url_is_named_when_it_is_the_one_used(tmp_path, capsys, monkeypatch):
    """``DIRIGENT_DATABASE_URL`` wins over ``[database] url``: an error named
    ``database.url`` sent the operator to edit a file that was not the cause."""
    config = tmp_path / "dirigent.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "fine.db"}"\n')
    monkeypatch.setenv("DIRIGENT_DATABASE_URL", f"sqlite:///{tmp_path / 'gone' / 'x.db'}")
    code, line = in_process(capsys, "user", "list", "--config", str(config))
    assert code == 1
    assert line.startswith("dirigent: DIRIGENT_DATABASE_URL: cannot open the database"), line
    monkeypatch.setenv("DIRIGENT_DATABASE_URL", "mysql://x@y/z")
    code, line = in_process(capsys, "user", "list", "--config", str(config))
    assert code == 2 and "DIRIGENT_DATABASE_URL: must start with" in line, line
