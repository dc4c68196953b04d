"""A wrong AMI secret: Asterisk refuses the login, Dirigent says so,
/healthz is degraded, and nothing is dialed."""

from __future__ import annotations

import time

import pytest

from tests.realpbx.server import AgentSpec, CampaignSpec, fresh_numbers, wait_until

pytestmark = pytest.mark.realpbx


def test_wrong_secret_is_refused_and_nothing_dials(pbx, farm, dirigent):
    numbers = fresh_numbers(2)
    farm.script(dict.fromkeys(numbers, "human"))
    mark = pbx.log_mark()
    server = dirigent(
        [AgentSpec("carl", "1003", "nailed", ["out"])],
        queues=[],
        campaigns=[CampaignSpec("out")],
        lists={"out": numbers},
        secret="not-the-secret",
    )
    _status, health = wait_until(
        lambda: (lambda h: h[0] == 503 and h)(server.health()),
        20,
        "/healthz answering 503 degraded",
    )
    assert health["status"] == "degraded" and health["pbx"]["lab"]["connected"] is False, health
    wait_until(
        lambda: (
            "dirigent" in pbx.log_since(mark) and "failed to authenticate" in pbx.log_since(mark)
        ),
        15,
        "Asterisk logging the refused login of user dirigent",
    )
    time.sleep(3)
    assert server.health()[0] == 503
    assert [farm.invites(n) for n in numbers] == [0, 0], "a campaign dialed without a PBX login"
    assert not pbx.channels(), f"channels on the PBX: {pbx.channel_names()}"
    log = server.log()
    assert "not-the-secret" not in log, "the secret appears in Dirigent's log"
    assert any(w in log.lower() for w in ("authentication", "refused", "secret")), (
        f"Dirigent's log does not say the login was refused:\n{log[-1500:]}"
    )
