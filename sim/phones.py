"""SIP endpoint farm for a real Asterisk (``dirigent sim phones``).

Two sides, each a set of pyVoIP phones in this (separate) process — pyVoIP
is thread-based, so the farm never runs inside the Twisted server:

* **agent phones** ``1001``… register with digest auth (passwords as in the
  lab's ``pjsip.conf``: ``pw<ext>``) and auto-answer; one call at a time,
  a second INVITE gets ``486 Busy Here``; the phone is free again when its
  call ends, whichever side hangs up (BYE or CANCEL from the PBX included);
* the **customer side**: one UAS without registration (the lab's
  ``customers`` trunk has a static contact, ``sip:127.0.0.1:5080``) that
  answers every called number per the seeded model of :mod:`sim.fates`:
  a person or machine answers after the ring time and hangs up after the
  talk time; busy gets 486, invalid 404, congestion 503; no answer rings
  until the caller gives up (CANCEL, answered 487).  Who answers speaks
  first: a person a short greeting then silence, a machine a long greeting
  (real RTP audio: Asterisk's AMD() needs frames to decide).
  :class:`ScriptedCustomers` gives each called number a fixed behaviour
  instead (the real-PBX tests meet every outcome on purpose).

Every INVITE is counted per called user (:attr:`PhoneFarm.invites`): the
real-PBX tier checks the dialer placed exactly one dial per attempt.

:class:`AgentDecider` and :class:`CustomerDecider` hold all decisions and
are pure (tested in CI); :class:`PhoneFarm` only wires them to pyVoIP.
Facts about pyVoIP 1.6.8 we work around (``../shared/asterisk/README.md``):
the call callback always runs through a 1 s timer; ``call.deny()`` raises
after sending 486, so rejections are sent from the SIP layer directly; the
customer UAS must not try to register.
"""

from __future__ import annotations

import contextlib
import math
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sim.fates import CallFate, call_rng, draw_fate
from sim.workload import Workload

#: pyVoIP starts the call callback through a 1 s timer (measured, see the
#: shared Asterisk README); delays below it cannot be honoured.
PYVOIP_CALLBACK_DELAY = 1.0

SIP_REASON = {
    404: "Not Found",
    486: "Busy Here",
    487: "Request Terminated",
    503: "Service Unavailable",
}
_TO_NUMBER = re.compile(r"sip:(?P<user>[^@;>]+)@")


@dataclass(frozen=True)
class Decision:
    """What to do with an INVITE: reject with a SIP status, or ring, answer
    after ``answer_after`` seconds (None: never) and hang up after
    ``hangup_after`` seconds of talk (None: wait for the other side)."""

    reject: int | None = None
    answer_after: float | None = None
    hangup_after: float | None = None
    #: what the callee says once it has answered: 8 kHz 8-bit unsigned PCM
    #: (pyVoIP's ``write_audio`` format); silence follows
    audio: bytes | None = field(default=None, repr=False)


def _udp_free(host: str, port: int) -> bool:
    """May a UDP socket bind ``port`` now (nobody else holds it)?"""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def tone(segments: list[tuple[float, int]], amplitude: int = 100) -> bytes:
    """8 kHz 8-bit unsigned PCM of (frequency Hz, milliseconds); 0 Hz is silence."""
    out = bytearray()
    for freq, ms in segments:
        for i in range(8 * ms):
            v = amplitude * math.sin(2 * math.pi * freq * i / 8000) if freq else 0.0
            out.append(128 + int(v))
    return bytes(out)


#: a person: "hello?" (0.7 s) then silence: Asterisk's AMD says HUMAN
#: (amd.conf: after_greeting_silence 800 ms)
HUMAN_GREETING = tone([(440, 700), (0, 3000)])
#: a machine: 4.2 s of speech: AMD says MACHINE (LONGGREETING, greeting 1500 ms)
MACHINE_GREETING = tone([(330, 1200), (0, 40), (392, 1200), (0, 40), (440, 1800), (0, 1000)])


def called_number(to_header: str) -> str:
    """The user part of a To header, ``+`` kept: ``<sip:+4930555@h>`` → ``+4930555``."""
    m = _TO_NUMBER.search(to_header)
    return m.group("user") if m else to_header.strip("<> ")


class AgentDecider:
    """Agent phones: answer after ``answer_delay``, one call at a time.

    Calls are known by SIP Call-ID: the phone is free again when *its*
    call ends (:meth:`call_ended`, for a BYE or CANCEL from the other side
    as well as our own hang-up).  A BYE or CANCEL of a call the phone
    refused (a second INVITE it sent 486 to) must not free it."""

    def __init__(self, answer_delay: float = PYVOIP_CALLBACK_DELAY) -> None:
        self.answer_delay = answer_delay
        self.busy: set[str] = set()
        self._calls: dict[str, str] = {}
        self._lock = threading.Lock()

    def invite(self, ext: str, call_id: str | None = None) -> Decision:
        with self._lock:
            if ext in self.busy:
                return Decision(reject=486)
            self.busy.add(ext)
            if call_id is not None:
                self._calls[call_id] = ext
        return Decision(answer_after=self.answer_delay)

    def call_ended(self, call_id: str) -> None:
        """The call ``call_id`` is over (either side hung up): its phone is free."""
        with self._lock:
            ext = self._calls.pop(call_id, None)
            if ext is not None:
                self.busy.discard(ext)

    def ended(self, ext: str) -> None:
        with self._lock:
            self.busy.discard(ext)
            for call_id in [c for c, e in self._calls.items() if e == ext]:
                del self._calls[call_id]


class CustomerDecider:
    """The called customers, drawn from the workload like the simulated PBX."""

    def __init__(self, workload: Workload, seed: int) -> None:
        self.workload = workload
        self.seed = seed
        self._dials: dict[str, int] = {}
        self._lock = threading.Lock()

    def fate(self, number: str) -> CallFate:
        with self._lock:
            n = self._dials.get(number, 0)
            self._dials[number] = n + 1
        return draw_fate(self.workload, call_rng(self.seed, number, n))

    def invite(self, number: str) -> Decision:
        fate = self.fate(number)
        if fate.outcome == "busy":
            return Decision(reject=486)
        if fate.outcome == "invalid":
            return Decision(reject=404)
        if fate.outcome == "congestion":
            return Decision(reject=503)
        if fate.outcome == "no_answer":
            return Decision()  # ring until the caller cancels
        live = fate.outcome == "live"
        talk = fate.talk if live else self.workload.amd.undetected_machine_talk
        return Decision(
            answer_after=max(fate.ring, PYVOIP_CALLBACK_DELAY),
            hangup_after=talk,
            audio=HUMAN_GREETING if live else MACHINE_GREETING,
        )


#: the behaviours a scripted number can have
BEHAVIOURS = ("human", "machine", "busy", "invalid", "congestion", "no_answer")


class ScriptedCustomers:
    """Each called number behaves as scripted (``+`` ignored): ``human``
    (a short greeting, then silence; hangs up after ``talk`` seconds),
    ``machine`` (a long greeting; hangs up after ``machine_talk``), ``busy`` (486),
    ``invalid`` (404), ``congestion`` (503), ``no_answer`` (rings until
    cancelled).  A number not in the script does not exist (404)."""

    def __init__(
        self,
        script: Mapping[str, str],
        talk: float = 8.0,
        ring: float = 1.0,
        machine_talk: float = 20.0,
    ) -> None:
        for number, kind in script.items():
            if kind not in BEHAVIOURS:
                raise ValueError(f"script[{number!r}]: {kind!r} is not one of {BEHAVIOURS}")
        self.script = {n.lstrip("+"): k for n, k in script.items()}
        self.talk = talk
        self.machine_talk = machine_talk
        self.ring = max(ring, PYVOIP_CALLBACK_DELAY)

    def invite(self, number: str) -> Decision:
        kind = self.script.get(number.lstrip("+"), "invalid")
        if kind == "busy":
            return Decision(reject=486)
        if kind == "invalid":
            return Decision(reject=404)
        if kind == "congestion":
            return Decision(reject=503)
        if kind == "no_answer":
            return Decision()
        if kind == "human":
            return Decision(answer_after=self.ring, hangup_after=self.talk, audio=HUMAN_GREETING)
        return Decision(
            answer_after=self.ring, hangup_after=self.machine_talk, audio=MACHINE_GREETING
        )


def reject_response(busy_response: str, status: int) -> str:
    """Turn pyVoIP's generated ``486 Busy Here`` into another final status."""
    first, sep, rest = busy_response.partition("\r\n")
    version = first.split(" ", 1)[0]
    return f"{version} {status} {SIP_REASON[status]}{sep}{rest}"


class Callee(Protocol):
    """What a side of the farm needs: a decision per INVITE."""

    def invite(self, number: str) -> Decision: ...


def _user_of(request: Any, header: str = "To") -> str:
    return called_number(request.headers[header]["raw"])


class PhoneFarm:  # pragma: no cover - needs a real Asterisk (tests/realpbx) or a fake registrar
    """pyVoIP phones wired to the deciders (thread-based, own process or
    threads of a test).  :attr:`invites` counts INVITEs per called user
    (agent extension or customer number without ``+``); :attr:`events`
    lists ``(monotonic time, user, Call-ID, what)`` with ``what`` one of
    ``ringing``, ``answered``, ``rejected 486``…, ``cancelled``,
    ``hung up by the other side``, ``hung up``.

    Agent phone i takes its RTP ports from ``first_rtp_port + 100 i`` (100
    each; pyVoIP picks one per call and binds it only at the answer, so two
    farms of one process on the same range can make a phone's answer fail
    on a port the other holds: the caller hears it ring out); the customers'
    side takes ``customer_rtp``."""

    def __init__(
        self,
        asterisk: tuple[str, int],
        agents: list[str],
        agent_decider: AgentDecider,
        customers: Callee | None,
        customer_listen: tuple[str, int] = ("127.0.0.1", 5080),
        password: Callable[[str], str] = lambda ext: f"pw{ext}",
        first_sip_port: int = 5071,
        log: Callable[[str], None] = print,
        sip_ports: Mapping[str, int] | None = None,
        first_rtp_port: int = 30000,
        customer_rtp: tuple[int, int] = (40000, 49999),
    ) -> None:
        from pyVoIP.VoIP import CallState, VoIPPhone
        from pyVoIP.VoIP.VoIP import NoPortsAvailableError

        self.log = log
        self.phones: list[Any] = []
        self.invites: Counter[str] = Counter()
        self.events: list[tuple[float, str, str, str]] = []
        self._lock = threading.Lock()
        host, port = asterisk
        farm = self

        def note(user: str, call_id: str, what: str) -> None:
            with farm._lock:
                farm.events.append((time.monotonic(), user, call_id, what))

        def make_class(decide: Callable[[Any], Decision], on_end: Callable[[str], None]) -> type:
            class DecidingPhone(VoIPPhone):
                def __init__(self, *args: Any, **kwargs: Any) -> None:
                    super().__init__(*args, **kwargs)
                    self._decisions: dict[str, Decision] = {}
                    self._rejected: dict[str, bytes] = {}
                    #: an answer (RTP bound, 200 OK sent) and a CANCEL of the
                    #: same call, one after the other: a CANCEL that closed the
                    #: RTP sockets before the answer opened them leaked them
                    self.answering = threading.Lock()

                def request_port(self, blocking: bool = True) -> int:
                    # pyVoIP hands out a port it has not handed out itself and
                    # binds it only at the answer: one another socket holds (a
                    # call it lost track of, another farm) failed the answer,
                    # and the PBX heard the phone ring out
                    for _ in range(self.rtpPortHigh - self.rtpPortLow + 2):
                        port: int = super().request_port(blocking)
                        if _udp_free(self.myIP, port):
                            return port
                        # left handed out: not pyVoIP's to give while it is held
                    raise NoPortsAvailableError("every RTP port of the phone is held")

                def callback(self, request: Any) -> None:
                    # pyVoIP ignores CANCEL (it only answers it 200): end the
                    # ringing call and answer its INVITE 487, as RFC 3261 says
                    if getattr(request, "method", None) == "CANCEL":
                        self._cancelled(request)
                    return super().callback(request)

                def _callback_MSG_Invite(self, request: Any) -> None:
                    call_id = request.headers["Call-ID"]
                    if call_id in self.calls:
                        return super()._callback_MSG_Invite(request)
                    if call_id in self._rejected:  # a retransmission: same answer
                        self.sip.out.sendto(self._rejected[call_id], (self.server, self.port))
                        return None
                    user = _user_of(request)
                    with farm._lock:
                        farm.invites[user.lstrip("+")] += 1
                    decision = decide(request)
                    if decision.reject is not None:
                        busy = self.sip.gen_busy(request)
                        message = (
                            busy
                            if decision.reject == 486
                            else reject_response(busy, decision.reject)
                        ).encode("utf8")
                        self._rejected[call_id] = message
                        self.sip.out.sendto(message, (self.server, self.port))
                        note(user, call_id, f"rejected {decision.reject}")
                        return None
                    self._decisions[call_id] = decision
                    note(user, call_id, "ringing")
                    return super()._callback_MSG_Invite(request)

                def _callback_MSG_Bye(self, request: Any) -> None:
                    call_id = request.headers["Call-ID"]
                    ours = call_id in self.calls
                    super()._callback_MSG_Bye(request)
                    if ours:  # finding 13: the other side hung up, the phone is free
                        note(_user_of(request), call_id, "hung up by the other side")
                        self._decisions.pop(call_id, None)
                        on_end(call_id)

                def _cancelled(self, request: Any) -> None:
                    call_id = request.headers["Call-ID"]
                    call = self.calls.get(call_id)
                    if call is None:
                        return
                    with self.answering:
                        if call.state != CallState.RINGING:
                            return  # answered first: the PBX's BYE ends it
                        call.state = CallState.ENDED
                    for rtp in call.RTPClients:
                        with contextlib.suppress(Exception):
                            rtp.stop()
                    self.calls.pop(call_id, None)
                    self._decisions.pop(call_id, None)
                    terminated = reject_response(self.sip.gen_busy(call.request), 487)
                    threading.Timer(
                        0.02,
                        lambda: self.sip.out.sendto(
                            terminated.encode("utf8"), (self.server, self.port)
                        ),
                    ).start()
                    note(_user_of(call.request), call_id, "cancelled")
                    on_end(call_id)

            def on_call(call: Any) -> None:
                decision = call.phone._decisions.get(call.call_id)
                if decision is None or decision.answer_after is None:
                    return  # cancelled meanwhile, or: ring until cancelled
                wait = max(0.0, decision.answer_after - PYVOIP_CALLBACK_DELAY)
                threading.Timer(wait, lambda: _answer(call, decision)).start()

            def _answer(call: Any, decision: Decision) -> None:
                with call.phone.answering:
                    if call.state != CallState.RINGING:
                        return  # cancelled while we waited
                    try:
                        call.answer()
                    except Exception as exc:
                        log(f"answer failed: {exc!r}")
                        on_end(call.call_id)
                        return
                note(_user_of(call.request), call.call_id, "answered")
                if decision.audio:
                    call.write_audio(decision.audio)
                if decision.hangup_after is not None:
                    threading.Timer(decision.hangup_after, lambda: _hangup(call)).start()

            def _hangup(call: Any) -> None:
                if call.state != CallState.ANSWERED:
                    return  # the other side hung up first
                with contextlib.suppress(Exception):
                    call.hangup()
                note(_user_of(call.request), call.call_id, "hung up")
                on_end(call.call_id)

            DecidingPhone.on_call = staticmethod(on_call)  # type: ignore[attr-defined]  # added after the class body, which on_call follows
            return DecidingPhone

        ports = dict(sip_ports or {})

        def agent_invite(ext: str) -> Callable[[Any], Decision]:
            """The decision on an INVITE to agent ``ext``'s phone."""
            return lambda req: agent_decider.invite(ext, req.headers["Call-ID"])

        for i, ext in enumerate(agents):
            cls = make_class(agent_invite(ext), agent_decider.call_ended)
            phone = cls(
                host,
                port,
                ext,
                password(ext),
                myIP="127.0.0.1",
                sipPort=ports.get(ext, first_sip_port + i),
                callCallback=lambda call, c=cls: c.on_call(call),
                rtpPortLow=first_rtp_port + 100 * i,
                rtpPortHigh=first_rtp_port + 99 + 100 * i,
            )
            self.phones.append(phone)
        if customers is not None:
            cls = make_class(
                lambda req: customers.invite(_user_of(req)),
                lambda _call_id: None,
            )
            uas = cls(
                host,
                port,
                "customers",
                "",
                myIP=customer_listen[0],
                sipPort=customer_listen[1],
                callCallback=lambda call, c=cls: c.on_call(call),
                rtpPortLow=customer_rtp[0],
                rtpPortHigh=customer_rtp[1],
            )
            uas.sip.register = lambda: True  # static contact on the PBX: never register
            self.phones.append(uas)

    def start(self) -> None:
        for phone in self.phones:
            phone.start()
        self.log(f"{len(self.phones)} SIP endpoints started")

    def stop(self) -> None:
        for phone in self.phones:
            try:
                phone.stop()
            except Exception as exc:
                self.log(f"stopping a phone failed: {exc}")

    def events_of(self, user: str) -> list[str]:
        """What happened to the calls of ``user`` (an extension or a number), in order."""
        user = user.lstrip("+")
        with self._lock:
            return [what for _t, u, _c, what in self.events if u.lstrip("+") == user]
