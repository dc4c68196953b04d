"""The simulated PBX falls back as the shipped dialplan does on Asterisk.

``dirigent-inbound`` ends in ``MusicOnHold(default,${DIRIGENT_WAIT})``
then the DirigentFallback UserEvent.  A Redirect ends that MusicOnHold;
a transfer (a Redirect back into ``dirigent-inbound``) runs the extension
again, with a fresh wait.  So only the latest pass may fall back, timed
from that pass -- not from the caller's first arrival, which made a
transfer in the sim look worse than on Asterisk.  Simulated time
(``task.Clock``), not wall time."""

from __future__ import annotations

from twisted.internet import task

from asterisk.port import FALLBACK_PRIORITY
from sim.pbx import SimPbx

WAIT = 60.0


def fallbacks(seen: list[list[tuple[str, str]]], uniqueid: str) -> list[float]:
    return [
        float(dict(m)["SimTime"])
        for m in seen
        if dict(m).get("UserEvent") == "DirigentFallback" and dict(m)["CallUniqueid"] == uniqueid
    ]


def simulated() -> tuple[task.Clock, SimPbx, list[list[tuple[str, str]]]]:
    clock = task.Clock()
    # callers who never hang up and agents who never end a talk: only the dialplan ends a wait
    pbx = SimPbx(clock, seed=5, agents=2, inbound_patience_mean=1e9, inbound_talk=1e9)
    pbx.fallback_after = WAIT
    seen: list[list[tuple[str, str]]] = []
    pbx.subscribe(lambda m: seen.append([*m, ("SimTime", str(clock.seconds()))]))
    return clock, pbx, seen


def advance_to(clock: task.Clock, t: float) -> None:
    while clock.seconds() < t:
        clock.advance(min(0.5, t - clock.seconds()))


def test_a_caller_transferred_after_talking_falls_back_a_full_wait_after_the_transfer():
    clock, pbx, seen = simulated()
    caller = pbx.inbound_call(queue="sales")
    advance_to(clock, 2.0)
    pbx.redirect(caller.name, "dirigent-connect", "1001", 1)  # an agent answers
    advance_to(clock, 55.0)
    assert caller.bridge is not None
    pbx.redirect(caller.name, "dirigent-inbound", "support", 1)  # transferred; nobody free
    advance_to(clock, 55.0 + WAIT - 1)
    assert fallbacks(seen, caller.uniqueid) == []  # not at 60 s: the first wait is over
    advance_to(clock, 55.0 + WAIT + 1)
    [at] = fallbacks(seen, caller.uniqueid)
    assert 55.0 + WAIT <= at <= 55.0 + WAIT + 0.5
    assert caller.alive and caller.variables["DIRIGENT_QUEUE"] == "support"


def test_of_several_passes_only_the_latest_falls_back():
    clock, pbx, seen = simulated()
    caller = pbx.inbound_call(queue="sales")
    for t, queue in ((20.0, "support"), (50.0, "billing")):  # moved while still waiting
        advance_to(clock, t)
        pbx.redirect(caller.name, "dirigent-inbound", queue, 1)
    advance_to(clock, 50.0 + 3 * WAIT)
    [at] = fallbacks(seen, caller.uniqueid)
    assert 50.0 + WAIT <= at <= 50.0 + WAIT + 0.5


def test_a_caller_nobody_takes_still_falls_back_once_a_wait_after_arriving():
    clock, pbx, seen = simulated()
    caller = pbx.inbound_call(queue="sales")
    advance_to(clock, 3 * WAIT)
    assert fallbacks(seen, caller.uniqueid) == [WAIT]


def inbound_events(seen: list[list[tuple[str, str]]], uniqueid: str, name: str) -> int:
    return sum(
        1 for m in seen if dict(m).get("UserEvent") == name and dict(m)["CallUniqueid"] == uniqueid
    )


def test_a_caller_dirigent_sends_to_the_fallback_goes_there_unannounced():
    """Dirigent's fallback Redirect names dirigent-inbound's GotoIf (priority
    7), after the announcement and the DirigentFallback event: the caller
    goes to the PBX's fallback queue and is not offered again (the sim ran
    the extension from priority 1: a new DirigentInbound, a new wait)."""
    clock, pbx, seen = simulated()
    caller = pbx.inbound_call(queue="sales")
    advance_to(clock, 10.0)
    pbx.redirect(caller.name, "dirigent-inbound", "sales", FALLBACK_PRIORITY)
    advance_to(clock, 10.0 + 3 * WAIT)
    assert inbound_events(seen, caller.uniqueid, "DirigentInbound") == 1
    assert inbound_events(seen, caller.uniqueid, "DirigentFallback") == 0
    apps = [(d.get("Application"), d.get("Priority")) for d in map(dict, seen)
            if d.get("Event") == "Newexten" and d.get("Uniqueid") == caller.uniqueid]  # fmt: skip
    assert apps[-2:] == [("GotoIf", "7"), ("Queue", "8")]
    assert caller.alive and not caller.on_moh


def test_a_caller_moved_while_waiting_gives_up_no_sooner_than_one_left_alone():
    """A caller's patience is one per wait: moved from queue to queue while
    still waiting, it hangs up when the caller left in one queue would."""
    ends = []
    for moved in (False, True):
        clock = task.Clock()
        pbx = SimPbx(clock, seed=11, agents=2, inbound_patience_mean=40.0, inbound_talk=1e9)
        pbx.fallback_after = 1e6
        caller = pbx.inbound_call(queue="sales")
        for t in (5.0, 10.0, 15.0, 20.0) if moved else ():
            advance_to(clock, t)
            pbx.redirect(caller.name, "dirigent-inbound", "support", 1)
        while caller.alive:
            clock.advance(0.5)
        ends.append(clock.seconds())
    assert ends[1] == ends[0]
