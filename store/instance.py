"""One server per database.

A Dirigent server owns its database's live rows: at start-up it closes the
interactions and agent states the last run left open, takes over the calls
still bridged, and its lease on each PBX is named after the host and the
database.  A second ``dirigent serve`` on the same database (a unit started
twice, a copy of the configuration with another HTTP port) would close the
first one's open rows as "left by the last run" and, with the same lease
name, drive the same PBXs beside it.  So a server holds the database for
as long as it runs, and a second one is refused before it touches anything,
naming who holds it:

* SQLite: an exclusive ``flock`` on ``<database>.lock`` beside the file
  (the kernel lets it go when the process ends, also on kill -9); the file
  says which process holds it.
* PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) on a
  connection kept for the process's life; PostgreSQL lets it go when the
  session ends.
* An in-memory SQLite database is the process's own: nothing to hold.

The command-line jobs beside a running server (list imports, users, DNC)
do not take it: they are meant to run while the server does.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from pathlib import Path
from typing import IO

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine, make_url

#: the advisory lock's key on PostgreSQL (any constant: "dirigent" in ASCII)
ADVISORY_KEY = 0x646972696765
_ADVISORY = f"SELECT pg_try_advisory_lock({ADVISORY_KEY})"
_HOLDER = (
    "SELECT a.pid, a.client_addr, a.application_name FROM pg_locks l"
    " JOIN pg_stat_activity a ON a.pid = l.pid"
    f" WHERE l.locktype = 'advisory' AND l.objid = {ADVISORY_KEY & 0xFFFFFFFF}"
    " AND l.granted LIMIT 1"
)


class DatabaseInUse(Exception):
    """Another server holds the database; the message says who (never the URL's password)."""


class DatabaseHold:
    """The hold on one database, let go by :meth:`release` (or the process's end)."""

    def __init__(
        self,
        file: IO[str] | None = None,
        engine: Engine | None = None,
        connection: Connection | None = None,
    ) -> None:
        self._file = file
        self._engine = engine
        self._connection = connection

    def release(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.close()  # the session ends: PostgreSQL lets the lock go
            self._connection = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def hold_database(url: str) -> DatabaseHold:
    """Hold ``url``'s database for this process, or raise :class:`DatabaseInUse`."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            return DatabaseHold()
        return _hold_file(Path(parsed.database))
    if parsed.get_backend_name() == "postgresql":
        return _hold_advisory(url)
    return DatabaseHold()


def _hold_file(database: Path) -> DatabaseHold:
    lock = database.with_name(database.name + ".lock")
    handle = lock.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise DatabaseInUse(
            f"database {database} is in use by another Dirigent server ({holder}; its lock: {lock})"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
    handle.flush()
    return DatabaseHold(file=handle)


def _hold_advisory(url: str) -> DatabaseHold:
    engine = create_engine(url, pool_pre_ping=True)
    connection = engine.connect()
    try:
        taken = bool(connection.execute(text(_ADVISORY)).scalar())
        if not taken:
            row = connection.execute(text(_HOLDER)).first()
            holder = (
                f"PostgreSQL session {row[0]} from {row[1] or 'a local socket'}"
                if row is not None
                else "another session"
            )
            raise DatabaseInUse(
                f"database {make_url(url).render_as_string(hide_password=True)} is in use"
                f" by another Dirigent server ({holder})"
            )
        connection.commit()  # the lock is the session's, not the transaction's
    except BaseException:
        connection.close()
        engine.dispose()
        raise
    return DatabaseHold(engine=engine, connection=connection)
