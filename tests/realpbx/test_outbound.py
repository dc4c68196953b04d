"""Outbound campaigns on the real PBX: the far end of the ``customers``
trunk answers each number as scripted (a person, a machine, busy 486,
invalid 404, congestion 503, ringing until cancelled); outcomes are stored
by hang-up cause, AMD decides on real audio, a person reaches a nailed-up
agent, a machine is hung up or hears the machine message, and a person
with no agent free hears the abandon message."""

from __future__ import annotations

import pytest

from tests.realpbx.server import NAILED_WITHIN, AgentSpec, CampaignSpec, fresh_numbers, wait_until

pytestmark = pytest.mark.realpbx

AGENTS = [
    AgentSpec("carl", "1003", "nailed", ["out"]),
    AgentSpec("dora", "1005", "nailed", ["out"]),
]


def attempts_by_number(server):
    rows = server.query(
        "SELECT e164, outcome, hangup_cause, verdict, agent_code, connected_at, abandoned "
        "FROM attempt ORDER BY id"
    )
    found: dict[str, list] = {}
    for r in rows:
        found.setdefault(r["e164"], []).append(dict(r))
    return found


def closed(server, numbers):
    found = attempts_by_number(server)
    return all(n in found and all(a["outcome"] for a in found[n]) for n in numbers) and found


def test_campaign_meets_every_outcome_stored_by_hangup_cause(pbx, farm, dirigent):
    kinds = ["human", "machine", "busy", "invalid", "congestion", "no_answer"]
    numbers = fresh_numbers(len(kinds))
    kind_of = dict(zip(numbers, kinds, strict=True))
    farm.script(kind_of)
    mark = pbx.log_mark()
    server = dirigent(AGENTS, queues=[], campaigns=[CampaignSpec("out")], lists={"out": numbers})
    server.wait_healthy()
    found = wait_until(
        lambda: closed(server, numbers),
        60,
        "every number of the campaign dialed and its attempt closed",
    )
    got = {kind_of[n]: (a[0]["outcome"], a[0]["hangup_cause"]) for n, a in found.items()}
    assert {k: o for k, (o, _c) in got.items()} == {
        "human": "answered",
        "machine": "machine",
        "busy": "busy",
        "invalid": "invalid",
        "congestion": "congestion",
        "no_answer": "no-answer",
    }, got
    causes = {k: c for k, (_o, c) in got.items()}
    assert (causes["busy"], causes["invalid"], causes["congestion"]) == (17, 1, 34), causes
    assert causes["no_answer"] == 19, (
        f"a ring timeout is stored with hang-up cause {causes['no_answer']!r}; Asterisk sent 19"
    )
    human = found[numbers[0]][0]
    assert human["verdict"] == "human" and human["agent_code"] in ("carl", "dora"), human
    assert human["connected_at"] is not None
    # the PBX's side: one INVITE per attempt, what AMD said, who was bridged
    invites = {kind_of[n]: farm.invites(n) for n in numbers}
    assert invites == dict.fromkeys(kinds, 1), (
        f"INVITEs per number at the trunk's far end: {invites}"
    )
    log = pbx.log_since(mark)
    assert "DirigentAMD,Status: HUMAN" in log and "DirigentAMD,Status: MACHINE" in log
    assert "hung up by the other side" in farm.phones.events_of(numbers[1]), (
        "the machine was not hung up by the PBX"
    )


def test_amd_human_is_connected_to_a_nailed_agent_on_the_pbx(pbx, farm, dirigent):
    (number,) = fresh_numbers(1)
    farm.script({number: "human"})
    server = dirigent(
        AGENTS[:1], queues=[], campaigns=[CampaignSpec("out")], lists={"out": [number]}
    )
    server.wait_healthy()
    wait_until(
        lambda: pbx.confbridges().get("agent-carl") == 1, NAILED_WITHIN, "carl nailed up on 1003"
    )
    bridge = wait_until(
        lambda: pbx.bridge_with("customers", "1003"),
        20,
        "the person who answered joined carl's ConfBridge with phone 1003",
    )
    assert bridge.name == "agent-carl"
    wait_until(lambda: server.agent("carl")["state"] == "busy", 5, "Dirigent shows carl busy")


def test_machine_message_is_played_to_a_machine(pbx, farm, dirigent):
    """Finding 4: machine_action = "message" plays dirigent/message."""
    (number,) = fresh_numbers(1)
    farm.script({number: "machine"})
    mark = pbx.log_mark()
    server = dirigent(
        AGENTS[:1],
        queues=[],
        campaigns=[CampaignSpec("out", machine_action="message")],
        lists={"out": [number]},
    )
    server.wait_healthy()
    wait_until(
        lambda: server.query("SELECT outcome FROM attempt WHERE outcome IS NOT NULL"),
        40,
        "the machine's attempt closed",
    )
    log = pbx.log_since(mark)
    played = [line for line in log.splitlines() if "Playing 'dirigent/message" in line]
    assert played, "the machine never heard the machine message; Asterisk: " + repr(
        [
            line
            for line in log.splitlines()
            if "invalid extension" in line or "Playback failed" in line
        ][:3]
    )
    assert "Playback failed" not in log
    assert farm.invites(number) == 1


def test_abandon_message_plays_when_no_agent_is_free(pbx, farm, dirigent):
    """Finding 1: a person answers, no agent is free: the abandon message
    (TSR/Ofcom) must actually play, not "Playback failed"."""
    numbers = fresh_numbers(3)
    farm.script(dict.fromkeys(numbers, "human"))
    mark = pbx.log_mark()
    server = dirigent(
        AGENTS[:1],
        queues=[],
        campaigns=[
            CampaignSpec(
                "out", mode="power", extra={"power_ratio": 3.0, "max_lines_per_agent": 3.0}
            )
        ],
        lists={"out": numbers},
    )
    server.wait_healthy()
    wait_until(lambda: closed(server, numbers), 45, "the three attempts closed")
    found = attempts_by_number(server)
    outcomes = sorted(a[0]["outcome"] for a in found.values())
    assert "abandoned" in outcomes, f"outcomes {outcomes}: no person was left without an agent"
    log = pbx.log_since(mark)
    failed = [line for line in log.splitlines() if "Playback failed" in line]
    assert not failed, f"the abandoned person heard silence: {failed[0]}"
    assert "Playing 'dirigent/abandon" in log, "the abandon message was never played"
    assert {farm.invites(n) for n in numbers} == {1}


def test_a_person_the_agent_transfers_to_a_queue_reaches_the_colleague_on_the_pbx(
    pbx, farm, dirigent
):
    """Carl takes a person the campaign reached and transfers the call to
    the sales queue: on the PBX the person leaves carl's ConfBridge for
    dora's (phone 1005); Dirigent shows dora busy, carl in wrap-up, and the
    attempt row closed answered with carl."""
    (number,) = fresh_numbers(1)
    farm.script({number: "human"})
    talk, farm.customers.talk = farm.customers.talk, 30.0  # long enough to be transferred
    try:
        agents = [AGENTS[0], AgentSpec("dora", "1005", "nailed", ["sales"])]
        server = dirigent(
            agents, queues=["sales"], campaigns=[CampaignSpec("out")], lists={"out": [number]}
        )
        server.wait_healthy()
        with_carl = wait_until(
            lambda: pbx.bridge_with("customers", "1003"), 25, "the person in carl's ConfBridge"
        )
        assert with_carl.name == "agent-carl"
        work = wait_until(lambda: server.agent("carl")["work"], 5, "carl's call in Dirigent")
        ref = work[0]["interaction"]
        status, body = server.request(
            "POST", f"/api/interactions/{ref}/transfer", {"queue": "sales"}
        )
        assert status == 200, body
        with_dora = wait_until(
            lambda: pbx.bridge_with("customers", "1005"), 15, "the person in dora's ConfBridge"
        )
        assert with_dora.name == "agent-dora"
        assert pbx.bridge_with("customers", "1003") is None, "no longer with carl"
        wait_until(lambda: server.agent("dora")["state"] == "busy", 5, "Dirigent shows dora busy")
        assert server.agent("carl")["state"] in ("wrap_up", "ready")
        (row,) = server.query("SELECT outcome, agent_code FROM attempt")
        assert (row["outcome"], row["agent_code"]) == ("answered", "carl")
    finally:
        farm.customers.talk = talk
