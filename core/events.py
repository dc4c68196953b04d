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
:class:`AgentState`) live here because events carry them; ``routing``
re-exports them, so there is one list of each.  Pure: imports nothing of ours.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar


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


class Stage(enum.StrEnum):
    """What just happened to an interaction."""

    QUEUED = "queued"
    ANSWERED = "answered"
    ENDED = "ended"  # after an agent handled it (outcome: answered, or why it was cut)
    ABANDONED = "abandoned"  # the customer left while waiting
    FALLBACK = "fallback"  # the PBX's own fallback took the caller


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
    history: tuple[Mapping[str, Any], ...] = ()
    agent: str | None = None
    campaign: str | None = None
    #: how it ended when not simply "answered" (e.g. "pbx-lost", "unknown")
    outcome: str | None = None
    #: seconds waited (abandoned)
    wait: float | None = None


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
    attributes: Mapping[str, Any]
    since: float
    auto_dial_at: float | None
    dialing: bool


@dataclass(frozen=True, slots=True)
class CampaignFigures(DomainEvent):
    """A campaign's live figures (status, lines, outcomes, abandon rates ...),
    for supervisors; ``figures`` holds them as the API shows them."""

    TYPE: ClassVar[str] = "campaign"

    campaign: str
    status: CampaignStatus
    figures: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, view: Mapping[str, Any], at: float) -> CampaignFigures:
        """From the API's view of a campaign (``Campaigns.view``)."""
        rest = {k: v for k, v in view.items() if k not in ("campaign", "status")}
        return cls(at, view["campaign"], CampaignStatus(view["status"]), rest)


#: every event class, by its message ``type``
EVENTS: Mapping[str, type[DomainEvent]] = {
    cls.TYPE: cls
    for cls in (AgentStateChanged, InteractionChanged, OfferMade, PreviewShown, CampaignFigures)
}

#: fields left out of the message while they are None (they always were)
_OPTIONAL = frozenset({"agent", "campaign", "outcome", "wait"})


def to_message(event: DomainEvent) -> dict[str, Any]:
    """The JSON object of ``event`` (the WebSocket push, the demo's printer)."""
    out: dict[str, Any] = {"type": event.TYPE}
    if isinstance(event, CampaignFigures):
        out.update(campaign=event.campaign, status=event.status.value)
        out.update(event.figures)
        out["at"] = event.at
        return out
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
            value = [dict(entry) for entry in value]
        elif isinstance(value, Mapping):
            value = dict(value)
        out[f.name] = value
    return out
