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
            router,
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
