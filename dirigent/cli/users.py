"""``dirigent user add|list|passwd|disable|enable|remove``: API users."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from dirigent.cli.common import EXIT_OK, UsageError, bad_input, database


def register(sub: Any) -> None:
    """Add this group's commands to the ``dirigent`` parser."""
    users = sub.add_parser("user", help="API users")
    usersub = users.add_subparsers(dest="user_command", required=True)
    add = usersub.add_parser("add", help="create a user or reset its password (read from stdin)")
    add.add_argument("username")
    add.add_argument(
        "--role", required=True, choices=["agent", "supervisor", "campaign_manager", "admin"]
    )
    add.add_argument("--agent", default=None, help="the routing agent id this user logs in as")
    add.add_argument(
        "--teams",
        default=None,
        help="a supervisor who oversees these teams only (comma-separated [[agent]] team"
        " names): their agents, their queues and the campaigns dialling into them",
    )
    add.add_argument(
        "--db", default=None, help="database URL (default: config or sqlite:///store.db)"
    )
    add.add_argument("--config", default=None)
    for verb, helptext in (
        ("list", "the users, their roles and whether they may log in"),
        (
            "passwd",
            "a new password (asked without echo, or one line on stdin); ends the user's tokens",
        ),
        ("disable", "the user can no longer log in; ends the user's tokens"),
        ("enable", "a disabled user may log in again"),
        ("remove", "delete the user; ends the user's tokens"),
    ):
        p = usersub.add_parser(verb, help=helptext)
        if verb != "list":
            p.add_argument("username")
        else:
            p.add_argument("--json", action="store_true")
        p.add_argument("--db", default=None)
        p.add_argument("--config", default=None)
    users.set_defaults(handler=cmd_user)


def cmd_user(args: argparse.Namespace) -> int:
    """``dirigent user add NAME --role R [--agent ID] [--teams T,...]`` and ``user
    list|passwd|disable|enable|remove``; a password comes on standard input
    (asked without echo on a terminal), never on the command line."""
    from cti.auth import hash_password
    from store import db

    if args.user_command == "list":
        return _user_list(args)
    if args.user_command in ("disable", "enable", "remove"):
        with database(args) as engine:
            before = _account(engine, args.username)
            if args.user_command == "remove":
                found = db.remove_user(engine, args.username)
            else:
                found = db.set_disabled(engine, args.username, args.user_command == "disable")
            if found:
                _audit(engine, args.user_command, args.username, before)
        if not found:
            raise UsageError(f"user: no user {args.username!r}")
        done = {"disable": "disabled", "enable": "enabled", "remove": "removed"}[args.user_command]
        ended = "" if args.user_command == "enable" else "; its tokens end within seconds"
        print(f"user {args.username} {done}{ended}")
        return EXIT_OK
    if args.user_command == "add" and args.role == "agent" and not args.agent:
        raise UsageError("--agent: required for the agent role")
    if args.user_command == "add":
        # PostgreSQL refuses a longer value (a traceback, nothing written); SQLite kept it
        for key, column, value in (
            ("username", db.user.c.username, args.username),
            ("--agent", db.user.c.agent_code, args.agent),
        ):
            limit = db.column_limit(column)
            if value and limit is not None and len(value) > limit:
                raise UsageError(f"{key}: at most {limit} characters ({len(value)} given)")
    teams = _teams(args) if args.user_command == "add" else None
    if args.user_command == "add":
        _check_names(args, teams)
    if args.user_command == "passwd":
        with database(args) as engine:  # an unknown user first, before any password is asked
            if _account(engine, args.username) is None:
                raise UsageError(f"user: no user {args.username!r}")
    try:
        hashed = hash_password(_read_password())
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    with database(args) as engine:
        before = _account(engine, args.username)
        if args.user_command == "passwd":
            if not db.set_password(engine, args.username, hashed):
                raise UsageError(f"user: no user {args.username!r}")
            _audit(engine, "passwd", args.username, before)
            print(f"password of {args.username} changed; its tokens end within seconds")
            return EXIT_OK
        db.add_user(engine, args.username, hashed, args.role, args.agent, teams)
        after = _audit(engine, "add", args.username, before)
    oversees = f", overseeing {', '.join(teams)}" if teams else ""
    changed = _changes(before, after)
    print(f"user {args.username} ({args.role}{oversees}) saved{changed}")
    return EXIT_OK


def _account(engine: Any, username: str) -> dict[str, Any] | None:
    """What an audit row shows of a user (never the password)."""
    from store import db

    for u in db.list_users(engine):
        if u.username == username:
            return {
                "role": u.role,
                "agent": u.agent,
                "teams": list(u.teams) if u.teams is not None else None,
                "disabled": u.disabled,
            }
    return None


def _audit(
    engine: Any, verb: str, username: str, before: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The account change in the audit table, as an API action is (QA4: the
    command line left none, a role raised to admin among them).  The actor
    is the system user who ran the command."""
    import datetime as dt
    import getpass

    from store import db

    after = _account(engine, username)
    try:
        who = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        who = "unknown"
    db.add_audit(
        engine,
        {
            "at": dt.datetime.now(dt.UTC),
            "actor": f"cli:{who}"[:80],
            "role": "cli",
            "action": f"dirigent user {verb}",
            "target": f"user {username}"[:200],
            "request": None,
            "before": before,
            "after": after,
            "status": 0,
        },
    )
    return after


def _changes(before: dict[str, Any] | None, after: dict[str, Any] | None) -> str:
    """``; role campaign_manager -> admin`` for what a re-add changed (it was silent)."""
    if before is None or after is None:
        return ""
    parts = [
        f"{key} {before[key]} -> {after[key]}"
        for key in ("role", "agent", "teams")
        if before.get(key) != after.get(key)
    ]
    return f" (was there: password replaced{''.join(f'; {p}' for p in parts)})"


def _teams(args: argparse.Namespace) -> list[str] | None:
    """The teams of ``--teams``: for a supervisor only, names as in ``[[agent]] team``."""
    if args.teams is None:
        return None
    if args.role != "supervisor":
        raise UsageError(f"--teams: only a supervisor oversees teams, not the {args.role} role")
    teams = sorted({t.strip() for t in args.teams.split(",") if t.strip()})
    if not teams:
        raise UsageError("--teams: give at least one team name (comma-separated)")
    for team in teams:
        if len(team) > 80 or not team.isprintable():
            raise UsageError(f"--teams: {team!r} is not a team name (printable, at most 80)")
    return teams


def _check_names(args: argparse.Namespace, teams: list[str] | None) -> None:
    """A username one can type at the login (no spaces), and, when the
    configuration is given (``--config``), an ``--agent`` and ``--teams`` it
    has: an unknown one was saved silently and the user then logged in as
    no agent or oversaw nobody (QA7 F8).  Refused before a password is asked."""
    from dirigent.config import ConfigError, load_settings

    name = args.username
    if not name or not name.isprintable() or any(c.isspace() for c in name):
        raise UsageError(
            f"username: {name!r} is not a user name (printable, without spaces; e.g. anna.berg)"
        )
    if not args.config:
        return
    try:
        routing = load_settings(args.config, pbxs=False).routing
    except ConfigError as exc:
        raise bad_input(exc) from None
    if args.agent is not None:
        ids = [a.id for a in routing.agents]
        if args.agent not in ids:
            known = f"its agents: {', '.join(ids)}" if ids else "it has no [[agent]]"
            raise UsageError(f"--agent: no agent {args.agent!r} in {args.config} ({known})")
    known_teams = sorted({a.team for a in routing.agents if a.team})
    for team in teams or ():
        if team not in known_teams:
            known = (
                f"its teams: {', '.join(known_teams)}"
                if known_teams
                else "no [[agent]] there has a team"
            )
            raise UsageError(f"--teams: no team {team!r} in {args.config} ({known})")


def _read_password() -> str:
    """The password: asked twice without echo on a terminal, else one line of stdin."""
    if sys.stdin.isatty():
        import getpass

        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise UsageError("password: the two entries differ")
    else:
        password = sys.stdin.readline().rstrip("\n")
    try:  # bytes that are no UTF-8 come in as surrogates (Python's surrogateescape)
        password.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(
            "password: not UTF-8 text (bytes that are no character: check the"
            " terminal's or the file's encoding)"
        ) from None
    return password


def _user_list(args: argparse.Namespace) -> int:
    import json

    from store import db

    with database(args) as engine:
        users = db.list_users(engine)
    rows = [
        {
            "username": u.username,
            "role": u.role,
            "agent": u.agent,
            "disabled": u.disabled,
            "teams": list(u.teams) if u.teams is not None else None,
            "credentials_changed_at": u.credentials_changed_at.isoformat()
            if u.credentials_changed_at
            else None,
        }
        for u in users
    ]
    if not args.json:
        for u in users:
            agent = f" (agent {u.agent})" if u.agent else ""
            teams = f" (teams {', '.join(u.teams)})" if u.teams else ""
            off = ", disabled" if u.disabled else ""
            print(f"{u.username}: {u.role}{agent}{teams}{off}")
        if not users:
            print("no users")
    else:
        print(json.dumps({"users": rows}))
    return EXIT_OK
