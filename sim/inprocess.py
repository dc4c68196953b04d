"""The PBX link (and so the domain port, :class:`asterisk.port.AsteriskVoice`)
over the simulated PBX model, in process.

No TCP and no AMI text: the model's events (header lists, read as dicts)
go straight through the same normalisers, mirror and originate tracker as
on the AMI path, and actions are validated by the same builders.  Under
``twisted.internet.task.Clock`` everything is deterministic for a seed, so
an 8-hour campaign is a loop of ``clock.advance()``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime

from asterisk import actions as ami
from asterisk.errors import ActionFailed
from asterisk.events import (
    KNOWN_EVENTS,
    OriginateResponse,
    OriginateResult,
    PbxEvent,
    normalize_fields,
)
from asterisk.framing import AmiMessage
from asterisk.mirror import ChannelMirror
from asterisk.originate import CAUSE_GRACE_SECONDS, OriginateTracker
from asterisk.port import AsteriskVoice, Subscriber
from sim.pbx import Headers, SimError, SimPbx, action_fields


class SimTelephony(AsteriskVoice):
    """The domain port over ``pbx``.

    ``exclude_events``: event names dropped at the PBX, as the AMI link's
    ``exclude_events`` has Asterisk drop them (``Action: Filter``); the
    simulated PBX then never formats them.  The pacing lab drops five
    (``dirigent.lab.LAB_EXCLUDED_EVENTS``, three in five of a dial's events)
    that nothing it wires reads: the domain port translates none of them
    (VarSet, DeviceStateChange, DialBegin), and the rest (NewCallerid,
    Newstate) only update the mirror's record of a channel, which only a
    resync reads."""

    def __init__(
        self, pbx: SimPbx, name: str = "sim", *, exclude_events: Iterable[str] = ()
    ) -> None:
        self.pbx = pbx
        self.name = name
        self.clock: IReactorTime = pbx.clock
        self.mirror = ChannelMirror(name)
        self.tracker = OriginateTracker(name)
        self._subscribers: list[Subscriber] = []
        self._pending: dict[str, Deferred[OriginateResult]] = {}
        self._ids = itertools.count(1)
        # the rest would be dropped anyway
        pbx.subscribe(self._on_headers, KNOWN_EVENTS - frozenset(exclude_events))

    @property
    def connected(self) -> bool:
        return self.pbx.booted

    def subscribe(self, callback: Subscriber) -> None:
        self._subscribers.append(callback)

    # -- events ---------------------------------------------------------------------
    def _on_headers(self, headers: Headers) -> None:
        name = headers[0][1]
        # The headers as a dict (half the cost of scanning tuples), except for
        # a UserEvent: its body may repeat a channel-block name (CallerIDNum of
        # DirigentInbound), and the body is what follows the UserEvent header.
        fields = AmiMessage(tuple(headers)) if name == "UserEvent" else dict(headers)
        event = normalize_fields(self.name, name, fields)
        if event is None:
            return
        if type(event) is OriginateResponse and (
            event.action_id not in self._pending or self.tracker.stray(event) is not None
        ):
            return  # not the answer to an Originate of ours (see asterisk.originate)
        event = self.mirror.annotate(event)
        self.mirror.apply(event)
        result = self.tracker.on_event(event, self.clock.seconds())
        if type(event) is OriginateResponse and result is None:
            self.clock.callLater(CAUSE_GRACE_SECONDS, self._expire)
        self._emit(event)
        if result is not None:
            self._finish(result)

    def _expire(self) -> None:
        for result in self.tracker.expire(self.clock.seconds()):
            self._finish(result)

    def _finish(self, result: OriginateResult) -> None:
        self._emit(result)
        d = self._pending.pop(result.action_id, None)
        if d is not None:
            d.callback(result)

    def _emit(self, event: PbxEvent) -> None:
        for callback in self._subscribers:
            callback(event)

    # -- actions ----------------------------------------------------------------------
    def originate(
        self, channel: str, *, variables: Mapping[str, str] | None = None, **kw: Any
    ) -> Deferred[OriginateResult]:
        try:
            action = ami.originate(channel, variables=variables, **kw)
        except ami.ActionError as exc:
            return fail(exc)
        action_id = f"{self.name}-{next(self._ids)}"
        d: Deferred[OriginateResult] = Deferred()
        self._pending[action_id] = d
        fields = action_fields(action.headers)
        self.tracker.expect(action_id, fields.get("ChannelId"))
        self.pbx.originate(fields, action_id, self._on_headers)
        return d

    def _call(
        self, build: Callable[..., ami.Action], run: Callable[[dict[str, Any]], Any], *args: Any
    ) -> Deferred[None]:
        try:
            action = build(*args)
            run(action_fields(action.headers))
        except ami.ActionError as exc:
            return fail(exc)
        except SimError as exc:
            return fail(ActionFailed(action.name, str(exc)))
        return succeed(None)

    def redirect(self, channel: str, context: str, exten: str, priority: int = 1) -> Deferred[None]:
        return self._call(
            ami.redirect,
            lambda f: self.pbx.redirect(f["Channel"], f["Context"], f["Exten"], int(f["Priority"])),
            channel,
            context,
            exten,
            priority,
        )

    def bridge(self, channel1: str, channel2: str) -> Deferred[None]:
        return self._call(
            ami.bridge, lambda f: self.pbx.bridge(f["Channel1"], f["Channel2"]), channel1, channel2
        )

    def hangup(self, channel: str, cause: int = 16) -> Deferred[None]:
        return self._call(
            ami.hangup, lambda f: self.pbx.hangup(f["Channel"], int(f["Cause"])), channel, cause
        )

    def setvar(self, channel: str, variable: str, value: str) -> Deferred[None]:
        return self._call(
            ami.setvar,
            lambda f: self.pbx.setvar(f["Channel"], f["variable"], f["Value"]),
            channel,
            variable,
            value,
        )

    def play_moh(self, channel: str, on: bool = True) -> Deferred[None]:
        build = ami.play_moh if on else ami.stop_moh
        return self._call(build, lambda f: self.pbx.music_on_hold(f["Channel"], on), channel)

    def db_get(self, family: str, key: str) -> Deferred[str | None]:
        try:
            ami.db_get(family, key)
        except ami.ActionError as exc:
            return fail(exc)
        return succeed(self.pbx.astdb.get((family, key)))

    def db_del(self, family: str, key: str) -> Deferred[None]:
        return self._call(
            ami.db_del, lambda f: self.pbx.astdb.pop((f["Family"], f["Key"]), None), family, key
        )

    def message_send(self, to: str, body: str, sender: str | None = None) -> Deferred[None]:
        return self._call(
            ami.message_send, lambda f: self.pbx.message_send(f["To"]), to, body, sender
        )
