"""Domain types of the universal queue: channels, interactions, queues.

Pure data; no I/O, no clock (times are plain seconds given by the caller).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


class Channel(enum.StrEnum):
    VOICE = "voice"
    CHAT = "chat"
    EMAIL = "email"
    SMS = "sms"


class Direction(enum.StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class RoutingError(ValueError):
    """Bad routing input or configuration; ``field`` names the culprit."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


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
    #: what happened to it so far: queued, answered, transferred (kept across transfers)
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class OverflowStep:
    """After ``after`` seconds of waiting, change the interaction's routing.

    ``action`` is one of: ``widen`` (lower every required level to
    ``min_level``), ``drop_skill`` (remove ``skill``), ``team`` (restrict to
    ``team``), ``queue`` (move to ``queue``), ``callback`` or ``voicemail``
    (leave the queue: the caller gets that instead).
    """

    after: float
    action: str
    skill: str | None = None
    min_level: int | None = None
    team: str | None = None
    queue: str | None = None


@dataclass(frozen=True)
class ExpertiseRule:
    """``attribute`` ``op`` ``value`` → add ``skill`` at ``level`` and/or
    restrict to ``team`` (e.g. product_age > 5 → 2nd-level team)."""

    attribute: str
    op: str
    value: Any
    skill: str | None = None
    level: int = 1
    team: str | None = None

    def matches(self, attributes: Mapping[str, Any]) -> bool:
        if self.attribute not in attributes:
            return False
        actual = attributes[self.attribute]
        compare: dict[str, Callable[[], Any]] = {
            "==": lambda: actual == self.value,
            "!=": lambda: actual != self.value,
            ">": lambda: actual > self.value,
            ">=": lambda: actual >= self.value,
            "<": lambda: actual < self.value,
            "<=": lambda: actual <= self.value,
            "in": lambda: actual in self.value,
        }
        try:
            return bool(compare[self.op]())
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
