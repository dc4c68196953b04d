"""The Telephony port: what routing and the dialer need from a PBX.

Two implementations share it: :class:`asterisk.telephony.AmiTelephony`
(a real or simulated Asterisk over AMI) and :class:`sim.inprocess.SimTelephony`
(the simulated PBX model called directly, so that a run under
``twisted.internet.task.Clock`` compresses hours into seconds).  Results are
Twisted Deferreds: they work with the live reactor and with a Clock alike.

Every method validates its input with :mod:`asterisk.actions` (the same
checks on both implementations) and fails with the errors of
:mod:`asterisk.errors`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol, runtime_checkable

from twisted.internet.defer import Deferred

from asterisk.events import OriginateResult, PbxEvent
from asterisk.mirror import ChannelMirror

Subscriber = Callable[[PbxEvent], None]


@runtime_checkable
class Telephony(Protocol):
    name: str
    mirror: ChannelMirror

    @property
    def connected(self) -> bool: ...

    def subscribe(self, callback: Subscriber) -> None: ...

    def originate(
        self,
        channel: str,
        *,
        context: str | None = None,
        exten: str | None = None,
        priority: int = 1,
        application: str | None = None,
        data: str | None = None,
        timeout_ms: int = 30_000,
        caller_id: str | None = None,
        variables: Mapping[str, str] | None = None,
        channel_id: str | None = None,
    ) -> Deferred[OriginateResult]: ...

    def redirect(
        self, channel: str, context: str, exten: str, priority: int = 1
    ) -> Deferred[None]: ...

    def bridge(self, channel1: str, channel2: str) -> Deferred[None]: ...

    def hangup(self, channel: str, cause: int = 16) -> Deferred[None]: ...

    def setvar(self, channel: str, variable: str, value: str) -> Deferred[None]: ...

    def play_moh(self, channel: str, on: bool = True) -> Deferred[None]: ...

    def message_send(self, to: str, body: str, sender: str | None = None) -> Deferred[None]: ...
