"""Inbound callers across restarts on the real PBX (QA3 findings 6, 7, 8).

The PBX keeps its calls while ``dirigent serve`` stops and starts again: a
ring-mode agent's conversation (the caller's channel Dialed her phone from
``dirigent-connect``; the two share a bridge) stays hers -- busy, her phone
not rung for the next caller -- and a caller waiting on hold goes to the
free agent as soon as the new process is up, not to the dialplan's fallback
a minute later.  When Asterisk itself dies, a caller on hold is lost with
it, not counted as having abandoned."""

from __future__ import annotations

import time

import pytest

from tests.realpbx.callers import InboundCaller
from tests.realpbx.server import AgentSpec, wait_until

pytestmark = pytest.mark.realpbx

ANNA = AgentSpec("anna", "1001", "ring", ["sales"])
SALES = "4930555000"


def _talk_seconds(server, customer: str) -> list[tuple[str, float | None]]:
    rows = server.query(
        "SELECT outcome, (julianday(ended_at) - julianday(answered_at)) * 86400 AS talk"
        " FROM interaction WHERE customer = ? ORDER BY id",
        customer,
    )
    return [(r["outcome"], r["talk"]) for r in rows]


def anna_on_a_break(dirigent):
    """A server whose only agent, anna, is logged in and paused."""
    server = dirigent([ANNA])
    server.wait_healthy()
    wait_until(lambda: server.agent("anna")["state"] == "ready", 15, "anna ready")
    status, body = server.request("POST", "/api/agents/anna/pause", {"reason": "break"})
    assert status == 200, body
    return server


def on_hold(caller: InboundCaller) -> None:
    caller.dial(SALES)
    wait_until(caller.answered, 10, "the caller answered by dirigent-inbound (on hold)")
    time.sleep(1.0)


def test_a_ring_mode_agents_conversation_outlives_a_sigterm_of_the_server(pbx, farm, dirigent):
    server = dirigent([ANNA])
    server.wait_healthy()
    wait_until(lambda: server.agent("anna")["state"] == "ready", 15, "anna (ring, 1001) ready")
    with InboundCaller(pbx, "4915112340021") as first:
        first.dial(SALES)
        wait_until(lambda: pbx.bridge_with("customers", "1001"), 15, "the caller with 1001")
        wait_until(lambda: server.agent("anna")["state"] == "busy", 10, "anna busy")
        invites = farm.invites("1001")
        restarted = time.monotonic()
        server.stop()  # SIGTERM: a clean stop; the PBX keeps the call
        server.start()
        server.wait_healthy()
        wait_until(
            lambda: server.agent("anna")["state"] == "busy",
            15,
            "anna busy with the call she is in after the restart (not ready)",
        )
        assert pbx.bridge_with("customers", "1001"), "the conversation was cut by the restart"
        with InboundCaller(pbx, "4915112340022") as second:
            second.dial(SALES)
            wait_until(second.answered, 10, "the second caller answered by dirigent-inbound")
            time.sleep(2.0)
            assert farm.invites("1001") == invites, "anna's phone was rung again mid-call"
            assert server.agent("anna")["state"] == "busy"
            first.hangup()
            across = time.monotonic() - restarted  # talked on so long after the stop
            wait_until(
                lambda: (
                    farm.invites("1001") == invites + 1 and pbx.bridge_with("customers", "1001")
                ),
                20,
                "the second caller put through to anna once the first hung up",
            )
    (row,) = _talk_seconds(server, "4915112340021")
    assert row[0] == "answered" and row[1] is not None and row[1] >= across - 0.5, (
        f"the first call is stored {row}; it talked on {across:.1f} s across the restart"
    )


def test_a_caller_waiting_on_hold_at_a_kill9_goes_to_the_free_agent_after_it(pbx, farm, dirigent):
    server = anna_on_a_break(dirigent)
    invites = farm.invites("1001")
    number = "4915112340023"
    with InboundCaller(pbx, number) as waiting:
        on_hold(waiting)
        server.kill9()
        server.start()
        server.wait_healthy()  # anna logs in ready again (auto_login)
        wait_until(
            lambda: pbx.bridge_with("customers", "1001"),
            15,
            "the caller who waited through the restart put through to anna (1001) at once",
        )
        assert farm.invites("1001") == invites + 1, "anna's phone rung more than once"
        wait_until(lambda: server.agent("anna")["state"] == "busy", 10, "anna busy with it")
    rows = server.query(
        "SELECT outcome, answered_at, agent_code FROM interaction WHERE customer = ?", number
    )
    assert len(rows) == 1 and rows[0]["agent_code"] == "anna" and rows[0]["answered_at"], [
        dict(r) for r in rows
    ]


def test_a_caller_waiting_when_asterisk_is_killed_is_pbx_lost_not_abandoned(pbx, farm, dirigent):
    """QA3 finding 7: the caller was recorded "abandoned" at the resync after
    Asterisk came back (its wait stretched over the outage, counted in the
    queue's abandoned callers).  It vanished with the PBX: ``pbx-lost``,
    ended at the crash, no abandon."""
    down = 4.0
    server = anna_on_a_break(dirigent)
    number = "4915112340024"
    with InboundCaller(pbx, number) as waiting:
        on_hold(waiting)
        pbx.crash()
        farm.forget_dead_calls()
        time.sleep(down)
        pbx.start()
    rows = wait_until(
        lambda: server.query(
            "SELECT outcome, (julianday(ended_at) - julianday(arrived_at)) * 86400 AS wait"
            " FROM interaction WHERE customer = ? AND ended_at IS NOT NULL",
            number,
        ),
        30,
        "the waiting caller's row closed after Asterisk came back",
    )
    (row,) = rows
    assert row["outcome"] == "pbx-lost" and row["wait"] < 1.0 + down, (
        f"the caller lost with the PBX is stored {row['outcome']!r} after {row['wait']:.1f} s"
        f" of wait; it waited about 1 s before Asterisk died (down {down:.0f} s)"
    )
    status, queues = server.request("GET", "/api/queues")
    assert status == 200, queues
    (sales,) = [q for q in queues if q["queue"] == "sales"]
    assert sales["abandoned"] == 0, sales


def test_a_caller_the_fallback_took_while_the_server_was_down_stays_there(pbx, farm, dirigent):
    """A caller whose wait ran out while no Dirigent ran is the dialplan's
    fallback's (Queue(fallback): phone 1004 talks with them).  The server
    that starts again finds the caller in ``dirigent-inbound`` still, in the
    Queue application: it records the call ``fallback`` and leaves it there
    -- anna, ready again after the restart, is not rung, and the
    conversation with 1004 goes on (it used to be queued again and moved
    to her, out of the fallback's conversation)."""
    server = anna_on_a_break(dirigent)
    number = "4915112340025"
    with InboundCaller(pbx, number) as waiting:
        waiting.dial("4930555001")  # DIRIGENT_WAIT = 10 s
        wait_until(waiting.answered, 10, "the caller answered by dirigent-inbound (on hold)")
        server.kill9()
        wait_until(
            lambda: pbx.bridge_with("customers", "1004"),
            25,
            "after DIRIGENT_WAIT (10 s) the fallback queue put the caller through to 1004",
        )
        invites = farm.invites("1001")
        server.start()
        server.wait_healthy()  # anna logs in ready again (auto_login)
        wait_until(lambda: server.agent("anna")["state"] == "ready", 15, "anna ready again")
        rows = wait_until(
            lambda: server.query(
                "SELECT outcome FROM interaction WHERE customer = ? AND outcome IS NOT NULL",
                number,
            ),
            15,
            "the caller's row closed as the fallback's",
        )
        assert [r["outcome"] for r in rows] == ["fallback"], [dict(r) for r in rows]
        time.sleep(2.0)  # what a wrong take-over would have done by now
        assert farm.invites("1001") == invites, "anna was rung for the fallback's caller"
        assert pbx.bridge_with("customers", "1004"), "the fallback's conversation goes on"
        assert server.agent("anna")["state"] == "ready"
