"""Every domain event, by name: what happens in the server, for the faces
that show it (agent desktop, supervisor dashboard, screen pops) and the
report writer.

Events are frozen dataclasses; a field that is one of a set is an enum.
Consumers subscribe by class on :class:`core.bus.EventBus` (or match on the
class), never on a string key.  :func:`to_message` is the one serialiser to
the JSON object the WebSocket push sends (``{"type": "agent", ...}``): the
``type`` is each class's :attr:`DomainEvent.TYPE`, enums become their
values, and optional fields that are ``None`` are left out, as they always
were.

The enums of the universal queue (:class:`Channel`, :class:`Direction`,
:class:`AgentState`) and an interaction's :class:`HistoryEntry` live here
because events carry them; ``routing`` re-exports them, so there is one list
of each.  So do a campaign's :class:`DialMode` and :class:`MachineAction`
(:class:`CampaignView` carries them; ``dialer.campaign`` reads its settings
into them).  Pure: imports nothing of ours outside core (its errors).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

from core.errors import Invalid


class Channel(enum.StrEnum):
    VOICE = "voice"
    CHAT = "chat"
    EMAIL = "email"
    SMS = "sms"


class Direction(enum.StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class AgentState(enum.StrEnum):
    LOGGED_OUT = "logged_out"
    READY = "ready"
    RESERVED = "reserved"
    BUSY = "busy"
    WRAP_UP = "wrap_up"
    PAUSED = "paused"


class DialMode(enum.StrEnum):
    """How a campaign dials: an agent first looks at the record (preview),
    one line per free agent (progressive), a fixed number per agent (power),
    or as many as the abandon limit allows (predictive).  The order is the
    one its refusal lists."""

    PREVIEW = "preview"
    PROGRESSIVE = "progressive"
    POWER = "power"
    PREDICTIVE = "predictive"


class MachineAction(enum.StrEnum):
    """What a campaign's call gets when answering-machine detection says
    machine: hung up, or the campaign's message played (a name, a number to
    call back)."""

    HANGUP = "hangup"
    MESSAGE = "message"


class Stage(enum.StrEnum):
    """What just happened to an interaction."""

    QUEUED = "queued"
    ANSWERED = "answered"
    ENDED = "ended"  # after an agent handled it (outcome: answered, or why it was cut)
    ABANDONED = "abandoned"  # the customer left while waiting
    FALLBACK = "fallback"  # the PBX's own fallback took the caller


class HistoryEvent(enum.StrEnum):
    """What an entry of an interaction's history records."""

    QUEUED = "queued"  # put in a queue (on arrival, and again after a transfer)
    ANSWERED = "answered"  # an agent accepted it
    ENDED = "ended"  # the agent finished it
    TRANSFERRED = "transferred"  # the agent passed it on, to a queue or to one agent


#: the fields each kind of entry carries, in the order of its JSON (a contract:
#: the desktop and the reports read it; "at" comes last, as it always did)
_HISTORY_FIELDS: Mapping[HistoryEvent, tuple[str, ...]] = {
    HistoryEvent.QUEUED: ("queue",),
    HistoryEvent.ANSWERED: ("agent",),
    HistoryEvent.ENDED: ("agent",),
    HistoryEvent.TRANSFERRED: ("by", "to_queue", "to_agent"),
}
#: of those, the ones that must be given (a transfer goes to a queue or an agent)
_HISTORY_REQUIRED: Mapping[HistoryEvent, tuple[str, ...]] = {
    HistoryEvent.QUEUED: ("queue",),
    HistoryEvent.ANSWERED: ("agent",),
    HistoryEvent.ENDED: ("agent",),
    HistoryEvent.TRANSFERRED: ("by",),
}


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One step of an interaction's history (kept across transfers).

    One class rather than one per event: the history is a list read in
    order, and every step has an ``event`` and an ``at``; the other fields
    are those its event needs (:data:`_HISTORY_FIELDS`), the rest stay None.
    Build entries with the class methods, which name what each needs.  It
    lives here, not in ``routing``, because :class:`InteractionChanged`
    carries the history and ``core`` imports nothing of ours; ``routing``
    re-exports it.  :meth:`to_json` is its one serialiser (push, API, report
    rows)."""

    event: HistoryEvent
    at: float
    queue: str | None = None
    agent: str | None = None
    by: str | None = None
    to_queue: str | None = None
    to_agent: str | None = None

    def __post_init__(self) -> None:
        for name in _HISTORY_REQUIRED[self.event]:
            if getattr(self, name) is None:
                raise Invalid(name, f"required in a history entry of event {self.event.value!r}")
        for name in ("queue", "agent", "by", "to_queue", "to_agent"):
            if name not in _HISTORY_FIELDS[self.event] and getattr(self, name) is not None:
                raise Invalid(name, f"not part of a history entry of event {self.event.value!r}")

    @classmethod
    def queued(cls, queue: str, at: float) -> HistoryEntry:
        return cls(HistoryEvent.QUEUED, at, queue=queue)

    @classmethod
    def answered(cls, agent: str, at: float) -> HistoryEntry:
        return cls(HistoryEvent.ANSWERED, at, agent=agent)

    @classmethod
    def ended(cls, agent: str, at: float) -> HistoryEntry:
        return cls(HistoryEvent.ENDED, at, agent=agent)

    @classmethod
    def transferred(
        cls, by: str, at: float, *, to_queue: str | None = None, to_agent: str | None = None
    ) -> HistoryEntry:
        return cls(HistoryEvent.TRANSFERRED, at, by=by, to_queue=to_queue, to_agent=to_agent)

    def to_json(self) -> dict[str, Any]:
        """The entry as JSON: ``{"event": ..., <its fields>..., "at": ...}``
        (a transfer names both targets, the one not taken as null)."""
        out: dict[str, Any] = {"event": self.event.value}
        for name in _HISTORY_FIELDS[self.event]:
            out[name] = getattr(self, name)
        out["at"] = self.at
        return out


class CampaignStatus(enum.StrEnum):
    RUNNING = "running"
    IDLE = "idle"
    PAUSED = "paused"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class DomainEvent:
    #: the ``type`` of the event's JSON message
    TYPE: ClassVar[str] = ""

    at: float


@dataclass(frozen=True, slots=True)
class AgentStateChanged(DomainEvent):
    TYPE: ClassVar[str] = "agent"

    agent: str
    state: AgentState
    pause_reason: str | None = None


@dataclass(frozen=True, slots=True)
class InteractionChanged(DomainEvent):
    """An interaction reached ``stage``; ``history`` is all it went through
    (queued, answered, transferred ... across transfers)."""

    TYPE: ClassVar[str] = "interaction"

    stage: Stage
    interaction: str
    channel: Channel
    queue: str
    customer: str | None = None
    direction: Direction = Direction.INBOUND
    history: tuple[HistoryEntry, ...] = ()
    agent: str | None = None
    campaign: str | None = None
    #: how it ended when not simply "answered" (e.g. "pbx-lost", "unknown")
    outcome: str | None = None
    #: seconds waited (abandoned)
    wait: float | None = None
    #: the campaign call (attempt) a colleague took over by a transfer: its
    #: result is theirs to give, also after a restart (kept in the report row)
    attempt: str | None = None


@dataclass(frozen=True, slots=True)
class OfferMade(DomainEvent):
    """The screen pop: ``interaction`` is offered to ``agent``, with what it
    carries.  ``at`` is when; ``deadline`` when the offer times out (None:
    it does not, e.g. a person moved into a nailed-up agent's line)."""

    TYPE: ClassVar[str] = "offer"

    agent: str
    interaction: str
    channel: Channel
    queue: str
    customer: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    deadline: float | None = None
    campaign: str | None = None


class OfferEnd(enum.StrEnum):
    """How an offer ended (:class:`OfferEnded`)."""

    ACCEPTED = "accepted"  # the agent has it now
    DECLINED = "declined"  # the agent said no
    TIMED_OUT = "timed_out"  # no answer in time: the agent is paused "no answer"
    WITHDRAWN = "withdrawn"  # taken back, not the agent's doing (its phone went away)
    GONE = "gone"  # the customer left, or the call went with the PBX


@dataclass(frozen=True, slots=True)
class OfferEnded(DomainEvent):
    """The screen pop of :class:`OfferMade` is over: a desktop closes it.
    The agent's state alone cannot tell which pop ended or how: an agent
    with a chat in hand goes reserved -> busy whether it took a second chat
    or that customer left first."""

    TYPE: ClassVar[str] = "offer_ended"

    agent: str
    interaction: str
    channel: Channel
    queue: str
    end: OfferEnd


@dataclass(frozen=True, slots=True)
class PreviewShown(DomainEvent):
    """A preview campaign put a record on ``agent``'s screen (``at``: the
    moment it did, also ``since``)."""

    TYPE: ClassVar[str] = "preview"

    agent: str
    campaign: str
    record: int | str | None
    customer: str
    name: str | None
    attributes: Mapping[str, str]  # the record's own list columns, as text
    since: float
    auto_dial_at: float | None
    dialing: bool


@dataclass(frozen=True, slots=True)
class CampaignView:
    """A campaign's figures and live settings beside its name and status, in
    the order ``GET /api/campaigns/<name>`` and the push show them."""

    idle_reason: str | None
    #: the PBX it dials through (None: the only one, unnamed)
    pbx: str | None
    country: str | None
    legal_max_abandon: float
    # every setting a PATCH may change (dialer.campaign.LIVE_SETTINGS), as it
    # is now: a supervisor sees what was set, the audit reads its before and after here
    abandon_target: float
    max_lines_per_agent: float
    mode: DialMode
    power_ratio: float
    ring_timeout: float
    machine_action: MachineAction
    wrap_up: float
    lines_in_use: int
    #: the agents logged in to the campaign, by state
    agents: Mapping[str, int]
    #: when this server started counting ``dials`` ... ``refused``: a restart
    #: starts them again, the day's ledger (``today``: live, abandoned, and the
    #: abandon rates) goes on
    since: float
    today: Mapping[str, float]
    dials: int
    connected: int
    abandoned: int
    outcomes: Mapping[str, int]
    #: records the compliance gate refused at their dial (not dialed), by check
    refused: Mapping[str, int]
    #: abandoned / live by window (``30d``, ``day``, ``1h``), None before a live answer
    abandon_rate: Mapping[str, float | None]
    drop_group: str


@dataclass(frozen=True, slots=True)
class CampaignFigures(DomainEvent):
    """A campaign's live figures (status, lines, outcomes, abandon rates ...),
    for supervisors; ``figures`` None: none worked out (an event made to test
    who may see it)."""

    TYPE: ClassVar[str] = "campaign"

    campaign: str
    status: CampaignStatus
    figures: CampaignView | None = None

    def view(self) -> dict[str, Any]:
        """The campaign as the API answers it (the push adds ``type`` and ``at``)."""
        figures = asdict(self.figures) if self.figures is not None else {}
        return {"campaign": self.campaign, "status": self.status.value, **figures}


#: every event class, by its message ``type``
EVENTS: Mapping[str, type[DomainEvent]] = {
    cls.TYPE: cls
    for cls in (
        AgentStateChanged,
        InteractionChanged,
        OfferMade,
        OfferEnded,
        PreviewShown,
        CampaignFigures,
    )
}

#: fields left out of the message while they are None (they always were)
_OPTIONAL = frozenset({"agent", "campaign", "outcome", "wait", "attempt"})


def to_message(event: DomainEvent) -> dict[str, Any]:
    """The JSON object of ``event`` (the WebSocket push, the demo's printer)."""
    out: dict[str, Any] = {"type": event.TYPE}
    if isinstance(event, CampaignFigures):
        return {**out, **event.view(), "at": event.at}
    for f in fields(event):
        value = getattr(event, f.name)
        if f.name == "stage":
            out["event"] = value.value
            continue
        if value is None and f.name in _OPTIONAL:
            continue
        if isinstance(value, enum.Enum):
            value = value.value
        elif f.name == "history":
            value = [entry.to_json() for entry in value]
        elif isinstance(value, Mapping):
            value = dict(value)
        out[f.name] = value
    return out
