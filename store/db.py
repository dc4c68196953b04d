"""The database: core tables (one meaning each) and migrations.

Tables follow the data model of DESIGN.md.  They are defined with SQLAlchemy
Core; the schema is created and changed only by Alembic migrations
(``store/migrations``), never by ``create_all``, so a SQLite file and a
PostgreSQL database go through the same steps.  The MetaData carries a
naming convention so that constraint names are stable across both (Alembic
needs names to drop or alter constraints later).

Rules kept by the schema itself:

* ``consent`` is append-only: a withdrawal is a new row, the grant stays
  (UWG §7a: proof of consent is kept for five years).
* ``attempt`` rows are written *before* the Originate they record
  (DESIGN.md principle 4); ``outcome`` is NULL until the result is known.
* Phone numbers are stored in E.164; ``contact_phone.e164`` and
  ``dnc.e164`` are indexed for the compliance look-ups.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    false,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.sql.dml import Insert

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _created() -> Column:
    return Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now())


user = Table(
    "app_user",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("username", String(80), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("role", String(20), nullable=False),  # agent, supervisor, campaign_manager, admin
    Column("agent_id", ForeignKey("agent.id"), nullable=True),
    _created(),
    # the routing agent this user logs in as (agents are configured by code)
    Column("agent_code", String(40), nullable=True),
    # a disabled user cannot log in; tokens issued before the last password
    # change (or disabling) are ended by the server's revocation check
    Column("disabled", Boolean, nullable=False, server_default=false()),
    Column("credentials_changed_at", DateTime(timezone=True), nullable=True),
    # a supervisor's scope: the teams it oversees (NULL: the whole centre)
    Column("teams", JSON, nullable=True),
)

#: the live API / WebSocket tokens, so that a restart logs nobody out: the
#: SHA-256 of each (never the token), whose it is, when issued and until
#: when it is valid.  Logout, a password change, a disabled or removed user
#: delete the rows; at start-up a row whose user changed its password (or
#: was disabled, removed) since it was issued is not taken back.
api_token = Table(
    "api_token",
    metadata,
    Column("token_sha256", String(64), primary_key=True),
    Column("username", String(80), nullable=False, index=True),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
)

team = Table(
    "team",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(80), nullable=False, unique=True),
)

agent = Table(
    "agent",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("code", String(40), nullable=False, unique=True),
    Column("name", String(120), nullable=False),
    Column("team_id", ForeignKey("team.id"), nullable=True),
    Column("endpoint", String(120), nullable=True),  # e.g. PJSIP/1001
    Column("connect_mode", String(10), nullable=False, server_default="ring"),  # ring | nailed
    Column("capacity", JSON, nullable=False, default=dict),  # {"voice": 1, "chat": 4, ...}
    _created(),
)

skill = Table(
    "skill",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(80), nullable=False, unique=True),
)

agent_skill = Table(
    "agent_skill",
    metadata,
    Column("agent_id", ForeignKey("agent.id", ondelete="CASCADE"), primary_key=True),
    Column("skill_id", ForeignKey("skill.id", ondelete="CASCADE"), primary_key=True),
    Column("level", Integer, nullable=False),  # 1..10
)

queue = Table(
    "queue",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(80), nullable=False, unique=True),
    Column("settings", JSON, nullable=False, default=dict),
)

contact = Table(
    "contact",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("display_name", String(200), nullable=False, server_default=""),
    Column("first_name", String(100), nullable=True),
    Column("last_name", String(100), nullable=True),
    Column("company", String(200), nullable=True),
    Column("street", String(200), nullable=True),
    Column("postal_code", String(20), nullable=True),
    Column("city", String(100), nullable=True),
    Column("country", String(2), nullable=True),
    Column("email", String(254), nullable=True),
    Column("phonetic_key", String(64), nullable=True, index=True),
    Column("custom", JSON, nullable=False, default=dict),
    _created(),
    Column("updated_at", DateTime(timezone=True), nullable=True),
)

#: a contact's own data columns, in this order wherever they are copied
#: (list import, merge)
CONTACT_FIELDS = (
    "display_name",
    "first_name",
    "last_name",
    "company",
    "street",
    "postal_code",
    "city",
    "country",
    "email",
    "phonetic_key",
)

contact_phone = Table(
    "contact_phone",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("contact_id", ForeignKey("contact.id", ondelete="CASCADE"), nullable=False),
    Column("e164", String(16), nullable=False, index=True),
    Column("number_type", String(20), nullable=True),  # mobile, fixed_line, ...
    Column("region", String(2), nullable=True),
    # every zone a number may ring in (a US toll-free number: all of them, 727
    # characters): calling hours are checked in each, so none may be cut
    Column("timezones", Text, nullable=True),
    UniqueConstraint("contact_id", "e164"),
)

consent = Table(
    "consent",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("contact_id", ForeignKey("contact.id"), nullable=False, index=True),
    Column("channel", String(10), nullable=False),  # voice, sms, email
    Column("granted", Boolean, nullable=False),  # False = withdrawal
    Column("source", String(200), nullable=False),
    Column("proof_ref", String(500), nullable=True),
    Column("given_at", DateTime(timezone=True), nullable=False),
    _created(),
)

campaign = Table(
    "campaign",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(120), nullable=False, unique=True),
    Column("status", String(20), nullable=False, server_default="stopped"),
    Column("country", String(2), nullable=True),
    Column("dial_mode", String(20), nullable=False, server_default="progressive"),
    Column("caller_id", String(16), nullable=True),
    Column("settings", JSON, nullable=False, default=dict),
    _created(),
)

dial_list = Table(
    "dial_list",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("campaign_id", ForeignKey("campaign.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("active", Boolean, nullable=False, server_default="1"),
    Column("source", String(500), nullable=True),
    # NULL: whole.  "new": a first import is writing it (inactive until it is
    # whole); "adding": records are being added to a live list (as "staged",
    # which the hopper never takes); "switching": the staged records are
    # being made "new" (store.lists_import)
    Column("import_state", String(10), nullable=True),
    _created(),
    UniqueConstraint("campaign_id", "name"),
)

record = Table(
    "record",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("list_id", ForeignKey("dial_list.id"), nullable=False),
    Column("contact_id", ForeignKey("contact.id"), nullable=False),
    Column("e164", String(16), nullable=False),
    Column("status", String(20), nullable=False, server_default="new"),
    Column("priority", Integer, nullable=False, server_default="0"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_due_at", DateTime(timezone=True), nullable=True),
    Column("callback_at", DateTime(timezone=True), nullable=True),
    Column("last_outcome", String(20), nullable=True),
    Column("closed_reason", String(80), nullable=True),
    Column("extra", JSON, nullable=False, default=dict),
    UniqueConstraint("list_id", "e164"),
    Index("ix_record_hopper", "list_id", "status", "next_due_at", "priority"),
)
# the hopper's two ordered reads (store.pool._candidates): records never
# tried, and retries that are due; partial, so they hold only open records
#: records the hopper may still take; the partial indexes hold only these
OPEN_STATUSES = ("new", "scheduled")
OPEN_CONDITION = f"status IN ({', '.join(repr(s) for s in OPEN_STATUSES)})"

Index(
    "ix_record_fresh",
    record.c.list_id,
    record.c.priority.desc(),
    record.c.id,
    sqlite_where=text(f"{OPEN_CONDITION} AND next_due_at IS NULL"),
    postgresql_where=text(f"{OPEN_CONDITION} AND next_due_at IS NULL"),
)
Index(
    "ix_record_retry",
    record.c.list_id,
    record.c.priority.desc(),
    record.c.next_due_at,
    record.c.id,
    sqlite_where=text(f"{OPEN_CONDITION} AND next_due_at IS NOT NULL"),
    postgresql_where=text(f"{OPEN_CONDITION} AND next_due_at IS NOT NULL"),
)

#: records claimed by a dialer, from the claim until their attempt's outcome
#: (VICIdial's "hopper"): a claim inserts a few small rows here instead of
#: rewriting a thousand scattered record rows, and the primary key keeps two
#: claimers from taking the same record
hopper = Table(
    "hopper",
    metadata,
    Column("record_id", ForeignKey("record.id"), primary_key=True),
    Column("campaign_id", ForeignKey("campaign.id"), nullable=False, index=True),
    Column("claimed_at", DateTime(timezone=True), nullable=False),
)

attempt = Table(
    "attempt",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("record_id", ForeignKey("record.id"), nullable=True),
    Column("campaign_id", ForeignKey("campaign.id"), nullable=True),
    Column("e164", String(16), nullable=False, index=True),
    Column("pbx", String(40), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("uniqueid", String(150), nullable=True, index=True),
    Column("channel", String(200), nullable=True),
    Column("outcome", String(20), nullable=True),  # NULL until known
    Column("hangup_cause", Integer, nullable=True),
    Column("ring_seconds", Float, nullable=True),
    Column("talk_seconds", Float, nullable=True),
    Column("agent_id", ForeignKey("agent.id"), nullable=True),
    Column("disposition", String(40), nullable=True),
    Column("abandoned", Boolean, nullable=False, server_default="0"),
    Column("ended_at", DateTime(timezone=True), nullable=True),
    # the dialer's attempt id (DIRIGENT_ATTEMPT on the channel), chosen before the Originate
    Column("ref", String(120), nullable=True, unique=True),
    Column("answered_at", DateTime(timezone=True), nullable=True),
    Column("connected_at", DateTime(timezone=True), nullable=True),
    Column("verdict", String(10), nullable=True),  # AMD: human / machine
    Column("agent_code", String(40), nullable=True),
    Index("ix_attempt_campaign_outcome", "campaign_id", "outcome"),
)

abandon_count = Table(
    "abandon_count",
    metadata,
    Column("id", Integer, primary_key=True),
    # a campaign, or a drop-rate group of campaigns (Ofcom allows either)
    Column("grp", String(120), nullable=False),
    Column("day_start", Float, nullable=False),  # start of the local day, epoch seconds
    Column("live", Float, nullable=False),
    Column("abandoned", Float, nullable=False),
    UniqueConstraint("grp", "day_start", name="uq_abandon_count_grp_day"),
)

interaction = Table(
    "interaction",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("channel", String(10), nullable=False),  # voice, chat, email, sms
    Column("direction", String(10), nullable=False),  # inbound, outbound
    Column("contact_id", ForeignKey("contact.id"), nullable=True, index=True),
    Column("queue_id", ForeignKey("queue.id"), nullable=True),
    Column("campaign_id", ForeignKey("campaign.id"), nullable=True),
    Column("attempt_id", ForeignKey("attempt.id"), nullable=True, index=True),
    Column("agent_id", ForeignKey("agent.id"), nullable=True),
    Column("pbx", String(40), nullable=True),
    Column("uniqueid", String(150), nullable=True, index=True),
    Column("arrived_at", DateTime(timezone=True), nullable=False),
    Column("answered_at", DateTime(timezone=True), nullable=True),
    Column("ended_at", DateTime(timezone=True), nullable=True),
    Column("outcome", String(20), nullable=True),
    Column("disposition", String(40), nullable=True),
    Column("notes", Text, nullable=True),
    Column("attributes", JSON, nullable=False, default=dict),
    # routing identities are configured by name/code, not database rows
    Column("queue_name", String(80), nullable=True),
    Column("agent_code", String(40), nullable=True),
    Column("customer", String(200), nullable=True),
)

agent_state_log = Table(
    "agent_state_log",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("agent_code", String(40), nullable=False),
    Column("state", String(20), nullable=False),
    Column("reason", String(80), nullable=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_agent_state_log_agent_at", "agent_code", "at"),
)

dnc = Table(
    "dnc",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("e164", String(16), nullable=False, index=True),
    Column("campaign_id", ForeignKey("campaign.id"), nullable=True),  # NULL = global
    Column("source", String(200), nullable=False),
    Column("reason", String(200), nullable=True),
    _created(),
    UniqueConstraint("e164", "campaign_id"),
)


#: every supervisor and campaign action through the API: who, what, on
#: what, when, the state before and after, and the answer's status
audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(80), nullable=False),
    Column("role", String(20), nullable=False),
    Column("action", String(200), nullable=False),  # "PATCH /api/campaigns/spring"
    Column("target", String(200), nullable=True),  # "campaign spring", "agent anna"
    Column("request", JSON, nullable=True),
    Column("before", JSON, nullable=True),
    Column("after", JSON, nullable=True),
    Column("status", Integer, nullable=False),
    Index("ix_audit_at", "at"),
)


def insert_id(conn: Connection, statement: Insert) -> int:
    """Runs the INSERT ``statement`` of one row and returns the new row's
    integer primary key (SQLAlchemy types it as optional: an INSERT of no
    row, or of several, has none, which would be a bug here)."""
    key = conn.execute(statement).inserted_primary_key
    if key is None:
        raise RuntimeError(f"an INSERT into {statement.table} returned no primary key")
    return int(key[0])


def add_audit(engine: Engine, entry: dict[str, Any]) -> None:
    """One audit row, fitted to its columns (:func:`fit_audit`)."""
    with engine.begin() as conn:
        conn.execute(audit.insert().values(**fit_audit(entry)))


def fit_audit(entry: dict[str, Any]) -> dict[str, Any]:
    """An audit row every database stores, whatever the request was: its
    texts cut to their columns and without NUL (PostgreSQL refuses both: the
    row of a request to a 300-character or ``%00`` path was lost), its JSON
    without NaN or Infinity (``{"reason": NaN}``, ``1e400``: PostgreSQL's
    JSON has neither), which are kept as the strings ``"NaN"``, ``"Infinity"``."""
    fitted = dict(entry)
    for key, value in entry.items():
        column = audit.c[key]
        if isinstance(value, str):
            limit = column_limit(column)
            fitted[key] = value.replace("\x00", "\ufffd")[:limit]
        elif isinstance(column.type, JSON) and value is not None:
            try:
                fitted[key] = json.loads(json.dumps(value, default=str), parse_constant=str)
            except (ValueError, RecursionError):
                fitted[key] = None
    return fitted


# -- engines and migrations ---------------------------------------------------------
def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL and enforced foreign keys."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: DBAPIConnection, _record: object) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            # a 32 MB page cache (SQLite's default is 2 MB): the hopper reads
            # numbers and history of a thousand records per refill
            cur.execute("PRAGMA cache_size=-32768")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def column_limit(column: Column[Any]) -> int | None:
    """The most characters ``column`` holds (``String(n)``), None for no limit.

    The schema here is the one source of the limits: PostgreSQL refuses a
    longer value (the whole statement fails), SQLite stores it, so every
    text that reaches a column is checked against it first."""
    kind = column.type
    return kind.length if isinstance(kind, String) else None


class BadDatabaseUrl(ValueError):
    """A URL SQLAlchemy cannot use; the message never quotes it (its password)."""


class DatabaseUnreachable(Exception):
    """The database at a good URL did not open; the message says why in
    words (the driver's first line, never the URL's password)."""


def check_url(url: str) -> None:
    """Raise :class:`BadDatabaseUrl` unless ``url`` parses (a port that is
    a number) and its driver is installed: else the first connection is a
    traceback (``ArgumentError``, ``NoSuchModuleError``, ``ImportError``)."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise BadDatabaseUrl(
            "not a database URL (sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/NAME)"
        ) from None
    try:
        parsed.get_dialect().import_dbapi()
    except NoSuchModuleError:
        raise BadDatabaseUrl(f"no database driver {parsed.drivername!r}") from None
    except ImportError as exc:
        raise BadDatabaseUrl(
            f"the driver of {parsed.drivername!r} is not installed ({exc.name})"
        ) from None


def reach(url: str) -> None:
    """Open (and close) one connection to ``url``, or raise
    :class:`DatabaseUnreachable` saying why: an SQLite folder that is not
    there, a PostgreSQL not listening (yet), a login refused."""
    engine = make_engine(url)
    try:
        with engine.connect():
            pass
    except DBAPIError as exc:
        raise DatabaseUnreachable(_unreachable(url, exc)) from None
    finally:
        engine.dispose()


def _unreachable(url: str, exc: DBAPIError) -> str:
    parsed = make_url(url)
    orig = exc.orig or exc
    said = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    if parsed.password:
        said = said.replace(str(parsed.password), "***")
    if parsed.get_backend_name() == "sqlite":
        name = parsed.database or ""
        if not name or name == ":memory:" or name.startswith("file:"):
            return said
        path = Path(name)
        if not path.parent.is_dir():
            return f"folder {path.parent} does not exist"
        if path.is_dir():
            return f"{path} is a folder, not a database file"
        where = path if path.exists() else path.parent
        if not os.access(where, os.W_OK):
            return f"{where} is not writable"
        return f"{path}: {said}"
    host = parsed.host or parsed.query.get("host") or "localhost"
    port = parsed.port or 5432
    said = said.rsplit(" failed: ", 1)[-1]  # psycopg: '... server at "h", port p failed: why'
    return f"cannot connect to {host}:{port}: {said}"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision`` (idempotent)."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            cfg = alembic_config(url)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    finally:
        engine.dispose()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


@dataclass(frozen=True)
class LoginRow:
    """What a login needs of a user who may log in."""

    role: str
    password_hash: str
    agent: str | None
    #: the teams a supervisor oversees (None: the whole centre)
    teams: frozenset[str] | None


def find_user(engine: Engine, username: str) -> LoginRow | None:
    """The user ``username`` if it may log in (None: no such user, or disabled)."""
    with engine.connect() as conn:
        row = conn.execute(
            user.select()
            .with_only_columns(user.c.role, user.c.password_hash, user.c.agent_code, user.c.teams)
            .where(user.c.username == username, user.c.disabled.is_(False))
        ).first()
    if row is None:
        return None
    teams = frozenset(row.teams) if row.teams is not None else None
    return LoginRow(row.role, row.password_hash, row.agent_code, teams)


def add_user(
    engine: Engine,
    username: str,
    password_hash: str,
    role: str,
    agent_code: str | None,
    teams: Iterable[str] | None = None,
) -> None:
    """Create a user, or replace the password, role and teams of an existing
    one (which ends the tokens it holds, see :func:`user_credentials`)."""
    with engine.begin() as conn:
        existing = conn.execute(user.select().where(user.c.username == username)).first()
        values = {
            "password_hash": password_hash,
            "role": role,
            "agent_code": agent_code,
            "teams": sorted(set(teams)) if teams is not None else None,
        }
        if existing:
            conn.execute(
                user.update()
                .where(user.c.username == username)
                .values(**values, credentials_changed_at=_now())
            )
            _end_tokens_of(conn, username)
        else:
            conn.execute(user.insert().values(username=username, **values))


@dataclass(frozen=True)
class UserRow:
    username: str
    role: str
    agent: str | None
    disabled: bool
    created_at: dt.datetime | None
    credentials_changed_at: dt.datetime | None
    teams: tuple[str, ...] | None = None


def list_users(engine: Engine) -> list[UserRow]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                user.c.username,
                user.c.role,
                user.c.agent_code,
                user.c.disabled,
                user.c.created_at,
                user.c.credentials_changed_at,
                user.c.teams,
            ).order_by(user.c.username)
        ).all()
    return [
        UserRow(r[0], r[1], r[2], bool(r[3]), r[4], r[5], tuple(r[6]) if r[6] is not None else None)
        for r in rows
    ]


def set_password(engine: Engine, username: str, password_hash: str) -> bool:
    """A new password; the user's tokens end.  False if there is no such user."""
    with engine.begin() as conn:
        done = conn.execute(
            user.update()
            .where(user.c.username == username)
            .values(password_hash=password_hash, credentials_changed_at=_now())
        ).rowcount
        _end_tokens_of(conn, username)
    return bool(done)


def set_disabled(engine: Engine, username: str, disabled: bool) -> bool:
    with engine.begin() as conn:
        values: dict[str, Any] = {"disabled": disabled}
        if disabled:
            values["credentials_changed_at"] = _now()
            _end_tokens_of(conn, username)
        done = conn.execute(user.update().where(user.c.username == username).values(**values))
    return bool(done.rowcount)


def remove_user(engine: Engine, username: str) -> bool:
    with engine.begin() as conn:
        _end_tokens_of(conn, username)
        return bool(conn.execute(user.delete().where(user.c.username == username)).rowcount)


def _end_tokens_of(conn: Connection, username: str) -> None:
    conn.execute(api_token.delete().where(api_token.c.username == username))


# -- tokens ----------------------------------------------------------------------------
def _epoch(value: dt.datetime) -> float:
    return (value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)).timestamp()


def _at(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def add_token(engine: Engine, key: str, username: str, issued: float, expires: float) -> None:
    """Keep a token issued at a login (its SHA-256 ``key``); the expired
    rows go at the same time."""
    with engine.begin() as conn:
        conn.execute(api_token.delete().where(api_token.c.expires_at < _at(issued)))
        conn.execute(
            api_token.insert().values(
                token_sha256=key, username=username, issued_at=_at(issued), expires_at=_at(expires)
            )
        )


def end_tokens(engine: Engine, keys: Iterable[str]) -> None:
    """Forget tokens ended by a logout or a revocation."""
    with engine.begin() as conn:
        _delete_tokens(conn, list(keys))


def _delete_tokens(conn: Connection, keys: list[str]) -> None:
    for start in range(0, len(keys), 500):  # a bounded IN list
        chunk = keys[start : start + 500]
        conn.execute(api_token.delete().where(api_token.c.token_sha256.in_(chunk)))


@dataclass(frozen=True)
class TokenRow:
    key: str
    username: str
    issued: float
    expires: float
    login: LoginRow


def live_tokens(engine: Engine, now: float) -> list[TokenRow]:
    """At start-up: the tokens the last run left that still hold, with
    their users; the rest (expired, of a user removed, disabled or whose
    password changed after the token was issued, also while the server was
    down) are deleted."""
    with engine.begin() as conn:
        rows = conn.execute(
            select(
                api_token.c.token_sha256,
                api_token.c.username,
                api_token.c.issued_at,
                api_token.c.expires_at,
                user.c.role,
                user.c.password_hash,
                user.c.agent_code,
                user.c.teams,
                user.c.disabled,
                user.c.credentials_changed_at,
            ).select_from(api_token.outerjoin(user, user.c.username == api_token.c.username))
        ).all()
        live, dead = [], []
        for r in rows:
            issued, expires = _epoch(r.issued_at), _epoch(r.expires_at)
            changed = r.credentials_changed_at
            if (
                r.role is None
                or r.disabled
                or expires <= now
                or (changed is not None and _epoch(changed) > issued)
            ):
                dead.append(r.token_sha256)
                continue
            teams = frozenset(r.teams) if r.teams is not None else None
            login = LoginRow(r.role, r.password_hash, r.agent_code, teams)
            live.append(TokenRow(r.token_sha256, r.username, issued, expires, login))
        _delete_tokens(conn, dead)
    return live


def user_credentials(engine: Engine) -> dict[str, tuple[bool, float | None]]:
    """username -> (disabled, epoch seconds of the last credentials change):
    what the server's revocation check compares its live tokens with."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(user.c.username, user.c.disabled, user.c.credentials_changed_at)
        ).all()
    out: dict[str, tuple[bool, float | None]] = {}
    for name, disabled, changed in rows:
        if changed is not None and changed.tzinfo is None:
            changed = changed.replace(tzinfo=dt.UTC)
        out[name] = (bool(disabled), changed.timestamp() if changed is not None else None)
    return out


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def ping(engine: Engine) -> None:
    """Raise if the database cannot answer a trivial query."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


# -- failures ------------------------------------------------------------------------
def transient(exc: BaseException) -> bool:
    """A failure that may pass: a lock, a lost connection (not a bad value).
    Every writer that retries (reports, the dialer's) asks this one."""
    if not isinstance(exc, DBAPIError):
        return False
    text = str(exc.orig or exc).lower()
    return exc.connection_invalidated or any(
        word in text
        for word in ("locked", "busy", "connection", "server closed", "terminating", "timeout")
    )
