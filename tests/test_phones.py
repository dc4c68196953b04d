"""The SIP phone farm: its decisions (pure), and the customer side over real
SIP (UDP on loopback) through pyVoIP."""

from __future__ import annotations

import queue
import socket
import threading
import time
from collections import Counter

import pytest

from sim.fates import call_rng, draw_fate
from sim.phones import (
    HUMAN_GREETING,
    MACHINE_GREETING,
    AgentDecider,
    CustomerDecider,
    Decision,
    PhoneFarm,
    ScriptedCustomers,
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


def test_agent_phone_is_free_again_when_the_pbx_hangs_up_its_call():
    """Finding 13: the phone answered one call, then 486 for ever.  Calls are
    known by Call-ID, so the end of the refused second call (Asterisk's
    CANCEL/ACK of our 486) does not free a phone that is still talking."""
    agents = AgentDecider(answer_delay=1.0)
    assert agents.invite("1001", "call-a").answer_after == 1.0
    assert agents.invite("1001", "call-b") == Decision(reject=486)
    agents.call_ended("call-b")
    assert agents.invite("1001", "call-c") == Decision(reject=486), "still on call-a"
    agents.call_ended("call-a")  # the BYE from the PBX
    assert agents.invite("1001", "call-d").answer_after == 1.0


def test_scripted_customers_meet_every_outcome_and_speak_first():
    numbers = {
        f"+4420794600{i:02d}": kind
        for i, kind in enumerate(["human", "machine", "busy", "invalid", "congestion", "no_answer"])
    }
    customers = ScriptedCustomers(numbers, talk=5.0, machine_talk=9.0)
    got = {kind: customers.invite(n.lstrip("+")) for n, kind in numbers.items()}
    assert got["busy"].reject == 486 and got["invalid"].reject == 404
    assert got["congestion"].reject == 503
    assert got["no_answer"] == Decision(), "rings until cancelled"
    assert got["human"].audio == HUMAN_GREETING and got["human"].hangup_after == 5.0
    assert got["machine"].audio == MACHINE_GREETING and got["machine"].hangup_after == 9.0
    assert customers.invite("+15550000000").reject == 404, "an unscripted number does not exist"
    # AMD's thresholds (lab amd.conf): a person's greeting is shorter than
    # 1.5 s then silent, a machine's longer; 8 kHz 8-bit unsigned PCM
    assert len(HUMAN_GREETING) > 8 * 700 and len(MACHINE_GREETING) > 8 * 4000
    with pytest.raises(ValueError, match="voicemail"):
        ScriptedCustomers({"1": "voicemail"})


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
        # not the real-PBX tier's ranges (another worker may run it meanwhile)
        customer_rtp=(20000, 20999),
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


class FakeRegistrar:
    """The PBX side of an agent phone over real UDP: answers REGISTER with
    200 OK (so pyVoIP's start() returns) and queues everything else."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received: queue.Queue[str] = queue.Queue()
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                data, peer = self.sock.recvfrom(65536)
            except (TimeoutError, OSError):
                continue
            text = data.decode()
            if text.startswith("REGISTER"):
                head = dict(line.split(": ", 1) for line in text.split("\r\n")[1:] if ": " in line)
                ok = (
                    "SIP/2.0 200 OK\r\n"
                    f"Via: {head['Via']};received=127.0.0.1\r\n"
                    f"From: {head['From']}\r\n"
                    f"To: {head['To']};tag=reg\r\n"
                    f"Call-ID: {head['Call-ID']}\r\n"
                    f"CSeq: {head['CSeq']}\r\n"
                    f"Contact: {head['Contact']};expires=120\r\n"
                    "Expires: 120\r\nContent-Length: 0\r\n\r\n"
                )
                self.sock.sendto(ok.encode(), peer)
            else:
                self.received.put(text)

    def send(self, message: bytes, port: int) -> None:
        self.sock.sendto(message, ("127.0.0.1", port))

    def expect(self, status: str, timeout: float = 5.0) -> str:
        """The next response whose first line has ``status`` (provisional ones skipped)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                text = self.received.get(timeout=0.2)
            except queue.Empty:
                continue
            first = text.split("\r\n", 1)[0]
            if status in first:
                return text
            if " 1" not in first[:9]:  # a final response we did not want
                return text
        raise AssertionError(f"no {status} within {timeout} s")

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=2)
        self.sock.close()


def _request(method: str, call_id: str, cseq: int, phone_port: int, pbx_port: int) -> bytes:
    body = ""
    if method == "INVITE":
        body = (
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            "m=audio 20002 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
        )
    head = (
        f"{method} sip:1001@127.0.0.1:{phone_port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{pbx_port};branch=z9hG4bK-{call_id}-{cseq};rport\r\n"
        f'From: "Customer" <sip:4711@127.0.0.1>;tag=t-{call_id}\r\n'
        f"To: <sip:1001@127.0.0.1>{';tag=' + 'x' if method != 'INVITE' else ''}\r\n"
        f"Call-ID: {call_id}@127.0.0.1\r\n"
        f"CSeq: {cseq} {method}\r\n"
        f"Contact: <sip:asterisk@127.0.0.1:{pbx_port}>\r\n"
        "Max-Forwards: 70\r\n"
        + ("Content-Type: application/sdp\r\n" if body else "")
        + f"Content-Length: {len(body)}\r\n\r\n"
    )
    return (head + body).encode()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_agent_phone_answers_again_after_the_pbx_hung_up_over_real_sip():
    """Finding 13 over real SIP: call 1 answered, the PBX sends BYE, call 2
    must be answered too (it got 486 for ever)."""
    pbx = FakeRegistrar()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        phone_port = probe.getsockname()[1]
    farm = PhoneFarm(
        ("127.0.0.1", pbx.port),
        ["1001"],
        AgentDecider(),
        None,
        sip_ports={"1001": phone_port},
        first_rtp_port=21000,  # not the real-PBX tier's (another worker may run it meanwhile)
        log=lambda _m: None,
    )
    threads_before = set(threading.enumerate())
    farm.start()  # registers (the fake registrar says 200 OK)
    try:
        time.sleep(1.2)  # pyVoIP starts its receive loop after 1 s
        pbx.send(_request("INVITE", "call1", 1, phone_port, pbx.port), phone_port)
        first = pbx.expect("200 OK", timeout=5).split("\r\n", 1)[0]
        assert first == "SIP/2.0 200 OK", first
        pbx.send(_request("ACK", "call1", 1, phone_port, pbx.port), phone_port)
        pbx.send(_request("BYE", "call1", 2, phone_port, pbx.port), phone_port)
        assert pbx.expect("200 OK").split("\r\n", 1)[0] == "SIP/2.0 200 OK"
        time.sleep(0.2)
        pbx.send(_request("INVITE", "call2", 1, phone_port, pbx.port), phone_port)
        second = pbx.expect("200 OK", timeout=5).split("\r\n", 1)[0]
        assert second == "SIP/2.0 200 OK", f"the second call got {second!r}"
        assert farm.invites["1001"] == 2
        # the phone notes "answered" just after its 200 OK has gone out
        deadline = time.monotonic() + 5
        while len(farm.events_of("1001")) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert farm.events_of("1001") == [
            "ringing",
            "answered",
            "hung up by the other side",
            "ringing",
            "answered",
        ]
        pbx.send(_request("BYE", "call2", 2, phone_port, pbx.port), phone_port)
        pbx.expect("200 OK")
    finally:
        farm.stop()
        pbx.close()
        for thread in set(threading.enumerate()) - threads_before:
            thread.join(timeout=5)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_agent_phone_answers_on_a_free_rtp_port_when_others_of_its_range_are_held():
    """pyVoIP picks a call's RTP port at random among those it has not
    handed out itself and binds it only at the answer: a port another
    socket holds (a call pyVoIP lost track of, another farm) made the answer
    fail, and the PBX heard the phone ring out (no answer, cause 19).  With
    99 of its 100 ports held, the phone still answers, on the free one."""
    first_rtp = 22000
    held = []
    for port in range(first_rtp, first_rtp + 100):
        if port == first_rtp + 37:
            continue
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", port))
        held.append(s)
    pbx = FakeRegistrar()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        phone_port = probe.getsockname()[1]
    farm = PhoneFarm(
        ("127.0.0.1", pbx.port),
        ["1001"],
        AgentDecider(),
        None,
        sip_ports={"1001": phone_port},
        first_rtp_port=first_rtp,
        log=lambda _m: None,
    )
    threads_before = set(threading.enumerate())
    farm.start()
    try:
        time.sleep(1.2)  # pyVoIP starts its receive loop after 1 s
        pbx.send(_request("INVITE", "held1", 1, phone_port, pbx.port), phone_port)
        answer = pbx.expect("200 OK", timeout=5)
        assert answer.split("\r\n", 1)[0] == "SIP/2.0 200 OK"
        assert f"m=audio {first_rtp + 37} " in answer, "its RTP on the one free port"
        pbx.send(_request("ACK", "held1", 1, phone_port, pbx.port), phone_port)
        pbx.send(_request("BYE", "held1", 2, phone_port, pbx.port), phone_port)
        pbx.expect("200 OK")
    finally:
        farm.stop()
        pbx.close()
        for s in held:
            s.close()
        for thread in set(threading.enumerate()) - threads_before:
            thread.join(timeout=5)
