"""The tier's SIP endpoints (the phone farm of :mod:`sim.phones`, in
threads of the test process): agent phones registered at the lab, and the
far end of the ``customers`` trunk answering each number as scripted."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque

from sim.phones import AgentDecider, PhoneFarm, ScriptedCustomers
from tests.realpbx.lab import PASSWORDS, Lab, free_udp_port

#: what pyVoIP says (only to its ``debug``, printed when ``pyVoIP.DEBUG``) that
#: a failed scenario's report keeps: its swallowed errors (a message it could
#: not parse is dropped unanswered), registrations, calls it could not find
PYVOIP_WORTH_KEEPING = (
    "rror",
    "REGISTER",
    "nknown",
    "nkown",
    "Unable",
    "not found",
    "Re-negotiation",
)

#: agent phones the farm registers (1004 answers the dialplan's fallback queue)
PHONES = ("1001", "1002", "1003", "1004", "1005", "1006", "alice")


class Farm:
    """The SIP endpoints: agent phones registered at the lab, and the far
    end of the ``customers`` trunk with a script per called number."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.customers = ScriptedCustomers({}, talk=8.0)
        self.agents = AgentDecider()
        #: what the phones said (an answer that failed...), for a failed scenario's report
        self.log: deque[tuple[float, str]] = deque(maxlen=200)
        self._log_lock = threading.Lock()
        self.phones = PhoneFarm(
            ("127.0.0.1", lab.sip_port),
            list(PHONES),
            self.agents,
            self.customers,
            customer_listen=("127.0.0.1", lab.trunk_port),
            password=lambda ext: PASSWORDS[ext],
            sip_ports={ext: free_udp_port() for ext in PHONES},
            log=self._note,
        )
        # pyVoIP swallows a message it cannot handle (SIP.recv: "Error on header
        # parsing"), saying so only to debug(): keep those lines for the report
        # (imported once the farm has: pyVoIP.SIP alone first is a circular import)
        import pyVoIP.RTP
        import pyVoIP.SIP
        import pyVoIP.VoIP.VoIP

        self._pyvoip_modules = (pyVoIP.RTP, pyVoIP.SIP, pyVoIP.VoIP.VoIP)
        for module in self._pyvoip_modules:
            module.debug = self._pyvoip_said  # type: ignore[attr-defined]

    def _note(self, message: str) -> None:
        with self._log_lock:
            self.log.append((time.monotonic(), message))

    def start(self) -> None:
        self.phones.start()

    def stop(self) -> None:
        """Stop the phones and give pyVoIP its own debug() back."""
        import pyVoIP

        self.phones.stop()
        for module in self._pyvoip_modules:
            module.debug = pyVoIP.debug  # type: ignore[attr-defined]

    def _pyvoip_said(self, message: object, exc: object = None) -> None:
        text = str(message if exc is None else f"{message} {exc}")
        if any(word in text for word in PYVOIP_WORTH_KEEPING):
            self._note(f"pyVoIP: {text[:400]}")

    def report(self, since: float) -> str:
        """The phones' calls and messages since ``since`` (monotonic), one per
        line with its seconds from ``since``: what a failed scenario's report
        shows of the SIP endpoints' side."""
        with self._log_lock:
            said = [(t, "", "", m) for t, m in self.log if t >= since]
        with self.phones._lock:
            calls = [e for e in self.phones.events if e[0] >= since]
        lines = []
        for t, user, call_id, what in sorted(said + calls, key=lambda e: e[0]):
            who = f"{user} {call_id[:12]} " if user else ""
            lines.append(f"{t - since:7.2f} s  {who}{what}")
        return "\n".join(lines)

    def script(self, behaviours: dict[str, str]) -> None:
        """Give called numbers their behaviour (human, machine, busy, ...)."""
        for number, kind in behaviours.items():
            self.customers.script[number.lstrip("+")] = kind

    def invites(self, number: str) -> int:
        return self.phones.invites[number.lstrip("+")]

    def held_calls(self) -> set[str]:
        """The SIP call ids every phone holds now."""
        return {call_id for phone in self.phones.phones for call_id in phone.calls}

    def forget_dead_calls(self, only: set[str] | None = None) -> int:
        """After the PBX died (kill -9) no BYE will ever come: end every call the
        phones still hold (``only``: of these call ids), locally (no SIP sent),
        and free the agent phones, as a real phone does once it notices the
        dead call.  Without this an agent phone refuses its re-nail with 486
        for ever, and the dead calls' RTP keeps arriving at ports the restarted
        Asterisk hands to new calls.  Returns how many calls were dropped."""
        dropped = 0
        for phone in self.phones.phones:
            for call_id, call in list(phone.calls.items()):
                if only is not None and call_id not in only:
                    continue
                with contextlib.suppress(Exception):
                    call.bye()  # stops its RTP, leaves phone.calls
                phone.calls.pop(call_id, None)
                self.agents.call_ended(call_id)
                dropped += 1
        return dropped

    def registered(self) -> bool:
        out = self.lab.contacts()
        return all(f"{ext}/sip:" in out for ext in PHONES)
