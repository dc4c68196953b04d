"""One Dirigent per PBX: a second instance finds the PBX's lease held and
stays off it, saying why; a restart of the same one takes it back at once;
``takeover`` takes it on purpose and the first one leaves (simulated PBX
over real AMI TCP, the lease in its AstDB)."""

from __future__ import annotations

import logging

from tests.conftest import run, settle, wait_for


def test_a_second_dirigent_stays_off_a_pbx_another_one_drives(sim, session_factory, caplog):
    _pbx, server = sim
    first = session_factory(server.address, owner="host-a/db1", keepalive_interval=0.2)
    first.start()
    run(wait_for(lambda: first.connected, what="the first Dirigent in"))
    owner, until = server.astdb[("dirigent", "owner")].rsplit("|", 1)
    assert owner == "host-a/db1" and float(until) > 0
    second = session_factory(server.address, owner="host-b/db2")
    with caplog.at_level(logging.ERROR, logger="dirigent.asterisk"):
        second.start()
        run(wait_for(lambda: second.refused is not None, what="the second one refused"))
        settle(0.5)
    assert not second.connected and second.connects == 0
    assert second.refused == "driven by another Dirigent (host-a/db1)"
    said = [r.getMessage() for r in caplog.records if "another Dirigent" in r.getMessage()]
    assert len(said) == 1, "said once, not at every retry"
    assert "takeover = true" in said[0]
    assert first.connected, "the first one keeps the PBX"


def test_the_same_dirigent_restarted_takes_its_pbx_back_at_once(sim, session_factory):
    _pbx, server = sim
    before = session_factory(server.address, owner="host-a/db1")
    before.start()
    run(wait_for(lambda: before.connected, what="in"))
    run(before.stop())  # a crash would leave the lease as it is: the same owner comes back
    after = session_factory(server.address, owner="host-a/db1")
    after.start()
    run(wait_for(lambda: after.connected, timeout=5, what="the restarted one in again"))
    assert after.refused is None


def test_takeover_takes_the_pbx_and_the_first_dirigent_leaves(sim, session_factory):
    _pbx, server = sim
    first = session_factory(server.address, owner="host-a/db1", keepalive_interval=0.2)
    first.start()
    run(wait_for(lambda: first.connected, what="the first in"))
    second = session_factory(server.address, owner="host-b/db2", takeover=True)
    second.start()
    run(wait_for(lambda: second.connected, what="the second takes over"))
    assert server.astdb[("dirigent", "owner")].startswith("host-b/db2|")
    run(wait_for(lambda: first.refused is not None, timeout=5, what="the first one leaves"))
    assert first.refused == "driven by another Dirigent (host-b/db2)"
    settle(0.6)
    assert not first.connected and second.connected


def test_a_clean_stop_frees_the_pbx_for_another_dirigent_at_once(sim, session_factory):
    _pbx, server = sim
    old = session_factory(server.address, owner="host-a/db1")
    old.start()
    run(wait_for(lambda: old.connected, what="in"))
    run(old.stop())  # SIGTERM: the lease goes with the Logoff
    assert ("dirigent", "owner") not in server.astdb
    successor = session_factory(server.address, owner="host-c/db3")
    successor.start()
    run(wait_for(lambda: successor.connected, timeout=5, what="the successor in"))


def test_two_dirigents_starting_together_do_not_both_take_the_pbx(sim, session_factory):
    """Both read the lease free before either wrote it: the one whose write
    is not the lease's when it looks again stays off (it would nail up a
    second line for every agent and route the same callers)."""
    _pbx, server = sim
    a = session_factory(server.address, owner="host-a/db1", keepalive_interval=30)
    b = session_factory(server.address, owner="host-b/db2", keepalive_interval=30)
    a.start()
    b.start()
    run(wait_for(lambda: (a.connected or a.refused) and (b.connected or b.refused), what="both"))
    settle(0.5)
    owner = server.astdb[("dirigent", "owner")].rsplit("|", 1)[0]
    winner, loser = (a, b) if owner == "host-a/db1" else (b, a)
    assert winner.connected and winner.refused is None
    assert not loser.connected and loser.refused == f"driven by another Dirigent ({owner})"
