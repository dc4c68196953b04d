"""Inbound callers: a pyVoIP phone that calls a DID of the lab from the
trunk's side (127.0.0.1, not registered: the lab identifies it as the
``customers`` endpoint by its address), presenting its own number."""

from __future__ import annotations

import contextlib
import secrets
import time
from typing import Any

from tests.realpbx.lab import Lab, free_udp_port


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
        self.phone.sip.register = lambda: True  # a trunk peer: never registers
        # pyVoIP derives Call-ID *and* the INVITE's Via branch from a counter
        # starting at 1 in every phone: a second caller's first INVITE has the
        # branch of the first caller's, and Asterisk takes it for a
        # retransmission (answers the old call's 200 OK to the old port).
        self.phone.sip.callID.x = secrets.randbelow(10**12)
        self.call: Any = None

    def __enter__(self) -> InboundCaller:
        self.phone.start()
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
