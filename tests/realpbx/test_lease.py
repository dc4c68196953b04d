"""One Dirigent per PBX, on the real Asterisk (issue 15, finding 7): a
second ``dirigent serve`` pointed at a PBX another one drives finds the
lease in the PBX's AstDB (``database show dirigent``), stays off it and
says why, and the first one's agent keeps its line; ``takeover = true``
takes the PBX on purpose: the first one leaves, the agent still has one
line, and the new owner puts callers through to it."""

from __future__ import annotations

import time

import pytest

from tests.realpbx.callers import InboundCaller
from tests.realpbx.server import AgentSpec, Dirigent, wait_until

pytestmark = pytest.mark.realpbx

CARL = [AgentSpec("carl", "1003", "nailed", ["nailed"])]


def _lines_of(pbx, endpoint: str) -> list[str]:
    return [c for c in pbx.channel_names() if c.startswith(f"PJSIP/{endpoint}-")]


def _refused(server: Dirigent) -> str | None:
    _status, health = server.health()
    return health["pbx"]["lab"].get("refused")


def _nailed(pbx, server: Dirigent) -> None:
    wait_until(
        lambda: pbx.confbridges().get("agent-carl") == 1 and len(_lines_of(pbx, "1003")) == 1,
        20,
        "carl's phone 1003 nailed up: one line, alone in ConfBridge agent-carl",
    )
    wait_until(lambda: server.agent("carl")["state"] == "ready", 10, "agent carl ready")


def test_a_second_dirigent_stays_off_the_pbx_and_the_first_ones_agent_keeps_its_line(
    pbx, farm, dirigent
):
    first = dirigent(CARL, queues=["nailed"])
    first.wait_healthy()
    _nailed(pbx, first)
    line = _lines_of(pbx, "1003")
    assert "dirigent/owner" in pbx.cli("database show dirigent")

    second = dirigent(CARL, queues=["nailed"])  # its own database: another installation
    reason = wait_until(lambda: _refused(second), 20, "the second Dirigent refused by the lease")
    assert reason.startswith("driven by another Dirigent ("), reason
    assert second.health()[0] == 503
    time.sleep(4)  # two of the first one's lease renewals, the second's retries
    log = second.log()
    assert log.count("another Dirigent") == 1, "said once, not at every retry"
    assert "takeover = true" in log, "the log does not say how to take the PBX over"
    assert _lines_of(pbx, "1003") == line, "the second Dirigent touched carl's line"
    assert pbx.confbridges().get("agent-carl") == 1
    assert first.health()[0] == 200 and _refused(first) is None
    with InboundCaller(pbx, "4915112340031") as caller:
        caller.dial("4930555100")
        wait_until(
            lambda: pbx.bridge_with("customers", "1003"),
            15,
            "the first Dirigent still puts a caller through to carl",
        )
    wait_until(
        lambda: first.query("SELECT id FROM interaction WHERE agent_code = 'carl'"),
        10,
        "the first Dirigent's record of carl's call",
    )
    assert not second.query("SELECT id FROM interaction"), "the second one recorded a call"


def test_takeover_takes_the_pbx_the_first_leaves_and_the_agent_has_one_line(pbx, farm, dirigent):
    first = dirigent(CARL, queues=["nailed"])
    first.wait_healthy()
    _nailed(pbx, first)

    second = dirigent(CARL, queues=["nailed"], start=False)
    text = second.config.read_text()
    second.config.write_text(
        text.replace("keepalive_timeout = 2.0\n", "keepalive_timeout = 2.0\ntakeover = true\n", 1)
    )
    second.start()
    second.wait_healthy()
    reason = wait_until(lambda: _refused(first), 15, "the first Dirigent leaving the PBX")
    assert reason.startswith("driven by another Dirigent ("), reason
    assert "taking it over" in second.log()
    _nailed(pbx, second)
    time.sleep(3)  # the first one's retries: it must not nail carl up again
    assert len(_lines_of(pbx, "1003")) == 1, f"carl's lines: {_lines_of(pbx, '1003')}"
    assert _refused(first) is not None
    with InboundCaller(pbx, "4915112340032") as caller:
        caller.dial("4930555100")
        wait_until(
            lambda: pbx.bridge_with("customers", "1003"),
            15,
            "the new owner puts a caller through to carl",
        )
        wait_until(lambda: second.agent("carl")["state"] == "busy", 10, "carl busy on the new one")
    wait_until(
        lambda: second.query("SELECT id FROM interaction WHERE agent_code = 'carl'"),
        10,
        "the new owner's record of carl's call",
    )
