"""One server per database (store.instance): a second hold on a database
another server holds is refused naming the holder, on SQLite and on
PostgreSQL, and the database is free again once the first lets go (or its
process ends: the kernel's flock, PostgreSQL's session lock)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy.engine import make_url

from store.instance import DatabaseInUse, hold_database


def test_sqlite_is_held_once_and_says_by_whom(tmp_path):
    url = f"sqlite:///{tmp_path / 'd.db'}"
    first = hold_database(url)
    with pytest.raises(DatabaseInUse) as refused:
        hold_database(url)
    assert f"database {tmp_path / 'd.db'} is in use" in str(refused.value)
    assert f"pid {os.getpid()}" in str(refused.value)
    first.release()
    hold_database(url).release()  # free again


def test_a_killed_holder_leaves_the_sqlite_database_free(tmp_path):
    """A kill -9 leaves its lock file behind, not its lock."""
    url = f"sqlite:///{tmp_path / 'd.db'}"
    code = (
        "import os; from store.instance import hold_database;"
        f" hold_database({url!r}); os.kill(os.getpid(), 9)"
    )
    died = subprocess.run([sys.executable, "-c", code], check=False)
    assert died.returncode == -9
    assert (tmp_path / "d.db.lock").exists()
    hold_database(url).release()


def test_an_in_memory_database_is_nobody_elses():
    hold_database("sqlite://").release()
    hold_database("sqlite:///:memory:").release()


def test_postgresql_is_held_once_by_an_advisory_lock(postgres_url):
    first = hold_database(postgres_url)
    try:
        with pytest.raises(DatabaseInUse) as refused:
            hold_database(postgres_url)
        said = str(refused.value)
        assert "is in use by another Dirigent server (PostgreSQL session" in said, said
        password = make_url(postgres_url).password
        assert not password or str(password) not in said
    finally:
        first.release()
    hold_database(postgres_url).release()
