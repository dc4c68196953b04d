"""Report rows are not lost: a locked database is waited out, a row that
still cannot be written is logged with its traceback and counted, what the
API lets in fits the columns, and a crash's open rows are closed at start."""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
import time
from typing import Any

from prometheus_client import CollectorRegistry
from sqlalchemy import create_engine, insert, select
from twisted.logger import formatEvent, globalLogPublisher

from core.bus import EventBus
from core.events import AgentState, AgentStateChanged, Channel, InteractionChanged, Stage
from store import db
from store.records import Recorder, close_unfinished
from tests.test_api import app, call, token

__all__ = ["app"]
T0 = 1_780_000_000.0


def held_lock(path: Any) -> sqlite3.Connection:
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # a list import's batch, a database away
    return holder


def test_rows_wait_in_order_for_a_database_away_longer_than_every_retry(tmp_path):
    """QA4 finding 1: a PostgreSQL outage of more than 8 s dropped a report
    row for good each time the retries ran out (an interaction's end, an
    audit row).  Now a row waits as long as the failure may pass, and the
    rows behind it keep their order."""
    url = f"sqlite:///{tmp_path / 'r.db'}"
    db.upgrade(url)
    impatient = create_engine(url, connect_args={"timeout": 0.02})
    bus = EventBus()
    registry = CollectorRegistry()
    recorder = Recorder(impatient, bus, registry=registry, retry_delays=(0.05, 0.1))
    holder = held_lock(tmp_path / "r.db")
    release = threading.Timer(1.5, lambda: holder.execute("COMMIT"))  # ten times the retries
    release.start()
    try:
        bus.publish(AgentStateChanged(T0, "anna", AgentState.READY, None))
        bus.publish(AgentStateChanged(T0 + 1, "anna", AgentState.PAUSED, "break"))
        recorder.flush(timeout=10)
    finally:
        release.join()
        holder.close()
        recorder.close()
    with impatient.connect() as conn:
        states = conn.execute(select(db.agent_state_log.c.state).order_by(db.agent_state_log.c.id))
        assert states.scalars().all() == ["ready", "paused"]
    impatient.dispose()
    assert registry.get_sample_value("dirigent_report_write_failures_total", {"kind": "agent"}) in (
        None,
        0.0,
    )


def test_a_stop_while_the_database_is_away_gives_the_rows_up_at_once_and_says_so(tmp_path):
    """QA4 finding 1b: a SIGTERM during a database outage took 74 s (every
    queued row through all its retries) and could run into systemd's kill.
    A stop ends the waiting: each row left gets one more try, and is
    logged with its traceback and counted."""
    url = f"sqlite:///{tmp_path / 'r.db'}"
    db.upgrade(url)
    impatient = create_engine(url, connect_args={"timeout": 0.02})
    bus = EventBus()
    registry = CollectorRegistry()
    stopped = threading.Event()
    naps_after_stop: list[float] = []

    def nap(seconds: float) -> None:  # the retries' waits, shortened
        if stopped.is_set():
            naps_after_stop.append(seconds)
        time.sleep(0.05)

    recorder = Recorder(impatient, bus, registry=registry, retry_delays=(5.0,), sleep=nap)
    holder = held_lock(tmp_path / "r.db")
    seen: list[dict] = []
    globalLogPublisher.addObserver(seen.append)
    try:
        for n in range(3):
            bus.publish(AgentStateChanged(T0 + n, "anna", AgentState.READY, None))
        threading.Event().wait(0.3)  # the first row waits in its retries
        stopped.set()
        recorder.close()
    finally:
        globalLogPublisher.removeObserver(seen.append)
        holder.close()
        impatient.dispose()
    assert naps_after_stop == [], "the stop waited for the database"
    lost = registry.get_sample_value("dirigent_report_write_failures_total", {"kind": "agent"})
    assert lost == 3.0
    said = [e for e in seen if "could not record" in e.get("log_format", "")]
    assert len(said) == 3 and all("at shutdown" in formatEvent(e) for e in said)


def test_a_write_waits_out_a_held_lock_instead_of_dropping_the_row(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    db.upgrade(url)
    impatient = create_engine(url, connect_args={"timeout": 0.05})  # gives up on a lock at once
    bus = EventBus()
    recorder = Recorder(impatient, bus, retry_delays=(0.2, 0.4, 0.8, 1.6))
    holder = sqlite3.connect(tmp_path / "r.db", isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # a list import's batch, say
    release = threading.Timer(0.5, lambda: holder.execute("COMMIT"))
    release.start()
    try:
        bus.publish(AgentStateChanged(T0, "anna", AgentState.READY, None))
        recorder.flush(timeout=10)
    finally:
        release.join()
        holder.close()
        recorder.close()
    with impatient.connect() as conn:
        states = conn.execute(select(db.agent_state_log.c.state)).scalars().all()
    impatient.dispose()
    assert states == ["ready"]
    assert recorder.failures.labels("agent")._value.get() == 0


def test_a_row_that_cannot_be_written_is_logged_with_its_traceback_and_counted(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    db.upgrade(url)
    engine = db.make_engine(url)
    registry = CollectorRegistry()
    bus = EventBus()
    recorder = Recorder(engine, bus, registry=registry, retry_delays=(0.01,))
    seen: list[dict] = []
    globalLogPublisher.addObserver(seen.append)
    try:
        # a lone surrogate is no character: SQLite cannot store it
        bus.publish(AgentStateChanged(T0, "anna", AgentState.PAUSED, "\ud800"))
        recorder.flush(timeout=10)
    finally:
        globalLogPublisher.removeObserver(seen.append)
        recorder.close()
        engine.dispose()
    value = registry.get_sample_value("dirigent_report_write_failures_total", {"kind": "agent"})
    assert value == 1.0
    [failed] = [e for e in seen if "could not record" in e.get("log_format", "")]
    assert "Traceback" in failed["log_failure"].getTraceback()


def test_the_failure_line_names_the_row_of_every_kind(tmp_path):
    """QA12 finding 12: an audit row that failed was logged as ``could not
    record audit None``.  Each kind of row is named by what identifies it."""
    engine = db.make_engine(f"sqlite:///{tmp_path / 'empty.db'}")  # no tables: every write fails
    recorder = Recorder(engine, EventBus(), retry_delays=(0.01,))
    seen: list[dict] = []
    globalLogPublisher.addObserver(seen.append)
    try:
        recorder.on_agent_state(AgentStateChanged(T0, "anna", AgentState.PAUSED, "coffee"))
        recorder.on_interaction(
            InteractionChanged(T0, Stage.QUEUED, "call-7", Channel.VOICE, "sales")
        )
        recorder.audit(
            {"actor": "boss", "role": "supervisor", "action": "PATCH /api/campaigns/spring",
             "target": "campaign spring", "status": 200, "at": dt.datetime.now(dt.UTC)}
        )  # fmt: skip
        recorder.token_issued("ab12cd34" * 8, "carla", T0, T0 + 3600)
        recorder.tokens_ended(["ef56" * 16])
        recorder.flush(timeout=10)
    finally:
        globalLogPublisher.removeObserver(seen.append)
        recorder.close()
        engine.dispose()
    said = [formatEvent(e) for e in seen if "could not record" in e.get("log_format", "")]
    assert said == [
        "could not record agent state paused of agent anna",
        "could not record interaction call-7 (queued, queue sales)",
        "could not record audit PATCH /api/campaigns/spring by boss -> 200",
        "could not record token of carla (SHA-256 ab12cd34...)",
        "could not record token-end of 1 token (SHA-256 ef56ef56...)",
    ]
    assert "None" not in " ".join(said)


def test_what_a_crash_left_open_is_closed_at_the_last_known_time(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    db.upgrade(url)
    engine = db.make_engine(url)
    at = dt.datetime.fromtimestamp(T0, dt.UTC)
    answered = at + dt.timedelta(seconds=12)
    with engine.begin() as conn:
        conn.execute(
            insert(db.interaction).values(
                channel="voice", direction="inbound", uniqueid="call-1", arrived_at=at,
                answered_at=answered, queue_name="sales", attributes={},
            )
        )  # fmt: skip
        conn.execute(
            insert(db.agent_state_log).values(agent_code="anna", state="busy", at=answered)
        )
        conn.execute(insert(db.agent_state_log).values(agent_code="ben", state="logged_out", at=at))
    assert close_unfinished(engine) == (1, 1)
    assert close_unfinished(engine) == (0, 0), "closing twice closes nothing more"
    with engine.connect() as conn:
        row = conn.execute(select(db.interaction.c.ended_at, db.interaction.c.outcome)).one()
        last = conn.execute(
            select(db.agent_state_log.c.state, db.agent_state_log.c.reason)
            .where(db.agent_state_log.c.agent_code == "anna")
            .order_by(db.agent_state_log.c.id.desc())
        ).first()
    engine.dispose()
    assert row.outcome == "server-restart"
    assert row.ended_at.replace(tzinfo=dt.UTC) == answered
    assert tuple(last) == ("logged_out", "server restart")


def test_the_api_refuses_what_a_column_cannot_hold(app):
    boss = token(app, "boss")
    base = {"channel": "chat", "queue": "sales"}
    status, body = call(app, "POST", "interactions", {**base, "customer": "x" * 201}, boss)
    assert status == 400 and body["field"] == "customer" and "200" in body["error"]
    status, body = call(app, "POST", "interactions", {**base, "customer": "c\u0000"}, boss)
    assert status == 400 and body["field"] == "customer"
    raw = b'{"channel": "chat", "queue": "sales", "customer": "\\ud800"}'
    status, body = call(app, "POST", "interactions", token=boss, raw=raw)
    assert status == 400 and body["field"] == "body" and "surrogate" in body["error"]
