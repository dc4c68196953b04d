"""A restart of Dirigent (not of the PBX) while an inbound caller talks to a
nailed-up agent (QA round 2, finding 2), to a ring-mode agent, or waits on
hold (QA round 3, findings 6 and 8).

The simulated Asterisk keeps running over real AMI/TCP; the first Dirigent
is stopped the way existing restart tests stop it (its PBX side, the agents'
nailed-up legs and the caller in the agent's ConfBridge, stays up; nobody
logs off) and a second one starts on the same PBX and database.  The call
going on is taken over: the agent is busy with it, the next caller is not
moved into that conference (two customers would hear each other) nor rung to
the phone she talks on, and the report row of the call keeps its true talk
time.  A caller on hold is queued again with its own arrival time and
connected to the free agent at once.  A channel nobody can name in an
agent's bridge keeps the agent paused until it leaves.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any, Literal

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import select, update
from twisted.internet import reactor

from asterisk.session import PbxSettings
from channels.voice import FOREIGN_CALL
from cti.auth import hash_password
from dirigent.config import AgentSettings, DatabaseSettings, HttpSettings, RoutingSettings, Settings
from dirigent.service import Dirigent
from routing.model import QueueConfig
from sim.ami_server import SimAmiServer
from sim.pbx import SimChannel, SimPbx
from store import db
from tests.conftest import LOOP, run, settle, stop_sim, wait_for
from tests.test_api import call, token

AGENT = "agent1001"


@pytest.fixture
def restartable(tmp_path, request) -> Iterator[Any]:
    """(start, pbx, engine); ``auto_login`` of the agent from an indirect
    parameter (default True), or ``{"auto_login": ..., "mode": ...}``."""
    param = getattr(request, "param", True)
    options: dict[str, Any] = param if isinstance(param, dict) else {"auto_login": param}
    auto_login: bool = options.get("auto_login", True)
    mode: Literal["ring", "nailed"] = options.get("mode", "nailed")
    pbx = SimPbx(reactor, seed=7, agents=1, agent_answer_delay=0.05)
    server = SimAmiServer(pbx, reactor)
    server.listen(0)
    url = f"sqlite:///{tmp_path / 'takeover.db'}"
    db.upgrade(url)
    engine = db.make_engine(url)
    db.add_user(engine, "boss", hash_password("boss-password"), "supervisor", None)
    settings = Settings(
        http=HttpSettings(host="127.0.0.1", port=0),
        database=DatabaseSettings(url=url),
        pbxs=(PbxSettings("sim", *server.address, secret="secret", backoff_initial=0.05),),
        routing=RoutingSettings(
            wrap_up=0.5,
            queues=(QueueConfig("sales"),),
            agents=(
                AgentSettings(
                    id=AGENT,
                    endpoint="1001",
                    mode=mode,
                    queues=("sales",),
                    auto_login=auto_login,
                ),
            ),
        ),
    )
    started: list[Dirigent] = []

    def start() -> Dirigent:
        app = Dirigent(settings, CollectorRegistry())
        app.service.startService()
        started.append(app)
        return app

    try:
        yield start, pbx, engine
    finally:
        for app in started:
            if app.service.running:
                run(app.service.stopService().asFuture(LOOP))
        stop_sim(pbx, server)
        engine.dispose()


def crash(app: Dirigent) -> None:
    """Dirigent goes away; the PBX keeps every call (legs, callers, bridges)."""
    run(app.service.stopService().asFuture(LOOP))


def customers_in_bridges(pbx: SimPbx) -> Callable[[], int]:
    """The most customers ever seen together in one agent's bridge (PBX view)."""
    most = [0]

    def watch(_headers: Any) -> None:
        for bridge in pbx.bridges.values():
            members = [pbx.channels.get(m) for m in bridge.members]
            customers = sum(1 for c in members if c is not None and c.far == "customer")
            most[0] = max(most[0], customers)

    pbx.subscribe(watch)
    return lambda: most[0]


def caller(pbx: SimPbx, talk: float = 3600.0) -> SimChannel:
    chan = pbx.inbound_call(queue="sales")
    chan.variables["SIM_TALK"] = str(talk)  # talks until the test hangs up
    return chan


def busy(app: Dirigent) -> bool:
    assert app.acd is not None
    return app.acd.router.agents[AGENT].state.value == "busy"


def agent_view(app: Dirigent) -> dict[str, Any]:
    status, agents = call(app, "GET", "agents", token=token(app, "boss"))
    assert status == 200
    (view,) = [a for a in agents if a["id"] == AGENT]
    return view


def row(engine: Any, uniqueid: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            select(db.interaction).where(db.interaction.c.uniqueid == uniqueid)
        ).one()


def _utc(value: dt.datetime | None) -> float | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()


def flush(app: Dirigent) -> None:
    """Wait until ``app`` has written its report rows."""
    recorder = app.database.recorder
    assert recorder is not None
    recorder.flush()


def answered_at(app: Dirigent, engine: Any, uniqueid: str) -> float:
    """The answer time the report row of a call has (written by ``app``)."""
    flush(app)
    answered = _utc(row(engine, uniqueid).answered_at)
    assert answered is not None
    return answered


def busy_with_it_again(again: Dirigent, engine: Any, uniqueid: str) -> None:
    """After the restart: the agent is busy with the call it was in (not
    ready for the next one) and the call's row is open again."""
    acd = again.acd
    assert acd is not None
    run(wait_for(lambda: acd.router.agents[AGENT].logged_in, what="the agent back"))
    view = agent_view(again)
    assert view["state"] == "busy", view
    assert [w["interaction"] for w in view["work"]] == [uniqueid]
    assert acd.router.handled_by(uniqueid) == AGENT
    flush(again)
    reopened = row(engine, uniqueid)
    assert reopened.ended_at is None and reopened.outcome is None, "the call goes on"


def ended_with_its_talk_time(again: Dirigent, engine: Any, uniqueid: str, answered: float) -> None:
    flush(again)
    ended = row(engine, uniqueid)
    assert ended.outcome == "answered" and ended.agent_code == AGENT
    assert _utc(ended.answered_at) == pytest.approx(answered, abs=0.01)
    ended_at = _utc(ended.ended_at)
    assert ended_at is not None
    talk = ended_at - answered
    assert talk >= 2.0, f"the talk time across the restart is {talk:.1f} s"


def test_a_caller_talking_to_a_nailed_agent_is_taken_over_after_a_restart(restartable):
    start, pbx, engine = restartable
    most_customers = customers_in_bridges(pbx)
    app = start()
    run(wait_for(lambda: app.acd.has_leg(AGENT), what="the leg up"))
    first = caller(pbx)
    run(wait_for(lambda: busy(app), what="the first caller connected"))
    leg = pbx.channels[app.voices["sim"].endpoints[AGENT].line_call]
    assert first.bridge == leg.bridge
    answered = answered_at(app, engine, first.uniqueid)

    crash(app)
    settle(0.5)  # the conversation goes on meanwhile
    again = start()
    busy_with_it_again(again, engine, first.uniqueid)

    # the next caller waits: it is not moved into the conference going on
    second = caller(pbx)
    run(wait_for(lambda: again.acd.router.is_waiting(second.uniqueid), what="the second waits"))
    settle(1.0)
    assert second.bridge is None and set(pbx.bridges[leg.bridge].members) == {
        leg.uniqueid,
        first.uniqueid,
    }
    assert most_customers() == 1, "two customers were in one agent's bridge"

    # the first caller hangs up: an ordinary end, wrap-up, then the second caller
    settle(0.5)
    pbx.hangup_channel(first, 16)
    run(
        wait_for(
            lambda: again.acd.router.handled_by(second.uniqueid) == AGENT,
            what="the second caller with the agent after the wrap-up",
        )
    )
    assert most_customers() == 1
    ended_with_its_talk_time(again, engine, first.uniqueid, answered)


def test_a_channel_nobody_can_name_keeps_the_agent_paused_until_it_leaves(restartable):
    start, pbx, engine = restartable
    most_customers = customers_in_bridges(pbx)
    app = start()
    run(wait_for(lambda: app.acd.has_leg(AGENT), what="the leg up"))
    first = caller(pbx)
    run(wait_for(lambda: busy(app), what="the caller connected"))
    crash(app)
    # its report row is lost (a database restored from a backup, say)
    with engine.begin() as conn:
        conn.execute(
            update(db.interaction)
            .where(db.interaction.c.uniqueid == first.uniqueid)
            .values(uniqueid="lost")
        )
    again = start()
    run(wait_for(lambda: again.acd.router.agents[AGENT].logged_in, what="the agent back"))
    view = agent_view(again)
    assert view["state"] == "paused" and view["pause_reason"] == FOREIGN_CALL, view
    second = caller(pbx)
    run(wait_for(lambda: again.acd.router.is_waiting(second.uniqueid), what="the second waits"))
    settle(1.0)
    assert second.bridge is None and most_customers() == 1
    # set ready while the channel is there: it stays paused
    status, body = call(again, "POST", f"agents/{AGENT}/ready", {}, token(again, "boss"))
    assert status == 200 and body["state"] == "paused", body
    settle(0.5)
    assert second.bridge is None
    pbx.hangup_channel(first, 16)
    run(
        wait_for(
            lambda: again.acd.router.handled_by(second.uniqueid) == AGENT,
            what="the agent ready again once the channel left, and connected",
        )
    )
    assert most_customers() == 1


def phone_legs(pbx: SimPbx) -> list[str]:
    """The agent phone's channels on the PBX (its nailed-up legs)."""
    return [c.uniqueid for c in pbx.channels.values() if c.far == "agent"]


@pytest.mark.parametrize("restartable", [False], indirect=True)
def test_a_nailed_agent_who_logs_in_by_hand_after_a_restart_gets_its_leg_back_not_a_ring(
    restartable,
):
    """Left alone in sessions 12-13: an agent without auto_login whose leg
    outlived a restart of Dirigent was rung again at its next login -- a
    second leg in the same conference (the phone rings while the agent is
    on the line).  Its login takes the leg over, as auto_login does."""
    start, pbx, _engine = restartable
    app = start()
    boss = token(app, "boss")
    status, _ = call(app, "POST", f"agents/{AGENT}/login", {"queues": ["sales"]}, boss)
    assert status == 200
    run(wait_for(lambda: app.acd.has_leg(AGENT), what="the leg up"))
    (leg,) = phone_legs(pbx)
    crash(app)
    again = start()
    run(wait_for(lambda: again.sessions["sim"].connected, what="the second server on the PBX"))
    settle(0.5)  # its resync: the agent is not logged in (no auto_login)
    assert not again.acd.router.agents[AGENT].logged_in
    originates = pbx.stats.get("originate", 0)
    status, _ = call(
        again, "POST", f"agents/{AGENT}/login", {"queues": ["sales"]}, token(again, "boss")
    )
    assert status == 200
    run(wait_for(lambda: again.acd.has_leg(AGENT), what="the leg taken over"))
    settle(0.5)
    assert pbx.stats.get("originate", 0) == originates, "the phone was rung again"
    assert phone_legs(pbx) == [leg]
    assert agent_view(again)["state"] == "ready"


RING = {"auto_login": True, "mode": "ring"}


def phone_channels(pbx: SimPbx) -> list[SimChannel]:
    return [c for c in pbx.channels.values() if c.far == "agent"]


@pytest.mark.parametrize("restartable", [RING], indirect=True)
def test_a_caller_talking_to_a_ring_mode_agent_is_taken_over_after_a_restart(restartable):
    """QA3 finding 6: the agent's phone was Dialed for the caller (dirigent-
    connect) and the two share a bridge.  After the restart the agent used
    to be "ready" (logged in before the resync), the next caller rang her
    phone mid-call and paused her "endpoint busy", and the row said 0 s of
    talk.  Now she is busy with the call she is in (her auto-login waits for
    the resync: ready before it, she was offered the caller waiting); its
    hang-up ends it with the talk time across the restart."""
    start, pbx, engine = restartable
    app = start()
    run(wait_for(lambda: app.acd.router.agents[AGENT].logged_in, what="the agent in"))
    first = caller(pbx)
    run(wait_for(lambda: busy(app), what="the first caller connected"))
    (phone,) = phone_channels(pbx)
    assert first.bridge is not None and first.bridge == phone.bridge
    second = caller(pbx)  # waits: she is busy
    run(wait_for(lambda: app.acd.router.is_waiting(second.uniqueid), what="the second waits"))
    answered = answered_at(app, engine, first.uniqueid)

    crash(app)
    settle(0.5)  # the conversation goes on meanwhile
    again = start()
    busy_with_it_again(again, engine, first.uniqueid)

    # the caller waiting is queued again, but the phone she talks on is not
    # rung for it, nor for the next caller
    third = caller(pbx)
    run(wait_for(lambda: again.acd.router.is_waiting(third.uniqueid), what="the third waits"))
    assert again.acd.router.is_waiting(second.uniqueid)
    settle(1.0)
    assert second.bridge is None and phone_channels(pbx) == [phone]
    assert pbx.stats.get("connect_busy", 0) == 0, "her phone was rung during the call"
    assert agent_view(again)["state"] == "busy"

    # the first caller hangs up: wrap-up, then the second caller is rung to her
    settle(0.5)
    pbx.hangup_channel(first, 16)
    run(
        wait_for(
            lambda: again.acd.router.handled_by(second.uniqueid) == AGENT,
            what="the second caller with the agent after the wrap-up",
        )
    )
    ended_with_its_talk_time(again, engine, first.uniqueid, answered)


@pytest.mark.parametrize("restartable", [RING], indirect=True)
def test_a_caller_waiting_while_dirigent_restarts_is_queued_again_and_connected(restartable):
    """QA3 finding 8: a caller on hold during the restart used to be
    forgotten (every agent ready, the queue empty, music until the
    dialplan's fallback; its row closed at its arrival with 0 s of wait).
    Now it is queued again with its own arrival time and the free agent
    gets it at once; its row is reopened and answered."""
    start, pbx, engine = restartable
    app = start()
    run(wait_for(lambda: app.acd.router.agents[AGENT].logged_in, what="the agent in"))
    app.acd.pause(AGENT, "break")
    waiting = caller(pbx)
    run(wait_for(lambda: app.acd.router.is_waiting(waiting.uniqueid), what="the caller waits"))
    app.database.recorder.flush()
    arrived = _utc(row(engine, waiting.uniqueid).arrived_at)
    assert arrived is not None

    crash(app)
    settle(0.5)  # the caller hears music meanwhile
    again = start()  # the agent logs in ready (auto_login)
    run(
        wait_for(
            lambda: again.acd.router.handled_by(waiting.uniqueid) == AGENT,
            what="the waiting caller connected to the free agent",
        )
    )
    (phone,) = phone_channels(pbx)
    assert waiting.bridge is not None and waiting.bridge == phone.bridge
    again.database.recorder.flush()
    answered = row(engine, waiting.uniqueid)
    assert answered.ended_at is None and answered.outcome is None, "the call goes on"
    assert answered.agent_code == AGENT
    assert _utc(answered.arrived_at) == pytest.approx(arrived, abs=0.01)
    answered_at = _utc(answered.answered_at)
    assert answered_at is not None and answered_at - arrived >= 0.5, "the wait across the restart"
    history = answered.attributes["history"]
    assert [h["event"] for h in history] == ["queued", "answered"], history
    labels = {"queue": "sales", "channel": "voice"}
    # QA4: the new process counted the answer but not the offer (answered > offered)
    offered = again.registry.get_sample_value("dirigent_interactions_offered_total", labels)
    answered_n = again.registry.get_sample_value("dirigent_interactions_answered_total", labels)
    assert (offered, answered_n) == (1.0, 1.0)


@pytest.mark.parametrize("restartable", [RING], indirect=True)
def test_a_caller_the_pbx_gave_to_its_fallback_during_a_restart_is_left_there(restartable):
    """QA3 (minor): Dirigent down for longer than ``DIRIGENT_WAIT``; the
    dialplan gave the caller to its own fallback queue meanwhile (its
    DirigentFallback event unheard).  The restarted Dirigent queued the
    caller again and rang the free agent, pulling the caller out of the
    fallback queue, and the report said nothing of the fallback.  Now it is
    left where the PBX put it and its row ends ``fallback``."""
    start, pbx, engine = restartable
    app = start()
    run(wait_for(lambda: app.acd.router.agents[AGENT].logged_in, what="the agent in"))
    app.acd.pause(AGENT, "break")
    waiting = caller(pbx)
    run(wait_for(lambda: app.acd.router.is_waiting(waiting.uniqueid), what="the caller waits"))
    crash(app)
    pbx._inbound_fallback(waiting)  # DIRIGENT_WAIT ran out while Dirigent was down
    assert waiting.app == "Queue"
    again = start()  # the agent logs in ready (auto_login)
    run(wait_for(lambda: again.acd.router.agents[AGENT].ready, what="the agent ready"))
    settle(0.5)
    assert not again.acd.router.is_waiting(waiting.uniqueid)
    assert not phone_channels(pbx), "the agent's phone was not rung for a caller in the fallback"
    assert waiting.app == "Queue" and waiting.bridge is None, "still in the PBX's fallback queue"
    again.database.recorder.flush()
    assert row(engine, waiting.uniqueid).outcome == "fallback"
    figures = queue_figures(again)
    assert figures["channels"]["voice"]["waiting"] == 0, figures


@pytest.mark.parametrize("restartable", [{"auto_login": False, "mode": "ring"}], indirect=True)
def test_a_caller_waiting_across_a_restart_shows_in_its_queue_until_an_agent_logs_in(
    restartable,
):
    start, pbx, _engine = restartable
    app = start()
    run(wait_for(lambda: app.sessions["sim"].connected, what="connected"))
    waiting = caller(pbx)
    run(wait_for(lambda: app.acd.router.is_waiting(waiting.uniqueid), what="the caller waits"))
    crash(app)
    settle(0.2)  # the caller waits on across the restart (on an idle machine it took 0.07 s)
    again = start()
    boss = token(again, "boss")
    run(wait_for(lambda: again.acd.router.is_waiting(waiting.uniqueid), what="queued again"))
    status, queues = call(again, "GET", "queues", token=boss)
    assert status == 200
    (sales,) = [q for q in queues if q["queue"] == "sales"]
    voice = sales["channels"]["voice"]
    assert voice["waiting"] == 1 and voice["oldest_wait"] >= 0.1, sales
    status, _ = call(again, "POST", f"agents/{AGENT}/login", {"queues": ["sales"]}, boss)
    assert status == 200
    run(
        wait_for(
            lambda: again.acd.router.handled_by(waiting.uniqueid) == AGENT,
            what="connected to the agent who logged in",
        )
    )


def queue_figures(app: Dirigent, queue: str = "sales") -> dict[str, Any]:
    status, queues = call(app, "GET", "queues", token=token(app, "boss"))
    assert status == 200
    (figures,) = [q for q in queues if q["queue"] == queue]
    return figures


def test_todays_queue_figures_outlive_a_restart(restartable):
    """QA round 3 (minor): after a restart /api/queues said abandoned 0 and
    no service level for today, while the database held today's calls."""
    start, pbx, _engine = restartable
    app = start()
    run(wait_for(lambda: app.acd.has_leg(AGENT), what="the leg up"))
    first = caller(pbx, talk=1.0)
    run(wait_for(lambda: busy(app), what="the first caller connected"))
    second = caller(pbx)  # waits: the only agent is busy
    run(wait_for(lambda: app.acd.router.is_waiting(second.uniqueid), what="the second waits"))
    pbx.hangup_channel(second, 16)  # gives up
    run(wait_for(lambda: app.acd.kpi.abandoned_in("sales", reactor.seconds()) == 1, what="counted"))
    before = queue_figures(app)
    assert before["service_level_today"] is not None
    run(wait_for(lambda: not first.alive, what="the first call over"))
    app.database.recorder.flush()
    crash(app)
    again = start()
    after = queue_figures(again)
    assert after["abandoned"] == 1
    assert after["service_level_today"] == before["service_level_today"]
    assert after["service_level_30m"] == before["service_level_30m"]
