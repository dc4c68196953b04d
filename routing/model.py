"""Domain types of the universal queue: channels, interactions, queues.

Pure data; no I/O, no clock (times are plain seconds given by the caller).
"""

from __future__ import annotations

import enum
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.errors import Invalid, NotFound
from core.events import Channel as Channel  # one list of channels (events carry them)
from core.events import Direction as Direction
from core.events import HistoryEntry as HistoryEntry  # events carry the history
from core.events import HistoryEvent as HistoryEvent


class RoutingError(Invalid):
    """Bad routing input or configuration; ``field`` names the culprit,
    ``reason`` says why (a ``ValueError``, as callers have caught it)."""


class UnknownName(NotFound, RoutingError):
    """An agent or queue the router does not know (a 404 to the API, by type)."""


@dataclass(frozen=True)
class ServiceLevel:
    """``fraction`` of interactions answered within ``seconds`` (e.g. 80 % in 20 s)."""

    fraction: float
    seconds: float


#: Defaults per channel when a queue names none (voice 80/20, chat 90/60,
#: e-mail 95 % within 24 h, SMS 90 % within 1 h).
DEFAULT_SERVICE_LEVELS: Mapping[Channel, ServiceLevel] = {
    Channel.VOICE: ServiceLevel(0.80, 20.0),
    Channel.CHAT: ServiceLevel(0.90, 60.0),
    Channel.EMAIL: ServiceLevel(0.95, 86_400.0),
    Channel.SMS: ServiceLevel(0.90, 3_600.0),
}


@dataclass
class Interaction:
    """One contact waiting for (or being handled by) an agent.

    ``seq`` is its place in the universal queue: it never changes, so an
    interaction re-queued after an unanswered offer keeps its position.
    """

    id: str
    channel: Channel
    queue: str
    arrived: float
    direction: Direction = Direction.INBOUND
    priority: int = 0
    skills: dict[str, int] = field(default_factory=dict)  # skill -> minimum level
    customer: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    seq: int = 0
    #: the team this interaction is restricted to (expertise rule or overflow)
    team: str | None = None
    #: overflow steps of its queue already applied
    overflow_step: int = 0
    #: agents who declined it or let the offer time out: not offered to them again
    declined_by: set[str] = field(default_factory=set)
    #: restricted to this one agent (a blind transfer to an agent)
    agent: str | None = None
    #: when the contact is lost if no agent has it by then: an outbound person
    #: on the line, whom the law lets wait 2 s before the call is abandoned
    #: (None: it can wait, as an inbound caller can)
    connect_by: float | None = None
    #: the campaign that dialled it (outbound), for the screen pop
    campaign: str | None = None
    #: the campaign's attempt a hand-over carries (set only by the adapter that
    #: takes the hand-over, never from attributes): its result is given by the
    #: agent who answers it
    handed_over: str | None = None
    #: what happened to it so far: queued, answered, transferred (kept across transfers)
    history: list[HistoryEntry] = field(default_factory=list)


@dataclass(frozen=True)
class Handover:
    """What a call handed from one adapter to another (a campaign's person
    transferred to a queue) carries to the interaction the receiving
    adapter makes of it when the PBX announces the call."""

    customer: str | None
    attributes: dict[str, Any]
    history: list[HistoryEntry]
    to_agent: str | None = None
    #: the campaign that dialled the person and its attempt (the record's
    #: result is given on that attempt), shown in the next agent's pop
    campaign: str | None = None
    attempt: str | None = None


class OverflowAction(enum.StrEnum):
    """What an overflow step does to a waiting interaction."""

    WIDEN = "widen"  # lower every required level to ``min_level``
    DROP_SKILL = "drop_skill"  # remove ``skill``
    TEAM = "team"  # restrict to ``team``
    QUEUE = "queue"  # move to ``queue``
    CALLBACK = "callback"  # leave the queue: the caller gets a call back
    VOICEMAIL = "voicemail"  # leave the queue: the caller leaves a message

    @property
    def leaves_queue(self) -> bool:
        return self in (OverflowAction.CALLBACK, OverflowAction.VOICEMAIL)


class Operator(enum.StrEnum):
    """The comparisons of an expertise rule."""

    EQ = "=="
    NE = "!="
    GT = ">"
    GE = ">="
    LT = "<"
    LE = "<="
    IN = "in"


#: ``actual op value`` for each operator
_COMPARE: Mapping[Operator, Callable[[Any, Any], Any]] = {
    Operator.EQ: operator.eq,
    Operator.NE: operator.ne,
    Operator.GT: operator.gt,
    Operator.GE: operator.ge,
    Operator.LT: operator.lt,
    Operator.LE: operator.le,
    Operator.IN: lambda actual, value: actual in value,
}


def _enum_field(obj: object, name: str, kind: type[enum.StrEnum]) -> None:
    """Accept the enum's value as text (configuration files), refuse the rest
    with the field named."""
    value = getattr(obj, name)
    if isinstance(value, kind):
        return
    try:
        object.__setattr__(obj, name, kind(value))
    except ValueError:
        choices = ", ".join(m.value for m in kind)
        raise RoutingError(name, f"{value!r} is not one of {choices}") from None


@dataclass(frozen=True)
class OverflowStep:
    """After ``after`` seconds of waiting, change the interaction's routing
    as ``action`` says (see :class:`OverflowAction`)."""

    after: float
    action: OverflowAction
    skill: str | None = None
    min_level: int | None = None
    team: str | None = None
    queue: str | None = None

    def __post_init__(self) -> None:
        _enum_field(self, "action", OverflowAction)


@dataclass(frozen=True)
class ExpertiseRule:
    """``attribute`` ``op`` ``value`` → add ``skill`` at ``level`` and/or
    restrict to ``team`` (e.g. product_age > 5 → 2nd-level team)."""

    attribute: str
    op: Operator
    value: Any
    skill: str | None = None
    level: int = 1
    team: str | None = None

    def __post_init__(self) -> None:
        _enum_field(self, "op", Operator)

    def matches(self, attributes: Mapping[str, Any]) -> bool:
        if self.attribute not in attributes:
            return False
        try:
            return bool(_COMPARE[self.op](attributes[self.attribute], self.value))
        except TypeError:
            return False  # incomparable types: the rule does not apply


@dataclass(frozen=True)
class QueueConfig:
    name: str
    skills: Mapping[str, int] = field(default_factory=dict)
    priority: int = 0
    service_levels: Mapping[Channel, ServiceLevel] = field(
        default_factory=lambda: dict(DEFAULT_SERVICE_LEVELS)
    )
    max_wait: float | None = None
    overflow: tuple[OverflowStep, ...] = ()
    expertise: tuple[ExpertiseRule, ...] = ()

    def service_level(self, channel: Channel) -> ServiceLevel:
        return self.service_levels.get(channel) or DEFAULT_SERVICE_LEVELS[channel]


# -- what the router decides (values its callers carry out: the hub, the adapters,
# the campaign runner; here, not in routing.router, so that they need not import
# the router itself to read its answers)
@dataclass(frozen=True)
class Offer:
    agent: str
    interaction: str
    channel: Channel
    deadline: float


@dataclass(frozen=True)
class Exit:
    """An interaction leaving the queue without an agent (overflow to
    callback/voicemail, or its maximum wait reached)."""

    interaction: str
    reason: str
