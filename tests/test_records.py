"""Reporting records on SQLite and PostgreSQL: agent state changes and
interactions are written, in order, and time in state read back from the
database equals what the agent state machine measured."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select
from twisted.internet import task

from channels.voice import AgentEndpoint
from routing.agent import Agent
from routing.model import QueueConfig
from routing.router import Router
from sim.inprocess import SimTelephony
from sim.pbx import SimPbx
from store import db
from store.records import Recorder, time_in_state
from tests.acd import InboundAcd


def test_migrations_produce_exactly_the_tables_the_code_defines(database_url):
    db.upgrade(database_url)
    engine = db.make_engine(database_url)
    try:
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), db.metadata) == []
    finally:
        engine.dispose()


def test_calls_and_agent_states_are_recorded_for_reporting(database_url):
    db.upgrade(database_url)
    engine = db.make_engine(database_url)
    clock = task.Clock()
    clock.advance(1_800_000_000)  # a realistic epoch, so timestamps are dates in 2027
    pbx = SimPbx(clock, seed=5, agents=2, inbound_talk=40, inbound_patience_mean=30)
    phone = SimTelephony(pbx)
    router = Router({"sales": QueueConfig("sales")})
    router.add_agent(Agent("anna"))
    acd = InboundAcd(phone, router, clock, {"anna": AgentEndpoint("anna", "1001")}, wrap_up=5)
    recorder = Recorder(engine, acd.bus)
    try:
        start = clock.seconds()
        acd.start()
        acd.login("anna", ["sales"])
        answered = pbx.inbound_call(queue="sales")
        for _ in range(20):
            clock.advance(0.1)
        left = pbx.inbound_call(queue="sales")  # anna is busy: this caller waits, then leaves
        for _ in range(100):
            clock.advance(0.1)
        pbx.hangup_channel(left, 16)
        for _ in range(1200):
            clock.advance(0.1)
        acd.pause("anna", "lunch")
        end = clock.seconds() + 50
        recorder.flush()
        with engine.connect() as conn:
            rows = {r.uniqueid: r for r in conn.execute(select(db.interaction)).all()}
        assert (
            rows[answered.uniqueid].outcome == "answered"
            and rows[answered.uniqueid].agent_code == "anna"
        )
        assert (
            rows[answered.uniqueid].answered_at is not None
            and rows[answered.uniqueid].ended_at is not None
        )
        assert (
            rows[left.uniqueid].outcome == "abandoned" and rows[left.uniqueid].answered_at is None
        )
        history = [h["event"] for h in rows[answered.uniqueid].attributes["history"]]
        assert history[:2] == ["queued", "answered"]
        from_db = time_in_state(engine, "anna", start, end)
        in_memory = {
            s.value: v for s, v in router.agents["anna"].time_in_state(start, end).items() if v
        }
        assert from_db.keys() == in_memory.keys()
        for state, seconds in in_memory.items():
            assert abs(from_db[state] - seconds) < 0.01, state
    finally:
        acd.stop()
        recorder.close()
        engine.dispose()
