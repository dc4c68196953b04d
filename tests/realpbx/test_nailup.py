"""A nailed-up agent whose phone is off: the nail-up fails on the PBX;
Dirigent must say so, never offer the agent a call without a leg, retry
with backoff, and nail the agent up by itself once the phone is back."""

from __future__ import annotations

import threading
import time

import pytest

from sim.phones import AgentDecider, PhoneFarm
from tests.realpbx.lab import PASSWORDS, free_udp_port
from tests.realpbx.server import AgentSpec, wait_until

pytestmark = pytest.mark.realpbx


def test_failed_nail_up_is_logged_retried_and_recovers_when_the_phone_registers(
    pbx, farm, dirigent
):
    """Finding 8: a nail-up that fails was silent, never retried."""
    mark = pbx.log_mark()
    server = dirigent([AgentSpec("erik", "1007", "nailed", ["nailed"])], queues=["nailed"])
    server.wait_healthy()
    wait_until(
        lambda: (
            pbx.log_since(mark).count("'1007'") >= 2 or pbx.log_since(mark).count("PJSIP/1007") >= 2
        ),
        20,
        "Dirigent trying (and retrying) to nail up erik on phone 1007, which is off",
    )
    view = server.agent("erik")
    print("PBX:", [ln for ln in pbx.log_since(mark).splitlines() if "1007" in ln][:4])
    print("view:", view)
    print("dirigent:", [ln for ln in server.log().splitlines() if "erik" in ln][:5])
    assert view["state"] != "ready", f"erik offered calls without a phone leg: {view}"
    log = server.log()
    assert "erik" in log and ("1007" in log), (
        f"Dirigent's log says nothing about erik's failed nail-up:\n{log[-1500:]}"
    )
    phone = PhoneFarm(
        ("127.0.0.1", pbx.sip_port),
        ["1007"],
        AgentDecider(),
        None,
        password=lambda ext: PASSWORDS[ext],
        sip_ports={"1007": free_udp_port()},
        # the session's farm holds 30000-30699 (1001 the first hundred): a phone of
        # its own range, or its answer can fail on a port 1001's call holds
        first_rtp_port=31000,
        log=lambda _m: None,
    )
    before = set(threading.enumerate())
    phone.start()
    try:
        registered_at = time.monotonic()
        wait_until(
            lambda: pbx.confbridges().get("agent-erik") == 1,
            40,
            "erik nailed up by itself (ConfBridge agent-erik) after phone 1007 registered",
        )
        wait_until(
            lambda: server.agent("erik")["state"] == "ready",
            10,
            "erik back to ready once the leg is up",
        )
        print(f"erik nailed {time.monotonic() - registered_at:.1f} s after 1007 registered")
    finally:
        pbx.hangup_all()
        phone.stop()
        for thread in set(threading.enumerate()) - before:
            thread.join(timeout=3)
