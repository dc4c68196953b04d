"""The dialer on the database: attempt rows, the hopper, the persisted ledger,
restarts (SQLite and PostgreSQL), against the in-process simulated PBX."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import func, select

from dialer.abandon import AbandonLedger
from dialer.campaign import CampaignSettings, validate
from dialer.compliance import Campaign, Compliance, policy_for
from dialer.pacing import make_strategy
from dialer.runner import Attempt, CampaignRunner
from routing.agent import Agent
from routing.model import QueueConfig
from routing.router import Router
from sim.clock import HeapClock
from sim.desk import RouterDesk
from sim.inprocess import SimTelephony
from sim.pbx import SimPbx
from store import db
from store.consent import DbConsent, DbDnc
from store.dialer import CHECKING, DbAttemptLog, DbLeadSource, DbLedgerStore
from store.lists_import import import_list
from tests.test_dialer_runner import workload

MONDAY_10 = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC).timestamp()  # London, GMT
HOUR = 3600.0
CALLER_ID = "+442079460999"


@pytest.fixture
def engine(database_url: str, tmp_path: Any) -> Any:
    db.upgrade(database_url)
    engine = db.make_engine(database_url)
    path = tmp_path / "uk.csv"
    path.write_text(
        "phone,name\n" + "".join(f"+44 20 7946 0{100 + i:03d},Person {i}\n" for i in range(6))
    )
    import_list(engine, path, "uk", create=True)
    yield engine
    engine.dispose()


class RowCheckingLog(DbAttemptLog):
    """Counts, at each ``begin``, the Originates the PBX had already seen and
    whether the row could be read back by another connection."""

    def __init__(self, engine: Any, campaign: str, pbx: SimPbx) -> None:
        super().__init__(engine, campaign)
        self.pbx = pbx
        self.seen: list[tuple[int, bool]] = []

    def begin(self, attempt: Attempt) -> None:
        before = self.pbx.stats.get("originate", 0)
        super().begin(attempt)
        with self.engine.connect() as conn:
            found = conn.execute(
                select(func.count()).where(db.attempt.c.ref == attempt.id)
            ).scalar()
        self.seen.append((before, found == 1))


def make_runner(
    engine: Any, wl: Any, *, agents: int = 2, strategy: str = "progressive", start: float = 0.0
) -> tuple[HeapClock, SimPbx, CampaignRunner, DbLeadSource, RowCheckingLog]:
    clock = HeapClock(MONDAY_10 + start)
    pbx = SimPbx(clock, seed=3, agents=agents, workload=wl)
    tel = SimTelephony(pbx)
    router = Router({"uk": QueueConfig("uk")})
    for i in range(agents):
        a = str(1001 + i)
        router.add_agent(Agent(a))
        tel.originate(f"PJSIP/{a}", context="dirigent-agent", exten=a, channel_id=f"agent-{a}")
    clock.run_until(clock.seconds() + 2.0)
    for i in range(agents):
        router.login(str(1001 + i), clock.seconds(), ["uk"])
    campaign = Campaign("uk", policy_for("GB"), CALLER_ID)
    source = DbLeadSource(engine, campaign, Compliance(DbDnc(engine), DbConsent(engine)))
    log = RowCheckingLog(engine, "uk", pbx)
    store = DbLedgerStore(engine, "uk")
    ledger = AbandonLedger(on_change=store.save)
    ledger.load(store.load())
    runner = CampaignRunner(
        validate(CampaignSettings("uk", caller_id=CALLER_ID, amd_false_positive=0.0)),
        tel,
        RouterDesk(router),
        clock,
        source,
        make_strategy(strategy),
        attempts=log,
        ledger=ledger,
    )
    return clock, pbx, runner, source, log


def records(engine: Any) -> dict[str, tuple[str, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(select(db.record.c.e164, db.record.c.status, db.record.c.last_outcome))
        return {r.e164: (r.status, r.last_outcome) for r in rows}


def attempts(engine: Any) -> list[Any]:
    with engine.connect() as conn:
        return conn.execute(select(db.attempt).order_by(db.attempt.c.id)).all()


def test_every_attempt_row_is_committed_before_its_originate_and_retry_rules_follow(engine):
    clock, _pbx, runner, _source, log = make_runner(engine, workload(busy=1.0))
    runner.start()
    clock.run_until(clock.seconds() + 60.0)
    # two nailed-up agent legs were the first Originates; every row was readable before its own
    assert log.seen == [(2 + i, True) for i in range(6)]
    rows = attempts(engine)
    assert [r.outcome for r in rows] == ["busy"] * 6
    assert all(r.ref and r.uniqueid == f"dial-{r.ref}" and r.ended_at for r in rows)
    assert set(records(engine).values()) == {("scheduled", "busy")}
    assert runner.status == "idle"
    assert runner.idle_reason == "nothing due now (6 due later today)"
    # the busy rule: 15 minutes later they are due again and dialed a second time
    clock.run_until(clock.seconds() + 16 * 60.0)
    assert len(attempts(engine)) == 12


def test_abandoned_numbers_are_locked_out_for_72_hours_and_the_ledger_survives_restart(engine):
    # ratio 3 with one agent: three people answer at once, two find no agent
    clock, _pbx, runner, source, _log = make_runner(
        engine, workload(live=1.0), agents=1, strategy="ratio:3"
    )
    runner.start()
    clock.run_until(clock.seconds() + 40.0)
    runner.stop()  # no new dials; the call in progress ends normally
    clock.run_until(clock.seconds() + 60.0)
    rows = [r for r in attempts(engine) if r.outcome is not None]
    abandoned = {r.e164 for r in rows if r.abandoned}
    assert len(abandoned) == 2 and all(r.outcome == "abandoned" for r in rows if r.abandoned)
    answered = [r for r in rows if r.outcome == "answered"]
    assert len(answered) == 1 and answered[0].agent_code == "1001"
    assert answered[0].talk_seconds == pytest.approx(60.0, abs=1.0)

    # a restart: a new ledger loaded from the database has the same day
    restored = AbandonLedger()
    restored.load(DbLedgerStore(engine, "uk").load())
    assert restored.counts("day", clock.seconds()) == (3.0, 2.0)
    assert DbLedgerStore(engine, "other").load() == []

    # the abandon retry rule makes them due in 3 hours; the UK gate keeps them out for 72
    later = source.take(10, MONDAY_10 + 4 * HOUR)
    assert abandoned.isdisjoint(lead.number for lead in later)
    for lead in later:  # hand them back untouched
        source.done(lead, "unknown", MONDAY_10 + 4 * HOUR)
    thursday = [lead.number for lead in source.take(10, MONDAY_10 + 73 * HOUR)]
    assert abandoned <= set(thursday)


def test_restart_closes_open_attempts_unknown_and_frees_records_never_dialed(engine):
    clock, _pbx, runner, source, log = make_runner(engine, workload(busy=1.0))
    # a crash: one record was claimed and its attempt written, one only claimed
    first, second = source.take(2, clock.seconds())
    log.begin(Attempt("uk-1-1", "uk", first, clock.seconds(), channel_id="dial-uk-1-1"))
    assert records(engine)[second.number][0] == "new", "a claim alone writes no record"
    assert records(engine)[first.number][0] == "dialing"
    assert source.take(10, clock.seconds())[0].number not in (first.number, second.number), (
        "claimed records are not taken twice"
    )
    assert source.release_orphans() == 5  # the four just taken too: none has an attempt row
    assert records(engine)[second.number][0] == "new"

    closed = runner.reconcile()
    assert [a.id for a in closed] == ["uk-1-1"]
    row = attempts(engine)[0]
    assert row.outcome == "unknown" and row.e164 == first.number
    assert records(engine)[first.number] == ("scheduled", "unknown")
    # never redialed blindly: the unknown one waits for its retry rule, the freed one is due
    due = [lead.number for lead in source.take(10, clock.seconds())]
    assert second.number in due and first.number not in due


def test_in_the_server_the_idle_reason_is_worked_out_off_the_reactor(engine):
    """The pool status counts the whole campaign: the server asks for it in a
    thread and gives the last answer meanwhile, never blocking the reactor."""
    import datetime as dt

    from twisted.internet import threads

    from tests.conftest import run, wait_for

    campaign = Campaign("uk", policy_for("GB"), CALLER_ID)
    gate = Compliance(DbDnc(engine), DbConsent(engine))
    source = DbLeadSource(engine, campaign, gate, in_thread=threads.deferToThread)
    # Sunday 03:00 in London: outside the calling hours, so nothing may be dialed
    night = dt.datetime(2026, 11, 22, 3, 0, tzinfo=dt.UTC).timestamp()
    assert source.take(5, night) == []
    assert source.empty_reason(night) == CHECKING, "no answer yet: no waiting"
    run(wait_for(lambda: source.empty_reason(night) != CHECKING, what="reason"))
    expected = DbLeadSource(engine, campaign, gate).empty_reason(night)
    assert source.empty_reason(night) == expected and expected.startswith("no record may be dialed")


def test_a_claimed_lead_is_judged_again_at_its_dial_and_a_refused_one_is_not_written(engine):
    """A lead waits up to ten seconds in the hopper's buffer after the gate
    judged it (a preview: minutes).  At the dial the gate is asked again, in
    the writer's thread with the attempt row: a number put on the
    do-not-call list meanwhile, or one whose calling hours ended, is not
    dialed and leaves no attempt; one still allowed is written as before."""
    from functools import partial

    from store.consent import add_dnc
    from store.pool import recheck

    campaign = Campaign("uk", policy_for("GB"), CALLER_ID)
    gate = Compliance(DbDnc(engine), DbConsent(engine))
    source = DbLeadSource(engine, campaign, gate)
    listed, allowed, late = source.take(3, MONDAY_10)
    log = DbAttemptLog(engine, "uk", judge=partial(recheck, engine, campaign, gate))
    add_dnc(engine, [listed.number], source="test", reason="asked on the phone")

    def attempt(lead: Any, at: float) -> Attempt:
        return Attempt(f"a-{lead.record_id}", "uk", lead, at, channel_id=f"c-{lead.record_id}")

    refused = log.begin(attempt(listed, MONDAY_10 + 5))
    assert refused is not None and refused.check == "dnc" and not refused.allowed
    assert log.begin(attempt(allowed, MONDAY_10 + 5)) is None
    night = dt.datetime(2026, 11, 23, 21, 0, 5, tzinfo=dt.UTC).timestamp()  # 21:00 London
    closed = log.begin(attempt(late, night))
    assert closed is not None and closed.check == "window"
    with engine.connect() as conn:
        written = conn.execute(select(db.attempt.c.e164)).scalars().all()
    assert written == [allowed.number], "only the allowed dial has a row"
    # QA4: a list switched off after its records were claimed: one was dialed 2 s after
    from store.pool import set_list_active

    (held,) = source.take(1, MONDAY_10)
    set_list_active(engine, "uk", "uk.csv", False)
    off = log.begin(attempt(held, MONDAY_10 + 6))
    assert off is not None and off.check == "list" and "switched off" in off.reason


def test_after_a_claim_that_found_nothing_the_next_waits_a_few_seconds(engine):
    """An empty claim may read thousands of blocked records (a zone closed at
    its window's edge) in the thread that writes every campaign's attempts;
    an idle campaign asks every second (found in review: 0.2 s a claim)."""
    from store.dialer import DialerWriter
    from tests.conftest import LOOP, run

    campaign = Campaign("uk", policy_for("GB"), CALLER_ID)
    gate = Compliance(DbDnc(engine), DbConsent(engine))
    writer = DialerWriter()
    source = DbLeadSource(engine, campaign, gate, writer=writer, empty_backoff=5.0)
    claims: list[float] = []
    claim_now = source.claim_now

    def counted(n: int, now: float) -> list[Any]:
        claims.append(now)
        return claim_now(n, now)

    source.claim_now = counted
    night = dt.datetime(2026, 11, 23, 22, 0, tzinfo=dt.UTC).timestamp()  # 22:00 London
    try:
        for second in range(4):  # an idle campaign asks every second
            assert source.take(1, night + second) == []
            run(writer.flush().asFuture(LOOP))
        assert claims == [night], "one claim, then none for five seconds"
        assert source.take(1, night + 6) == []
        run(writer.flush().asFuture(LOOP))
        assert claims == [night, night + 6]
        assert source.take(1, MONDAY_10 + 86400) == [], "the next morning: claimed, not yet back"
        run(writer.flush().asFuture(LOOP))
        assert len(source.take(1, MONDAY_10 + 86400)) == 1, "records found again at once"
    finally:
        writer.close()


def test_a_hopper_that_ran_dry_for_a_moment_keeps_the_campaign_running(engine):
    """QA3 (minor): a running campaign with a full list went "idle" and back
    every few seconds (12 idle lines in six minutes of the demo) whenever
    pacing asked for more calls than its buffer held while the next claim
    was on its way.  After a claim that found records, an empty buffer is
    no reason to be idle: ``empty_reason`` says so with None."""
    from store.dialer import DialerWriter
    from tests.conftest import LOOP, run

    campaign = Campaign("uk", policy_for("GB"), CALLER_ID)
    gate = Compliance(DbDnc(engine), DbConsent(engine))
    writer = DialerWriter()
    source = DbLeadSource(engine, campaign, gate, writer=writer, batch=2)
    try:
        assert source.take(2, MONDAY_10) == []
        assert source.empty_reason(MONDAY_10) == "filling the hopper", "the first claim"
        run(writer.flush().asFuture(LOOP))
        assert len(source.take(10, MONDAY_10)) == 4  # the buffer, emptied; a refill asked for
        assert source.take(2, MONDAY_10) == []  # the refill is on its way
        assert source.empty_reason(MONDAY_10) is None, "records are there: not idle"
    finally:
        writer.close()


def test_a_campaign_whose_claims_fail_says_the_database_is_unavailable(tmp_path):
    """QA4 finding 8: during a database outage the campaign said "running"
    with no idle reason while every claim failed."""
    import sqlite3

    from store.dialer import DialerWriter
    from tests.conftest import LOOP, run

    url = f"sqlite:///{tmp_path / 'away.db'}"
    db.upgrade(url)
    setup_engine = db.make_engine(url)
    path = tmp_path / "uk.csv"
    path.write_text("phone\n+44 20 7946 0100\n+44 20 7946 0101\n")
    import_list(setup_engine, path, "uk", create=True)
    setup_engine.dispose()
    engine = db.make_engine(f"{url}?timeout=0.05")
    campaign = Campaign("uk", policy_for("GB"), CALLER_ID)
    gate = Compliance(DbDnc(engine), DbConsent(engine))
    writer = DialerWriter(delays=(0.01,))
    source = DbLeadSource(engine, campaign, gate, writer=writer, batch=1)
    holder = sqlite3.connect(tmp_path / "away.db", isolation_level=None, check_same_thread=False)
    try:
        holder.execute("BEGIN EXCLUSIVE")  # away: every claim fails
        assert source.take(1, MONDAY_10) == []
        run(writer.flush().asFuture(LOOP))
        reason = source.empty_reason(MONDAY_10)
        assert reason is not None and reason.startswith("database unavailable"), reason
    finally:
        holder.close()
        writer.close()
        engine.dispose()


def _dialed(engine: Any, source: DbLeadSource, log: DbAttemptLog, at: float, **end: Any) -> Any:
    """One record taken, dialed at ``at`` and ended 30 s later with ``end``
    (``outcome=``, ``abandoned=``): its record as the retry rules left it."""
    (lead,) = source.take(1, at)
    attempt = Attempt(f"a-{lead.record_id}-{at}", "uk", lead, at, channel_id=f"c-{at}")
    assert log.begin(attempt) is None
    attempt.ended = at + 30
    for key, value in end.items():
        setattr(attempt, key, value)
    log.end(attempt)
    source.done(lead, end["outcome"], at + 30)
    with engine.connect() as conn:
        return conn.execute(select(db.record).where(db.record.c.id == lead.record_id)).one()


def test_a_uk_retry_is_due_when_the_lockouts_end_not_before(engine):
    """A retry's due time is the later of the retry rule's delay and the
    law's lock-out: 24 h after an answering machine (Ofcom: a retry within
    the same 24 hours only with an agent guaranteed), 72 h after an
    abandoned call.  Before (QA8 F18) the machine rule's 4 h and the abandon
    rule's 3 h made them due while the gate still refused them: claimed,
    read and refused again at every claim for a day or three."""
    from dialer.retry import RetryRules
    from store.pool import pool_status, record_outcome

    campaign = Campaign("uk", policy_for("GB"), CALLER_ID)
    gate = Compliance(DbDnc(engine), DbConsent(engine))
    source = DbLeadSource(engine, campaign, gate)
    log = DbAttemptLog(engine, "uk")
    started = dt.datetime.fromtimestamp(MONDAY_10, dt.UTC)
    machine = _dialed(engine, source, log, MONDAY_10, outcome="machine")
    assert machine.status == "scheduled"
    assert db_time(machine.next_due_at) == started + dt.timedelta(hours=24)
    abandoned = _dialed(engine, source, log, MONDAY_10, outcome="abandoned", abandoned=True)
    assert db_time(abandoned.next_due_at) == started + dt.timedelta(hours=72)
    # a busy retry of a number whose machine call (another campaign's) was half an hour before
    busy = _dialed(engine, source, log, MONDAY_10, outcome="busy")
    assert db_time(busy.next_due_at) == started + dt.timedelta(minutes=15, seconds=30), "15 min"
    machine_at = started - dt.timedelta(minutes=30)
    with engine.begin() as conn:
        conn.execute(
            db.attempt.insert().values(
                ref="elsewhere", e164=busy.e164, pbx="", started_at=machine_at, outcome="machine"
            )
        )
    later = started + dt.timedelta(minutes=1)
    record_outcome(engine, busy.id, "busy", later, RetryRules(), policy=policy_for("GB"))
    with engine.connect() as conn:
        due = conn.execute(select(db.record.c.next_due_at).where(db.record.c.id == busy.id))
        assert db_time(due.scalar()) == machine_at + dt.timedelta(hours=24)
    assert (
        pool_status(engine, campaign, gate, started + dt.timedelta(hours=2))["due_later_today"] == 0
    )


def db_time(value: dt.datetime | None) -> dt.datetime | None:
    return value.replace(tzinfo=dt.UTC) if value is not None and value.tzinfo is None else value
