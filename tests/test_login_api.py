"""Login over HTTP as an attacker and a user would meet it: guesses are
locked out with 429 and Retry-After, logout ends a token, a password change
or a removed user ends every token (assembled service, real HTTP)."""

from __future__ import annotations

from cti.auth import hash_password
from store import db
from tests.conftest import LOOP, run
from tests.test_api import app, call, token

__all__ = ["app"]


def test_guessing_is_locked_out_with_retry_after_even_for_the_right_password(app):
    for _ in range(5):
        status, body = call(app, "POST", "login", {"username": "anna", "password": "guess-guess"})
        assert status == 401
    status, body = call(app, "POST", "login", {"username": "anna", "password": "anna-password"})
    assert status == 429 and body["field"] == "login" and "try again in" in body["error"]
    # ben is not locked out by anna's guesses
    assert call(app, "POST", "login", {"username": "ben", "password": "ben-password"})[0] == 200


def test_logout_ends_the_token_and_only_that_one(app):
    first, second = token(app, "anna"), token(app, "anna")
    status, body = call(app, "POST", "logout", {}, first)
    assert status == 200 and body == {"logged_out": "anna"}
    assert call(app, "GET", "agents", token=first)[0] == 401
    assert call(app, "GET", "agents", token=second)[0] == 200


def test_a_password_change_and_a_removal_end_live_tokens(app):
    anna, ben = token(app, "anna"), token(app, "ben")
    engine = app.database.engine
    db.set_password(engine, "anna", hash_password("new-anna-password"))
    db.remove_user(engine, "ben")
    run(app._revoke_changed().asFuture(LOOP))  # what the server does every few seconds
    assert call(app, "GET", "agents", token=anna)[0] == 401
    assert call(app, "GET", "agents", token=ben)[0] == 401
    status, _ = call(app, "POST", "login", {"username": "anna", "password": "new-anna-password"})
    assert status == 200
    fresh = token_for(app, "anna", "new-anna-password")
    run(app._revoke_changed().asFuture(LOOP))
    assert call(app, "GET", "agents", token=fresh)[0] == 200, "a token after the change lives"


def token_for(app, user: str, password: str) -> str:
    status, body = call(app, "POST", "login", {"username": user, "password": password})
    assert status == 200, body
    return body["token"]
