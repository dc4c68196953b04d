"""A bad agent endpoint or campaign trunk on the real PBX (finding 11):
the config loader accepted control characters and blanks in ``endpoint``
and ``trunk``; they failed only when sent, so a bad trunk turned every dial
into "failed" (and a CR LF is an AMI header of its own).  ``dirigent serve``
must stop at start, exit 2 naming the key, and send nothing to the PBX: no
AMI login in Asterisk's log, no channel, no INVITE."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from tests.realpbx.server import (
    DIRIGENT,
    AgentSpec,
    CampaignSpec,
    fresh_numbers,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.realpbx

#: (the key the error must name, the bad agent endpoint, the bad campaign trunk)
BAD = {
    "endpoint with CR LF": ("agent[0].endpoint", "1003\r\nAction: Originate", None),
    "endpoint with a blank": ("agent[0].endpoint", "10 03", None),
    "trunk with a control character": ("campaign[0].trunk", "1003", "PJSIP/{number}@customers\a"),
    "trunk with a blank": ("campaign[0].trunk", "1003", "PJSIP/{number}@cust omers"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_endpoint_or_trunk_stops_serve_before_anything_reaches_the_pbx(
    case, pbx, farm, dirigent
):
    key, endpoint, trunk = BAD[case]
    (number,) = fresh_numbers(1)
    farm.script({number: "human"})
    # a working set-up first (database, user, list), as an operator has it;
    # then the one bad value in the config the server is started with
    server = dirigent(
        [AgentSpec("carl", "1003", "nailed", ["out"])],
        queues=[],
        campaigns=[CampaignSpec("out")],
        lists={"out": [number]},
        start=False,
    )
    extra = {} if trunk is None else {"trunk": trunk}
    config, _http = write_config(
        server.folder,
        pbx,
        [AgentSpec("carl", endpoint, "nailed", ["out"])],
        queues=[],
        campaigns=[CampaignSpec("out", extra=extra)],
        lists={"out": [number]},
    )
    mark = pbx.log_mark()
    proc = subprocess.Popen(
        [*DIRIGENT, "serve", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **server.env},
    )
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        sent = [
            line
            for line in pbx.log_since(mark).splitlines()
            if "dirigent" in line or "PJSIP/" in line or "Originate" in line
        ]
        raise AssertionError(
            f"dirigent serve started with {key} = {endpoint if trunk is None else trunk!r} "
            f"and ran (still running after 30 s); the PBX saw: {sent[:6]}; "
            f"INVITEs to {number}: {farm.invites(number)}; serve said: {out[-1500:]}"
        ) from None
    assert proc.returncode == 2 and key in out, (
        f"dirigent serve exited {proc.returncode} (2 expected) and said {out[-800:]!r}: "
        f"the error must name {key}"
    )
    log = pbx.log_since(mark)
    logins = [line for line in log.splitlines() if "Manager 'dirigent' logged on" in line]
    assert not logins, f"Dirigent logged in to the PBX with a bad {key}: {logins}"
    assert not pbx.channels(), f"channels on the PBX: {pbx.channel_names()}"
    assert farm.invites(number) == 0, f"{number} was dialed with a bad {key}"


def test_an_ami_user_without_read_class_user_is_refused_saying_so(pbx, farm, dirigent):
    """QA round 3, finding 4, on the real PBX: an AMI user whose ``read =``
    was trimmed to ``system,call,agent,dialplan`` logged in and looked
    healthy while the dialplan's UserEvents (inbound callers, AMD) never
    reached it.  Now /healthz says the PBX is refused and why, the log says
    it once, and nothing is dialed or nailed up."""
    conf = pbx.etc / "manager_dirigent.conf"
    shipped = conf.read_text()
    conf.write_text(
        shipped
        + f"\n[trimmed]\nsecret = {pbx.secret}\npermit = 127.0.0.1/255.255.255.255\n"
        + "read = system,call,agent,dialplan\nwrite = all\n"
    )
    pbx.cli("manager reload")
    try:
        (number,) = fresh_numbers(1)
        farm.script({number: "human"})
        server = dirigent(
            [AgentSpec("carl", "1003", "nailed", ["out"])],
            queues=[],
            campaigns=[CampaignSpec("out")],
            lists={"out": [number]},
            start=False,
        )
        server.config.write_text(
            server.config.read_text().replace('username = "dirigent"', 'username = "trimmed"')
        )
        server.start()

        def refused():
            status, body = server.health()
            lab = body.get("pbx", {}).get("lab", {}) if isinstance(body, dict) else {}
            return status == 503 and "read class 'user'" in (lab.get("refused") or "") and body

        wait_until(refused, 30, "/healthz saying the AMI user lacks read class 'user'")
        time.sleep(2.0)  # a few retries with the backoff
        log = server.log()
        assert log.count("does not receive UserEvents") == 1, log[-2000:]
        assert farm.invites(number) == 0 and not pbx.bridge_with("1003")
    finally:
        conf.write_text(shipped)
        pbx.cli("manager reload")
