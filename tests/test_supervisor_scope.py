"""A supervisor who oversees some teams sees and acts on their agents,
their queues and the campaigns dialling into them, and nothing of the other
teams: over the WebSocket, in the API's lists and in its actions (issue 15,
"supervisors see their scope").  The assembled service over real TCP; the
users made by the command line a user would run."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest
import websockets
from prometheus_client import CollectorRegistry

from asterisk.session import PbxSettings
from cti.auth import hash_password
from dirigent.config import (
    AgentSettings,
    CampaignTable,
    DatabaseSettings,
    HttpSettings,
    RoutingSettings,
    Settings,
)
from dirigent.service import Dirigent
from routing.model import Channel, QueueConfig
from store import db
from tests.conftest import LOOP, run, wait_for
from tests.test_api import call, call_sync

CLI = [sys.executable, "-m", "dirigent.cli", "user"]


def _user(url: str, *args: str, password: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args, "--db", url], input=password, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def centre(sim, tmp_path):
    """Two teams: north (anna, queue sales), south (ben, queue support); nora
    oversees north, sam the whole centre."""
    _pbx, server = sim
    url = f"sqlite:///{tmp_path / 'scope.db'}"
    db.upgrade(url)
    engine = db.make_engine(url)
    for name, role, agent in (("anna", "agent", "anna"), ("ben", "agent", "ben")):
        db.add_user(engine, name, hash_password(f"{name}-password"), role, agent)
    engine.dispose()
    saved = _user(
        url, "add", "nora", "--role", "supervisor", "--teams", "north", password="nora-password\n"
    )
    assert saved.returncode == 0, saved.stderr
    assert "overseeing north" in saved.stdout
    assert (
        _user(url, "add", "sam", "--role", "supervisor", password="sam-password\n").returncode == 0
    )
    settings = Settings(
        http=HttpSettings(host="127.0.0.1", port=0),
        database=DatabaseSettings(url=url),
        pbxs=(PbxSettings("sim", *server.address, secret="secret", backoff_initial=0.05),),
        routing=RoutingSettings(
            queues=(QueueConfig("sales"), QueueConfig("support")),
            agents=(
                AgentSettings(
                    id="anna",
                    endpoint="1001",
                    mode="nailed",  # a campaign dials into its queue: a kept line
                    capacity={Channel.VOICE: 1, Channel.CHAT: 2},
                    queues=("sales",),
                    team="north",
                ),
                AgentSettings(
                    id="ben",
                    endpoint="1002",
                    mode="nailed",
                    capacity={Channel.VOICE: 1, Channel.CHAT: 2},
                    queues=("support",),
                    team="south",
                ),
            ),
        ),
    )
    # a campaign dialling for each team (never started)
    campaigns = tuple(
        CampaignTable.model_validate(
            {"name": name, "country": "DE", "caller_id": "+493055500000", "queue": queue}
        ).build()
        for name, queue in (("winback", "sales"), ("survey", "support"))
    )
    dirigent = Dirigent(settings.model_copy(update={"campaigns": campaigns}), CollectorRegistry())
    dirigent.service.startService()
    run(wait_for(lambda: dirigent.sessions["sim"].connected, what="PBX"))
    yield dirigent
    run(dirigent.service.stopService().asFuture(LOOP))


def _token(app, user: str) -> str:
    status, body = call(app, "POST", "login", {"username": user, "password": f"{user}-password"})
    assert status == 200, body
    return body["token"]


def test_a_team_supervisor_sees_and_acts_on_its_own_team_only(centre):
    nora, sam = _token(centre, "nora"), _token(centre, "sam")
    status, agents = call(centre, "GET", "agents", token=nora)
    assert status == 200 and [a["id"] for a in agents] == ["anna"]
    assert [a["id"] for a in call(centre, "GET", "agents", token=sam)[1]] == ["anna", "ben"]
    status, body = call(centre, "GET", "agents/ben", token=nora)
    assert status == 403 and body["field"] == "agent"
    status, body = call(centre, "POST", "agents/ben/login", {"queues": ["support"]}, nora)
    assert status == 403 and body["field"] == "agent"
    assert centre.acd is not None and not centre.acd.router.agents["ben"].logged_in
    status, body = call(centre, "PUT", "agents/ben/skills", {"skills": {"french": 5}}, nora)
    assert status == 403 and centre.acd.router.agents["ben"].skills == {}
    assert call(centre, "POST", "agents/anna/login", {"queues": ["sales"]}, nora)[0] == 200
    status, queues = call(centre, "GET", "queues", token=nora)
    assert status == 200 and [q["queue"] for q in queues] == ["sales"]
    chat = {"channel": "chat", "queue": "support", "customer": "c-south-1"}
    status, body = call(centre, "POST", "interactions", chat, nora)
    assert status == 403 and body["field"] == "queue"
    assert call(centre, "POST", "interactions", chat, sam)[0] == 200


def test_a_team_supervisors_socket_carries_its_teams_events_only(centre):
    nora, sam = _token(centre, "nora"), _token(centre, "sam")
    anna, ben = _token(centre, "anna"), _token(centre, "ben")
    seen: dict[str, list[dict]] = {"nora": [], "sam": []}
    uri = f"ws://127.0.0.1:{centre.http_port}/ws"

    async def collect(ws, into: list[dict]) -> None:
        async for raw in ws:
            into.append(json.loads(raw))

    async def scenario() -> None:
        async with (
            websockets.connect(uri, additional_headers={"Authorization": f"Bearer {nora}"}) as a,
            websockets.connect(uri, additional_headers={"Authorization": f"Bearer {sam}"}) as b,
        ):
            tasks = [
                asyncio.ensure_future(collect(a, seen["nora"])),
                asyncio.ensure_future(collect(b, seen["sam"])),
            ]

            def api(*args):
                return LOOP.run_in_executor(None, lambda: call_sync(centre, *args))

            for agent, queue, tok in (("anna", "sales", anna), ("ben", "support", ben)):
                assert (await api("POST", f"agents/{agent}/login", {"queues": [queue]}, tok))[
                    0
                ] == 200
            for queue, customer in (("sales", "c-north-1"), ("support", "c-south-1")):
                body = {"channel": "chat", "queue": queue, "customer": customer}
                assert (await api("POST", "interactions", body, sam))[0] == 200
            await wait_for(
                lambda: {m.get("customer") for m in seen["sam"]} >= {"c-north-1", "c-south-1"},
                what="the whole centre's supervisor sees both chats",
            )
            await wait_for(
                lambda: any(m.get("customer") == "c-north-1" for m in seen["nora"]),
                what="nora sees her team's chat",
            )
            await asyncio.sleep(0.3)
            for task in tasks:
                task.cancel()

    run(scenario())
    about = [m for m in seen["nora"] if m.get("agent") == "ben" or m.get("queue") == "support"]
    assert about == [], f"nora's socket carried the south team's events: {about}"
    assert not any(m.get("customer") == "c-south-1" for m in seen["nora"])
    assert any(m["type"] == "agent" and m["agent"] == "anna" for m in seen["nora"])
    assert any(m["type"] == "agent" and m["agent"] == "ben" for m in seen["sam"])


def test_teams_are_for_supervisors_and_shown_by_user_list(tmp_path):
    url = f"sqlite:///{tmp_path / 'u.db'}"
    refused = _user(url, "add", "ann", "--role", "agent", "--agent", "ann", "--teams", "north")
    assert refused.returncode == 2 and "--teams: only a supervisor" in refused.stderr
    empty = _user(
        url, "add", "nora", "--role", "supervisor", "--teams", " , ", password="pw-pw-pw\n"
    )
    assert empty.returncode == 2 and "--teams" in empty.stderr
    saved = _user(
        url, "add", "nora", "--role", "supervisor", "--teams", "south,north", password="pw-pw-pw\n"
    )
    assert saved.returncode == 0, saved.stderr
    assert "nora: supervisor (teams north, south)" in _user(url, "list").stdout
    listed = json.loads(_user(url, "list", "--json").stdout)["users"]
    assert listed[0]["teams"] == ["north", "south"]
    # saved again without --teams: the whole centre
    assert _user(url, "add", "nora", "--role", "supervisor", password="pw-pw-pw\n").returncode == 0
    assert json.loads(_user(url, "list", "--json").stdout)["users"][0]["teams"] is None


def test_a_scope_holds_the_teams_agents_their_queues_and_the_campaigns_dialling_into_them():
    from core.events import CampaignFigures, CampaignStatus
    from cti.auth import Scope, User
    from cti.ws import visible_to

    scope = Scope.of(
        ["north"],
        {"anna": ("north", ("sales", "vip")), "ben": ("south", ("support",)), "cy": (None, ())},
        {"winback": "sales", "survey": "support"},
    )
    assert scope.agents == {"anna"} and scope.queues == {"sales", "vip"}
    assert scope.campaigns == {"winback"}
    nora = User("nora", "supervisor", scope=scope)
    figures = {c: CampaignFigures(0.0, c, CampaignStatus.RUNNING) for c in ("winback", "survey")}
    assert visible_to(nora, figures["winback"]) and not visible_to(nora, figures["survey"])
    assert nora.may_act_for("anna") and not nora.may_act_for("ben")
    # an admin's scope, were it given, changes nothing: admins see the whole centre
    root = User("root", "admin", scope=scope)
    assert visible_to(root, figures["survey"]) and root.may_act_for("ben")


def test_a_team_supervisor_controls_the_campaigns_and_lists_of_its_teams_only(centre):
    nora, sam = _token(centre, "nora"), _token(centre, "sam")
    status, views = call(centre, "GET", "campaigns", token=nora)
    assert status == 200 and [v["campaign"] for v in views] == ["winback"]
    assert [v["campaign"] for v in call(centre, "GET", "campaigns", token=sam)[1]] == [
        "survey",
        "winback",
    ]
    for method, path, body in (
        ("GET", "campaigns/survey", None),
        ("POST", "campaigns/survey/start", None),
        ("PATCH", "campaigns/survey", {"abandon_target": 0.02}),
        ("GET", "campaigns/survey/pool", None),
        ("GET", "campaigns/no-such-campaign", None),  # other names: not even whether they exist
        ("PATCH", "lists/survey/leads.csv", {"active": False}),
        ("POST", "lists/merge", {"campaign": "survey", "keep": 1, "drop": [2]}),
    ):
        status, answer = call(centre, method, path, body, nora)
        assert status == 403 and answer["field"] == "campaign", (path, answer)
    assert centre.campaigns is not None
    assert centre.campaigns.get("survey").runner.status != "running"
    assert call(centre, "GET", "campaigns/winback", token=nora)[0] == 200
    status, answer = call(centre, "GET", "campaigns/no-such-campaign", token=sam)
    assert status == 404, answer
    # nora staffs her teams' queues only, also for her own agents
    status, answer = call(centre, "POST", "agents/anna/login", {"queues": ["support"]}, nora)
    assert status == 403 and answer["field"] == "queues"


def test_a_team_supervisor_gives_results_for_its_teams_campaign_calls_only(centre):
    import datetime as dt

    from sqlalchemy import insert, select

    engine = centre.database.engine
    with engine.begin() as conn:
        for name in ("winback", "survey"):
            campaign = conn.execute(select(db.campaign.c.id).where(db.campaign.c.name == name))
            conn.execute(
                insert(db.attempt).values(
                    ref=f"{name}-1",
                    campaign_id=campaign.scalar_one(),
                    e164="+4930123400009",
                    pbx="sim",
                    started_at=dt.datetime.now(dt.UTC),
                )
            )
    nora = _token(centre, "nora")
    status, answer = call(
        centre, "POST", "interactions/survey-1/disposition", {"code": "do-not-call"}, nora
    )
    assert status == 403 and answer["field"] == "campaign", answer
    status, answer = call(centre, "GET", "dnc/+4930123400009", token=nora)
    assert status == 200 and not answer["blocked"], "the number was not put on the DNC list"
    status, answer = call(
        centre, "POST", "interactions/winback-1/disposition", {"code": "sale"}, nora
    )
    assert status == 200 and answer["disposition"] == "sale", answer
