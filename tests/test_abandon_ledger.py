"""The ledger's figures are remembered for a moment, never past a change.

A pacing decision asks the ledger for its counts about eleven times at one
``now``; they are kept until the next call is counted or taken back.  A
taken-back live answer is looked up by bisection while the hour's events
are in time order (a wall clock may step back: then by a scan)."""

from __future__ import annotations

from dialer.abandon import AbandonLedger


def test_the_counts_at_one_moment_follow_every_change_made_at_that_moment() -> None:
    ledger = AbandonLedger(amd_false_positive=0.2)
    ledger.live(10.0)
    assert ledger.counts("1h", 10.0) == (1.0, 0.0)
    assert ledger.hour_span(10.0) == 0.0
    ledger.abandoned(10.0)
    assert ledger.counts("1h", 10.0) == (2.0, 1.0)
    assert ledger.counts("day", 10.0) == (2.0, 1.0)
    ledger.human_verdict(10.0)
    assert ledger.counts("30d", 10.0) == (2.25, 1.25)
    assert ledger.take_back_live(10.0, 10.0)
    assert ledger.counts("1h", 10.0) == (1.25, 1.25)
    assert ledger.counts("day", 10.0) == (1.25, 1.25)
    assert ledger.hour_span(700.0) == 690.0
    ledger.live(700.0)
    assert ledger.hour_span(3620.0) == 2920.0
    assert ledger.counts("1h", 3620.0) == (1.0, 0.0), "the calls at 10 s left the hour"


def test_a_take_back_finds_its_answer_among_others_of_that_second() -> None:
    ledger = AbandonLedger(amd_false_positive=0.5)
    for at in (100.0, 200.0, 200.0, 300.0):
        ledger.human_verdict(at)  # one live and one abandoned per verdict
        ledger.live(at)
    assert ledger.take_back_live(200.0, 400.0)
    assert ledger.take_back_live(200.0, 400.0)
    assert ledger.counts("1h", 400.0) == (6.0, 4.0)
    assert [e for e in ledger.recent if e[2] == 1.0] == [
        (at, 1.0, 1.0) for at in (100.0, 200.0, 200.0, 300.0)
    ]
    assert [e for e in ledger.recent if e[2] == 0.0] == [(100.0, 1.0, 0.0), (300.0, 1.0, 0.0)]


def test_a_take_back_finds_its_answer_after_the_clock_stepped_back() -> None:
    ledger = AbandonLedger()
    for at in (500.0, 300.0, 400.0):  # a wall clock set back between the calls
        ledger.live(at)
    assert ledger.take_back_live(300.0, 600.0)
    assert ledger.take_back_live(500.0, 600.0)
    assert list(ledger.recent) == [(400.0, 1.0, 0.0)]
    assert ledger.counts("1h", 600.0) == (1.0, 0.0)
