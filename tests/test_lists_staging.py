"""A list import beside a running server: the server's writes go on between
the import's batches, nothing of a list is dialed before it is whole, and an
import cut short (an error, Ctrl-C, kill -9) leaves the old list dialing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, insert, select

from dialer.compliance import Campaign, Compliance, policy_for
from store import db
from store.consent import DbConsent, DbDnc
from store.lists_import import BATCH, import_list
from store.pool import claim, set_list_active
from tests.test_pool import NOW

CAMPAIGN = Campaign("us-spring", policy_for("US"), "+12125550199")


def write_list(path: Path, first: int, count: int) -> Path:
    """``count`` New York numbers from ``+1 212 555 <first>`` on (in range 0100-9999)."""
    rows = "".join(f"+1 212 {first + i:07d},P{i},Person\n" for i in range(count))
    path.write_text("phone,first_name,last_name\n" + rows)
    return path


def dialable(engine) -> set[str]:
    """What the hopper would take now (then put back: the claim is rolled into a set)."""
    gate = Compliance(DbDnc(engine), DbConsent(engine))
    taken = claim(engine, CAMPAIGN, gate, NOW, limit=100_000)
    with engine.begin() as conn:
        conn.execute(db.hopper.delete())
    return {c.e164 for c in taken}


def count(engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


@pytest.fixture
def engine(database_url, tmp_path):
    db.upgrade(database_url)
    engine = db.make_engine(database_url)
    import_list(engine, write_list(tmp_path / "old.csv", 5550100, 3), "us-spring", create=True)
    yield engine
    engine.dispose()


def test_the_servers_writes_go_on_between_batches_and_the_new_list_waits(tmp_path):
    url = f"sqlite:///{tmp_path / 'live.db'}"
    db.upgrade(url)
    engine = db.make_engine(url)
    import_list(engine, write_list(tmp_path / "old.csv", 5550100, 3), "us-spring", create=True)
    # the running server: its own connection, giving up on a lock after 0.5 s
    server = create_engine(url, connect_args={"timeout": 0.5})
    seen: list[set[str]] = []

    def meanwhile(rows: int, _fraction: float) -> None:
        with server.begin() as conn:  # an outcome, a report row: must not wait for the import
            conn.execute(insert(db.dnc).values(e164=f"+1202555{rows % 10000:04d}", source="t"))
        seen.append(dialable(server))

    try:
        big = write_list(tmp_path / "big.csv", 5560000, 4 * BATCH + 10)
        report = import_list(engine, big, "us-spring", progress=meanwhile)
        assert report.imported == 4 * BATCH + 10
        assert len(seen) == 4, "the server wrote after every batch"
        old = {f"+1212{5550100 + i:07d}" for i in range(3)}
        assert all(s == old for s in seen), "only the old list was dialable during the import"
        assert len(dialable(engine)) == 3 + 4 * BATCH + 10
    finally:
        server.dispose()
        engine.dispose()


class Interrupted(BaseException):
    """What Ctrl-C raises: not an Exception."""


def test_ctrl_c_midway_takes_back_the_new_list_and_its_contacts(engine, tmp_path):
    before = (count(engine, db.contact), count(engine, db.record), count(engine, db.dial_list))

    def stop_after_two(rows: int, _fraction: float) -> None:
        if rows >= 2 * BATCH:
            raise Interrupted

    with pytest.raises(Interrupted):
        import_list(
            engine,
            write_list(tmp_path / "new.csv", 5560000, 3 * BATCH),
            "us-spring",
            progress=stop_after_two,
        )
    after = (count(engine, db.contact), count(engine, db.record), count(engine, db.dial_list))
    assert after == before, "the unfinished import left rows behind"
    assert len(dialable(engine)) == 3


def test_a_failed_reimport_into_a_live_list_keeps_the_old_records_dialing(engine, tmp_path):
    path = write_list(tmp_path / "old.csv", 5550100, 3 + 2 * BATCH)  # the same list, grown

    def stop(rows: int, _fraction: float) -> None:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        import_list(engine, path, "us-spring", progress=stop)
    assert count(engine, db.record) == 3
    assert len(dialable(engine)) == 3
    with engine.connect() as conn:
        state = conn.execute(select(db.dial_list.c.active, db.dial_list.c.import_state)).one()
    assert tuple(state) == (True, None)
    # and the same import, run again, goes through and only then dials the new rows
    report = import_list(engine, path, "us-spring")
    assert report.imported == 2 * BATCH and report.updated == 3
    assert len(dialable(engine)) == 3 + 2 * BATCH


KILLED = """
import os, signal, sys
from store import db
from store.lists_import import import_list
engine = db.make_engine(sys.argv[1])
def die(rows, fraction):
    if rows >= 2000:
        os.kill(os.getpid(), signal.SIGKILL)
import_list(engine, sys.argv[2], "us-spring", progress=die)
"""


def test_kill_9_midway_leaves_the_list_undialed_and_running_again_resumes(
    engine, database_url, tmp_path
):
    path = write_list(tmp_path / "new.csv", 5560000, 3 * BATCH)
    killed = subprocess.run(
        [sys.executable, "-c", KILLED, database_url, str(path)], capture_output=True, timeout=120
    )
    assert killed.returncode == -9, killed.stderr
    with engine.connect() as conn:
        state = conn.execute(
            select(db.dial_list.c.active, db.dial_list.c.import_state).where(
                db.dial_list.c.name == "new.csv"
            )
        ).one()
    assert tuple(state) == (False, "new")
    assert count(engine, db.record) == 3 + 2 * BATCH, "two batches were written"
    assert len(dialable(engine)) == 3, "nothing of the unfinished list is dialed"
    with pytest.raises(LookupError, match="still being imported"):
        set_list_active(engine, "us-spring", "new.csv", True)
    report = import_list(engine, path, "us-spring")
    # the two batches the killed run wrote are this import's rows, not updates
    # (QA4: they were reported "updated", as if the list had been there)
    assert report.resumed and (report.imported, report.updated) == (3 * BATCH, 0)
    assert len(dialable(engine)) == 3 + 3 * BATCH


def test_a_resumed_reimport_of_a_live_list_counts_its_staged_rows_imported(
    engine, database_url, tmp_path
):
    """A live list's re-import killed after two batches: its first batch
    (the list's own rows) was updated, its second (new rows) staged.  The
    resumed run reports what the whole import did: the old rows updated,
    the new ones imported -- the staged ones too, not "updated"."""
    path = write_list(tmp_path / "live.csv", 5560000, BATCH)
    import_list(engine, path, "us-spring")
    write_list(path, 5560000, 3 * BATCH)  # the same rows first, then 2 batches of new ones
    killed = subprocess.run(
        [sys.executable, "-c", KILLED, database_url, str(path)], capture_output=True, timeout=120
    )
    assert killed.returncode == -9, killed.stderr
    assert len(dialable(engine)) == 3 + BATCH, "the live list dials as it was"
    report = import_list(engine, path, "us-spring")
    assert report.resumed and (report.imported, report.updated) == (2 * BATCH, BATCH)
    assert len(dialable(engine)) == 3 + 3 * BATCH


def test_lists_discard_drops_a_killed_import(engine, database_url, tmp_path):
    path = write_list(tmp_path / "new.csv", 5560000, 3 * BATCH)
    subprocess.run(
        [sys.executable, "-c", KILLED, database_url, str(path)], capture_output=True, timeout=120
    )
    cli = [sys.executable, "-m", "dirigent.cli", "lists", "discard", "new.csv"]
    done = subprocess.run(
        [*cli, "--campaign", "us-spring", "--db", database_url], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert count(engine, db.record) == 3 and count(engine, db.dial_list) == 1
    again = subprocess.run(
        [*cli, "--campaign", "us-spring", "--db", database_url], capture_output=True, text=True
    )
    assert again.returncode == 2 and "no list 'new.csv'" in again.stderr


def test_a_database_connection_lost_midway_is_one_line_and_the_same_command_resumes(
    engine, database_url, tmp_path
):
    """QA4 finding 5: a PostgreSQL restart during ``lists import`` printed 207
    lines of chained tracebacks and nothing of what to do.  Now one line
    says the database went away, that the list is not dialed, and how to
    resume or discard; the same command resumes it.  The server ends the
    import's connection (``pg_terminate_backend``, as a restart does) until
    the import stops."""
    if not database_url.startswith("postgresql"):
        pytest.skip("a database server's connection (SQLite has none to lose)")
    import threading

    from sqlalchemy import text

    path = write_list(tmp_path / "big.csv", 5560000, 6 * BATCH)
    cli = [sys.executable, "-m", "dirigent.cli", "lists", "import", str(path)]
    args = [*cli, "--campaign", "us-spring", "--db", database_url]
    importing = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    done = threading.Event()

    def cut() -> None:
        with admin.connect() as conn:
            while not done.is_set() and importing.poll() is None:
                if count(engine, db.record) > 3:  # it has begun writing
                    conn.execute(
                        text(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                            " AND backend_type = 'client backend' AND state <> 'idle'"
                        )
                    )
                done.wait(0.02)

    cutter = threading.Thread(target=cut)
    cutter.start()
    try:
        out, err = importing.communicate(timeout=120)
    finally:
        done.set()
        cutter.join()
        admin.dispose()
    engine.dispose()  # its connections were cut too
    assert importing.returncode == 1, (out, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 3, err
    assert "the database went away" in err and "run the same command again" in err, err
    assert len(dialable(engine)) == 3, "nothing of the unfinished list is dialed"
    again = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert len(dialable(engine)) == 3 + 6 * BATCH
