"""A live mirror of the PBX's channels and bridges, rebuilt by resync.

The PBX is the truth for calls (DESIGN.md, principle 4).  While the AMI link
is up the mirror follows the event stream; after every (re)connect the
session lists the channels (``CoreShowChannels``, whose items carry the
``BridgeId``) and :meth:`ChannelMirror.resync` replaces the mirror with that
snapshot and returns the differences as ordinary domain events, so that a
consumer sees calls that ended or started while the link was down exactly as
if it had watched them live (flagged ``resynced=True``).

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from asterisk.events import (
    NO_SOFT_HANGUP,
    BridgeCreated,
    BridgeDestroyed,
    BridgeEntered,
    BridgeLeft,
    CallerIdChanged,
    ChannelAnswered,
    ChannelCreated,
    ChannelHungUp,
    ChannelState,
    ChannelStateChanged,
    PbxEvent,
    SoftHangup,
    SoftHangupRequested,
    VariableSet,
)
from asterisk.framing import AmiMessage

#: Channel variables the mirror keeps (our own, set by Originate or the
#: dialplan); everything else is dropped to keep the mirror small.
KEPT_VARIABLE_PREFIX = "DIRIGENT_"


@dataclass(slots=True)
class Channel:
    uniqueid: str
    linkedid: str
    name: str
    state: ChannelState
    caller_num: str = ""
    caller_name: str = ""
    context: str = ""
    exten: str = ""
    bridge_id: str | None = None
    #: the dialplan application it ran when last read whole (a resync's
    #: ``CoreShowChannel``; live ``Newexten`` events are not followed)
    application: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    #: flags of the SoftHangupRequest events seen for it (SHUTDOWN on a restart)
    soft_hangup: SoftHangup = NO_SOFT_HANGUP


@dataclass(frozen=True, slots=True)
class ChannelSnapshot:
    """One ``CoreShowChannel`` list item."""

    uniqueid: str
    linkedid: str
    name: str
    state: ChannelState
    caller_num: str
    caller_name: str
    context: str
    exten: str
    bridge_id: str | None
    application: str = ""

    @classmethod
    def from_message(cls, m: AmiMessage) -> ChannelSnapshot:
        return cls(
            m.get("Uniqueid") or "",
            m.get("Linkedid") or "",
            m.get("Channel") or "",
            ChannelState.parse(m.get("ChannelState")),
            m.get("CallerIDNum") or "",
            m.get("CallerIDName") or "",
            m.get("Context") or "",
            m.get("Exten") or "",
            m.get("BridgeId") or None,
            m.get("Application") or "",
        )


class ChannelMirror:
    """Channels by Uniqueid and bridges by id, for one PBX."""

    def __init__(self, pbx: str) -> None:
        self.pbx = pbx
        self.channels: dict[str, Channel] = {}
        self.bridges: dict[str, set[str]] = {}

    # -- live events ------------------------------------------------------------
    def annotate(self, event: PbxEvent) -> PbxEvent:
        """``event`` as consumers should see it: a :class:`ChannelHungUp`
        gains the soft-hangup flags its channel collected (so that a call cut
        by a restart is told from one the far end ended).  Call it before
        :meth:`apply`, which forgets the channel."""
        if type(event) is ChannelHungUp:
            chan = self.channels.get(event.uniqueid)
            if chan is not None and chan.soft_hangup:
                return replace(event, soft_hangup=chan.soft_hangup)
        return event

    def apply(self, event: PbxEvent) -> None:
        """Follow one event (events of other kinds are ignored)."""
        match event:
            case ChannelCreated():
                self.channels[event.uniqueid] = Channel(
                    event.uniqueid,
                    event.linkedid,
                    event.channel,
                    event.state,
                    event.caller_num,
                    event.caller_name,
                    event.context,
                    event.exten,
                )
            case ChannelAnswered():
                if chan := self.channels.get(event.uniqueid):
                    chan.state = ChannelState.UP
            case ChannelStateChanged():
                if chan := self.channels.get(event.uniqueid):
                    chan.state = event.state
            case CallerIdChanged():
                if chan := self.channels.get(event.uniqueid):
                    chan.caller_num = event.caller_num
                    chan.caller_name = event.caller_name
            case VariableSet():
                if event.variable.startswith(KEPT_VARIABLE_PREFIX) and (
                    chan := self.channels.get(event.uniqueid)
                ):
                    chan.variables[event.variable] = event.value
            case SoftHangupRequested():
                if chan := self.channels.get(event.uniqueid):
                    chan.soft_hangup |= event.flags
            case ChannelHungUp():
                chan = self.channels.pop(event.uniqueid, None)
                if chan and chan.bridge_id:
                    self._leave(chan.bridge_id, chan.uniqueid)
            case BridgeCreated():
                self.bridges.setdefault(event.bridge_id, set())
            case BridgeDestroyed():
                self.bridges.pop(event.bridge_id, None)
            case BridgeEntered():
                chan = self.channels.get(event.uniqueid)
                if chan and chan.bridge_id and chan.bridge_id != event.bridge_id:
                    # a channel is in one bridge at a time, even if a leave was missed
                    self._leave(chan.bridge_id, chan.uniqueid, destroy_empty=False)
                self.bridges.setdefault(event.bridge_id, set()).add(event.uniqueid)
                if chan:
                    chan.bridge_id = event.bridge_id
            case BridgeLeft():
                self._leave(event.bridge_id, event.uniqueid, destroy_empty=False)
                if (
                    chan := self.channels.get(event.uniqueid)
                ) and chan.bridge_id == event.bridge_id:
                    chan.bridge_id = None
            case _:
                pass

    def _leave(self, bridge_id: str, uniqueid: str, destroy_empty: bool = True) -> None:
        members = self.bridges.get(bridge_id)
        if members is None:
            return
        members.discard(uniqueid)
        if destroy_empty and not members:
            del self.bridges[bridge_id]

    # -- queries ----------------------------------------------------------------
    def get(self, uniqueid: str) -> Channel | None:
        return self.channels.get(uniqueid)

    def by_variable(self, name: str, value: str) -> list[Channel]:
        return [c for c in self.channels.values() if c.variables.get(name) == value]

    def clear(self) -> None:
        self.channels.clear()
        self.bridges.clear()

    # -- resync -----------------------------------------------------------------
    def resync(self, snapshot: Iterable[ChannelSnapshot]) -> list[PbxEvent]:
        """Replace the mirror by ``snapshot``; return what changed as events.

        Order of the returned events: channels that vanished (leaving their
        bridges first), then, in snapshot order, state and bridge changes of
        surviving channels and new channels (created, then entering their
        bridge).  Variables of surviving channels are kept; the snapshot does
        not carry them.
        """
        pbx = self.pbx
        fresh = {s.uniqueid: s for s in snapshot if s.uniqueid}
        out: list[PbxEvent] = []
        old = self.channels
        for uid, gone in old.items():
            if uid not in fresh:
                if gone.bridge_id:
                    out.append(BridgeLeft(pbx, gone.bridge_id, uid, gone.name, resynced=True))
                out.append(ChannelHungUp(pbx, uid, gone.name, None, "vanished", resynced=True))
        channels: dict[str, Channel] = {}
        for uid, snap in fresh.items():
            chan = old.get(uid)
            if chan is None:
                chan = Channel(
                    uid,
                    snap.linkedid,
                    snap.name,
                    snap.state,
                    snap.caller_num,
                    snap.caller_name,
                    snap.context,
                    snap.exten,
                )
                out.append(
                    ChannelCreated(
                        pbx,
                        uid,
                        snap.linkedid,
                        snap.name,
                        snap.state,
                        snap.caller_num,
                        snap.caller_name,
                        snap.context,
                        snap.exten,
                        resynced=True,
                    )
                )
            elif chan.state != snap.state:
                chan.state = snap.state
                if snap.state is ChannelState.UP:
                    out.append(ChannelAnswered(pbx, uid, chan.name))
                else:
                    out.append(ChannelStateChanged(pbx, uid, chan.name, snap.state))
            if chan.bridge_id != snap.bridge_id:
                if chan.bridge_id:
                    out.append(BridgeLeft(pbx, chan.bridge_id, uid, chan.name, resynced=True))
                if snap.bridge_id:
                    out.append(BridgeEntered(pbx, snap.bridge_id, uid, chan.name))
                chan.bridge_id = snap.bridge_id
            chan.context, chan.exten = snap.context, snap.exten
            chan.application = snap.application
            channels[uid] = chan
        self.channels = channels
        bridges: dict[str, set[str]] = {}
        for kept in channels.values():
            if kept.bridge_id:
                bridges.setdefault(kept.bridge_id, set()).add(kept.uniqueid)
        self.bridges = bridges
        return out
