"""The SIP phone farm: its decisions (pure), and the customer side over real
SIP (UDP on loopback) through pyVoIP."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter

import pytest

from sim.fates import call_rng, draw_fate
from sim.phones import (
    AgentDecider,
    CustomerDecider,
    Decision,
    PhoneFarm,
    called_number,
    reject_response,
)
from sim.workload import standard_workload


def test_agent_phone_answers_one_call_at_a_time():
    agents = AgentDecider(answer_delay=1.0)
    assert agents.invite("1001") == Decision(answer_after=1.0)
    assert agents.invite("1001") == Decision(reject=486)
    assert agents.invite("1002").answer_after == 1.0
    agents.ended("1001")
    assert agents.invite("1001").answer_after == 1.0


def test_customers_follow_the_workload_shares():
    customers = CustomerDecider(standard_workload(), seed=1)
    kinds = Counter()
    for n in range(4000):
        d = customers.invite(f"+4930{n:07d}")
        kinds[
            {486: "busy", 404: "invalid", 503: "invalid"}.get(d.reject or 0)
            if d.reject
            else ("no_answer" if d.answer_after is None else "answers")
        ] += 1
    shares = {k: v / 4000 for k, v in kinds.items()}
    assert shares["answers"] == pytest.approx(0.55, abs=0.03)  # live 25% + machine 30%
    assert shares["no_answer"] == pytest.approx(0.30, abs=0.03)
    assert shares["busy"] == pytest.approx(0.05, abs=0.015)
    assert shares["invalid"] == pytest.approx(0.10, abs=0.02)


def test_customer_side_draws_the_same_fates_as_the_simulated_pbx():
    from twisted.internet import task

    from sim.pbx import SimPbx

    pbx = SimPbx(task.Clock(), seed=9)
    customers = CustomerDecider(pbx.workload, seed=9)
    for n in range(200):
        number = f"+4930{n:07d}"
        assert pbx.fate_of(number) == customers.fate(number)
        assert pbx.fate_of(number) == customers.fate(number), "the second dial too"


def test_an_answered_call_rings_for_its_fate_and_talks_for_its_fate():
    workload = standard_workload()
    customers = CustomerDecider(workload, seed=3)
    for n in range(100):
        number = f"+4930{n:07d}"
        fate = draw_fate(workload, call_rng(3, number, 0))
        decision = customers.invite(number)
        if fate.outcome == "live":
            assert (
                decision.answer_after == max(fate.ring, 1.0) and decision.hangup_after == fate.talk
            )
        elif fate.outcome == "machine":
            assert decision.hangup_after == workload.amd.undetected_machine_talk


def test_called_number_and_reject_responses():
    assert called_number("<sip:+49305555080@127.0.0.1:5080>") == "+49305555080"
    assert called_number('"X" <sip:1001@host;transport=udp>') == "1001"
    busy = "SIP/2.0 486 Busy Here\r\nVia: x\r\n\r\n"
    assert reject_response(busy, 404).startswith("SIP/2.0 404 Not Found\r\nVia: x")
    assert reject_response(busy, 503).startswith("SIP/2.0 503 Service Unavailable\r\n")


def _invite(number: str, uas_port: int, my_port: int, call_id: str) -> bytes:
    sdp = (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        "m=audio 20000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    )
    head = (
        f"INVITE sip:{number}@127.0.0.1:{uas_port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{my_port};branch=z9hG4bK-{call_id};rport\r\n"
        f'From: "Dirigent" <sip:4711@127.0.0.1>;tag=t-{call_id}\r\n'
        f"To: <sip:{number}@127.0.0.1>\r\n"
        f"Call-ID: {call_id}@127.0.0.1\r\n"
        "CSeq: 1 INVITE\r\n"
        f"Contact: <sip:4711@127.0.0.1:{my_port}>\r\n"
        "Max-Forwards: 70\r\nContent-Type: application/sdp\r\n"
        f"Content-Length: {len(sdp)}\r\n\r\n"
    )
    return (head + sdp).encode()


# pyVoIP's receive thread raises "Bad file descriptor" once its socket is
# closed by stop(); that is pyVoIP's own shutdown, not a failure of the test.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_customer_uas_answers_invites_over_real_sip_per_its_fate():
    workload = standard_workload()
    wanted = {}
    for n in range(500):
        number = f"+4930{n:07d}"
        outcome = draw_fate(workload, call_rng(4, number, 0)).outcome
        wanted.setdefault(outcome, number)
        if {"busy", "invalid", "congestion"} <= wanted.keys():
            break
    pbx_side = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    pbx_side.bind(("127.0.0.1", 0))
    pbx_side.settimeout(5)
    my_port = pbx_side.getsockname()[1]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        uas_port = probe.getsockname()[1]
    farm = PhoneFarm(
        ("127.0.0.1", my_port),
        [],
        AgentDecider(),
        CustomerDecider(workload, seed=4),
        customer_listen=("127.0.0.1", uas_port),
        log=lambda _m: None,
    )
    threads_before = set(threading.enumerate())
    farm.start()
    try:
        time.sleep(1.2)  # pyVoIP starts its receive loop after 1 s
        statuses = {}
        for outcome in ("busy", "invalid", "congestion"):
            pbx_side.sendto(
                _invite(wanted[outcome], uas_port, my_port, outcome), ("127.0.0.1", uas_port)
            )
            reply = pbx_side.recv(65536).decode()
            statuses[outcome] = reply.split("\r\n", 1)[0]
    finally:
        farm.stop()
        pbx_side.close()
        # pyVoIP's threads end (its receive loop with an error, see above) before
        # the next test runs: Python 3.11 formats tracebacks with ast, which must
        # not run in two threads at once (CPython gh-106905).
        for thread in set(threading.enumerate()) - threads_before:
            thread.join(timeout=5)
    assert statuses == {
        "busy": "SIP/2.0 486 Busy Here",
        "invalid": "SIP/2.0 404 Not Found",
        "congestion": "SIP/2.0 503 Service Unavailable",
    }
