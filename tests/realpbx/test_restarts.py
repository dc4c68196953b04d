"""Restarts on the real PBX: Asterisk's ``core restart now`` in the middle
of a campaign (every call cut, nailed-up legs included), and a kill -9 of
the Dirigent server in the middle of a campaign, then a new process."""

from __future__ import annotations

import time

import pytest

from tests.realpbx.server import AgentSpec, CampaignSpec, fresh_numbers, wait_until

pytestmark = pytest.mark.realpbx

AGENTS = [
    AgentSpec("carl", "1003", "nailed", ["out"]),
    AgentSpec("dora", "1005", "nailed", ["out"]),
]
BRIDGES = {"carl": "1003", "dora": "1005"}


def customers_without_agent(pbx) -> list[str]:
    """Bridges (agent ConfBridges) that hold a customer but not the agent's phone."""
    bad = []
    for bridge in pbx.bridges():
        if not bridge.name.startswith("agent-"):
            continue
        agent = bridge.name.removeprefix("agent-")
        phone = BRIDGES.get(agent, agent)
        has_customer = any(c.startswith("PJSIP/customers-") for c in bridge.channels)
        has_agent = any(c.startswith(f"PJSIP/{phone}-") for c in bridge.channels)
        if has_customer and not has_agent:
            bad.append(f"{bridge.name}: {bridge.channels}")
    return bad


def all_nailed(pbx) -> bool:
    confs = pbx.confbridges()
    return all(confs.get(f"agent-{a}", 0) >= 1 for a in BRIDGES) and all(
        pbx.bridge_with(phone) for phone in BRIDGES.values()
    )


def test_core_restart_mid_campaign_renails_every_agent_and_stores_cut_calls_as_unknown(
    pbx, farm, dirigent
):
    numbers = fresh_numbers(8)
    kinds = ["human", "human", "no_answer", "no_answer", "human", "human", "human", "human"]
    farm.script(dict(zip(numbers, kinds, strict=True)))
    server = dirigent(
        AGENTS,
        queues=[],
        campaigns=[
            CampaignSpec(
                "out", mode="power", extra={"power_ratio": 2.0, "max_lines_per_agent": 2.0}
            )
        ],
        lists={"out": numbers},
    )
    server.wait_healthy()
    wait_until(
        lambda: pbx.bridge_with("customers", "1003") or pbx.bridge_with("customers", "1005"),
        30,
        "a person connected to a nailed-up agent before the restart",
    )
    restart_at = time.monotonic()
    pbx.cli("core restart now")
    time.sleep(1.0)
    pbx.wait_booted()
    violations: list[str] = []

    def renailed() -> bool:
        violations.extend(customers_without_agent(pbx))
        return all_nailed(pbx)

    wait_until(
        renailed,
        30,
        "every nailed-up agent (carl on 1003, dora on 1005) back in its ConfBridge after "
        "`core restart now` (Dirigent must re-nail them)",
    )
    renail_seconds = time.monotonic() - restart_at
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        violations.extend(customers_without_agent(pbx))
        time.sleep(0.5)
    assert not violations, f"persons put into an agent's bridge without the agent: {violations}"
    for agent in BRIDGES:
        view = server.agent(agent)
        assert view["state"] in ("ready", "busy", "wrap_up"), (agent, view)
    rows = server.query(
        "SELECT e164, outcome, hangup_cause FROM attempt WHERE outcome IS NOT NULL ORDER BY id"
    )
    cut = [dict(r) for r in rows if r["e164"] in numbers[:4]]
    wrong = [
        r
        for r in cut
        if r["outcome"] in ("no-answer", "failed", "invalid") or r["hangup_cause"] == 4
    ]
    assert not wrong, (
        f"calls cut by the restart stored as {wrong}: they must be unknown (or pbx-lost), "
        "and SoftHangupRequest's flag 4 is not a Q.850 cause"
    )
    print(f"re-nailed {renail_seconds:.2f} s after core restart now")


def test_kill9_of_the_server_mid_campaign_no_redial_no_stray_originate_response(
    pbx, farm, dirigent
):
    numbers = fresh_numbers(6)
    kinds = ["no_answer", "no_answer", "human", "human", "human", "human"]
    kind_of = dict(zip(numbers, kinds, strict=True))
    farm.script(kind_of)
    server = dirigent(AGENTS, queues=[], campaigns=[CampaignSpec("out")], lists={"out": numbers})
    server.wait_healthy()
    wait_until(
        lambda: farm.invites(numbers[0]) and farm.invites(numbers[1]),
        30,
        "the first two numbers dialed (ringing at the far end)",
    )
    time.sleep(1.0)
    server.kill9()
    server.start()
    server.wait_healthy()

    def all_closed():
        found = _by_number(server)
        done = len(found) == len(numbers) and all(a[-1]["outcome"] for a in found.values())
        return done and found

    found = wait_until(all_closed, 60, "every number dialed and closed after the restart")
    # no redial of an attempt that was live when the server died
    for n in numbers[:2]:
        assert farm.invites(n) == 1, (
            f"{n} was dialed {farm.invites(n)} times: the live attempt of the dead process "
            "was redialed"
        )
        assert [a["outcome"] for a in found[n]] == ["unknown"], found[n]
    # dials per number: one INVITE per attempt row
    for n in numbers:
        assert farm.invites(n) == len(found[n]), (n, farm.invites(n), found[n])
    # every person who answered after the restart reached an agent
    for n in numbers[2:]:
        outcomes = [a["outcome"] for a in found[n]]
        assert outcomes == ["answered"], (
            f"{n} answered but its attempt is {outcomes}: a late OriginateResponse of the dead "
            "process may have been taken as the answer to a new Originate"
        )
    assert "Traceback" not in server.log(), server.log()[-2000:]
    # the dead process's originates end (hung up at the resync, or at their
    # ring timeout) and Asterisk sends their OriginateResponse to every AMI
    # session: the new process must see them as not its own
    _status, metrics = server.request("GET", "/metrics", auth=False)
    strays = [
        line
        for line in str(metrics).splitlines()
        if line.startswith("dirigent_ami_stray_responses_total{")
    ]
    print("strays:", strays)
    assert any(float(line.rsplit(" ", 1)[1]) >= 1 for line in strays), (
        "the dead process's late OriginateResponses were not recognised (and counted) as "
        f"another process's: {strays}"
    )


def _by_number(server):
    found: dict[str, list] = {}
    for r in server.query("SELECT e164, outcome, agent_code FROM attempt ORDER BY id"):
        found.setdefault(r["e164"], []).append(dict(r))
    return found
