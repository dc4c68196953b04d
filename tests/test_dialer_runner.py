"""The campaign runner against the in-process simulated PBX, in virtual time."""

from __future__ import annotations

import json
from typing import Any

import pytest

from core.errors import Unavailable
from core.events import OfferMade
from core.telephony import PbxSynced
from dialer.campaign import CampaignSettings, Lead, validate
from dialer.pacing import Power, Predictive, Progressive, make_strategy
from dialer.runner import Attempt, CampaignRunner, MemoryAttemptLog
from dirigent.cli import main
from dirigent.lab import run as run_lab
from routing.agent import Agent
from routing.model import QueueConfig
from routing.router import Router
from sim.clock import HeapClock
from sim.desk import RouterDesk
from sim.inprocess import KNOWN_EVENTS, SimTelephony
from sim.pbx import SimPbx
from sim.workload import parse_workload, standard_workload


class ListSource:
    def __init__(self, numbers: list[str]) -> None:
        self.queue = [Lead(i, n) for i, n in enumerate(numbers)]
        self.done_calls: list[tuple[str, str]] = []

    def take(self, n: int, now: float) -> list[Lead]:
        out, self.queue = self.queue[:n], self.queue[n:]
        return out

    def done(self, lead: Lead, outcome: str, now: float) -> None:
        self.done_calls.append((lead.number, outcome))

    def empty_reason(self, now: float) -> str:
        return "list exhausted"

    def release(self, lead: Lead, now: float) -> None:
        self.queue.append(lead)  # skipped: to the end of the list


class CheckingLog(MemoryAttemptLog):
    """Remembers how many Originates the PBX had seen when each attempt was written."""

    def __init__(self, pbx: SimPbx) -> None:
        super().__init__()
        self.pbx = pbx
        self.originates_at_begin: list[int] = []

    def begin(self, attempt: Attempt) -> None:
        self.originates_at_begin.append(self.pbx.stats.get("originate", 0))
        super().begin(attempt)


def workload(**outcomes: float) -> Any:
    shares = {"live": 0.0, "machine": 0.0, "no_answer": 0.0, "busy": 0.0, "invalid": 0.0}
    shares.update(outcomes)
    return parse_workload(
        {
            "outcomes": shares,
            "ring": {"dist": "constant", "value": 5.0},
            "talk": {"dist": "constant", "value": 60.0},
            "wrapup": {"dist": "constant", "value": 5.0},
            "amd": {"person_misread": 0.0, "machine_detected": 1.0},
        }
    )


def setup(
    wl: Any,
    agents: int = 2,
    numbers: int = 10,
    strategy: Any = None,
    paused: bool = False,
    start: float = 0.0,
) -> tuple[HeapClock, SimPbx, CampaignRunner, ListSource, CheckingLog]:
    clock = HeapClock()
    clock.run_until(start)  # a PBX started at that time (the epoch's seconds, as a server's)
    pbx = SimPbx(clock, seed=3, agents=agents, workload=wl)
    tel = SimTelephony(pbx)
    router = Router({"c": QueueConfig("c")})
    ids = [str(1001 + i) for i in range(agents)]
    for a in ids:
        router.add_agent(Agent(a))
        tel.originate(f"PJSIP/{a}", context="dirigent-agent", exten=a, channel_id=f"agent-{a}")
    clock.run_until(2.0)
    for a in ids:
        router.login(a, clock.seconds(), ["c"], paused="break" if paused else None)
    source = ListSource([f"+49301234{i:04d}" for i in range(numbers)])
    log = CheckingLog(pbx)
    runner = CampaignRunner(
        validate(CampaignSettings("c", caller_id="+4930555000", amd_false_positive=0.0)),
        tel,
        RouterDesk(router),
        clock,
        source,
        strategy or Progressive(),
        attempts=log,
    )
    return clock, pbx, runner, source, log


def test_attempt_is_written_before_its_originate() -> None:
    clock, _pbx, runner, source, log = setup(workload(busy=1.0), numbers=3)
    runner.start()
    clock.run_until(60.0)
    assert len(log.order) == 3
    # each attempt row existed before the PBX saw the Originate for it
    # (the two agents' nailed-up legs were the first two Originates)
    assert log.originates_at_begin == [2, 3, 4]
    assert [o for _, o in source.done_calls] == ["busy"] * 3
    assert all(a.outcome == "busy" for a in log.attempts.values())


@pytest.mark.parametrize("later", [False, True], ids=["row-at-once", "row-later"])
def test_listeners_hear_of_a_dial_after_its_originate_when_the_row_is_written_at_once(
    later: bool,
) -> None:
    """A log that writes the row at once (the simulation's) lets the
    Originate go before the listeners hear "dialed"; one that answers with
    a Deferred (the database's thread) after they did, once it fires.  The
    dial without a Deferred chain keeps that order."""
    from twisted.internet.defer import Deferred

    clock, pbx, runner, _source, log = setup(workload(busy=1.0), agents=1, numbers=1)
    rows: list[Deferred[None]] = []
    if later:

        def begin(attempt: Attempt) -> Any:
            MemoryAttemptLog.begin(log, attempt)
            rows.append(Deferred())
            return rows[-1]

        log.begin = begin  # type: ignore[method-assign]
    heard: list[tuple[str, int]] = []
    runner.listeners.append(lambda what, a: heard.append((what.value, pbx.stats["originate"])))
    runner.start()
    clock.run_until(3.0)
    assert heard[0] == ("dialed", 1 if later else 2), "the agent's leg was the first Originate"
    for row in rows:
        row.callback(None)
    clock.run_until(30.0)
    assert pbx.stats["originate"] == 2 and log.attempts[log.order[0]].outcome == "busy"


def test_live_answers_are_connected_to_nailed_agents() -> None:
    clock, _pbx, runner, source, log = setup(workload(live=1.0), agents=2, numbers=2)
    runner.start()
    clock.run_until(30.0)
    connected = [a for a in log.attempts.values() if a.connected is not None]
    assert len(connected) == 2
    assert {a.agent for a in connected} == {"1001", "1002"}
    assert all(
        a.connected is not None and a.verdict_at is not None and a.connected - a.verdict_at < 2.0
        for a in connected
    )
    clock.run_until(200.0)
    assert sorted(o for _, o in source.done_calls) == ["answered", "answered"]
    assert runner.ledger.rate("day", clock.seconds()) == 0.0


def test_no_free_agent_means_the_abandon_message_and_an_abandoned_count() -> None:
    # ratio 3 with one agent: three live answers arrive together, two find nobody
    clock, pbx, runner, source, _log = setup(
        workload(live=1.0), agents=1, numbers=3, strategy=make_strategy("ratio:3")
    )
    runner.start()
    clock.run_until(40.0)
    outcomes = sorted(o for _, o in source.done_calls)
    assert outcomes == ["abandoned", "abandoned"]
    assert pbx.stats.get("abandon_message") == 2
    assert runner.ledger.counts("day", clock.seconds()) == (3.0, 2.0)


def test_persons_answering_while_no_dirigent_runs_hear_the_pbx_message_and_count_abandoned() -> (
    None
):
    """QA finding 3: a person who answers while the server is down (a crash,
    kill -9) heard silence and the call was closed "unknown" at the restart:
    never counted abandoned, redialed an hour later.  The dialplan's net
    plays the abandon message at the connect limit and marks the call in the
    AstDB; the next run counts it abandoned and the mark is gone."""
    began = 1_796_000_000.0  # the PBX's clock is the epoch's, as a server's is
    clock, pbx, runner, source, log = setup(
        workload(live=1.0), agents=1, numbers=3, strategy=make_strategy("ratio:3"), start=began
    )
    runner.start()
    clock.run_until(began + 3.0)  # the three are ringing (ring 5 s): then the server dies
    assert len(log.order) == 3 and all(a.answered is None for a in log.attempts.values())
    tel = runner.telephony
    assert isinstance(tel, SimTelephony)
    tel._subscribers.clear()  # a dead process hears nothing and does nothing
    runner.stop()
    clock.run_until(began + 30.0)
    marks = {k: v for k, v in pbx.astdb.items() if k[1].startswith("abandoned/")}
    assert len(marks) == 3, marks  # all three answered, nobody moved them
    # ${EPOCH}, as Asterisk writes it (QA5 F15: seconds since the sim started,
    # so the attempts were answered in 1970)
    assert all(began < float(v) < began + 30.0 for v in marks.values()), marks
    assert pbx.stats.get("abandon_message") == 3  # each heard the message, not silence
    # the next run, on the same PBX and the same attempt log
    router = Router({"c": QueueConfig("c")})
    router.add_agent(Agent("1001"))
    later = CampaignRunner(
        validate(CampaignSettings("c", caller_id="+4930555000", amd_false_positive=0.0)),
        SimTelephony(pbx),
        RouterDesk(router),
        clock,
        source,
        Progressive(),
        attempts=log,
    )
    found: list[dict[str, float]] = []
    later.pbx_abandons().addCallback(found.append)
    closed = later.reconcile(found[0])
    assert sorted(a.outcome or "" for a in closed) == ["abandoned"] * 3
    assert all(log.attempts[a.id].abandoned for a in closed)
    assert sorted(o for _, o in source.done_calls) == ["abandoned"] * 3
    assert later.ledger.counts("day", clock.seconds()) == (3.0, 3.0)
    assert not [k for k in pbx.astdb if k[1].startswith("abandoned/")]  # forgotten by the PBX


def test_a_person_whose_verdict_never_arrives_is_counted_abandoned_not_no_answer() -> None:
    """QA round 3, finding 4: with the dialplan's UserEvents lost (an AMI user
    without read class ``user``) a person AMD heard was stored "no-answer"
    after seconds of silence: outside the abandon ledger, redialed as a
    no-answer.  The dialplan's net played the message and marked the call;
    the hang-up asks the PBX, and the attempt is an abandoned live answer."""
    clock, pbx, runner, source, log = setup(workload(live=1.0), agents=1, numbers=1)
    tel = runner.telephony
    assert isinstance(tel, SimTelephony)
    # deaf to the dialplan's UserEvents, as an AMI user without read class "user"
    pbx.unsubscribe(tel._on_headers)
    pbx.subscribe(tel._on_headers, KNOWN_EVENTS - {"UserEvent"})
    runner.start()
    clock.run_until(40.0)
    assert pbx.stats.get("abandon_message") == 1
    assert [o for _, o in source.done_calls] == ["abandoned"]
    (attempt,) = log.attempts.values()
    assert attempt.abandoned and attempt.outcome == "abandoned"
    assert runner.ledger.counts("day", clock.seconds()) == (1.0, 1.0)


def test_machines_are_hung_up_and_never_reach_an_agent() -> None:
    clock, _pbx, runner, source, log = setup(workload(machine=1.0), numbers=4)
    runner.start()
    clock.run_until(60.0)
    assert sorted(o for _, o in source.done_calls) == ["machine"] * 4
    assert all(a.agent is None for a in log.attempts.values())


def test_an_exhausted_list_makes_the_campaign_idle_and_say_why() -> None:
    clock, _pbx, runner, _source, _log = setup(workload(busy=1.0), numbers=2)
    runner.start()
    clock.run_until(30.0)
    assert runner.status == "idle"
    assert runner.idle_reason == "list exhausted"


def test_all_agents_paused_means_no_dialing() -> None:
    clock, _pbx, runner, _source, log = setup(workload(live=1.0), paused=True)
    runner.start()
    clock.run_until(60.0)
    assert log.order == []
    assert runner.status == "idle"


def test_pbx_link_lost_stops_dialing_and_resync_closes_vanished_calls_as_unknown() -> None:
    clock, pbx, runner, _source, log = setup(workload(no_answer=1.0), agents=2, numbers=10)
    runner.start()
    clock.run_until(3.0)
    in_flight = set(runner.live)
    assert in_flight
    dialed = len(log.order)
    # the link drops: the PBX restarts and every call on it is gone
    pbx.booted = False
    assert isinstance(runner.telephony, SimTelephony)
    for chan in list(pbx.channels.values()):
        if chan.name.startswith("PJSIP/customers"):
            pbx.hangup_channel(chan, 16)
            runner.telephony.mirror.channels.pop(chan.uniqueid, None)
    clock.run_until(40.0)
    assert len(log.order) == dialed  # nothing dialed while the link is down
    pbx.booted = True
    runner.on_event(PbxSynced("sim"))
    for attempt_id in in_flight:
        assert log.attempts[attempt_id].outcome in ("unknown", "no-answer")
    numbers = [log.attempts[a].lead.number for a in log.order]
    assert len(numbers) == len(set(numbers))  # no number dialed twice


def test_restart_reconciliation_closes_open_attempts_as_unknown() -> None:
    _clock, _pbx, runner, source, log = setup(workload(busy=1.0), numbers=0)
    orphan = Attempt("c-1-1", "c", Lead(7, "+4930111"), 0.0, channel_id="dial-c-1-1")
    log.begin(orphan)
    closed = runner.reconcile()
    assert [a.id for a in closed] == ["c-1-1"]
    assert log.attempts["c-1-1"].outcome == "unknown"
    assert source.done_calls == [("+4930111", "unknown")]


def test_a_conversation_that_ended_while_the_server_was_down_is_not_redialed() -> None:
    """A person who already spoke to an agent, whose call ended while no
    Dirigent ran, was reached: closed at the last moment known (the
    connection), and the retry rules see "answered" -- not "unknown",
    which makes the record due again in an hour.  Its outcome says the
    server restarted (QA4: "pbx-lost" read as if the PBX had failed)."""
    _clock, _pbx, runner, source, log = setup(workload(busy=1.0), numbers=0)
    talked = Attempt("c-1-2", "c", Lead(8, "+4930222"), 0.0, channel_id="dial-c-1-2")
    talked.answered, talked.connected, talked.agent = 4.0, 6.0, "1001"
    log.begin(talked)
    closed = runner.reconcile()
    assert [a.id for a in closed] == ["c-1-2"]
    assert log.attempts["c-1-2"].outcome == "server-restart"
    assert log.attempts["c-1-2"].ended == 6.0
    assert source.done_calls == [("+4930222", "answered")]


def test_live_changes_are_validated_and_reach_the_strategy() -> None:
    _clock, _pbx, runner, _source, _log = setup(workload(busy=1.0), numbers=0)
    runner.update(mode="predictive")
    assert isinstance(runner.strategy, Predictive)
    runner.update(abandon_target=0.02, max_lines_per_agent=2.0)
    assert runner.settings.abandon_target == 0.02
    assert runner.strategy.limit == 0.02
    with pytest.raises(ValueError, match="abandon_target"):
        runner.update(abandon_target=0.1)
    assert runner.strategy.limit == 0.02  # a refused change changes nothing
    runner.update(mode="power", power_ratio=2.0)
    assert isinstance(runner.strategy, Power) and runner.strategy.ratio == 2.0


# -- the virtual-time benchmark -------------------------------------------------------------
def test_sim_dialer_is_reproducible_and_progressive_never_abandons_by_pacing() -> None:
    wl = standard_workload()
    a = run_lab(wl, agents=5, hours=0.5, strategy="progressive", seed=4)
    b = run_lab(wl, agents=5, hours=0.5, strategy="progressive", seed=4)
    a.pop("wall_seconds"), b.pop("wall_seconds")
    assert a == b
    # only persons that AMD took for machines are abandoned: never one waiting for an agent
    assert a["live_answers"] > 20
    assert a["abandoned"] == a["live_answers"] - a["live_connects"]


def test_predictive_keeps_agents_busier_than_progressive_within_the_cap() -> None:
    wl = standard_workload()
    prog = run_lab(wl, agents=20, hours=1.0, strategy="progressive", seed=2)
    pred = run_lab(wl, agents=20, hours=1.0, strategy="predictive", seed=2)
    assert pred["occupancy"] > prog["occupancy"] + 0.05
    assert pred["abandon_rate"] <= 0.05


def test_answer_rate_collapse_keeps_abandons_under_the_cap() -> None:
    data = {
        **json.loads(json.dumps(_standard_raw())),
        "phase": [
            {
                "start": 1800,
                "outcomes": {
                    "live": 0.08,
                    "machine": 0.32,
                    "no_answer": 0.45,
                    "busy": 0.05,
                    "invalid": 0.10,
                },
            }
        ],
    }
    wl = parse_workload(data)
    r = run_lab(wl, agents=20, hours=1.5, strategy="predictive", seed=5)
    assert r["abandon_rate"] <= 0.03
    assert r["worst_hour_abandon_rate"] <= 0.05


def _standard_raw() -> dict[str, Any]:
    import tomllib
    from pathlib import Path

    import sim

    with open(Path(sim.__file__).with_name("workloads") / "standard.toml", "rb") as fh:
        return tomllib.load(fh)


def test_cli_sim_dialer_json_and_bad_input(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    png = tmp_path / "p.png"
    code = main(
        [
            "sim",
            "dialer",
            "--agents",
            "3",
            "--hours",
            "0.2",
            "--strategy",
            "progressive",
            "--json",
            "--plot",
            str(png),
        ]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in (
        "occupancy",
        "talk_utilization",
        "abandon_rate",
        "worst_hour_abandon_rate",
        "idle_wait_mean",
        "idle_wait_p95",
        "dials_per_live_connect",
    ):
        assert key in report
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["sim", "dialer", "--strategy", "greedy", "--hours", "0.1"]) == 2
    assert "strategy" in capsys.readouterr().err


def test_cli_sim_dialer_runs_in_parallel_give_the_same_reports(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def reports(jobs: str) -> dict[str, Any]:
        argv = ["sim", "dialer", "--agents", "3,4", "--hours", "0.2", "--strategy", "progressive"]
        assert main([*argv, "--json", "--jobs", jobs]) == 0
        out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        for per_count in out.values():
            per_count.pop("wall_seconds")
        return out

    alone = reports("1")
    assert set(alone) == {"3", "4"} and alone["3"] != alone["4"]
    assert reports("2") == alone
    assert main(["sim", "dialer", "--jobs", "0"]) == 2
    assert "--jobs" in capsys.readouterr().err


# -- blended agents --------------------------------------------------------------------------
def _two_nailed_agents() -> tuple[HeapClock, SimPbx, SimTelephony, Router, Any]:
    """The in-process PBX (every answer a person) and a hub with agents 1001
    and 1002 on nailed-up lines, queues "c" (the campaign's) and "sales"."""
    from channels.voice import AgentEndpoint
    from tests.acd import InboundAcd

    clock = HeapClock()
    pbx = SimPbx(clock, seed=3, agents=2, workload=workload(live=1.0))
    tel = SimTelephony(pbx)
    router = Router({"c": QueueConfig("c"), "sales": QueueConfig("sales")})
    endpoints = {}
    for a in ("1001", "1002"):
        router.add_agent(Agent(a))
        endpoints[a] = AgentEndpoint(a, a, "nailed")
    acd = InboundAcd(tel, router, clock, endpoints, wrap_up=5)
    return clock, pbx, tel, router, acd


def test_a_campaign_call_transferred_to_an_agent_waits_in_the_queue_the_router_would_pick() -> None:
    """F19: a person transferred to a colleague is sent to the campaign's
    queue when the colleague serves it, else to the colleague's first
    configured queue -- the PBX's wait (music, fallback) and the colleague's
    waiting interaction name it.  Before, the alphabetically first of the
    colleague's queues was taken, whatever the router would have picked."""
    from channels.voice import AgentEndpoint
    from tests.acd import InboundAcd

    for colleague_queues, expected in ((["sales", "vip"], "vip"), (["sales", "billing"], "sales")):
        clock = HeapClock()
        pbx = SimPbx(clock, seed=3, agents=2, workload=workload(live=1.0))
        tel = SimTelephony(pbx)
        router = Router({n: QueueConfig(n) for n in ("vip", "sales", "billing")})
        endpoints = {}
        for a in ("1001", "1002"):
            router.add_agent(Agent(a))
            endpoints[a] = AgentEndpoint(a, a, "nailed")
        acd = InboundAcd(tel, router, clock, endpoints, wrap_up=5)
        acd.nail_up("1001", ["vip"])
        acd.nail_up("1002", colleague_queues)
        clock.run_until(2.0)
        acd.pause("1002", "break")  # dialled for nobody but 1001; the person waits for 1002
        source = ListSource([])
        source.queue = [Lead(0, "+4930123400001")]
        settings = CampaignSettings(
            "c", caller_id="+4930555000", amd_false_positive=0.0, wrap_up=5, queue="vip"
        )
        runner = CampaignRunner(
            validate(settings),
            tel,
            acd,  # the runner's AgentDesk
            clock,
            source,
            Progressive(),
            center=acd,
            ticks_router=False,
        )
        acd.start()
        runner.start()
        clock.run_until(20.0)
        (attempt,) = runner.live.values()
        assert attempt.agent == "1001" and attempt.connected is not None
        acd.transfer("1001", attempt.id, to_agent="1002")
        clock.run_until(22.0)
        channel = pbx.channels[attempt.channel_id]
        assert channel.variables["DIRIGENT_QUEUE"] == expected, "on hold in that queue"
        (waiting,) = router.waiting.values()
        assert waiting.agent == "1002" and waiting.queue == expected
        runner.stop()
        acd.stop()


def test_blended_agents_are_yielded_to_an_inbound_queue_whose_callers_wait() -> None:
    clock, pbx, tel, _router, acd = _two_nailed_agents()
    for a in ("1001", "1002"):
        acd.nail_up(a, ["sales", "c"])
    clock.run_until(2.0)
    source = ListSource([f"+49301234{i:04d}" for i in range(50)])
    runner = CampaignRunner(
        validate(CampaignSettings("c", caller_id="+4930555000", amd_false_positive=0.0, wrap_up=5)),
        tel,
        acd,  # the runner's AgentDesk
        clock,
        source,
        Progressive(),
        center=acd,
        reserved_agents=acd.agents_needed_inbound,
        ticks_router=False,
    )
    acd.start()
    runner.start()
    clock.run_until(20.0)
    assert runner.stats.connected == 2, "both agents talk to campaign customers (60 s)"
    assert runner.snapshot(clock.seconds()).agents == 2

    pbx.inbound_call(queue="sales")
    clock.run_until(21.0)
    assert len(acd.calls) == 1 and acd.agents_needed_inbound(clock.seconds())
    # the dialer no longer counts on one of the two agents ...
    assert runner.snapshot(clock.seconds()).agents == 1
    dials = runner.stats.dials
    clock.run_until(120.0)
    # ... so the first agent to free up takes the caller, and the campaign dials for the other
    (call,) = acd.calls.values()
    assert call.answered_at is not None and call.agent in ("1001", "1002")
    assert isinstance(runner.log, MemoryAttemptLog)
    first_free = min(a.connected for a in runner.log.attempts.values() if a.connected) + 60 + 5
    assert call.answered_at == pytest.approx(first_free, abs=1.5), "talk 60 s, wrap-up 5 s"
    assert runner.stats.dials == dials + 1
    assert runner.stats.abandoned == 0


# -- preview mode ----------------------------------------------------------------------------
def preview_setup(wl: Any, auto: float | None = None) -> Any:
    clock, pbx, runner, source, log = setup(wl, agents=1, numbers=5)
    runner.update(mode="preview", preview_auto_dial=auto)
    shown: list[tuple[str, str]] = []
    runner.preview_listeners.append(lambda agent, p: shown.append((agent, p.lead.number)))
    return clock, pbx, runner, source, log, shown


def test_preview_shows_the_record_first_and_the_agent_dials_or_skips() -> None:
    clock, _pbx, runner, source, log, shown = preview_setup(workload(live=1.0))
    runner.start()
    clock.run_until(10.0)
    agent = runner.desk.known_agent("1001")
    assert shown == [("1001", "+493012340000")] and log.order == [], "nothing dialed yet"
    assert agent.pause_reason == "preview", "nothing else is routed to an agent reading a record"

    runner.preview_skip("1001")  # back to the list, no attempt
    clock.run_until(11.0)
    assert shown[-1] == ("1001", "+493012340001") and log.order == []
    assert source.queue[-1].number == "+493012340000"

    attempt = runner.preview_dial("1001")
    clock.run_until(12.0)
    assert attempt.agent == "1001" and attempt.lead.number == "+493012340001"
    with pytest.raises(ValueError, match="no record to dial"):
        runner.preview_dial("1001")  # dialing already
    clock.run_until(30.0)
    # the person reached the agent who dialed, with no AMD in the way
    assert attempt.connected is not None and attempt.verdict == "human"
    assert attempt.connected - attempt.answered < 2.0
    clock.run_until(200.0)  # talk 60 s, then at most 120 s of wrap-up: the next record comes
    assert attempt.outcome == "answered"
    assert shown[-1] == ("1001", "+493012340002")


def test_a_preview_dial_with_the_pbx_link_down_is_unavailable_naming_pbx() -> None:
    """As a transfer with the link down (a 503 to the API, not the 400 of a
    bad request); the record stays on screen for a dial once the link is back."""
    clock, pbx, runner, _source, log, _shown = preview_setup(workload(live=1.0))
    runner.start()
    clock.run_until(10.0)
    pbx.booted = False
    with pytest.raises(Unavailable) as caught:
        runner.preview_dial("1001")
    assert (caught.value.field, caught.value.reason) == (
        "pbx",
        "the PBX link is down; dial again once it is back",
    )
    assert runner.previews["1001"].attempt is None and log.order == []
    pbx.booted = True
    assert runner.preview_dial("1001").agent == "1001"


def test_a_preview_refused_or_unwritten_at_the_dial_gives_the_agent_the_next_record() -> None:
    """The attempt log may refuse at once (the gate asked again, no writer
    thread) or fail to write the row: the record on screen must not stay
    there with a dead attempt (the agent paused "preview" for good, skip and
    dial both refused), and whoever waits on the dial is told (found in
    review)."""
    from dialer.compliance import Verdict

    clock, _pbx, runner, _source, log, shown = preview_setup(workload(live=1.0))
    answers = iter([Verdict(False, "on the global do-not-call list", "dnc"), RuntimeError("db")])

    def begin(attempt: Attempt) -> Any:
        answer = next(answers, None)
        if isinstance(answer, Exception):
            raise answer
        return answer if answer is not None else MemoryAttemptLog.begin(log, attempt)

    log.begin = begin
    runner.start()
    clock.run_until(10.0)
    refused = runner.preview_dial("1001")
    assert refused.begun is not None and refused.begun.called
    assert refused.begun.result.check == "dnc"
    clock.run_until(11.0)
    assert runner.stats.refused == {"dnc": 1} and refused.refused_by == "dnc"
    assert runner.previews["1001"].attempt is None, "the next record, not dialed yet"
    assert shown[-1][1] != refused.lead.number
    failed = runner.preview_dial("1001")  # its row cannot be written
    assert isinstance(failed.begun.result, Unavailable) and failed.outcome == "failed"
    clock.run_until(12.0)
    assert runner.previews["1001"].attempt is None and shown[-1][1] != failed.lead.number
    assert runner.desk.known_agent("1001").pause_reason == "preview"


def test_preview_auto_dials_after_n_seconds_and_unanswered_calls_bring_the_next_record() -> None:
    clock, _pbx, runner, source, log, shown = preview_setup(workload(busy=1.0), auto=5.0)
    runner.start()
    clock.run_until(3.0)
    assert log.order == []
    clock.run_until(9.0)
    assert len(log.order) == 1, "dialed by itself after 5 s"
    clock.run_until(30.0)
    first = log.attempts[log.order[0]]
    assert first.outcome == "busy"
    assert len(shown) >= 2 and runner.desk.known_agent("1001").pause_reason == "preview"
    # a campaign pause gives the record on screen back and frees the agent
    on_screen = runner.previews["1001"].lead.number
    runner.pause()
    assert runner.previews == {} and runner.desk.known_agent("1001").pause_reason is None
    assert on_screen in [lead.number for lead in source.queue]


def _bridge_owner(pbx: SimPbx, call: str) -> str | None:
    """On the PBX's side: whose nailed-up bridge the channel ``call`` is in."""
    for bridge in pbx.bridges.values():
        if call in bridge.members:
            return bridge.owner
    return None


def test_an_agent_transfers_a_campaign_call_blind_to_a_queue_and_a_colleague_takes_it() -> None:
    """A hand-over: the campaign's attempt ends answered with the first
    agent (who wraps up), the PBX announces the person in the target queue
    like any caller, and the voice side offers it to the colleague, with the
    number and the history carried over.  On the PBX the person leaves the
    first agent's bridge for the colleague's; one interaction at any time."""
    clock, pbx, tel, router, acd = _two_nailed_agents()
    acd.nail_up("1001", ["c"])
    acd.nail_up("1002", ["sales"])  # not the campaign's: reached only by the transfer
    clock.run_until(2.0)
    source = ListSource([])
    # a list column named like the attempt's key: the attempt wins on the colleague's pop
    source.queue = [Lead(0, "+4930123400001", extra={"attempt": "from-the-list", "plan": "gold"})]
    runner = CampaignRunner(
        validate(CampaignSettings("c", caller_id="+4930555000", amd_false_positive=0.0, wrap_up=5)),
        tel,
        acd,  # the runner's AgentDesk
        clock,
        source,
        Progressive(),
        center=acd,
        ticks_router=False,
    )
    pops: list[OfferMade] = []
    acd.bus.subscribe(OfferMade, pops.append)
    acd.start()
    runner.start()
    clock.run_until(20.0)
    (attempt,) = runner.live.values()
    assert attempt.agent == "1001" and attempt.connected is not None
    assert _bridge_owner(pbx, attempt.channel_id) == "1001"

    pbx.booted = False  # the PBX link is down: the person cannot be moved, carl keeps the call
    with pytest.raises(Unavailable, match="pbx: the PBX link is down"):
        acd.transfer("1001", attempt.id, queue="sales")
    assert attempt.open and router.handling[attempt.id] == "1001"
    pbx.booted = True
    acd.transfer("1001", attempt.id, queue="sales")
    assert attempt.outcome == "answered" and source.done_calls == [("+4930123400001", "answered")]
    assert router.agents["1001"].state.value == "wrap_up"
    clock.run_until(25.0)
    assert _bridge_owner(pbx, attempt.channel_id) == "1002", "with the colleague on the PBX"
    (handed,) = acd.calls.values()
    it = handed.interaction
    assert handed.agent == "1002" and router.handling[it.id] == "1002"
    assert it.customer == "+4930123400001" and it.direction.value == "outbound"
    assert [h.event.value for h in it.history] == [
        "queued",
        "answered",
        "transferred",
        "queued",
        "answered",
    ]
    assert len(router.handling) == 1 and not router.waiting and not router.offered
    # the colleague's screen pop: the campaign, and the attempt the record's result goes to
    first, second = pops
    assert (first.agent, first.campaign, first.deadline) == ("1001", "c", None)
    assert (second.agent, second.campaign) == ("1002", "c")
    assert second.customer == "+4930123400001" and second.attributes["attempt"] == attempt.id
    assert second.attributes["plan"] == "gold", "the record's fields are carried over"

    clock.run_until(90.0)  # the person talks 60 s in all, then hangs up
    assert not acd.calls and not router.handling and not router.waiting and not router.offered
    assert runner.stats.connected == 1 and runner.stats.dials == 1
    assert router.agents["1002"].state.value in ("wrap_up", "ready")
