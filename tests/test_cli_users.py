"""``dirigent user add`` refuses what no login could use: a user name with
spaces, and, when the configuration is given, an ``--agent`` or a team it
does not have (QA7 F8: all three were saved silently; the user then logged
in as no agent, or oversaw nobody).  Through the command's ``main()``."""

from __future__ import annotations

import io

import pytest

from dirigent.cli import main
from store import db


@pytest.fixture
def centre(tmp_path):
    url = f"sqlite:///{tmp_path / 'users.db'}"
    db.upgrade(url)
    config = tmp_path / "dirigent.toml"
    config.write_text(
        f'[database]\nurl = "{url}"\n\n'
        '[[queue]]\nname = "sales"\n\n'
        '[[agent]]\nid = "anna"\nendpoint = "1001"\nqueues = ["sales"]\nteam = "north"\n\n'
        '[[agent]]\nid = "ben"\nendpoint = "1002"\nqueues = ["sales"]\nteam = "south"\n'
    )
    return url, str(config)


def _add(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO("a-good-password\n"))
    code = main(["user", "add", *args])
    return code, capsys.readouterr().err.strip()


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (
            ["anna", "--role", "agent", "--agent", "nope"],
            "--agent: no agent 'nope' in {config} (its agents: anna, ben)",
        ),
        (
            ["nora", "--role", "supervisor", "--teams", "north,nope"],
            "--teams: no team 'nope' in {config} (its teams: north, south)",
        ),
        (
            ["anna berg", "--role", "agent", "--agent", "anna"],
            "username: 'anna berg' is not a user name (printable, without spaces",
        ),
    ],
    ids=["unknown-agent", "unknown-team", "name-with-a-space"],
)
def test_an_unknown_agent_or_team_or_a_spaced_name_is_refused(
    centre, monkeypatch, capsys, args, said
):
    url, config = centre
    code, err = _add(monkeypatch, capsys, *args, "--config", config)
    assert code == 2
    assert err.count("\n") == 0 and err.startswith("dirigent: ")
    assert said.format(config=config) in err, err
    assert db.user_credentials(db.make_engine(url)) == {}, "nothing written"


def test_a_spaced_name_is_refused_without_a_configuration_too(tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path / 'users.db'}"
    code, err = _add(monkeypatch, capsys, " nora", "--role", "supervisor", "--db", url)
    assert code == 2 and "username: ' nora' is not a user name" in err, err


def test_what_the_configuration_has_is_saved(centre, monkeypatch, capsys):
    url, config = centre
    code, _ = _add(
        monkeypatch, capsys, "anna", "--role", "agent", "--agent", "anna", "--config", config
    )
    assert code == 0
    code, _ = _add(
        monkeypatch,
        capsys,
        "nora",
        "--role",
        "supervisor",
        "--teams",
        "south,north",
        "--config",
        config,
    )
    assert code == 0
    users = {u.username: u for u in db.list_users(db.make_engine(url))}
    assert users["anna"].agent == "anna" and list(users["nora"].teams) == ["north", "south"]
    # --db with --config: the configuration still says which agents there are
    code, err = _add(
        monkeypatch,
        capsys,
        "carl",
        "--role",
        "agent",
        "--agent",
        "carl",
        "--db",
        url,
        "--config",
        config,
    )
    assert code == 2 and "--agent: no agent 'carl'" in err, err


def test_a_password_that_is_no_text_is_refused_naming_password(monkeypatch):
    """A password line with bytes that are no UTF-8 (Python reads them as
    surrogates) was refused with Python's own words: "'utf-8' codec can't
    encode characters in position 4-5: surrogates not allowed"."""
    from dirigent.cli.common import UsageError
    from dirigent.cli.users import _read_password

    monkeypatch.setattr("sys.stdin", io.StringIO("pass\udcff\udcfeword\n"))
    with pytest.raises(UsageError, match=r"^password: not UTF-8 text"):
        _read_password()
