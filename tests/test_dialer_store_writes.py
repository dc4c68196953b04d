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
from sqlalchemy import select, update
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


@pytest.mark.parametrize("code", ["callback", "do-not-call"])
def test_an_agents_result_given_between_the_calls_two_writes_is_not_undone(world, code):
    """The end of a call is two writes in the dialer's thread: the attempt's
    outcome, then its record's next step.  The agent's result (from the
    API's thread) may land between them: it sees the call ended and
    schedules the promised call-back (or closes the record, do not call),
    and the record's step for "answered" then overwrote it: the call-back
    was lost, the record completed (found in review).  The agent's word
    stands; the attempt is still counted."""
    from dialer.retry import RetryRules
    from store.pool import apply_disposition

    engine = world["engine"]
    writer = writer_for(world, delays=(0.05,))
    try:
        source, attempts, attempt = dialed(world, writer)
        attempt.answered, attempt.connected, attempt.agent = MONDAY_10 + 5, MONDAY_10 + 6, "1001"
        attempt.verdict, attempt.outcome, attempt.ended = "human", "answered", MONDAY_10 + 60
        wait(attempts.end(attempt))
        ended = dt.datetime.fromtimestamp(MONDAY_10 + 70, dt.UTC)
        promised = ended + dt.timedelta(days=1)
        apply_disposition(
            engine,
            attempt.id,
            code,
            ended,
            lambda _campaign: RetryRules(),
            callback_at=promised if code == "callback" else None,
        )
        source.done(attempt.lead, "answered", MONDAY_10 + 60)
        wait(writer.flush())
    finally:
        writer.close()
    r = db.record
    with engine.connect() as conn:
        rec = conn.execute(select(r).where(r.c.id == attempt.lead.record_id)).one()
    assert rec.attempts == 1, "the call is counted once"
    if code == "callback":
        assert (rec.status, rec.last_outcome) == ("scheduled", "callback")
        assert rec.callback_at.replace(tzinfo=dt.UTC) == promised
        assert rec.next_due_at.replace(tzinfo=dt.UTC) == promised
    else:
        assert (rec.status, rec.closed_reason) == ("closed", "do not call")
    with engine.connect() as conn:
        claimed = conn.execute(select(db.hopper).where(db.hopper.c.record_id == rec.id)).all()
    assert claimed == [], "out of the hopper"


def test_a_do_not_call_given_while_the_call_is_up_leaves_no_record_dialing(world):
    """The agent's do-not-call while the person is still on the line blocks
    the number at once; the record's step waits for the end of the call
    (it must not be taken for a result already applied and left
    ``dialing``)."""
    from dialer.retry import RetryRules
    from store.pool import apply_disposition

    engine = world["engine"]
    writer = writer_for(world, delays=(0.05,))
    try:
        source, attempts, attempt = dialed(world, writer)
        now = dt.datetime.fromtimestamp(MONDAY_10 + 30, dt.UTC)
        apply_disposition(engine, attempt.id, "do-not-call", now, lambda _c: RetryRules())
        end_of_call(source, attempts, attempt)
        wait(writer.flush())
    finally:
        writer.close()
    assert record_status(engine, attempt.lead.record_id) == "completed"


@pytest.mark.parametrize("earlier", ["callback", "machine"])
def test_an_earlier_calls_result_is_not_taken_for_this_ones(world, earlier):
    """The record's next call may leave no attempt row of its own (its row
    refused past every retry: the call is not made and ends "failed").
    The agent's result of the call before (a call-back kept, a machine)
    was taken for this call's: the failed try kept the stale call-back as
    its due time, or counted as a machine (found in review).  Only a
    result given on an attempt of this claim stands."""
    from dialer.retry import RetryRules
    from store.pool import apply_disposition, machine_after_answer

    engine = world["engine"]
    writer = writer_for(world, delays=(0.05,))
    try:
        source, attempts, attempt = dialed(world, writer)
        end_of_call(source, attempts, attempt)
        wait(writer.flush())
        after = dt.datetime.fromtimestamp(MONDAY_10 + 70, dt.UTC)
        promised = after + dt.timedelta(days=1)
        apply_disposition(
            engine,
            attempt.id,
            earlier,
            after,
            lambda _campaign: RetryRules(),
            callback_at=promised if earlier == "callback" else None,
        )
        if earlier == "machine":  # what the campaign does once told (on_machine)
            machine_after_answer(engine, attempt.id, after, RetryRules(), policy_for("GB"))
        # the next call, at the promised time: claimed, its attempt row never
        # written (the list's other records are out of the way)
        source.release_buffer()
        wait(writer.flush())
        with engine.begin() as conn:
            conn.execute(
                update(db.record)
                .where(db.record.c.id != attempt.lead.record_id)
                .values(status="closed")
            )
        when = promised.timestamp() + 60
        (lead,) = source.claim_now(1, when)
        assert lead.record_id == attempt.lead.record_id
        source.done(lead, "failed", when + 1)
        wait(writer.flush())
    finally:
        writer.close()
    r = db.record
    with engine.connect() as conn:
        rec = conn.execute(select(r).where(r.c.id == lead.record_id)).one()
    assert (rec.last_outcome, rec.attempts) == ("failed", 2), "this call's step, counted"
    assert rec.callback_at is None, "the kept call-back was made (or tried)"
