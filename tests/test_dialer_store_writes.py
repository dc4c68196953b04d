"""The attempt outcome path never leaves a record ``dialing`` (issue 15,
finding 3): a list import holding SQLite's write lock made one call's
end-of-call update fail, its traceback dropped, the attempt without its
outcome and its record ``dialing`` for ever.

Here another connection holds an exclusive lock on the database (as an
import's transaction does) while a call ends: the outcome is written by
the dialer's writer thread once the lock goes, the refused tries are
counted, and a write refused for longer than every retry is logged with
its traceback (text and JSON) and counted, kept, and written when the
database takes writes again."""

from __future__ import annotations

import datetime as dt
import io
import json
import sqlite3
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import select
from twisted.logger import globalLogPublisher

from dialer.campaign import Lead
from dialer.compliance import Campaign, Compliance, policy_for
from dialer.runner import Attempt
from dirigent.logs import JsonLinesObserver
from store import db
from store.consent import DbConsent, DbDnc
from store.dialer import DbAttemptLog, DbLeadSource, DialerWriter, WriteMetrics
from store.lists_import import import_list
from tests.conftest import LOOP, run

MONDAY_10 = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC).timestamp()  # London, GMT
CALLER_ID = "+442079460999"


@pytest.fixture
def world(tmp_path: Any) -> Iterator[dict[str, Any]]:
    """Campaign "uk" with six records on SQLite; each try waits 0.2 s for a lock."""
    path = tmp_path / "store.db"
    db.upgrade(f"sqlite:///{path}")
    engine = db.make_engine(f"sqlite:///{path}?timeout=0.2")
    listing = tmp_path / "uk.csv"
    listing.write_text(
        "phone,name\n" + "".join(f"+44 20 7946 0{100 + i:03d},Person {i}\n" for i in range(6))
    )
    import_list(engine, listing, "uk", create=True)
    registry = CollectorRegistry()
    yield {"engine": engine, "path": path, "registry": registry}
    engine.dispose()


def writer_for(world: dict[str, Any], delays: tuple[float, ...]) -> DialerWriter:
    return DialerWriter(metrics=WriteMetrics(world["registry"]), delays=delays)


def wait(d: Any, timeout: float = 30.0) -> Any:
    return run(d.asFuture(LOOP), timeout)


class ExclusiveLock:
    """Another connection's exclusive transaction, held until :meth:`release`
    (or for ``seconds`` on a timer), as a list import's batch holds it."""

    def __init__(self, path: Any) -> None:
        self.conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.conn.execute("BEGIN EXCLUSIVE")
        self._released = threading.Event()

    def release_after(self, seconds: float) -> None:
        threading.Timer(seconds, self.release).start()

    def release(self) -> None:
        if not self._released.is_set():
            self._released.set()
            self.conn.execute("ROLLBACK")
            self.conn.close()


def dialed(world: dict[str, Any], writer: DialerWriter) -> tuple[Any, Any, Attempt]:
    """One record claimed through the writer and dialed: its row written, the
    record ``dialing``."""
    engine = world["engine"]
    campaign = Campaign("uk", policy_for("GB"), CALLER_ID)
    source = DbLeadSource(
        engine, campaign, Compliance(DbDnc(engine), DbConsent(engine)), writer=writer
    )
    attempts = DbAttemptLog(engine, "uk", writer)
    wait(source.fill(MONDAY_10, 1))
    (lead,) = source.take(1, MONDAY_10)
    assert isinstance(lead, Lead)
    attempt = Attempt("uk-1", "uk", lead, MONDAY_10, channel_id="dial-uk-1", pbx="sim")
    wait(attempts.begin(attempt))  # committed before the Originate would go
    assert record_status(engine, lead.record_id) == "dialing"
    return source, attempts, attempt


def end_of_call(source: Any, attempts: Any, attempt: Attempt) -> None:
    """What the runner does when the person hangs up after the conversation."""
    attempt.answered, attempt.connected, attempt.agent = MONDAY_10 + 5, MONDAY_10 + 6, "1001"
    attempt.verdict = "human"
    attempt.outcome, attempt.ended = "answered", MONDAY_10 + 60
    attempts.end(attempt)
    source.done(attempt.lead, "answered", MONDAY_10 + 60)


def record_status(engine: Any, record_id: Any) -> str:
    with engine.connect() as conn:
        return conn.execute(select(db.record.c.status).where(db.record.c.id == record_id)).scalar()


def attempt_outcome(engine: Any, ref: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(select(db.attempt.c.outcome).where(db.attempt.c.ref == ref)).scalar()


def sample(world: dict[str, Any], name: str, **labels: str) -> float:
    return world["registry"].get_sample_value(name, labels) or 0.0


def test_an_outcome_refused_by_a_held_lock_lands_when_the_lock_goes(world):
    writer = writer_for(world, delays=(0.25, 0.5, 1.0, 2.0))
    source, attempts, attempt = dialed(world, writer)
    lock = ExclusiveLock(world["path"])
    lock.release_after(1.0)  # longer than one try (0.2 s wait + 0.25 s pause)
    try:
        end_of_call(source, attempts, attempt)
        wait(writer.flush())
    finally:
        lock.release()
        writer.close()
    engine = world["engine"]
    assert attempt_outcome(engine, attempt.id) == "answered"
    assert record_status(engine, attempt.lead.record_id) == "completed", "not left dialing"
    assert sample(world, "dirigent_attempt_write_retries_total", kind="end") >= 1
    assert sample(world, "dirigent_attempt_write_failures_total", kind="end") == 0


def test_a_write_refused_past_every_retry_is_logged_counted_kept_and_written_later(world):
    lines = io.StringIO()
    observer = JsonLinesObserver(lines)
    globalLogPublisher.addObserver(observer)
    writer = writer_for(world, delays=(0.05, 0.05))
    try:
        source, attempts, attempt = dialed(world, writer)
        lock = ExclusiveLock(world["path"])
        try:
            end_of_call(source, attempts, attempt)
            wait(writer.flush())
            engine = world["engine"]
            assert sample(world, "dirigent_attempt_write_failures_total", kind="end") == 1
            assert sample(world, "dirigent_attempt_write_retries_total", kind="end") == 2
            assert sample(world, "dirigent_attempt_writes_pending") == 2, "end and outcome kept"
        finally:
            lock.release()
        # the next sweep (every 30 s in the server) writes what was kept, in order
        wait(writer.sweep())
    finally:
        writer.close()
        globalLogPublisher.removeObserver(observer)
    assert attempt_outcome(engine, attempt.id) == "answered"
    assert record_status(engine, attempt.lead.record_id) == "completed", "not left dialing"
    assert sample(world, "dirigent_attempt_writes_pending") == 0
    records = [json.loads(line) for line in lines.getvalue().splitlines()]
    failed = [r for r in records if "failed after 3 tries" in r["message"]]
    assert failed and failed[0]["level"] == "error" and "uk-1" in failed[0]["message"]
    assert "database is locked" in failed[0]["traceback"], "the traceback is on the JSON path"


def test_writes_the_database_still_refuses_at_a_stop_are_each_logged_and_counted(world):
    """QA4 finding 1b: a stop during a database outage threw the kept writes
    (an attempt's end, its outcome, the ledger) away without a word; the
    next start closed that attempt ``unknown`` and an abandon among them
    was missing from the ledger.  Now each is an error line naming it and
    counted; and the stop tries each write once, not through every retry."""
    lines = io.StringIO()
    observer = JsonLinesObserver(lines)
    globalLogPublisher.addObserver(observer)
    writer = writer_for(world, delays=(0.05, 0.05))
    try:
        source, attempts, attempt = dialed(world, writer)
        lock = ExclusiveLock(world["path"])
        try:
            end_of_call(source, attempts, attempt)
            wait(writer.flush())
            assert sample(world, "dirigent_attempt_writes_pending") == 2, "end and outcome kept"
            retries = sample(world, "dirigent_attempt_write_retries_total", kind="end")
            writer.close()  # the server stops, the database still away
        finally:
            lock.release()
    finally:
        globalLogPublisher.removeObserver(observer)
    assert sample(world, "dirigent_attempt_writes_lost_total", kind="end") == 1
    assert sample(world, "dirigent_attempt_writes_lost_total", kind="outcome") == 1
    assert sample(world, "dirigent_attempt_write_retries_total", kind="end") == retries
    records = [json.loads(line) for line in lines.getvalue().splitlines()]
    lost = [r for r in records if "lost at shutdown" in r["message"]]
    assert len(lost) == 2 and all(r["level"] == "error" for r in lost)
    assert "uk-1" in lost[0]["message"]


def test_a_call_whose_row_cannot_be_written_is_not_dialed(world):
    """The attempt row first: with the database refusing writes past every
    retry, ``begin`` fails, and the runner never sends the Originate."""
    writer = writer_for(world, delays=(0.05,))
    engine = world["engine"]
    campaign = Campaign("uk", policy_for("GB"), CALLER_ID)
    source = DbLeadSource(
        engine, campaign, Compliance(DbDnc(engine), DbConsent(engine)), writer=writer
    )
    wait(source.fill(MONDAY_10, 1))
    (lead,) = source.take(1, MONDAY_10)
    lock = ExclusiveLock(world["path"])
    try:
        d = DbAttemptLog(engine, "uk", writer).begin(
            Attempt("uk-2", "uk", lead, MONDAY_10, channel_id="dial-uk-2")
        )
        failure = run(_failure_of(d))
    finally:
        lock.release()
        writer.close()
    assert "database is locked" in str(failure.value)
    assert sample(world, "dirigent_attempt_write_failures_total", kind="begin") == 1


async def _failure_of(d: Any) -> Any:
    out: list[Any] = []
    d.addErrback(out.append)
    await d.asFuture(LOOP)
    return out[0]
