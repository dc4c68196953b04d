"""Report rows are not lost: a locked database is waited out, a row that
still cannot be written is logged with its traceback and counted, what the
API lets in fits the columns, and a crash's open rows are closed at start."""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading

from prometheus_client import CollectorRegistry
from sqlalchemy import create_engine, insert, select
from twisted.logger import globalLogPublisher

from core.bus import EventBus
from core.events import AgentState, AgentStateChanged
from store import db
from store.records import Recorder, close_unfinished
from tests.test_api import app, call, token

__all__ = ["app"]
T0 = 1_780_000_000.0


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
