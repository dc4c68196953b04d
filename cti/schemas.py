"""What the HTTP API accepts and answers, as pydantic v2 models.

Request models are strict (``"5"`` is not a number, ``true`` is not 1) and
ignore keys they do not know, as the API always did.  :func:`parse` turns a
``ValidationError`` into the API's 400 naming the field by its path
(``skills.de``, ``queues.0``) with the reason in the words the API has
always used ("required", "must be text", ...), so clients and tests that
read ``field`` see no change.  Validators that need their own words raise
:class:`Refused` (the field is where pydantic found it) or a
:class:`core.errors.Invalid` (the field is the one it names).

What needs the live state (is this queue configured? is this agent known?)
is checked by the handlers, not here: a schema knows shapes, not the centre.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from core.errors import DomainError, Invalid
from cti.errors import ApiError
from routing.model import Channel

#: longest pause reason (``agent_state_log.reason`` holds 80 characters)
MAX_REASON = 80
#: the ``interaction.customer`` column's width
CUSTOMER_MAX = 200
#: the latest time a report may ask about (the year 3000): beyond it, or NaN,
#: the database's date conversion fails
LATEST_EPOCH = 32503680000.0


class Refused(ValueError):
    """A validator's refusal in its own words; the field is where it was raised."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# -- turning pydantic's errors into the API's ---------------------------------------------------
_REASONS = {
    "missing": "required",
    "string_type": "must be text",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "list_type": "must be a list",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
}


def named(error: ErrorDetails) -> tuple[str, str]:
    """``(field, reason)`` of one pydantic error."""
    loc = error["loc"]
    if loc[-1:] == ("[key]",):  # a bad key of a mapping: the mapping is at fault
        loc = loc[:-2]
    field = ".".join(str(part) for part in loc) or "body"
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, DomainError):
        return cause.field, cause.reason
    if isinstance(cause, Refused):
        return field, cause.reason
    return field, _REASONS.get(error["type"], error["msg"])


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], data: Mapping[str, Any]) -> M:
    """``data`` as a ``model``, or ``ApiError(400)`` naming the first bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        field, reason = named(exc.errors(include_url=False)[0])
        raise ApiError(400, field, reason) from None


# -- field types ----------------------------------------------------------------------------------
def _one_line(value: str) -> str:
    """A pause reason as it is shown and stored: one line of text.  Control
    characters (CR, LF, tab, escape ...) are refused here, at the edge: stored
    raw they would break log lines, CSV exports and the supervisors' screens."""
    if not value.strip():
        raise Refused("must not be empty")
    if any(ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0 for ch in value):
        raise Refused("must not contain control characters (CR, LF, tab ...)")
    if len(value) > MAX_REASON:
        raise Refused(f"must be at most {MAX_REASON} characters")
    return value


def _customer(value: str) -> str:
    """Headed for a column of ``CUSTOMER_MAX`` characters: refused here with
    the field named, instead of dropped by the database later."""
    if len(value) > CUSTOMER_MAX:
        raise Refused(f"at most {CUSTOMER_MAX} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise Refused("must not contain control characters")
    return value


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _level(value: Any) -> Any:
    if not _whole(value) or not 1 <= value <= 10:
        raise Refused("level must be a whole number from 1 to 10")
    return value


def _count(value: Any) -> Any:
    if not _whole(value) or value < 0:
        raise Refused("must be a whole number >= 0")
    return value


def channel_of(value: Any) -> Channel:
    if isinstance(value, Channel):
        return value
    if not isinstance(value, str):
        raise Refused("must be text")
    try:
        return Channel(value)
    except ValueError:
        names = ", ".join(c.value for c in Channel)
        raise Refused(f"unknown channel {value!r} (one of {names})") from None


Reason = Annotated[str, AfterValidator(_one_line)]
Customer = Annotated[str, AfterValidator(_customer)]
Level = Annotated[int, BeforeValidator(_level)]
Levels = dict[str, Level]
ChannelName = Annotated[Channel, BeforeValidator(channel_of)]
Capacity = dict[ChannelName, Annotated[int, BeforeValidator(_count)]]


class Body(BaseModel):
    """A JSON request body: strict types, unknown keys ignored."""

    model_config = ConfigDict(strict=True, extra="ignore")


# -- requests ---------------------------------------------------------------------------------------
class LoginRequest(Body):
    username: str
    password: str


class AgentLoginRequest(Body):
    queues: list[str]
    paused: Reason | None = None


class PauseRequest(Body):
    reason: Reason


class SkillsRequest(Body):
    skills: Levels


class CapacityRequest(Body):
    capacity: Capacity


class InteractionRequest(Body):
    """``POST /api/interactions``: a chat, e-mail or SMS from an integration."""

    channel: ChannelName
    queue: str
    priority: int = 0
    skills: Levels = Field(default_factory=dict)
    attributes: dict[str, Any] = Field(default_factory=dict)
    customer: Customer | None = None

    @field_validator("channel")
    @classmethod
    def _not_voice(cls, value: Channel) -> Channel:
        if value is Channel.VOICE:
            raise Refused("voice interactions come from the PBX")
        return value

    @field_validator("priority")
    @classmethod
    def _priority(cls, value: int) -> int:
        if not -1000 <= value <= 1000:
            raise Refused("must be from -1000 to 1000")
        return value


class FinishRequest(Body):
    wrap_up: float = 0.0

    @field_validator("wrap_up")
    @classmethod
    def _not_negative(cls, value: float) -> float:
        if value < 0:
            raise Refused("must not be negative")
        return value


class TransferRequest(Body):
    """A blind transfer: to a queue or to an agent, exactly one of them."""

    queue: str | None = None
    agent: str | None = None

    @model_validator(mode="after")
    def _one_target(self) -> TransferRequest:
        if (self.queue is None) == (self.agent is None):
            raise Invalid("queue", "give either a queue or an agent")
        return self


def _epoch(value: Any) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise Refused("must be seconds since the epoch") from None
    if not (math.isfinite(seconds) and 0 <= seconds <= LATEST_EPOCH):
        raise Refused(f"must be seconds since the epoch, 0 to {LATEST_EPOCH:.0f}")
    return seconds


Epoch = Annotated[float, BeforeValidator(_epoch)]


class ReportQuery(BaseModel):
    """``?from=&to=`` of an agent's report, seconds since the epoch (text in a query)."""

    model_config = ConfigDict(extra="ignore")

    start: Epoch | None = Field(None, validation_alias="from")
    end: Epoch | None = Field(None, validation_alias="to")


class ContactsQuery(BaseModel):
    """``?phone=NUMBER[&region=DE]`` of a contact look-up."""

    model_config = ConfigDict(extra="ignore")

    phone: str
    region: str | None = None

    @field_validator("phone")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise Refused("give the phone number (?phone=+4930...)")
        return value


# -- answers ----------------------------------------------------------------------------------------
class Answer(BaseModel):
    model_config = ConfigDict(serialize_by_alias=True)


class ErrorAnswer(Answer):
    """Every 4xx and 5xx: ``{"error": "<field>: <reason>", "field": "<field>"}``."""

    error: str
    field: str


class LoginAnswer(Answer):
    token: str
    role: str
    agent: str | None


class LogoutAnswer(Answer):
    logged_out: str


class WorkView(Answer):
    interaction: str
    channel: str
    phase: str


class AgentView(Answer):
    id: str
    state: str
    pause_reason: str | None
    queues: list[str]
    skills: dict[str, int]
    capacity: dict[str, int]
    team: str | None
    work: list[WorkView]


class AgentDayView(AgentView):
    """An agent as ``GET`` shows it: with the seconds spent per state today."""

    seconds_today: dict[str, float]


class CreatedAnswer(Answer):
    id: str
    waiting: bool


class TransferAnswer(Answer):
    id: str
    #: HistoryEntry.to_json() of each step, in order
    history: list[dict[str, Any]]


class ReportAnswer(Answer):
    agent: str
    start: float = Field(serialization_alias="from")
    end: float = Field(serialization_alias="to")
    seconds: dict[str, float]
