"""Password guessing is throttled per user and per address and answered
with a wait; an unknown user costs a check like a known one; tokens end with
logout, a password change or the user's removal (pure parts: injected clock)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cti.auth import LoginThrottle, TokenStore, User, check_login, hash_password


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_five_guesses_lock_the_user_out_with_a_growing_wait():
    clock = Clock()
    throttle = LoginThrottle(clock, per_user=5, lockout=60, max_lockout=3600)
    for _ in range(5):
        assert throttle.begin("anna", "10.0.0.1") is None  # the check runs (and fails)
    assert throttle.begin("anna", "10.0.0.2") == pytest.approx(60)  # from anywhere
    assert throttle.begin("ben", "10.0.0.2") is None, "other users are not locked"
    clock.now += 61
    for _ in range(5):
        assert throttle.begin("Anna", "10.0.0.3") is None  # names are matched casefolded
    assert throttle.begin("anna", "10.0.0.3") == pytest.approx(120), "the second lock-out doubles"


def test_one_address_trying_many_names_is_locked_out():
    throttle = LoginThrottle(Clock(), per_user=5, per_address=20)
    for i in range(20):
        assert throttle.begin(f"user{i}", "192.0.2.9") is None
    assert throttle.begin("someone-else", "192.0.2.9") is not None
    assert throttle.begin("someone-else", "192.0.2.10") is None


def test_a_success_clears_the_users_count():
    throttle = LoginThrottle(Clock(), per_user=3)
    for _ in range(2):
        throttle.begin("anna", "a")
    throttle.begin("anna", "a")  # the right password this time
    throttle.succeeded("anna", "a")
    for _ in range(2):
        assert throttle.begin("anna", "a") is None


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from("abc"), st.sampled_from("xy"), st.booleans(), st.floats(0, 400))
    )
)
def test_no_check_runs_while_a_user_is_locked_out(events):
    """Whatever the order of attempts, successes and pauses: after three
    failed checks of a user within the window, the next attempt within the
    lock-out is refused, not checked."""
    clock = Clock()
    throttle = LoginThrottle(
        clock, per_user=3, per_address=10, window=900, lockout=60, max_entries=2
    )
    failures: dict[str, list[float]] = {}
    locked_at: dict[str, float] = {}
    for user, address, ok, pause in events:
        clock.now += pause
        recent = [t for t in failures.get(user, []) if t > clock.now - 900]
        locked = user in locked_at and clock.now < locked_at[user] + 60
        wait = throttle.begin(user, address)
        if locked:
            assert wait is not None, (
                f"{user} checked {clock.now - locked_at[user]:.0f} s after its third failure"
            )
        if wait is not None:
            continue  # refused: nothing was checked, nothing counts
        if ok:
            throttle.succeeded(user, address)
            failures[user] = []
            locked_at.pop(user, None)
        else:
            recent.append(clock.now)
            if len(recent) >= 3:
                locked_at[user], recent = clock.now, []
            failures[user] = recent
    # quiet names are forgotten: the table does not grow with every name tried
    clock.now += 10_000
    throttle.begin("d", "z")
    assert len(throttle._users) <= 2


def test_an_unknown_user_costs_a_full_password_check(monkeypatch):
    import hashlib

    stored = hash_password("right-password")
    assert check_login("right-password", stored)
    assert not check_login("wrong-password", stored)
    costs: list[int] = []
    real = hashlib.scrypt

    def counted(password, **kw):
        costs.append(kw["n"])
        return real(password, **kw)

    monkeypatch.setattr(hashlib, "scrypt", counted)
    assert not check_login("right-password", None)
    check_login("wrong-password", stored)
    assert costs == [2**14, 2**14], "an unknown user runs the same scrypt as a known one"


def test_tokens_end_by_logout_and_for_every_token_of_a_changed_user():
    clock = Clock()
    tokens = TokenStore(clock)
    anna, ben = User("anna", "agent", "anna"), User("ben", "agent", "ben")
    first, second, other = tokens.issue(anna), tokens.issue(anna), tokens.issue(ben)
    assert tokens.revoke(first) and tokens.user(first) is None
    assert not tokens.revoke(first), "a second logout is no error but ends nothing"
    clock.now += 10
    late = tokens.issue(anna)
    assert tokens.revoke_user("anna", issued_before=clock.now - 5) == 1  # the password changed
    assert tokens.user(second) is None and tokens.user(late) == anna
    assert tokens.user(other) == ben
    assert tokens.revoke_user("anna") == 1 and tokens.usernames() == {"ben"}


def test_tokens_go_to_the_journal_as_hashes_and_come_back_unless_expired():
    clock, journal = Clock(), Journal()
    tokens = TokenStore(clock, lifetime=100.0, journal=journal)
    anna = User("anna", "agent", "anna")
    token = tokens.issue(anna)
    ((key, name, issued, expires),) = journal.issued
    assert token not in key and name == "anna" and (issued, expires) == (1000.0, 1100.0)
    # the next run: the kept hash is the token again until it expires
    later = TokenStore(clock, lifetime=100.0)
    assert later.restore([(key, anna, issued, expires), ("old", anna, 0.0, 999.0)]) == 1
    assert later.user(token) == anna and later.usernames() == {"anna"}
    clock.now = 1101.0
    assert later.user(token) is None, "12 hours (here 100 s) from the login, not from the restart"
    assert tokens.revoke(token) and journal.ended == [[key]]
    other = tokens.issue(anna)
    assert tokens.revoke_user("anna") == 1 and journal.ended[-1] == [tokens._key(other)]


class Journal:
    def __init__(self) -> None:
        self.issued: list[tuple[str, str, float, float]] = []
        self.ended: list[list[str]] = []

    def token_issued(self, key: str, username: str, issued: float, expires: float) -> None:
        self.issued.append((key, username, issued, expires))

    def tokens_ended(self, keys: list[str]) -> None:
        self.ended.append(keys)


def test_user_commands_list_change_disable_and_remove(tmp_path):
    url = f"sqlite:///{tmp_path / 'u.db'}"
    cli = [sys.executable, "-m", "dirigent.cli", "user"]

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*cli, *args, "--db", url], input=stdin, capture_output=True, text=True, timeout=60
        )

    assert (
        run("add", "anna", "--role", "agent", "--agent", "anna", stdin="first-pass\n").returncode
        == 0
    )
    assert "anna: agent (agent anna)" in run("list").stdout
    assert run("passwd", "anna", stdin="second-pass\n").returncode == 0
    assert run("disable", "anna").returncode == 0
    assert "anna: agent (agent anna), disabled" in run("list").stdout
    from store import db

    engine = db.make_engine(url)
    try:
        assert db.find_user(engine, "anna") is None, "a disabled user cannot log in"
        disabled, changed = db.user_credentials(engine)["anna"]
        assert disabled and changed is not None
    finally:
        engine.dispose()
    assert run("enable", "anna").returncode == 0
    assert run("remove", "anna").returncode == 0
    missing = run("passwd", "anna", stdin="third-pass\n")
    assert missing.returncode == 2 and "no user 'anna'" in missing.stderr
    assert "no users" in run("list").stdout


def test_account_changes_on_the_command_line_are_audited_and_a_re_add_says_what_it_changed(
    tmp_path,
):
    """QA4 finding 7: ``user add`` of an existing name made a campaign manager
    an admin saying only "saved", and no command-line account change left
    an audit row (the API's do).  ``passwd`` of an unknown user asked for a
    password before saying there was none."""
    url = f"sqlite:///{tmp_path / 'u.db'}"
    cli = [sys.executable, "-m", "dirigent.cli", "user"]

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*cli, *args, "--db", url], input=stdin, capture_output=True, text=True, timeout=60
        )

    assert run("add", "cm", "--role", "campaign_manager", stdin="cm-pass-123\n").returncode == 0
    raised = run("add", "cm", "--role", "admin", stdin="cm-pass-123\n")
    assert raised.returncode == 0 and "role campaign_manager -> admin" in raised.stdout, raised
    assert run("disable", "cm").returncode == 0
    nobody = run("passwd", "nobody", stdin="short\n")
    assert nobody.returncode == 2 and "no user 'nobody'" in nobody.stderr, nobody.stderr
    from sqlalchemy import select

    from store import db

    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(db.audit).order_by(db.audit.c.id)).all()
    finally:
        engine.dispose()
    assert [r.action for r in rows] == [
        "dirigent user add",
        "dirigent user add",
        "dirigent user disable",
    ]
    assert all(r.actor.startswith("cli:") and r.target == "user cm" for r in rows)
    assert rows[0].before is None and rows[0].after["role"] == "campaign_manager"
    assert (rows[1].before["role"], rows[1].after["role"]) == ("campaign_manager", "admin")
    assert (rows[2].before["disabled"], rows[2].after["disabled"]) == (False, True)
    assert "password" not in str([r.after for r in rows])


def test_a_username_or_agent_longer_than_its_column_is_refused_and_nothing_written(engine, capsys):
    """On PostgreSQL a username over 80 or an --agent over 40 characters was
    a traceback (the column refused it); SQLite kept it.  Both say so now,
    and no user is written."""
    from dirigent.cli import main
    from store import db

    url = engine.url.render_as_string(hide_password=False)
    for args, said in (
        (["x" * 81, "--role", "supervisor"], "username: at most 80 characters (81 given)"),
        (["anna", "--role", "agent", "--agent", "a" * 41], "--agent: at most 40 characters"),
    ):
        code = main(["user", "add", *args, "--db", url])
        assert code == 2 and said in capsys.readouterr().err
    assert db.user_credentials(engine) == {}, "nothing written"
