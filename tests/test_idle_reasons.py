"""A campaign whose PBX is down says so: idle, "PBX down", not "running"
with no reason (simulated PBX over real AMI TCP)."""

from __future__ import annotations

from twisted.internet import reactor

from asterisk.telephony import AmiTelephony
from dialer.campaign import CampaignSettings, validate
from dialer.pacing import Progressive
from dialer.runner import CampaignRunner, MemoryAttemptLog
from routing.agent import Agent
from routing.model import QueueConfig
from routing.router import Router
from sim.ami_server import SimAmiServer
from sim.desk import RouterDesk
from sim.pbx import SimPbx
from tests.conftest import run, stop_sim, wait_for
from tests.test_dialer_runner import ListSource


def test_a_campaign_whose_pbx_is_down_is_idle_with_the_reason(session_factory):
    pbx = SimPbx(reactor, seed=3, agents=1)
    server = SimAmiServer(pbx, reactor)
    server.listen(0)
    try:
        session = session_factory(server.address, backoff_initial=5.0, backoff_max=5.0)
        session.start()
        run(wait_for(lambda: session.connected, what="AMI login"))
        router = Router({"c": QueueConfig("c")})
        router.add_agent(Agent("1001"))
        router.login("1001", reactor.seconds(), ["c"])
        runner = CampaignRunner(
            validate(CampaignSettings("c", caller_id="+4930555000", amd=False)),
            AmiTelephony(session),
            RouterDesk(router),
            reactor,
            ListSource([]),
            Progressive(),
            attempts=MemoryAttemptLog(),
        )
        runner.start()
        server.stop()
        run(wait_for(lambda: not session.connected, what="the link lost"))
        runner.pace()
        assert (runner.status, runner.idle_reason) == ("idle", "PBX down")
        runner.stop()
    finally:
        stop_sim(pbx, server)


def test_every_list_switched_off_says_so_and_their_records_are_not_due_later(
    database_url, tmp_path, capsys
):
    """A campaign manager switched every list off (``lists deactivate``, as
    ``PATCH /api/lists/...``): the campaign will not resume by itself, so
    its reason says that, not "nothing due now (5 due later today)" counting
    records that will never be dialled."""
    import datetime as dt

    from dialer.compliance import Campaign, Compliance, policy_for
    from dialer.retry import RetryRules
    from dirigent.cli import main
    from store import db
    from store.consent import DbConsent, DbDnc
    from store.dialer import DbLeadSource
    from store.lists_import import import_list
    from store.pool import claim, pool_status, record_outcome

    db.upgrade(database_url)
    engine = db.make_engine(database_url)
    for name, first in (("spring.csv", 100), ("autumn.csv", 200)):
        path = tmp_path / name
        path.write_text("phone\n" + "".join(f"+44 20 7946 0{first + i:03d}\n" for i in range(3)))
        import_list(engine, path, "uk", create=True)
    campaign = Campaign("uk", policy_for("GB"), "+442079460999")
    gate = Compliance(DbDnc(engine), DbConsent(engine))
    monday_10 = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)  # London, GMT
    for lead in claim(engine, campaign, gate, monday_10, limit=10):  # all busy: again in 15 min
        record_outcome(engine, lead.record_id, "busy", monday_10, RetryRules())
    soon = monday_10 + dt.timedelta(minutes=1)

    def reason() -> str | None:
        return DbLeadSource(engine, campaign, gate).empty_reason(soon.timestamp())

    def switch(verb: str, name: str) -> None:
        assert main(["lists", verb, name, "--campaign", "uk", "--db", database_url]) == 0
        capsys.readouterr()

    try:
        assert reason() == "nothing due now (6 due later today)"
        switch("deactivate", "autumn.csv")
        assert reason() == "nothing due now (3 due later today; 1 list switched off)"
        assert pool_status(engine, campaign, gate, soon)["due_later_today"] == 3
        switch("deactivate", "spring.csv")
        assert reason() == "no active list (2 lists switched off)"
        status = pool_status(engine, campaign, gate, soon)
        assert status["due_later_today"] == 0, "a switched-off list's records are never due"
        assert status["lists"]["spring.csv"]["due_later_today"] == 0
        assert status["records"] == {"scheduled": 6}, "the records are kept"
        later = monday_10 + dt.timedelta(minutes=20)
        assert claim(engine, campaign, gate, later, limit=10) == [], "and none is dialled"
        switch("activate", "spring.csv")
        assert len(claim(engine, campaign, gate, later, limit=10)) == 3
    finally:
        engine.dispose()


def test_records_that_may_be_dialed_now_are_never_called_blocked_or_due_later(
    database_url, tmp_path
):
    """The hopper ran dry for a moment (its leads went stale while inbound
    kept every agent busy, the demo showed it) while records may be dialed
    now: the reason says the hopper is filling, not "nothing due now (49 due
    later today)" of a campaign with 1,900 new records, nor "no record may
    be dialed now" because one number of the list is on the DNC list."""
    import datetime as dt

    from dialer.compliance import Campaign, Compliance, policy_for
    from dialer.retry import RetryRules
    from store import db
    from store.consent import DbConsent, DbDnc, add_dnc
    from store.dialer import DbLeadSource
    from store.lists_import import import_list
    from store.pool import claim, record_outcome

    db.upgrade(database_url)
    engine = db.make_engine(database_url)
    path = tmp_path / "uk.csv"
    path.write_text("phone\n" + "".join(f"+44 20 7946 0{300 + i:03d}\n" for i in range(4)))
    import_list(engine, path, "uk", create=True)
    campaign = Campaign("uk", policy_for("GB"), "+442079460999")
    gate = Compliance(DbDnc(engine), DbConsent(engine))
    monday_10 = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)
    (busy,) = claim(engine, campaign, gate, monday_10, limit=1)
    record_outcome(engine, busy.record_id, "busy", monday_10, RetryRules())  # due in 15 min
    add_dnc(engine, ["+442079460301"], source="test", reason="asked")
    soon = (monday_10 + dt.timedelta(minutes=1)).timestamp()
    try:
        reason = DbLeadSource(engine, campaign, gate).empty_reason(soon)
        assert reason == "filling the hopper (2 records may be dialed now)"
    finally:
        engine.dispose()


def test_a_campaign_whose_agents_are_all_paused_says_they_are_logged_in():
    """Its agents are logged in, busy elsewhere or paused: the reason said
    "no agents logged in and ready", which sent supervisors to look for a
    login problem (found by exploratory testing: a blended agent on an
    inbound call)."""
    from tests.test_dialer_runner import setup, workload

    clock, _pbx, runner, _source, _log = setup(workload(busy=1.0), paused=True)
    runner.start()
    clock.run_until(5.0)
    assert runner.status == "idle"
    assert runner.idle_reason == (
        "no agent free for the campaign (2 logged in: busy, paused or kept for inbound)"
    )
    for agent in ("1001", "1002"):
        assert isinstance(runner.desk, RouterDesk)  # the test's own router, behind the desk
        runner.desk.router.logout(agent, clock.seconds())
    runner.pace()
    assert runner.idle_reason == "no agents logged in and ready"
