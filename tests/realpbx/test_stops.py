"""A clean stop of ``dirigent serve`` while a campaign line rings (QA5 F10).

SIGTERM logged off at once: the line rang on, the person answered while no
Dirigent ran and the dialplan's net played the abandon message (counted
abandoned at the next start: with the UK's rules a 72 h lock-out of the
number, from a deploy).  Now the stop waits for the line: the person is put
through to the free agent, the conversation stays up on the PBX, and only
then does the server log off and exit."""

from __future__ import annotations

import time

import pytest

from tests.realpbx.server import NAILED_WITHIN, AgentSpec, CampaignSpec, fresh_numbers, wait_until

pytestmark = pytest.mark.realpbx

CARL = AgentSpec("carl", "1003", "nailed", ["c1"])


def test_sigterm_while_a_line_rings_puts_the_person_through_before_it_exits(pbx, farm, dirigent):
    (number,) = fresh_numbers(1)
    farm.script({number: "human"})
    farm.customers.ring = 6.0  # answers 6 s after the INVITE
    mark = pbx.log_mark()
    try:
        server = dirigent([CARL], queues=[], campaigns=[CampaignSpec("c1")], lists={"c1": [number]})
        server.wait_healthy()
        wait_until(
            lambda: pbx.confbridges().get("agent-carl") == 1, NAILED_WITHIN, "carl nailed up"
        )
        wait_until(lambda: farm.invites(number) == 1, 30, "the number dialed")
        time.sleep(1.0)
        assert server.query("SELECT 1 FROM attempt WHERE answered_at IS NULL"), "still ringing"
        assert server.stop() == 0, server.log()[-3000:]
        log = server.log()
        assert "waiting for 1 line in progress" in log, log[-3000:]
        assert "the 1 line in progress resolved in" in log, log[-3000:]
        # then the rest of the stop: the Logoff said in the log (it was sent, but the
        # line went with the session's task cancelled under it)
        assert log.index("resolved") < log.index("PBX lab: logged off"), log[-3000:]
        (row,) = server.query("SELECT outcome, agent_code, connected_at, abandoned FROM attempt")
        assert row["connected_at"] is not None and row["agent_code"] == "carl", dict(row)
        assert not row["abandoned"], dict(row)
        # the conversation goes on on the PBX after the exit
        assert pbx.bridge_with("customers", "1003"), "the conversation was cut by the stop"
        wait_until(lambda: not pbx.bridge_with("customers", "1003"), 20, "the person hung up")
        said = pbx.log_since(mark)
        assert "DirigentAbandoned" not in said and "dirigent/abandon" not in said, (
            "the person answered into the PBX's abandon message"
        )
        # the next start counts nothing abandoned (no mark of the net to find)
        server.start()
        server.wait_healthy()
        wait_until(
            lambda: server.query("SELECT 1 FROM attempt WHERE outcome IS NOT NULL"),
            15,
            "the attempt closed by the next start",
        )
        (row,) = server.query("SELECT outcome, abandoned FROM attempt")
        assert not row["abandoned"] and row["outcome"] != "abandoned", dict(row)
        counts = server.query("SELECT SUM(abandoned) AS n FROM abandon_count")
        assert not counts[0]["n"], [dict(r) for r in server.query("SELECT * FROM abandon_count")]
    finally:
        farm.customers.ring = 1.0
