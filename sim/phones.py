"""SIP endpoint farm for a real Asterisk (``dirigent sim phones``).

Two sides, each a set of pyVoIP phones in this (separate) process — pyVoIP
is thread-based, so the farm never runs inside the Twisted server:

* **agent phones** ``1001``… register with digest auth (passwords as in the
  lab's ``pjsip.conf``: ``pw<ext>``) and auto-answer; one call at a time,
  a second INVITE gets ``486 Busy Here``;
* the **customer side**: one UAS without registration (the lab's
  ``customers`` trunk has a static contact, ``sip:127.0.0.1:5080``) that
  answers every called number per the seeded model of :mod:`sim.fates`:
  a person or machine answers after the ring time and hangs up after the
  talk time; busy gets 486, invalid 404, congestion 503; no answer rings
  until the caller gives up.

:class:`AgentDecider` and :class:`CustomerDecider` hold all decisions and
are pure (tested in CI); :class:`PhoneFarm` only wires them to pyVoIP.
Facts about pyVoIP 1.6.8 we work around (``../shared/asterisk/README.md``):
the call callback always runs through a 1 s timer; ``call.deny()`` raises
after sending 486, so rejections are sent from the SIP layer directly; the
customer UAS must not try to register.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sim.fates import CallFate, call_rng, draw_fate
from sim.workload import Workload

#: pyVoIP starts the call callback through a 1 s timer (measured, see the
#: shared Asterisk README); delays below it cannot be honoured.
PYVOIP_CALLBACK_DELAY = 1.0

SIP_REASON = {404: "Not Found", 486: "Busy Here", 503: "Service Unavailable"}
_TO_NUMBER = re.compile(r"sip:(?P<user>[^@;>]+)@")


@dataclass(frozen=True)
class Decision:
    """What to do with an INVITE: reject with a SIP status, or ring, answer
    after ``answer_after`` seconds (None: never) and hang up after
    ``hangup_after`` seconds of talk (None: wait for the other side)."""

    reject: int | None = None
    answer_after: float | None = None
    hangup_after: float | None = None


def called_number(to_header: str) -> str:
    """The user part of a To header, ``+`` kept: ``<sip:+4930555@h>`` → ``+4930555``."""
    m = _TO_NUMBER.search(to_header)
    return m.group("user") if m else to_header.strip("<> ")


class AgentDecider:
    """Agent phones: answer after ``answer_delay``, one call at a time."""

    def __init__(self, answer_delay: float = PYVOIP_CALLBACK_DELAY) -> None:
        self.answer_delay = answer_delay
        self.busy: set[str] = set()
        self._lock = threading.Lock()

    def invite(self, ext: str) -> Decision:
        with self._lock:
            if ext in self.busy:
                return Decision(reject=486)
            self.busy.add(ext)
        return Decision(answer_after=self.answer_delay)

    def ended(self, ext: str) -> None:
        with self._lock:
            self.busy.discard(ext)


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
        talk = fate.talk if fate.outcome == "live" else self.workload.amd.undetected_machine_talk
        return Decision(answer_after=max(fate.ring, PYVOIP_CALLBACK_DELAY), hangup_after=talk)


def reject_response(busy_response: str, status: int) -> str:
    """Turn pyVoIP's generated ``486 Busy Here`` into another final status."""
    first, sep, rest = busy_response.partition("\r\n")
    version = first.split(" ", 1)[0]
    return f"{version} {status} {SIP_REASON[status]}{sep}{rest}"


class PhoneFarm:  # pragma: no cover - needs a real Asterisk; run by hand, see README
    """pyVoIP phones wired to the deciders (thread-based, own process)."""

    def __init__(
        self,
        asterisk: tuple[str, int],
        agents: list[str],
        agent_decider: AgentDecider,
        customers: CustomerDecider | None,
        customer_listen: tuple[str, int] = ("127.0.0.1", 5080),
        password: Callable[[str], str] = lambda ext: f"pw{ext}",
        first_sip_port: int = 5071,
        log: Callable[[str], None] = print,
    ) -> None:
        from pyVoIP.VoIP import VoIPPhone

        self.log = log
        self.phones: list[Any] = []
        host, port = asterisk

        def make_class(decide: Callable[[Any], Decision], on_end: Callable[[Any], None]) -> type:
            class DecidingPhone(VoIPPhone):  # type: ignore[misc,valid-type]
                def _callback_MSG_Invite(self, request: Any) -> None:
                    if request.headers["Call-ID"] in self.calls:
                        return super()._callback_MSG_Invite(request)
                    decision = decide(request)
                    if decision.reject is not None:
                        busy = self.sip.gen_busy(request)
                        message = (
                            busy
                            if decision.reject == 486
                            else reject_response(busy, decision.reject)
                        )
                        self.sip.out.sendto(message.encode("utf8"), (self.server, self.port))
                        return None
                    self._decision = decision
                    return super()._callback_MSG_Invite(request)

            def on_call(call: Any) -> None:
                decision: Decision = call.phone._decision
                if decision.answer_after is None:
                    return  # ring until cancelled
                wait = max(0.0, decision.answer_after - PYVOIP_CALLBACK_DELAY)
                threading.Timer(wait, lambda: _answer(call, decision)).start()

            def _answer(call: Any, decision: Decision) -> None:
                try:
                    call.answer()
                except Exception as exc:
                    log(f"answer failed: {exc}")
                    on_end(call)
                    return
                if decision.hangup_after is not None:
                    threading.Timer(decision.hangup_after, lambda: _hangup(call)).start()

            def _hangup(call: Any) -> None:
                with contextlib.suppress(Exception):
                    call.hangup()
                on_end(call)

            DecidingPhone.on_call = staticmethod(on_call)  # type: ignore[attr-defined]
            return DecidingPhone

        for i, ext in enumerate(agents):
            cls = make_class(
                lambda _req, e=ext: agent_decider.invite(e),
                lambda _c, e=ext: agent_decider.ended(e),
            )
            phone = cls(
                host,
                port,
                ext,
                password(ext),
                myIP="127.0.0.1",
                sipPort=first_sip_port + i,
                callCallback=lambda call, c=cls: c.on_call(call),
                rtpPortLow=30000 + 100 * i,
                rtpPortHigh=30099 + 100 * i,
            )
            self.phones.append(phone)
        if customers is not None:
            cls = make_class(
                lambda req: customers.invite(called_number(req.headers["To"]["raw"])),
                lambda _c: None,
            )
            uas = cls(
                host,
                port,
                "customers",
                "",
                myIP=customer_listen[0],
                sipPort=customer_listen[1],
                callCallback=lambda call, c=cls: c.on_call(call),
                rtpPortLow=40000,
                rtpPortHigh=49999,
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
