"""Inbound callers: a pyVoIP phone that calls a DID of the lab from the
trunk's side (127.0.0.1, not registered: the lab identifies it as the
``customers`` endpoint by its address), presenting its own number."""

from __future__ import annotations

import contextlib
import secrets
import select
import threading
import time
from typing import Any

from tests.realpbx.lab import Lab, free_udp_port


class _InviteSocket:
    """pyVoIP's SIP socket, made safe for its INVITE.

    pyVoIP's receive loop makes the socket non-blocking while it holds the
    receive lock and blocking again only *after* releasing it, so an INVITE
    that takes the lock in between reads a non-blocking socket and fails with
    BlockingIOError (seen in CI on a loaded machine).  Here a read from any
    thread but the receive loop's waits up to ``timeout`` for the answer."""

    def __init__(self, sock: Any, timeout: float = 5.0) -> None:
        self._sock = sock
        self._timeout = timeout
        self.loop_thread: threading.Thread | None = None

    def recv(self, size: int) -> bytes:
        if threading.current_thread() is self.loop_thread:
            return self._sock.recv(size)  # the loop relies on BlockingIOError
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                return self._sock.recv(size)
            except BlockingIOError:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise
                select.select([self._sock], [], [], left)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def ack_in_the_dialog(sip: Any) -> None:
    """pyVoIP 1.6.8 acknowledges a 200 OK with a To tag of its own making
    (``gen_ack``: ``tag={self.gen_tag()}``), not the one the 200 OK set:
    Asterisk cannot match the ACK to the dialog, retransmits its 200 OK for
    64*T1 and hangs the call up, cause 18, 32 s after the answer (QA round
    3, finding 11).  The ACK is made to carry the answer's tag (RFC 3261
    17.1.1.3: the ACK's To is the response's)."""
    made = sip.gen_ack

    def gen_ack(response: Any) -> str:
        ack: str = made(response)
        tag = response.headers["To"].get("tag") or ""
        if not tag:
            return ack
        to = f"To: {response.headers['To']['raw']};tag={tag}"
        return "\r\n".join(to if line.startswith("To: ") else line for line in ack.split("\r\n"))

    sip.gen_ack = gen_ack


class InboundCaller:
    """One caller with one number; :meth:`dial` places a call to a DID."""

    def __init__(self, lab: Lab, number: str) -> None:
        from pyVoIP.VoIP import VoIPPhone

        self.number = number
        port = free_udp_port()
        self.phone: Any = VoIPPhone(
            "127.0.0.1",
            lab.sip_port,
            number,  # the From user: the caller's number as Asterisk sees it
            "",
            myIP="127.0.0.1",
            sipPort=port,
            rtpPortLow=36000 + port % 1000 * 2,
            rtpPortHigh=36001 + port % 1000 * 2,
        )
        self.phone.sip.register = lambda: True  # type: ignore[method-assign]  # a trunk peer: never registers (pyVoIP has no switch for it)
        # pyVoIP derives Call-ID *and* the INVITE's Via branch from a counter
        # starting at 1 in every phone: a second caller's first INVITE has the
        # branch of the first caller's, and Asterisk takes it for a
        # retransmission (answers the old call's 200 OK to the old port).
        self.phone.sip.callID.x = secrets.randbelow(10**12)
        ack_in_the_dialog(self.phone.sip)
        self.call: Any = None

    def __enter__(self) -> InboundCaller:
        sip = self.phone.sip
        loop = sip.recv_loop
        guard: list[_InviteSocket] = []

        def recv_loop() -> None:  # note the loop's thread, then run it
            if guard:
                guard[0].loop_thread = threading.current_thread()
            loop()

        sip.recv_loop = recv_loop  # pyVoIP starts it from a timer, 1 s after start()
        self.phone.start()
        guard.append(_InviteSocket(sip.s))
        sip.s = sip.out = guard[0]
        time.sleep(1.1)  # pyVoIP starts its receive loop after 1 s
        return self

    def dial(self, did: str) -> None:
        self.call = self.phone.call(did)

    def answered(self) -> bool:
        from pyVoIP.VoIP import CallState

        return self.call is not None and self.call.state == CallState.ANSWERED

    def hangup(self) -> None:
        from pyVoIP.VoIP import CallState

        if self.call is not None and self.call.state == CallState.ANSWERED:
            with contextlib.suppress(Exception):
                self.call.hangup()

    def __exit__(self, *exc: object) -> None:
        self.hangup()
        with contextlib.suppress(Exception):
            self.phone.stop()
