"""What the HTTP API accepts and answers, as pydantic v2 models.

Request models are strict (``"5"`` is not a number, ``true`` is not 1),
and every body (:class:`Body`) refuses a key it does not know, naming the
key and the keys allowed in the configuration's words (``proof_rf: unknown
key (allowed: ...)``): a misspelt optional key (a consent's proof, a
call-back time, a wrap-up) was dropped while the request succeeded.  Query
strings still ignore parameters they do not use, as links and caches add
them.  :func:`parse` turns a
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

import datetime as dt
import math
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal, TypeVar

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
from core.numbers import check_region
from cti.errors import ApiError
from routing.model import Channel

#: longest pause reason (``agent_state_log.reason`` holds 80 characters)
MAX_REASON = 80
#: the ``interaction.customer`` column's width
CUSTOMER_MAX = 200
#: the longest skill or attribute name (as the configuration's names: campaigns, queues, agents)
MAX_NAME = 40
#: the most interactions of one channel an agent may carry at once
MAX_CAPACITY = 100
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


def unknown_key(model: type[BaseModel], error: ErrorDetails) -> tuple[str, str] | None:
    """``(key, reason)`` of a key a :class:`Body` does not know, naming
    the keys it does (in the order it declares them); None for another error."""
    if error["type"] != "extra_forbidden" or len(error["loc"]) != 1:
        return None
    allowed = ", ".join(f.alias or name for name, f in model.model_fields.items())
    template: str = getattr(model, "unknown_key", UNKNOWN_KEY)
    return str(error["loc"][0]), template.format(allowed=allowed)


def parse(model: type[M], data: Mapping[str, Any]) -> M:
    """``data`` as a ``model``, or ``ApiError(400)`` naming the first bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        field, reason = unknown_key(model, error) or named(error)
        raise ApiError(400, field, reason) from None


# -- field types ----------------------------------------------------------------------------------
def _one_line(value: str, limit: int = MAX_REASON, what: str = "") -> str:
    """A pause reason as it is shown and stored: one line of text.  Control
    characters (CR, LF, tab, escape ...) are refused here, at the edge: stored
    raw they would break log lines, CSV exports and the supervisors' screens.
    ``what`` names the text in the reason (a mapping's key: its field is the
    mapping)."""
    if not value.strip():
        raise Refused(f"{what}must not be empty")
    if any(ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0 for ch in value):
        raise Refused(f"{what}must not contain control characters (CR, LF, tab ...)")
    if len(value) > limit:
        raise Refused(f"{what}must be at most {limit} characters")
    return value


def _skill(value: str) -> str:
    """A skill name: one line, at most :data:`MAX_NAME` (``""`` and 1,000
    characters were taken, QA12 finding 6)."""
    return _one_line(value, MAX_NAME, "a skill name ")


def _attribute(value: str) -> str:
    return _one_line(value, MAX_NAME, "an attribute name ")


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


def _capacity(value: Any) -> Any:
    if not _whole(value) or not 0 <= value <= MAX_CAPACITY:
        raise Refused(f"must be a whole number from 0 to {MAX_CAPACITY}")
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
Levels = dict[Annotated[str, AfterValidator(_skill)], Level]
Attributes = dict[Annotated[str, AfterValidator(_attribute)], Any]
ChannelName = Annotated[Channel, BeforeValidator(channel_of)]
Capacity = dict[ChannelName, Annotated[int, BeforeValidator(_capacity)]]


#: how a key a :class:`Body` does not know is refused (the configuration's words)
UNKNOWN_KEY = "unknown key (allowed: {allowed})"


class Body(BaseModel):
    """A JSON request body whose every key must be known: strict types, and
    an unknown key refused with the keys allowed (:func:`unknown_key`).  A
    misspelt optional key (``wrapup`` for ``wrap_up``, ``paused_reason``)
    would otherwise be dropped while the request succeeds."""

    model_config = ConfigDict(strict=True, extra="forbid")
    #: the reason an unknown key is refused with; ``{allowed}``: the model's keys
    unknown_key: ClassVar[str] = UNKNOWN_KEY


def _none_if_empty(value: str | None) -> str | None:
    return value or None


#: optional text; ``""`` is the same as not given
OptionalText = Annotated[str | None, AfterValidator(_none_if_empty)]


def _region(value: str | None) -> str | None:
    """A country of national numbers phonenumbers knows, upper-cased; one it
    does not (``XX``) rejected every number one by one, or was blamed on it."""
    if not value:
        return None
    try:
        return check_region(value)
    except ValueError as exc:
        raise Refused(str(exc)) from None


#: the default country of national numbers (``?region=DE``, ``"region": "DE"``)
Region = Annotated[str | None, AfterValidator(_region)]


def _given(reason: str) -> BeforeValidator:
    """A key given as ``null`` is refused as a wrong type would be: leaving
    the key out is how a change leaves a setting as it is."""

    def check(value: Any) -> Any:
        if value is None:
            raise Refused(reason)
        return value

    return BeforeValidator(check)


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
    attributes: Attributes = Field(default_factory=dict)
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


#: the longest after-call work an agent may ask for at once (an hour)
MAX_WRAP_UP = 3600.0


class FinishRequest(Body):
    wrap_up: float = 0.0

    @field_validator("wrap_up")
    @classmethod
    def _not_negative(cls, value: float) -> float:
        if value < 0:
            raise Refused("must not be negative")
        if not value <= MAX_WRAP_UP:  # 1e308 (and NaN) kept the agent out for ever (QA5 F22)
            raise Refused(f"must be at most {MAX_WRAP_UP:.0f} seconds")
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


# -- campaigns, lists, do-not-call, consent, dispositions (unknown keys refused) ----------------
LiveNumber = Annotated[float | None, _given("must be a number")]
LiveText = Annotated[str | None, _given("must be text")]


class CampaignChange(Body):
    """``PATCH /api/campaigns/<name>``: the live settings to change (the
    keys of ``dialer.campaign.LIVE_SETTINGS``); values are checked by the
    campaign's own rules, all of them before any is applied."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)
    unknown_key: ClassVar[str] = "cannot be changed live (one of {allowed})"

    abandon_target: LiveNumber = None
    max_lines_per_agent: LiveNumber = None
    mode: LiveText = None
    power_ratio: LiveNumber = None
    ring_timeout: LiveNumber = None
    machine_action: LiveText = None
    wrap_up: LiveNumber = None

    def changes(self) -> dict[str, Any]:
        """The settings the body gives, by name."""
        return self.model_dump(exclude_unset=True)


def _phone_numbers(value: Any) -> Any:
    if not isinstance(value, list) or not value:
        raise Refused("a non-empty list of phone numbers")
    return value


class DncRequest(Body):
    """``POST /api/dnc``: numbers for the global list, or a campaign's."""

    numbers: Annotated[list[str], BeforeValidator(_phone_numbers)]
    campaign: OptionalText = None
    region: Region = None
    source: OptionalText = None
    reason: OptionalText = None


def _contact_id(value: Any) -> Any:
    if not _whole(value) or not 0 < value < 2**63:
        raise Refused("the contact's id (a whole number from 1 to 2**63 - 1)")
    return value


def _grant(value: Any) -> Any:
    if not isinstance(value, bool):
        raise Refused("true (a grant) or false (a withdrawal)")
    return value


class ConsentRequest(Body):
    """``POST /api/consent``: a grant (with its proof) or a withdrawal."""

    contact: Annotated[int, BeforeValidator(_contact_id)]
    granted: Annotated[bool, BeforeValidator(_grant)]
    channel: OptionalText = None
    source: OptionalText = None
    proof_ref: OptionalText = None


def _number_list(value: Any) -> Any:
    if not isinstance(value, list):
        raise Refused("a list of numbers")
    return value


class MergeRequest(Body):
    """``POST /api/lists/merge``: the record to keep and the duplicates to fold into it."""

    campaign: str
    keep: str
    drop: Annotated[list[str], BeforeValidator(_number_list)]
    region: Region = None

    @field_validator("campaign")
    @classmethod
    def _campaign(cls, value: str) -> str:
        if not value:
            raise Refused("required")
        return value


class ListActiveRequest(Body):
    """``PATCH /api/lists/<campaign>/<list>``: switch a list on or off."""

    active: bool


def _callback_at(value: Any) -> Any:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise Refused("must be text")
    try:
        at = dt.datetime.fromisoformat(value)
    except ValueError:
        raise Refused(f"{value!r} is not an ISO 8601 time") from None
    if at.tzinfo is None:
        raise Refused("give the offset, e.g. 2026-11-24T10:00:00+01:00")
    try:
        return at.astimezone(dt.UTC)
    except OverflowError:  # 9999-12-31T23:59:59-12:00 is in the year 10000
        raise Refused(f"{value!r} is out of range") from None


def _code(value: Any) -> Any:
    if not isinstance(value, str):
        raise Refused("give the call's result as text, e.g. 'sale' or 'callback'")
    return value


class DispositionRequest(Body):
    """``POST /api/interactions/<id>/disposition``: the call's result, and
    for a call-back its time (ISO 8601 with its offset)."""

    code: Annotated[str, BeforeValidator(_code)]
    callback_at: Annotated[dt.datetime | None, BeforeValidator(_callback_at)] = None


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
    region: Region = None

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


# One model per kind of step of an interaction's history, as
# ``core.events.HistoryEntry.to_json`` writes it: its fields in that order,
# "at" last, and only the fields its event carries (a transfer names both
# targets, the one not taken as null).  Strict and closed: a step of a new
# kind, or with a field more, is refused, not passed on unchecked.
class _Step(Answer):
    model_config = ConfigDict(strict=True, extra="forbid")


class QueuedStep(_Step):
    event: Literal["queued"]
    queue: str
    at: int | float


class AnsweredStep(_Step):
    event: Literal["answered"]
    agent: str
    at: int | float


class EndedStep(_Step):
    event: Literal["ended"]
    agent: str
    at: int | float


class TransferredStep(_Step):
    event: Literal["transferred"]
    by: str
    to_queue: str | None
    to_agent: str | None
    at: int | float


HistoryStep = Annotated[
    QueuedStep | AnsweredStep | EndedStep | TransferredStep, Field(discriminator="event")
]


class TransferAnswer(Answer):
    id: str
    #: HistoryEntry.to_json() of each step, in order
    history: list[HistoryStep]


class ReportAnswer(Answer):
    agent: str
    start: float = Field(serialization_alias="from")
    end: float = Field(serialization_alias="to")
    seconds: dict[str, float]
