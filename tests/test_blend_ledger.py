"""The abandon ledger's last hour survives a restart (issue 15, finding 1).

The day buckets were stored, the last hour was not: after a restart the
hourly guard saw an empty hour and let a small campaign dial on into a bad
one.  The hour is rebuilt from the attempt rows (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import pytest

from dialer.abandon import AbandonLedger
from dialer.estimates import Estimates
from dialer.pacing import Predictive, Snapshot
from store import db
from store.dialer import DbLedgerStore
from store.lists_import import import_list
from tests.test_dialer_runner import workload
from tests.test_dialer_store import HOUR, make_runner


@pytest.fixture
def engine(database_url: str, tmp_path: Any) -> Any:
    """The database of ``tests/test_dialer_store.py``: campaign "uk", six records."""
    db.upgrade(database_url)
    engine = db.make_engine(database_url)
    path = tmp_path / "uk.csv"
    path.write_text(
        "phone,name\n" + "".join(f"+44 20 7946 0{100 + i:03d},Person {i}\n" for i in range(6))
    )
    import_list(engine, path, "uk", create=True)
    yield engine
    engine.dispose()


def restarted(store: DbLedgerStore, now: float, amd_false_positive: float = 0.0) -> AbandonLedger:
    """A ledger as ``Campaigns`` makes it at start-up."""
    ledger = AbandonLedger(amd_false_positive=amd_false_positive)
    ledger.load(store.load())
    ledger.load_recent(store.recent(now, amd_false_positive), now)
    return ledger


def test_the_last_hour_of_the_ledger_survives_a_restart(engine: Any) -> None:
    # ratio 3 with one agent: three people answer at once, two find no agent
    clock, _pbx, runner, _source, _log = make_runner(
        engine, workload(live=1.0), agents=1, strategy="ratio:3"
    )
    runner.start()
    clock.run_until(clock.seconds() + 40.0)
    runner.stop()
    clock.run_until(clock.seconds() + 60.0)
    now = clock.seconds()
    assert runner.ledger.counts("1h", now) == (3.0, 2.0)

    store = DbLedgerStore(engine, "uk")
    ledger = restarted(store, now)
    assert ledger.counts("1h", now) == (3.0, 2.0)
    assert ledger.counts("day", now) == (3.0, 2.0)  # the day is not counted twice
    assert ledger.hour_span(now) > 0.0
    # the hourly guard judges the restarted campaign by that hour: no dialing ahead
    p = Predictive(limit=0.03)
    p.decide(Snapshot(now=now, agents=5, ready=5), Estimates(), ledger)
    assert p._progressive
    # an hour later those calls have left the hour, not the day
    later = now + HOUR + 60.0
    assert restarted(store, later).counts("1h", later) == (0.0, 0.0)
    assert restarted(store, later).counts("day", later) == (3.0, 2.0)


def test_the_rebuilt_hour_counts_the_estimate_of_persons_amd_took_for_machines(
    engine: Any,
) -> None:
    clock, _pbx, runner, _source, _log = make_runner(
        engine, workload(live=1.0), agents=2, strategy="progressive"
    )
    runner.start()
    clock.run_until(clock.seconds() + 30.0)
    runner.stop()
    clock.run_until(clock.seconds() + 120.0)
    now = clock.seconds()
    ledger = restarted(DbLedgerStore(engine, "uk"), now, amd_false_positive=0.02)
    live, abandoned = ledger.counts("1h", now)
    assert live == pytest.approx(2.0 + 2 * 0.02 / 0.98)
    assert abandoned == pytest.approx(2 * 0.02 / 0.98)
    # a group of campaigns: another campaign's calls are not this group's
    assert DbLedgerStore(engine, "grp", ["other"]).recent(now) == []
    assert len(DbLedgerStore(engine, "grp", ["other", "uk"]).recent(now, 0.02)) == 4
