"""Inbound calls on the real PBX: a DID routed into ``dirigent-inbound``,
the caller announced to Dirigent, connected to a ring-mode agent (the
phone is dialled) or a nailed-up one (the caller joins the agent's
ConfBridge); the dialplan's fallback while Dirigent is down."""

from __future__ import annotations

import pytest

from tests.realpbx.callers import InboundCaller
from tests.realpbx.server import NAILED_WITHIN, AgentSpec, wait_until

pytestmark = pytest.mark.realpbx


def test_inbound_call_rings_a_ring_mode_agent_and_is_bridged(pbx, farm, dirigent):
    server = dirigent([AgentSpec("anna", "1001", "ring", ["sales"])])
    server.wait_healthy()
    wait_until(
        lambda: server.agent("anna")["state"] == "ready", 15, "agent anna (ring, 1001) ready"
    )
    answered_before = farm.phones.events_of("1001").count("answered")
    with InboundCaller(pbx, "4915112340001") as caller:
        caller.dial("4930555000")
        wait_until(caller.answered, 10, "the PBX answered the inbound caller (dirigent-inbound)")
        wait_until(
            lambda: farm.phones.events_of("1001").count("answered") > answered_before,
            15,
            "anna's phone 1001 rang and answered: the caller was never put through",
        )
        wait_until(
            lambda: pbx.bridge_with("customers", "1001"),
            10,
            "the caller and phone 1001 in one bridge on the PBX",
        )
        wait_until(
            lambda: server.agent("anna")["state"] == "busy",
            10,
            "Dirigent shows anna busy with the call",
        )
    wait_until(
        lambda: not any("PJSIP/1001-" in c for c in pbx.channel_names()),
        10,
        "phone 1001's leg gone after the caller hung up",
    )


def test_inbound_call_joins_a_nailed_agents_bridge(pbx, farm, dirigent):
    server = dirigent([AgentSpec("bert", "1002", "nailed", ["nailed"])], queues=["nailed"])
    server.wait_healthy()
    wait_until(
        lambda: pbx.confbridges().get("agent-bert") == 1,
        15,
        "bert's phone 1002 nailed up: alone in ConfBridge agent-bert on the PBX",
    )
    wait_until(lambda: server.agent("bert")["state"] == "ready", 10, "agent bert ready")
    with InboundCaller(pbx, "4915112340002") as caller:
        caller.dial("4930555100")
        wait_until(caller.answered, 10, "the PBX answered the inbound caller")
        bridge = wait_until(
            lambda: pbx.bridge_with("customers", "1002"),
            15,
            "the caller moved into bert's ConfBridge with phone 1002",
        )
        assert bridge.name == "agent-bert", bridge
        wait_until(lambda: server.agent("bert")["state"] == "busy", 10, "Dirigent shows bert busy")
    wait_until(
        lambda: pbx.confbridges().get("agent-bert") == 1,
        10,
        "after the caller hung up, bert stays nailed up alone in agent-bert",
    )


def test_a_caller_with_a_nailed_agent_is_hung_up_when_the_agents_line_drops(pbx, farm, dirigent):
    """The caller joins the agent's ConfBridge with ``end_marked``: when the
    agent's line goes (a phone unplugged, a network cut), Asterisk puts the
    caller out and dirigent-join hangs up; Dirigent shows the agent paused
    "phone hung up" (not offered calls it has no line for).  (The simulated
    PBX left the caller alone in the conference.)"""
    server = dirigent([AgentSpec("bert", "1002", "nailed", ["nailed"])], queues=["nailed"])
    server.wait_healthy()
    wait_until(lambda: pbx.confbridges().get("agent-bert") == 1, NAILED_WITHIN, "bert nailed up")
    wait_until(lambda: server.agent("bert")["state"] == "ready", 10, "agent bert ready")
    with InboundCaller(pbx, "4915112340007") as caller:
        caller.dial("4930555100")
        wait_until(lambda: pbx.bridge_with("customers", "1002"), 15, "caller with bert")
        (leg,) = [c for c in pbx.channel_names() if c.startswith("PJSIP/1002-")]
        pbx.cli(f"channel request hangup {leg}")
        wait_until(
            lambda: not any(c.startswith("PJSIP/customers-") for c in pbx.channel_names()),
            10,
            "the caller's channel hung up by the PBX once bert's line was gone",
        )
    wait_until(
        lambda: server.agent("bert").get("pause_reason") == "phone hung up",
        10,
        "Dirigent shows bert paused: phone hung up",
    )
    assert "agent-bert" not in pbx.confbridges(), "nobody left in bert's conference"


def test_inbound_callers_number_is_stored(pbx, farm, dirigent):
    """Finding 6: the screen pop and the interaction need the caller's number."""
    server = dirigent([AgentSpec("anna", "1001", "ring", ["sales"])])
    server.wait_healthy()
    wait_until(lambda: server.agent("anna")["state"] == "ready", 15, "agent anna ready")
    number = "4915112340006"
    with InboundCaller(pbx, number) as caller:
        caller.dial("4930555000")
        wait_until(caller.answered, 10, "the PBX answered the inbound caller")
        wait_until(lambda: pbx.bridge_with("customers", "1001"), 15, "caller put through to 1001")
    rows = wait_until(
        lambda: server.query(
            "SELECT customer, queue_name FROM interaction WHERE direction = 'inbound'"
        ),
        10,
        "the inbound interaction written to the database",
    )
    assert [r["customer"] for r in rows] == [number], (
        f"interaction.customer is {[r['customer'] for r in rows]}, not the caller's number "
        f"{number} that Asterisk announced (UserEvent CallerIDNum)"
    )


def test_ring_mode_agent_with_a_named_endpoint_gets_the_call(pbx, farm, dirigent):
    """Finding 5: an endpoint that is not all digits (``alice``)."""
    server = dirigent([AgentSpec("alice", "alice", "ring", ["alice"])], queues=["alice"])
    server.wait_healthy()
    wait_until(lambda: server.agent("alice")["state"] == "ready", 15, "agent alice ready")
    mark = pbx.log_mark()
    with InboundCaller(pbx, "4915112340005") as caller:
        caller.dial("4930555102")
        wait_until(caller.answered, 10, "the PBX answered the inbound caller")
        try:
            wait_until(
                lambda: pbx.bridge_with("customers", "alice"),
                15,
                "the caller put through to phone alice",
            )
        except AssertionError as exc:
            log = pbx.log_since(mark)
            seen = [line for line in log.splitlines() if "invalid extension" in line]
            raise AssertionError(
                f"{exc}; the caller was dropped instead, Asterisk: {seen[:2] or log[-800:]}"
            ) from None


def test_fallback_queue_takes_the_call_while_dirigent_is_down(pbx, farm):
    """No Dirigent at all: DID 4930555001 waits DIRIGENT_WAIT=10 s, then
    Queue(fallback) rings phone 1004 (the lab's fallback member)."""
    mark = pbx.log_mark()
    answered_before = farm.phones.events_of("1004").count("answered")
    with InboundCaller(pbx, "4915112340003") as caller:
        caller.dial("4930555001")
        wait_until(caller.answered, 10, "the PBX answered the inbound caller")
        assert pbx.bridge_with("customers", "1004") is None, "fallback before DIRIGENT_WAIT"
        wait_until(
            lambda: pbx.bridge_with("customers", "1004"),
            25,
            "after DIRIGENT_WAIT (10 s) the fallback queue put the caller through to 1004",
        )
        assert farm.phones.events_of("1004").count("answered") == answered_before + 1
    log = pbx.log_since(mark)
    assert 'Queue("' in log or "Queue(" in log, "the fallback ran Queue()"
    assert "DirigentFallback" in log or "UserEvent" in log
