"""Tokens survive a restart of the assembled server (QA4 finding 3: every
deploy logged every agent desktop and supervisor out), and the rules that
end a token still hold across it: a logout stays a logout, a password
changed with `dirigent user passwd` while the server was down ends the
token at the next start.  Only the token's SHA-256 is in the database."""

from __future__ import annotations

import hashlib
import subprocess

from prometheus_client import CollectorRegistry
from sqlalchemy import select

from dirigent.service import Dirigent
from store import db
from tests.conftest import LOOP, run, wait_for
from tests.test_api import assembled, call, token
from tests.test_cli_service import DIRIGENT


def restart(app: Dirigent) -> Dirigent:
    """Stop ``app`` and start the same configuration on the same database."""
    settings = app.settings
    run(app.service.stopService().asFuture(LOOP))
    again = Dirigent(settings, CollectorRegistry())
    again.service.startService()
    run(wait_for(lambda: again.sessions["sim"].connected, what="PBX"))
    return again


def test_a_token_outlives_a_restart_a_logout_does_not(sim, tmp_path):
    with assembled(sim, tmp_path) as first:
        boss, anna, ben = token(first, "boss"), token(first, "anna"), token(first, "ben")
        assert call(first, "POST", "logout", {}, ben)[0] == 200
        second = restart(first)
        try:
            status, agents = call(second, "GET", "agents", token=boss)
            assert status == 200 and {a["id"] for a in agents} >= {"anna", "ben"}
            # the agent is still herself (her role and agent come back with the token)
            status, view = call(second, "POST", "agents/anna/login", {"queues": ["sales"]}, anna)
            assert status == 200 and view["state"] == "ready"
            assert call(second, "POST", "agents/ben/login", {"queues": ["sales"]}, anna)[0] == 403
            assert call(second, "GET", "agents", token=ben)[0] == 401, "logged out stays out"
            with second.database.engine.connect() as conn:
                kept = set(conn.execute(select(db.api_token.c.token_sha256)).scalars())
            assert hashlib.sha256(boss.encode()).hexdigest() in kept
            assert boss not in kept and anna not in kept, "never the token itself"
            assert len(kept) == 2
            # and a logout after the restart ends it for good
            assert call(second, "POST", "logout", {}, anna)[0] == 200
            third = restart(second)
        finally:
            if second.service.running:
                run(second.service.stopService().asFuture(LOOP))
        try:
            assert call(third, "GET", "agents", token=anna)[0] == 401
            assert call(third, "GET", "agents", token=boss)[0] == 200
        finally:
            run(third.service.stopService().asFuture(LOOP))


def test_a_password_changed_while_the_server_was_down_ends_the_token_at_the_next_start(
    sim, tmp_path
):
    with assembled(sim, tmp_path) as first:
        boss, anna = token(first, "boss"), token(first, "anna")
        settings = first.settings
        run(first.service.stopService().asFuture(LOOP))
        changed = subprocess.run(
            [*DIRIGENT, "user", "passwd", "anna", "--db", settings.database.url],
            input="another-anna-password\n",
            capture_output=True,
            text=True,
        )
        assert changed.returncode == 0, changed.stderr
        second = Dirigent(settings, CollectorRegistry())
        second.service.startService()
        try:
            run(wait_for(lambda: second.sessions["sim"].connected, what="PBX"))
            assert call(second, "GET", "agents", token=anna)[0] == 401
            assert call(second, "GET", "agents", token=boss)[0] == 200
        finally:
            run(second.service.stopService().asFuture(LOOP))


def test_the_kept_tokens_on_both_databases_and_what_ends_them(database_url):
    """The store's part: a hash with its user and times; read back only
    while valid and backed by the user's credentials."""
    import time

    from cti.auth import hash_password

    db.upgrade(database_url)
    engine = db.make_engine(database_url)
    try:
        for name in ("anna", "ben", "cleo", "dora"):
            db.add_user(engine, name, hash_password(f"{name}-password"), "agent", name)
        now = time.time()
        db.add_token(engine, "a" * 64, "anna", now - 10, now + 3600)
        db.add_token(engine, "b" * 64, "ben", now - 10, now + 3600)
        db.add_token(engine, "c" * 64, "cleo", now - 10, now + 3600)
        db.add_token(engine, "d" * 64, "dora", now - 7200, now - 1)  # expired
        db.add_token(engine, "e" * 64, "anna", now - 5, now + 3600)
        db.end_tokens(engine, ["e" * 64])  # a logout
        db.set_disabled(engine, "ben", True)
        db.remove_user(engine, "cleo")
        (anna,) = db.live_tokens(engine, now)
        assert (anna.key, anna.username, anna.login.role, anna.login.agent) == (
            "a" * 64,
            "anna",
            "agent",
            "anna",
        )
        assert abs(anna.issued - (now - 10)) < 0.01 and abs(anna.expires - (now + 3600)) < 0.01
        # a change the rows were not deleted with (an older `dirigent user`):
        # the token issued before it does not come back
        import datetime as dt

        with engine.begin() as conn:
            conn.execute(
                db.user.update()
                .where(db.user.c.username == "anna")
                .values(credentials_changed_at=dt.datetime.fromtimestamp(now - 1, dt.UTC))
            )
        assert db.live_tokens(engine, now) == []
        with engine.connect() as conn:
            assert conn.execute(select(db.api_token.c.token_sha256)).all() == []
    finally:
        engine.dispose()
