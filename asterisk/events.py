"""Typed domain events, normalised from AMI messages.

The rest of Dirigent never sees a raw AMI dict: :func:`normalize` turns the
events it cares about into small frozen dataclasses and ignores the rest
(returning ``None``).  Field names follow what Asterisk 22 sends, as recorded
in ``tests/fixtures/asterisk/*.ami``.

Events that are not from the wire but from the session (connected, lost,
resync finished) live here too, so consumers subscribe to one stream.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from asterisk.framing import AmiMessage
from core.telephony import Outcome as Outcome  # the port's dial outcome, re-exported


class ChannelState(enum.IntEnum):
    """``ChannelState`` numbers as Asterisk sends them (``ast_channel_state``)."""

    DOWN = 0
    RESERVED = 1
    OFFHOOK = 2
    DIALING = 3
    RING = 4
    RINGING = 5
    UP = 6
    BUSY = 7
    DIALING_OFFHOOK = 8
    PRERING = 9
    MUTE = 10

    @classmethod
    def parse(cls, value: str | None) -> ChannelState:
        try:
            return cls(int(value or 0))
        except ValueError:
            return cls.DOWN


class SoftHangup(enum.IntFlag):
    """Why Asterisk asked a channel to hang up: the ``Cause`` of a
    ``SoftHangupRequest`` event.  It is a bit set of ``AST_SOFTHANGUP_*``
    (``include/asterisk/channel.h``), not a Q.850 cause: 4 is a shutdown or
    restart, 16 the end of the channel's dialplan.  Read as a cause, 4 looked
    like "no route" and 1 like "unallocated number" (issue 14, finding 7)."""

    DEV = 0x01  # requested by the channel driver or another internal reason
    ASYNCGOTO = 0x02  # break the frame flow for an async goto (Redirect)
    SHUTDOWN = 0x04  # Asterisk is stopping or restarting
    TIMEOUT = 0x08  # absolute timeout
    APPUNLOAD = 0x10  # the dialplan ended (or an application was unloaded)
    EXPLICIT = 0x20  # requested by someone else (AMI Hangup, CLI)
    HANGUP_EXEC = 0x80  # the channel runs its hangup handlers

    @classmethod
    def parse(cls, value: str | None) -> SoftHangup:
        """The flags of a ``Cause:`` header; unknown bits are kept, junk is 0."""
        try:
            return cls(int(value or 0))
        except ValueError:
            return cls(0)


#: no soft hang-up requested (yet)
NO_SOFT_HANGUP = SoftHangup(0)


# -- events from the wire -----------------------------------------------------
@dataclass(frozen=True, slots=True)
class PbxEvent:
    pbx: str


@dataclass(frozen=True, slots=True)
class ChannelCreated(PbxEvent):
    uniqueid: str
    linkedid: str
    channel: str
    state: ChannelState
    caller_num: str
    caller_name: str
    context: str
    exten: str
    resynced: bool = False


@dataclass(frozen=True, slots=True)
class ChannelStateChanged(PbxEvent):
    uniqueid: str
    channel: str
    state: ChannelState


@dataclass(frozen=True, slots=True)
class ChannelAnswered(PbxEvent):
    """A channel went Up (``Newstate`` with ``ChannelState: 6``)."""

    uniqueid: str
    channel: str


@dataclass(frozen=True, slots=True)
class CallerIdChanged(PbxEvent):
    uniqueid: str
    caller_num: str
    caller_name: str


@dataclass(frozen=True, slots=True)
class ChannelHungUp(PbxEvent):
    """A channel ended.  ``cause`` is the Q.850 cause; ``None`` when the
    channel vanished while the link was down and resync found it gone.
    ``soft_hangup`` holds the flags of the ``SoftHangupRequest`` events the
    channel had before (filled in by the channel mirror): a call cut by a
    PBX shutdown or restart has :attr:`cut_by_shutdown` and a cause of 0,
    which says nothing about the far end."""

    uniqueid: str
    channel: str
    cause: int | None
    cause_text: str = ""
    resynced: bool = False
    soft_hangup: SoftHangup = NO_SOFT_HANGUP

    @property
    def cut_by_shutdown(self) -> bool:
        return bool(self.soft_hangup & SoftHangup.SHUTDOWN)


@dataclass(frozen=True, slots=True)
class HangupCauseSeen(PbxEvent):
    """``HangupRequest``/``SoftHangupRequest`` carrying a cause before the
    hang-up itself (over SIP the outcome shows up here first)."""

    uniqueid: str
    cause: int


@dataclass(frozen=True, slots=True)
class SoftHangupRequested(PbxEvent):
    """``SoftHangupRequest``: Asterisk asked the channel to hang up, for the
    reasons in ``flags`` (never a hang-up cause, see :class:`SoftHangup`)."""

    uniqueid: str
    flags: SoftHangup


@dataclass(frozen=True, slots=True)
class DialBegun(PbxEvent):
    uniqueid: str | None  # the dialling channel; None for an Originate's own leg
    dest_uniqueid: str
    dest_channel: str
    dial_string: str


@dataclass(frozen=True, slots=True)
class DialEnded(PbxEvent):
    uniqueid: str | None
    dest_uniqueid: str
    dest_channel: str
    dial_status: str


@dataclass(frozen=True, slots=True)
class BridgeCreated(PbxEvent):
    bridge_id: str
    bridge_type: str


@dataclass(frozen=True, slots=True)
class BridgeDestroyed(PbxEvent):
    bridge_id: str


@dataclass(frozen=True, slots=True)
class BridgeEntered(PbxEvent):
    bridge_id: str
    uniqueid: str
    channel: str


@dataclass(frozen=True, slots=True)
class BridgeLeft(PbxEvent):
    bridge_id: str
    uniqueid: str
    channel: str
    resynced: bool = False


@dataclass(frozen=True, slots=True)
class OriginateResponse(PbxEvent):
    """The raw originate result; :class:`OriginateResult` adds the outcome."""

    action_id: str
    success: bool
    reason: int
    channel: str
    uniqueid: str | None


@dataclass(frozen=True, slots=True)
class UserEventReceived(PbxEvent):
    """A ``UserEvent``.  ``fields`` is its body: every header after
    ``UserEvent:``, as the dialplan wrote it, even where a name is also in the
    channel block before it (the shipped ``DirigentInbound`` sends
    ``CallerIDNum`` in both; the body's is kept).  ``caller_num`` is the
    channel block's own caller id, for events whose body has none."""

    name: str
    uniqueid: str | None
    channel: str | None
    fields: dict[str, str] = field(default_factory=dict)
    caller_num: str | None = None


@dataclass(frozen=True, slots=True)
class Dtmf(PbxEvent):
    uniqueid: str
    digit: str
    direction: str
    end: bool


@dataclass(frozen=True, slots=True)
class DeviceStateChanged(PbxEvent):
    device: str
    state: str


@dataclass(frozen=True, slots=True)
class VariableSet(PbxEvent):
    uniqueid: str
    variable: str
    value: str


@dataclass(frozen=True, slots=True)
class MusicOnHold(PbxEvent):
    uniqueid: str
    playing: bool


@dataclass(frozen=True, slots=True)
class PbxFullyBooted(PbxEvent):
    pass


@dataclass(frozen=True, slots=True)
class PbxShutdown(PbxEvent):
    restart: bool


# -- events from the session --------------------------------------------------
@dataclass(frozen=True, slots=True)
class PbxConnected(PbxEvent):
    version: str


@dataclass(frozen=True, slots=True)
class PbxDisconnected(PbxEvent):
    reason: str


@dataclass(frozen=True, slots=True)
class ResyncCompleted(PbxEvent):
    channels: int
    bridges: int
    seconds: float


@dataclass(frozen=True, slots=True)
class OriginateResult(PbxEvent):
    """The classified end of an originate: answered, busy, no answer, ...

    Asterisk reports SIP busy/congestion/not-found all as ``Reason: 0``; the
    outcome is then taken from the hang-up cause (see :func:`outcome_from_cause`).
    """

    action_id: str
    uniqueid: str | None
    outcome: Outcome
    reason: int
    cause: int | None


# -- classification -------------------------------------------------------------
#: ``OriginateResponse`` reasons (``enum ast_control_frame_type`` values that
#: ``__ast_request_and_dial`` reports): 3 ringing timeout, 4 answer, 5 busy,
#: 8 congestion, 1 hangup, 0 failed-to-start / see the cause.
REASON_OUTCOME: dict[int, Outcome] = {
    4: Outcome.ANSWERED,
    5: Outcome.BUSY,
    3: Outcome.NO_ANSWER,
    8: Outcome.CONGESTION,
    1: Outcome.NO_ANSWER,
}

#: Q.850 causes (as in ``causes.h``) that decide a failed dial.
CAUSE_OUTCOME: dict[int, Outcome] = {
    17: Outcome.BUSY,  # user busy (SIP 486)
    18: Outcome.NO_ANSWER,  # no user responding
    19: Outcome.NO_ANSWER,  # user alerting, no answer (ring timeout)
    21: Outcome.BUSY,  # call rejected (SIP 603) - a person declined
    34: Outcome.CONGESTION,  # circuit/channel congestion (SIP 503)
    38: Outcome.CONGESTION,  # network out of order
    41: Outcome.CONGESTION,  # temporary failure
    42: Outcome.CONGESTION,  # switching equipment congestion
    1: Outcome.INVALID,  # unallocated number (SIP 404)
    3: Outcome.INVALID,  # no route to destination
    22: Outcome.INVALID,  # number changed
    28: Outcome.INVALID,  # invalid number format (SIP 484)
    27: Outcome.FAILED,  # destination out of order
    20: Outcome.FAILED,  # subscriber absent (SIP 480)
}


def outcome_from_cause(cause: int | None) -> Outcome | None:
    if cause is None:
        return None
    return CAUSE_OUTCOME.get(cause)


def classify_originate(reason: int, cause: int | None) -> Outcome:
    """Outcome of a finished originate from its reason and the best cause seen."""
    by_cause = outcome_from_cause(cause)
    if reason == 0:
        return by_cause or Outcome.FAILED
    if reason == 1:  # hung up before answer: the cause says why, if there is one
        return by_cause or Outcome.NO_ANSWER
    return REASON_OUTCOME.get(reason, by_cause or Outcome.FAILED)


# -- normalisation --------------------------------------------------------------
def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


class Fields(Protocol):
    """What a normaliser reads of one event: the first value of a header by
    name, and every header.  An :class:`AmiMessage` from the wire is one; so
    is a plain ``dict`` of headers from the simulated PBX in the same process
    (no text, no tuples to scan: half the cost of a simulated call event)."""

    def get(self, name: str, default: None = None, /) -> str | None: ...

    def items(self) -> Iterable[tuple[str, str]]: ...


def _s(m: Fields, name: str) -> str:
    return m.get(name) or ""


def _created(pbx: str, m: Fields) -> PbxEvent:
    return ChannelCreated(
        pbx,
        _s(m, "Uniqueid"),
        _s(m, "Linkedid"),
        _s(m, "Channel"),
        ChannelState.parse(m.get("ChannelState")),
        _s(m, "CallerIDNum"),
        _s(m, "CallerIDName"),
        _s(m, "Context"),
        _s(m, "Exten"),
    )


def _newstate(pbx: str, m: Fields) -> PbxEvent:
    state = ChannelState.parse(m.get("ChannelState"))
    if state is ChannelState.UP:
        return ChannelAnswered(pbx, _s(m, "Uniqueid"), _s(m, "Channel"))
    return ChannelStateChanged(pbx, _s(m, "Uniqueid"), _s(m, "Channel"), state)


def _hangup(pbx: str, m: Fields) -> PbxEvent:
    return ChannelHungUp(
        pbx, _s(m, "Uniqueid"), _s(m, "Channel"), _int(m.get("Cause")), _s(m, "Cause-txt")
    )


def _hangup_request(pbx: str, m: Fields) -> PbxEvent | None:
    cause = _int(m.get("Cause"))
    if not cause or cause == 16:  # 0: none yet; 16: normal clearing says nothing
        return None
    return HangupCauseSeen(pbx, m.get("Uniqueid") or "", cause)


def _soft_hangup_request(pbx: str, m: Fields) -> PbxEvent:
    # Cause here is AST_SOFTHANGUP_* flags (channel.c ast_softhangup), not Q.850
    return SoftHangupRequested(pbx, _s(m, "Uniqueid"), SoftHangup.parse(m.get("Cause")))


def _dial_begin(pbx: str, m: Fields) -> PbxEvent:
    return DialBegun(
        pbx, m.get("Uniqueid"), _s(m, "DestUniqueid"), _s(m, "DestChannel"), _s(m, "DialString")
    )


def _dial_end(pbx: str, m: Fields) -> PbxEvent:
    return DialEnded(
        pbx, m.get("Uniqueid"), _s(m, "DestUniqueid"), _s(m, "DestChannel"), _s(m, "DialStatus")
    )


def _bridge_enter(pbx: str, m: Fields) -> PbxEvent:
    return BridgeEntered(pbx, _s(m, "BridgeUniqueid"), _s(m, "Uniqueid"), _s(m, "Channel"))


def _bridge_leave(pbx: str, m: Fields) -> PbxEvent:
    return BridgeLeft(pbx, _s(m, "BridgeUniqueid"), _s(m, "Uniqueid"), _s(m, "Channel"))


def _originate(pbx: str, m: Fields) -> PbxEvent:
    return OriginateResponse(
        pbx,
        _s(m, "ActionID"),
        m.get("Response") == "Success",
        _int(m.get("Reason")) or 0,
        _s(m, "Channel"),
        m.get("Uniqueid"),
    )


#: the channel block of a call event, in the order Asterisk sends it
#: (``ast_manager_build_channel_state_string``)
CHANNEL_FIELDS = (
    "Channel",
    "ChannelState",
    "ChannelStateDesc",
    "CallerIDNum",
    "CallerIDName",
    "ConnectedLineNum",
    "ConnectedLineName",
    "Language",
    "AccountCode",
    "Context",
    "Exten",
    "Priority",
    "Uniqueid",
    "Linkedid",
)


def _user_event(pbx: str, m: Fields) -> PbxEvent:
    """Asterisk sends ``<channel block>UserEvent: <name>\r\n<body>``
    (``multi_user_event_to_ami`` in main/stasis.c, ``action_userevent`` in
    main/manager.c): the body is what follows the ``UserEvent`` header, so a
    body field named like a channel-block field is kept, not dropped.  A
    name the body repeats keeps its last value."""
    body: dict[str, str] = {}
    in_body = False
    for key, value in m.items():
        if in_body:
            if key != "ActionID":
                body[key] = value
        elif key == "UserEvent":
            in_body = True
    return UserEventReceived(
        pbx,
        m.get("UserEvent") or "",
        m.get("Uniqueid"),
        m.get("Channel"),
        body,
        m.get("CallerIDNum"),  # the first one: the channel block's
    )


def _dtmf(end: bool) -> Callable[[str, Fields], PbxEvent]:
    def make(pbx: str, m: Fields) -> PbxEvent:
        return Dtmf(pbx, _s(m, "Uniqueid"), _s(m, "Digit"), _s(m, "Direction"), end)

    return make


_NORMALIZERS: dict[str, Callable[[str, Fields], PbxEvent | None]] = {
    "Newchannel": _created,
    "Newstate": _newstate,
    "NewCallerid": lambda p, m: CallerIdChanged(
        p, _s(m, "Uniqueid"), _s(m, "CallerIDNum"), _s(m, "CallerIDName")
    ),
    "Hangup": _hangup,
    "HangupRequest": _hangup_request,
    "SoftHangupRequest": _soft_hangup_request,
    "DialBegin": _dial_begin,
    "DialEnd": _dial_end,
    "BridgeCreate": lambda p, m: BridgeCreated(p, _s(m, "BridgeUniqueid"), _s(m, "BridgeType")),
    "BridgeDestroy": lambda p, m: BridgeDestroyed(p, _s(m, "BridgeUniqueid")),
    "BridgeEnter": _bridge_enter,
    "BridgeLeave": _bridge_leave,
    "OriginateResponse": _originate,
    "UserEvent": _user_event,
    "DTMFBegin": _dtmf(False),
    "DTMFEnd": _dtmf(True),
    "DeviceStateChange": lambda p, m: DeviceStateChanged(p, _s(m, "Device"), _s(m, "State")),
    "VarSet": lambda p, m: VariableSet(p, _s(m, "Uniqueid"), _s(m, "Variable"), _s(m, "Value")),
    "MusicOnHoldStart": lambda p, m: MusicOnHold(p, _s(m, "Uniqueid"), True),
    "MusicOnHoldStop": lambda p, m: MusicOnHold(p, _s(m, "Uniqueid"), False),
    "FullyBooted": lambda p, m: PbxFullyBooted(p),
    "Shutdown": lambda p, m: PbxShutdown(p, _s(m, "Restart").lower() == "true"),
}

#: Event names :func:`normalize` understands; a PBX-side filter can drop the rest.
KNOWN_EVENTS = frozenset(_NORMALIZERS)


def normalize(pbx: str, message: AmiMessage) -> PbxEvent | None:
    """The domain event for one AMI event message, or ``None`` if we ignore it."""
    name = message.headers[0][1] if message.headers and message.headers[0][0] == "Event" else None
    if name is None:
        name = message.get("Event")
        if name is None:
            return None
    return normalize_fields(pbx, name, message)


def normalize_fields(pbx: str, name: str, fields: Fields) -> PbxEvent | None:
    """The domain event for the headers of one event named ``name``."""
    make = _NORMALIZERS.get(name)
    return make(pbx, fields) if make else None
