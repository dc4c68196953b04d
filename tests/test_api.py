"""Agent and supervisor operations over HTTP, and the WebSocket push, on the
assembled service (real TCP, real HTTP, simulated PBX over AMI)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
import websockets
import websockets.exceptions
from prometheus_client import CollectorRegistry

from asterisk.session import PbxSettings
from cti.auth import hash_password
from dirigent.config import AgentSettings, DatabaseSettings, HttpSettings, RoutingSettings, Settings
from dirigent.service import Dirigent
from routing.model import Channel, QueueConfig
from store import db
from tests.conftest import LOOP, run, settle, wait_for


def database_with_users(tmp_path, *agents: str) -> str:
    """A fresh SQLite database with supervisor boss and an agent user per
    agent (its name, password ``<name>-password``); its URL."""
    url = f"sqlite:///{tmp_path / 'api.db'}"
    db.upgrade(url)
    engine = db.make_engine(url)
    db.add_user(engine, "boss", hash_password("boss-password"), "supervisor", None)
    for agent in agents:
        db.add_user(engine, agent, hash_password(f"{agent}-password"), "agent", agent)
    engine.dispose()
    return url


@contextlib.contextmanager
def assembled(sim, tmp_path, offer_timeout: float = 30.0) -> Iterator[Dirigent]:
    """The assembled service on the simulated PBX: anna (voice and two
    chats) and ben (voice) in queue "sales"; users boss, anna, ben."""
    _pbx, server = sim
    host, port = server.address
    url = database_with_users(tmp_path, "anna", "ben")
    settings = Settings(
        http=HttpSettings(host="127.0.0.1", port=0),
        database=DatabaseSettings(url=url),
        pbxs=(PbxSettings("sim", host, port, secret="secret", backoff_initial=0.05),),
        routing=RoutingSettings(
            offer_timeout=offer_timeout,
            queues=(QueueConfig("sales"),),
            agents=(
                AgentSettings(
                    id="anna",
                    endpoint="1001",
                    capacity={Channel.VOICE: 1, Channel.CHAT: 2},
                    queues=("sales",),
                ),
                AgentSettings(id="ben", endpoint="1002", queues=("sales",)),
            ),
        ),
    )
    dirigent = Dirigent(settings, CollectorRegistry())
    dirigent.service.startService()
    run(wait_for(lambda: dirigent.sessions["sim"].connected, what="PBX"))
    try:
        yield dirigent
    finally:
        if dirigent.service.running:  # a test may have stopped it (a restart)
            run(dirigent.service.stopService().asFuture(LOOP))


@pytest.fixture
def app(sim, tmp_path):
    with assembled(sim, tmp_path) as dirigent:
        yield dirigent


def call_sync(
    app: Dirigent,
    method: str,
    path: str,
    body: object = None,
    token: str | None = None,
    raw: bytes | None = None,
) -> tuple[int, dict]:
    """One API request (blocking: run it off the event loop)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(
        f"http://127.0.0.1:{app.http_port}/api/{path}", data=data, method=method
    )
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def call(
    app: Dirigent,
    method: str,
    path: str,
    body: object = None,
    token: str | None = None,
    raw: bytes | None = None,
):
    return run(LOOP.run_in_executor(None, lambda: call_sync(app, method, path, body, token, raw)))


def token(app: Dirigent, user: str) -> str:
    status, body = call(app, "POST", "login", {"username": user, "password": f"{user}-password"})
    assert status == 200, body
    return body["token"]


def test_login_needs_the_right_password_and_every_route_a_token(app):
    status, body = call(app, "POST", "login", {"username": "anna", "password": "wrong-password"})
    assert status == 401 and body["field"] == "password"
    status, body = call(app, "GET", "agents")
    assert status == 401 and "bearer token" in body["error"]
    status, body = call(app, "POST", "login", {"username": "anna"})
    assert status == 400 and body["error"] == "password: required"
    anna = token(app, "anna")
    status, agents = call(app, "GET", "agents", token=anna)
    assert status == 200 and [a["id"] for a in agents] == ["anna"], "an agent sees itself only"


def test_agents_act_for_themselves_supervisors_for_anyone(app):
    anna, boss = token(app, "anna"), token(app, "boss")
    status, view = call(app, "POST", "agents/anna/login", {"queues": ["sales"]}, anna)
    assert status == 200 and view["state"] == "ready"
    status, _body = call(app, "POST", "agents/ben/login", {"queues": ["sales"]}, anna)
    assert status == 403
    status, view = call(app, "POST", "agents/anna/pause", {"reason": "coffee"}, boss)
    assert status == 200 and view["state"] == "paused" and view["pause_reason"] == "coffee"
    status, _body = call(app, "PUT", "agents/anna/skills", {"skills": {"de": 8}}, anna)
    assert status == 403, "skills are the supervisor's"
    status, view = call(app, "PUT", "agents/anna/skills", {"skills": {"de": 8}}, boss)
    assert status == 200 and view["skills"] == {"de": 8}


def test_an_agent_sees_its_own_state_only(app):
    """QA5 finding 7: an agent read every colleague's state, work (the ids
    of the customers' interactions) and time today, which its report route
    and its socket refuse."""
    anna, boss = token(app, "anna"), token(app, "boss")
    status, listed = call(app, "GET", "agents", token=anna)
    assert status == 200 and [a["id"] for a in listed] == ["anna"]
    status, error = call(app, "GET", "agents/ben", token=anna)
    assert (status, error["field"]) == (403, "agent")
    assert call(app, "GET", "agents/anna", token=anna)[0] == 200
    status, listed = call(app, "GET", "agents", token=boss)
    assert status == 200 and {"anna", "ben"} <= {a["id"] for a in listed}


def test_a_skill_given_by_a_supervisor_brings_the_waiting_chat_that_needs_it_at_once(app):
    """The answer to the change already shows the chat on its way to the
    agent (before, it waited for the centre's next routing tick)."""
    anna, boss = token(app, "anna"), token(app, "boss")
    assert call(app, "POST", "agents/anna/login", {"queues": ["sales"]}, anna)[0] == 200
    chat = {"channel": "chat", "queue": "sales", "skills": {"fr": 5}, "customer": "c-fr-1"}
    status, created = call(app, "POST", "interactions", chat, boss)
    assert status == 200 and created["waiting"] is True, "nobody speaks French yet"
    status, view = call(app, "PUT", "agents/anna/skills", {"skills": {"fr": 6}}, boss)
    assert status == 200 and [w["interaction"] for w in view["work"]] == [created["id"]], view


@pytest.mark.parametrize(
    ("method", "path", "body", "field", "reason"),
    [
        ("POST", "agents/anna/pause", {}, "reason", "required"),
        ("POST", "agents/anna/pause", {"reason": 5}, "reason", "must be text"),
        # stored raw, CR/LF would forge lines in logs and exports
        ("POST", "agents/anna/pause", {"reason": "lunch\r\nready"}, "reason", "control char"),
        ("POST", "agents/anna/pause", {"reason": "tab\there"}, "reason", "control char"),
        ("POST", "agents/anna/pause", {"reason": "x" * 81}, "reason", "at most 80"),
        (
            "POST",
            "agents/anna/login",
            {"queues": ["sales"], "paused": "brief\ning"},
            "paused",
            "control char",
        ),
        ("POST", "agents/anna/login", {"queues": ["nope"]}, "queues", "unknown queue 'nope'"),
        ("PUT", "agents/anna/skills", {"skills": {"de": 11}}, "skills.de", "1 to 10"),
        (
            "PUT",
            "agents/anna/capacity",
            {"capacity": {"fax": 1}},
            "capacity",
            "unknown channel 'fax'",
        ),
        (
            "POST",
            "interactions",
            {"channel": "chat", "queue": "sales", "priority": "high"},
            "priority",
            "whole number",
        ),
        (
            "POST",
            "interactions",
            {"channel": "voice", "queue": "sales"},
            "channel",
            "come from the PBX",
        ),
        # a misspelt key was dropped while the request succeeded: a pause
        # without its reason's correction, a login into no paused state
        ("POST", "agents/anna/pause", {"reason": "lunch", "resaon": "x"}, "resaon", "unknown key"),
        (
            "POST",
            "agents/anna/login",
            {"queues": ["sales"], "pasued": "lunch"},
            "pasued",
            "unknown key (allowed: queues, paused)",
        ),
        ("PUT", "agents/anna/skills", {"skills": {}, "level": 3}, "level", "unknown key"),
        # QA12 finding 6: any skill name, attribute name or capacity was taken
        (
            "PUT",
            "agents/anna/skills",
            {"skills": {"": 5}},
            "skills",
            "skill name must not be empty",
        ),
        ("PUT", "agents/anna/skills", {"skills": {"x" * 41: 5}}, "skills", "at most 40 char"),
        (
            "POST",
            "interactions",
            {"channel": "chat", "queue": "sales", "skills": {" ": 5}},
            "skills",
            "skill name must not be empty",
        ),
        (
            "POST",
            "interactions",
            {"channel": "chat", "queue": "sales", "attributes": {"": 1}},
            "attributes",
            "attribute name must not be empty",
        ),
        (
            "POST",
            "interactions",
            {"channel": "chat", "queue": "sales", "attributes": {"k" * 1000: 1}},
            "attributes",
            "at most 40 char",
        ),
        (
            "PUT",
            "agents/anna/capacity",
            {"capacity": {"chat": 1_000_000}},
            "capacity.chat",
            "from 0 to 100",
        ),
        (
            "POST",
            "interactions",
            {"channel": "chat", "queue": "sales", "prio": 5},
            "prio",
            "unknown key",
        ),
    ],
)
def test_bad_payloads_name_the_field_and_change_nothing(app, method, path, body, field, reason):
    boss = token(app, "boss")

    def view() -> dict:
        agent = call(app, "GET", "agents/anna", token=boss)[1]
        agent.pop("seconds_today")  # the clock moves on
        return agent

    before = view()
    status, error = call(app, method, path, body, boss)
    assert status == 400 and error["field"] == field and reason in error["error"]
    assert view() == before


def test_not_json_and_unknown_agent_and_illegal_transition(app):
    boss = token(app, "boss")
    status, error = call(app, "POST", "agents/anna/pause", token=boss, raw=b"{not json")
    assert status == 400 and error["field"] == "body"
    status, error = call(app, "POST", "agents/zoe/ready", {}, boss)
    assert status == 404
    status, error = call(app, "POST", "agents/anna/logout", {}, boss)
    assert status == 409 and "cannot log out while logged_out" in error["error"]


def test_a_chat_is_offered_pushed_to_the_agent_desktop_accepted_and_finished(app):
    anna, boss = token(app, "anna"), token(app, "boss")
    messages: list[dict] = []

    async def scenario() -> None:
        uri = f"ws://127.0.0.1:{app.http_port}/ws"
        headers = {"Authorization": f"Bearer {anna}"}
        async with websockets.connect(uri, additional_headers=headers) as ws:

            async def reader() -> None:
                async for raw in ws:
                    messages.append(json.loads(raw))

            task = asyncio.ensure_future(reader())
            await asyncio.sleep(0.1)
            status, _ = await LOOP.run_in_executor(
                None,
                lambda: call_sync(app, "POST", "agents/anna/login", {"queues": ["sales"]}, anna),
            )
            assert status == 200
            status, created = await LOOP.run_in_executor(
                None,
                lambda: call_sync(
                    app,
                    "POST",
                    "interactions",
                    {
                        "channel": "chat",
                        "queue": "sales",
                        "customer": "c-42",
                        "attributes": {"topic": "invoice"},
                    },
                    boss,
                ),
            )
            assert status == 200 and created["waiting"] is False
            await wait_for(lambda: any(m["type"] == "offer" for m in messages), what="offer pushed")
            await asyncio.sleep(0.1)
            task.cancel()
            messages.append({"type": "_created", "id": created["id"]})

    run(scenario())
    offer = next(m for m in messages if m["type"] == "offer")
    created = next(m for m in messages if m["type"] == "_created")
    assert offer["agent"] == "anna" and offer["interaction"] == created["id"]
    assert offer["customer"] == "c-42" and offer["attributes"] == {"topic": "invoice"}
    states = [m["state"] for m in messages if m["type"] == "agent"]
    assert states[:2] == ["ready", "reserved"]
    status, view = call(app, "POST", f"interactions/{created['id']}/accept", {}, anna)
    assert status == 200 and view["state"] == "busy"
    # a misspelt wrap-up is refused, not taken as none: the agent stays busy
    status, error = call(app, "POST", f"interactions/{created['id']}/finish", {"wrapup": 30}, anna)
    assert (status, error["field"]) == (400, "wrapup")
    status, error = call(
        app, "POST", f"interactions/{created['id']}/finish", {"wrap_up": 1e308}, anna
    )
    assert (status, error["error"]) == (400, "wrap_up: must be at most 3600 seconds")
    assert call(app, "GET", "agents/anna", token=boss)[1]["state"] == "busy"
    status, view = call(app, "POST", f"interactions/{created['id']}/finish", {"wrap_up": 0}, anna)
    assert status == 200 and view["state"] == "ready"
    status, queues = call(app, "GET", "queues", token=boss)
    assert queues[0]["queue"] == "sales" and queues[0]["channels"]["chat"]["waiting"] == 0


def test_websocket_refuses_a_connection_without_a_valid_token(app):
    async def attempt() -> None:
        headers = {"Authorization": "Bearer forged"}
        async with websockets.connect(
            f"ws://127.0.0.1:{app.http_port}/ws", additional_headers=headers
        ):
            pass

    with pytest.raises(websockets.exceptions.InvalidStatus) as err:
        run(attempt())
    assert err.value.response.status_code == 401


def test_an_agent_transfers_a_live_call_blind_to_a_colleague(app, sim):
    pbx, _server = sim
    pbx.inbound_talk = 300
    anna, ben = token(app, "anna"), token(app, "ben")
    assert call(app, "POST", "agents/anna/login", {"queues": ["sales"]}, anna)[0] == 200
    caller = pbx.inbound_call(queue="sales")
    run(wait_for(lambda: app.router.agents["anna"].state.value == "busy", what="anna on the call"))
    status, error = call(
        app, "POST", f"interactions/{caller.uniqueid}/transfer", {"agent": "ben"}, ben
    )
    assert status == 403, "only the handling agent or a supervisor transfers"
    status, error = call(app, "POST", f"interactions/{caller.uniqueid}/transfer", {}, anna)
    assert status == 400 and error["field"] == "queue"
    status, body = call(
        app, "POST", f"interactions/{caller.uniqueid}/transfer", {"agent": "ben"}, anna
    )
    assert status == 200
    assert [h["event"] for h in body["history"]] == ["queued", "answered", "transferred", "queued"]
    # the JSON of each entry is a contract (desktop, reports): these keys, in this order
    assert [list(h) for h in body["history"]] == [
        ["event", "queue", "at"],
        ["event", "agent", "at"],
        ["event", "by", "to_queue", "to_agent", "at"],
        ["event", "queue", "at"],
    ]
    assert [{k: v for k, v in h.items() if k != "at"} for h in body["history"]] == [
        {"event": "queued", "queue": "sales"},
        {"event": "answered", "agent": "anna"},
        {"event": "transferred", "by": "anna", "to_queue": None, "to_agent": "ben"},
        {"event": "queued", "queue": "sales"},
    ]
    assert all(isinstance(h["at"], float) for h in body["history"])
    assert call(app, "POST", "agents/ben/login", {"queues": ["sales"]}, ben)[0] == 200
    run(wait_for(lambda: app.router.agents["ben"].state.value == "busy", what="ben takes the call"))
    assert caller.uniqueid in app.router.agents["ben"].work


def test_an_inbound_call_is_not_transferred_while_the_pbx_link_is_down(app, sim):
    """The transfer answered 200 and the caller was taken from the agent in
    Dirigent's view while the hold-music Redirect could not be sent ("Unhandled
    error in Deferred", naming no call); a campaign call gave 503 already."""
    pbx, server = sim
    pbx.inbound_talk = 300
    anna = token(app, "anna")
    assert call(app, "POST", "agents/anna/login", {"queues": ["sales"]}, anna)[0] == 200
    caller = pbx.inbound_call(queue="sales")
    run(wait_for(lambda: app.router.agents["anna"].state.value == "busy", what="anna on the call"))
    pbx.unsubscribe(server.broadcast)
    server.stop()
    run(wait_for(lambda: not app.sessions["sim"].connected, what="the PBX link down"))
    status, error = call(
        app, "POST", f"interactions/{caller.uniqueid}/transfer", {"agent": "ben"}, anna
    )
    assert status == 503 and error["field"] == "pbx", error
    assert app.router.handled_by(caller.uniqueid) == "anna", "nothing changed"


def test_a_call_is_answered_and_ended_on_the_phone_not_through_the_api(app, sim):
    """``accept`` and ``finish`` are for chats, e-mails and SMS.  A call
    "accepted" through the API while the agent's phone still rang showed the
    agent busy with a call nobody had answered; "finished" while it went on,
    the agent was ready again and offered the next caller mid-conversation."""
    pbx, _server = sim
    pbx.agent_answer_delay = 2.0
    pbx.inbound_talk = 300
    anna = token(app, "anna")
    assert call(app, "POST", "agents/anna/login", {"queues": ["sales"]}, anna)[0] == 200
    caller = pbx.inbound_call(queue="sales")
    run(
        wait_for(
            lambda: app.router.offered_to(caller.uniqueid) == "anna", what="anna's phone rings"
        )
    )
    status, error = call(app, "POST", f"interactions/{caller.uniqueid}/accept", None, anna)
    assert status == 409 and error["field"] == "interaction", error
    assert "phone" in error["error"]
    assert app.router.agents["anna"].state.value == "reserved", "still ringing, not busy"
    run(wait_for(lambda: app.router.agents["anna"].state.value == "busy", what="anna answers"))
    status, error = call(
        app, "POST", f"interactions/{caller.uniqueid}/finish", {"wrap_up": 0}, anna
    )
    assert status == 409 and error["field"] == "interaction", error
    assert "hung up" in error["error"]
    assert app.router.agents["anna"].state.value == "busy", "still on the call"
    assert caller.uniqueid in app.router.agents["anna"].work


def test_time_in_state_today_is_reported_per_agent(app):
    anna = token(app, "anna")
    call(app, "POST", "agents/anna/login", {"queues": ["sales"]}, anna)
    run(asyncio.sleep(0.3))
    call(app, "POST", "agents/anna/pause", {"reason": "lunch"}, anna)
    run(asyncio.sleep(0.2))
    _, view = call(app, "GET", "agents/anna", token=anna)
    spent = view["seconds_today"]
    assert spent["ready"] >= 0.25 and spent["paused"] >= 0.15
    assert "logged_out" in spent


def test_seconds_today_go_on_across_a_restart(sim, tmp_path):
    """QA5 finding 20: after a restart an agent's ``seconds_today`` counted
    everything before it as logged out (busy 62 s on the board, 551 s in
    the report from the database at the same moment)."""
    with assembled(sim, tmp_path) as first:
        anna = token(first, "anna")
        assert call(first, "POST", "agents/anna/login", {"queues": ["sales"]}, anna)[0] == 200
        settle(1.5)
        run(first.service.stopService().asFuture(LOOP))
    with assembled(sim, tmp_path) as second:
        boss = token(second, "boss")
        status, view = call(second, "GET", "agents/anna", token=boss)
        assert status == 200 and view["state"] == "logged_out"
        assert view["seconds_today"].get("ready", 0) >= 1.4, view["seconds_today"]
        status, report = call(second, "GET", "agents/anna/report", token=boss)
        assert status == 200
        ready = report["seconds"]["ready"]
        assert abs(view["seconds_today"]["ready"] - ready) < 0.5, (view, report)


def test_calls_chats_and_mails_blend_by_the_rules_end_to_end(app, sim):
    """Poisson callers over AMI, chats and e-mails through the API; at every
    moment no agent holds an e-mail or SMS while on a call, chats never exceed
    capacity, and every call ends answered, abandoned, or still in the system."""
    pbx, _server = sim
    pbx.inbound_talk = 1.5
    pbx.inbound_patience_mean = 3.0
    app.acd.wrap_up = 0.2
    boss = token(app, "boss")
    for agent in ("anna", "ben"):
        call(app, "POST", f"agents/{agent}/login", {"queues": ["sales"]}, boss)
    app.router.set_capacity("anna", {Channel.VOICE: 1, Channel.CHAT: 2, Channel.EMAIL: 1})
    pbx.start_inbound(3600 * 2)  # two callers a second on average, for a few seconds
    created = []
    violations = []

    def check() -> None:
        for agent in app.router.agents.values():
            channels = [w.channel for w in agent.work.values()]
            if Channel.VOICE in channels and ({Channel.EMAIL, Channel.SMS} & set(channels)):
                violations.append((agent.id, channels))
            if channels.count(Channel.CHAT) > agent.capacity.get(Channel.CHAT, 0):
                violations.append((agent.id, channels))

    app.router.agent_listeners.append(lambda _agent: check())
    for i in range(6):
        status, body = call(
            app,
            "POST",
            "interactions",
            {"channel": "chat" if i % 2 else "email", "queue": "sales"},
            boss,
        )
        assert status == 200
        created.append(body["id"])
        run(asyncio.sleep(0.5))
    pbx.stop_inbound()
    run(asyncio.sleep(4))
    assert violations == []
    labels = {"queue": "sales", "channel": "voice"}
    offered = app.registry.get_sample_value("dirigent_interactions_offered_total", labels)
    answered = app.registry.get_sample_value("dirigent_interactions_answered_total", labels) or 0
    abandoned = app.registry.get_sample_value("dirigent_interactions_abandoned_total", labels) or 0
    assert offered >= 3 and answered >= 1
    assert answered + abandoned + sum(len(v.calls) for v in app.voices.values()) >= offered
    offered_non_voice = [m for m in created if m in app.router.offered or m in app.router.waiting]
    assert len(offered_non_voice) == len(created), (
        "chats and mails are offered or waiting, none lost"
    )


def test_the_day_report_comes_from_the_database(app):
    anna, ben = token(app, "anna"), token(app, "ben")
    call(app, "POST", "agents/anna/login", {"queues": ["sales"]}, anna)
    run(asyncio.sleep(0.3))
    call(app, "POST", "agents/anna/pause", {"reason": "lunch"}, anna)
    run(asyncio.sleep(0.2))
    app.database.recorder.flush()
    status, report = call(app, "GET", "agents/anna/report", token=anna)
    assert (
        status == 200 and report["seconds"]["ready"] >= 0.25 and report["seconds"]["paused"] >= 0.15
    )
    assert call(app, "GET", "agents/anna/report", token=ben)[0] == 403
    status, error = call(app, "GET", "agents/anna/report?from=abc", token=anna)
    assert status == 400 and error["field"] == "from"


def test_a_report_reaching_into_the_future_counts_until_now(app):
    """A report ``?to=`` later than now (the rest of the week, ``to=1e10``)
    counted the agent's present state until then: "busy" for 260 years."""
    anna = token(app, "anna")
    call(app, "POST", "agents/anna/login", {"queues": ["sales"]}, anna)
    run(asyncio.sleep(0.2))
    app.database.recorder.flush()
    now = app.acd.day_window()[1]
    status, report = call(app, "GET", f"agents/anna/report?from={now - 60:.0f}&to=1e10", token=anna)
    assert status == 200, report
    assert sum(report["seconds"].values()) <= 61 and report["to"] <= now + 5, report
    status, error = call(app, "GET", f"agents/anna/report?from={now + 3600:.0f}", token=anna)
    assert (status, error["field"]) == (400, "from"), error


def test_a_chat_or_transfer_into_a_campaign_only_queue_is_refused_naming_the_queue(sim, tmp_path):
    """QA5 findings 6, 11, from the configuration file's words: campaign
    "out" dials into its own queue (no [[queue]] table), campaign "win"
    into the inbound queue "sales".  A chat created in "out" waited for
    ever, a call or chat transferred there too; both are 400 ``queue``
    now, and "sales" takes both."""
    from dirigent.config import parse_settings

    _pbx, server = sim
    host, port = server.address
    url = database_with_users(tmp_path, "anna")
    uk = {"country": "GB", "caller_id": "+442079460999"}
    settings = parse_settings(
        {
            "http": {"host": "127.0.0.1", "port": 0},
            "database": {"url": url},
            "pbx": [{"name": "sim", "host": host, "port": port, "secret": "secret"}],
            "queue": [{"name": "sales"}],
            "campaign": [{"name": "out", **uk}, {"name": "win", "queue": "sales", **uk}],
            "agent": [
                {
                    "id": "anna",
                    "endpoint": "1001",
                    "mode": "nailed",
                    "capacity": {"voice": 1, "chat": 2},
                    "queues": ["sales", "out"],
                    "auto_login": True,
                }
            ],
        },
        env={},
    )
    dirigent = Dirigent(settings, CollectorRegistry())
    dirigent.service.startService()
    try:
        run(wait_for(lambda: dirigent.sessions["sim"].connected, what="PBX"))
        boss, anna = token(dirigent, "boss"), token(dirigent, "anna")
        status, body = call(
            dirigent, "POST", "interactions", {"channel": "chat", "queue": "out"}, boss
        )
        assert (status, body["field"]) == (400, "queue"), body
        assert "only campaign calls" in body["error"], body
        status, created = call(
            dirigent, "POST", "interactions", {"channel": "chat", "queue": "sales"}, boss
        )
        assert status == 200, created
        chat = created["id"]
        run(wait_for(lambda: dirigent.router.offered_to(chat) == "anna", what="anna offered"))
        assert call(dirigent, "POST", f"interactions/{chat}/accept", None, anna)[0] == 200
        status, body = call(
            dirigent, "POST", f"interactions/{chat}/transfer", {"queue": "out"}, anna
        )
        assert (status, body["field"]) == (400, "queue"), body
        assert dirigent.router.handled_by(chat) == "anna", "nothing moved"
    finally:
        run(dirigent.service.stopService().asFuture(LOOP))
