"""Configuration: one TOML file, secrets also from the environment.

Each table of the file is a frozen pydantic model below (strict types:
``"80"`` is no port, ``1`` no boolean; a key the table does not know refused
with the keys it does know), and where the server's settings have the same
shape the table *is* the setting (``[http]``, ``[database]``,
``[[agent]]``).  A table that makes a domain object is validated and built in
one step where pydantic meets it (:func:`_built`): by the table's
``build()`` (a campaign's :class:`~dialer.campaign.CampaignSetup` under its
country's rules, its retry rules), or as the object made of the table's keys
(a service level, an overflow step, an expertise rule, the blending rules).
A ``[[queue]]`` makes its :class:`~routing.model.QueueConfig` in
:meth:`ConfigFile.settings` (its ``pbx`` is the file's, not the router's).
:class:`ConfigFile` is the whole file and checks across tables (unique names, an agent's queues, which PBX each
queue, agent and campaign is on); :class:`Settings` is what the server is
built from, in its own layout (the router's queues and agents together).

Every error is one :class:`ConfigError` naming the key path
(``pbx[0].port: must be an integer from 1 to 65535``): pydantic's errors in
the file's words (:func:`_config_error`), a domain error's key (relative to
its table) joined to the table's path.  So a typo never silently falls back
to a default.

Secrets can stay out of the file: ``DIRIGENT_PBX_<NAME>_SECRET`` overrides
``[[pbx]] secret`` for the PBX called ``<name>`` (upper-cased, ``-`` as
``_``), and ``DIRIGENT_DATABASE_URL`` overrides ``[database] url``.  ``repr``
of the settings never shows a secret.  A command that only touches the
database loads the file with :func:`load_database_settings`: the whole
file is still checked, but a PBX's secret is not demanded of it.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import os
import re
import socket
import zoneinfo
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar, get_type_hints

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetPydanticSchema,
    PlainValidator,
    Strict,
    ValidationError,
    create_model,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError, core_schema

from asterisk.port import (
    ENDPOINT_NAME,
    ENDPOINT_RULE,
    EXTENSION,
    RESERVED_EXTENSIONS,
    customer_route_refusal,
)
from asterisk.session import PbxSettings
from core import tomlfile
from core.errors import DomainError, Invalid
from dialer.campaign import CAMPAIGN_NAME, CAMPAIGN_NAME_RULE, CampaignSettings, CampaignSetup
from dialer.retry import DEFAULT_RULES, OUTCOMES, RetryRules, Rule
from routing.blending import BlendingRules
from routing.model import (
    DEFAULT_SERVICE_LEVELS,
    Channel,
    ExpertiseRule,
    Operator,
    OverflowAction,
    OverflowStep,
    QueueConfig,
    ServiceLevel,
)
from routing.router import POLICIES

DEFAULT_DATABASE_URL = "sqlite:///store.db"


class ConfigError(Invalid):
    """A key of the file (``key``, the error's ``field``) and why it is refused."""

    @property
    def key(self) -> str:
        return self.field


def instance_name(database_url: str) -> str:
    """This installation's name on a PBX's lease: the host and its database
    (a restart of the same server is the same owner and takes its PBX back
    at once; another server, or another database, is not)."""
    digest = hashlib.sha256(database_url.encode()).hexdigest()[:10]
    return f"{socket.gethostname()}/{digest}"


def env_secret_name(pbx_name: str) -> str:
    return f"DIRIGENT_PBX_{pbx_name.upper().replace('-', '_')}_SECRET"


# -- value types: the checks each kind of value gets, written once --------------------------
def _rule(ok: Callable[[Any], object], reason: str) -> AfterValidator:
    """A check in our words (pydantic's constraints get generic ones);
    ``{value!r}`` in ``reason`` is the value refused."""

    def check(value: Any) -> Any:
        if not ok(value):
            raise ValueError(reason.format(value=value))
        return value

    return AfterValidator(check)


def _is_time_zone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _channels(names: Any) -> frozenset[Channel]:
    """Channel names as the channels (a bad one named with the ones there are)."""
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
        raise ValueError("must be a list of channels")
    known = [c.value for c in Channel]
    for name in names:
        if name not in known:
            raise ValueError(f"unknown channel {name!r} (one of {', '.join(known)})")
    return frozenset(Channel(name) for name in names)


T = TypeVar("T")
#: an array (of tables or of text): TOML gives a list, the settings keep a tuple
Many = Annotated[tuple[T, ...], Strict(False)]
#: a table keyed by channel name (``voice``, ``chat``, ...)
ByChannel = dict[Annotated[Channel, Strict(False)], T]
Channels = Annotated[frozenset[Channel], PlainValidator(_channels)]
_NAME = CAMPAIGN_NAME  # every name of the file: campaigns, PBXs, agents, queues
_NAME_REASON = f"required: {CAMPAIGN_NAME_RULE}"
Name = Annotated[str, _rule(_NAME.fullmatch, _NAME_REASON)]
#: an agent id or queue name: the dialplan reaches it as an extension
Extension = Annotated[
    Name,
    _rule(
        EXTENSION.fullmatch,
        "two characters or more: the dialplan's _[a-zA-Z0-9]. patterns need them",
    ),
    _rule(lambda v: v not in RESERVED_EXTENSIONS, "{value!r} is an extension Asterisk keeps"),
]
Port = Annotated[int, _rule(lambda v: 1 <= v <= 65535, "must be an integer from 1 to 65535")]
#: where we listen: 0 lets the system pick a free port (tests, ``demo --http-port 0``;
#: :attr:`dirigent.service.Dirigent.http_port` says which)
ListenPort = Annotated[
    int, _rule(lambda v: 0 <= v <= 65535, "must be an integer from 1 to 65535 (0: any free port)")
]
Seconds = Annotated[float, _rule(lambda v: v > 0, "must be a positive number of seconds")]
Level = Annotated[int, _rule(lambda v: 1 <= v <= 10, "level must be a whole number from 1 to 10")]
_ENDPOINT_REASON = f"{{value!r}} is not a PJSIP endpoint name ({ENDPOINT_RULE})"
Endpoint = Annotated[str, _rule(ENDPOINT_NAME.fullmatch, _ENDPOINT_REASON)]
_DB_SCHEME = re.compile(r"^(sqlite|postgresql)(\+\w+)?://")
DatabaseUrl = Annotated[str, _rule(_DB_SCHEME.match, "must start with sqlite:// or postgresql://")]
TimeZone = Annotated[str, _rule(_is_time_zone, "unknown time zone {value!r}")]
Count = Annotated[int, _rule(lambda v: v >= 0, "must be a whole number >= 0")]
Attempts = Annotated[int, _rule(lambda v: v >= 1, "must be a whole number >= 1")]


def _built(table: type[BaseModel]) -> GetPydanticSchema:
    """``Annotated[Kind, _built(Table)]``: a domain object the file gives as
    a table, validated as ``Table`` (its errors under its keys, as every
    table's) and made by its ``build()``, or as ``Kind(**table)``; one
    made in code is taken as it is."""

    def made(kind: Any, value: Any, inner: Callable[[Any], Any]) -> Any:
        if isinstance(value, kind):
            return value
        given = inner(value)
        return given.build() if hasattr(given, "build") else kind(**dict(given))

    return GetPydanticSchema(
        lambda kind, handler: core_schema.no_info_wrap_validator_function(
            lambda value, inner: made(kind, value, inner), handler(table)
        )
    )


class _Table(BaseModel):
    """A TOML table, and the settings it gives: frozen, strict types, and a
    key it does not know is named with the keys it does (``extra="forbid"``
    alone would name the key, not what it could have been)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)
    #: keys refused with a reason of their own, not as unknown
    refused: ClassVar[Mapping[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        allowed = [field.alias or name for name, field in cls.model_fields.items()]
        for key in data if isinstance(data, dict) else ():
            if key not in allowed:
                raise PydanticCustomError(
                    "unknown_key",
                    cls.refused.get(key, "unknown key (allowed: {allowed})"),
                    {"key": key, "allowed": ", ".join(sorted(allowed))},
                )
        return data


# -- the tables ---------------------------------------------------------------------------
class HttpSettings(_Table):
    host: str = "127.0.0.1"
    port: ListenPort = 8080


class DatabaseSettings(_Table):
    url: DatabaseUrl = Field(default=DEFAULT_DATABASE_URL, repr=False)
    auto_upgrade: bool = True


class LogSettings(_Table):
    format: Literal["text", "json"] = "text"


class PbxTable(_Table):
    """``[[pbx]]``; what is left out gets :class:`PbxSettings`' defaults."""

    name: Name
    host: str | None = None
    port: Port | None = None
    username: str | None = None
    secret: str = Field(default="", repr=False)
    connect_timeout: Seconds | None = None
    keepalive_interval: Seconds | None = None
    keepalive_timeout: Seconds | None = None
    backoff_initial: Seconds | None = None
    backoff_max: Seconds | None = None
    action_timeout: Seconds | None = None
    exclude_events: Many[str] = ()
    takeover: bool = False
    lease: bool = True

    def build(self, env: Mapping[str, str], owner: str, key: str) -> PbxSettings:
        """The session's settings; the secret is demanded here, not by validation,
        as a command that only touches the database never builds them."""
        secret = env.get(env_secret_name(self.name), self.secret)
        if not secret:
            raise ConfigError(
                f"{key}.secret", f"required (in the file or in {env_secret_name(self.name)})"
            )
        given = self.model_dump(exclude_none=True, exclude={"lease", "secret"})
        return PbxSettings(**given, secret=secret, owner=owner if self.lease else "")


class ServiceLevelTable(_Table):
    fraction: Annotated[float, _rule(lambda v: 0 < v <= 1, "must be in (0, 1]")]
    seconds: Annotated[float, Field(ge=1)]


class OverflowTable(_Table):
    after: Annotated[float, Field(ge=0)]
    action: Annotated[OverflowAction, Strict(False)]  # from its value
    skill: str | None = None
    min_level: int | None = None
    team: str | None = None
    queue: str | None = None


class ExpertiseTable(_Table):
    attribute: str
    op: Annotated[Operator, Strict(False)]
    value: Any
    skill: str | None = None
    level: int = 1
    team: str | None = None


_TARGET = _rule(lambda rule: rule.skill or rule.team, "needs a skill or a team to route to")


class QueueTable(_Table):
    """``[[queue]]``: the router's :class:`QueueConfig`, and the PBX it is on."""

    name: Extension
    skills: dict[str, Level] = {}
    priority: Annotated[int, Field(ge=0)] = 0
    max_wait: Annotated[float, Field(ge=1)] | None = None
    service_levels: ByChannel[Annotated[ServiceLevel, _built(ServiceLevelTable)]] = Field(
        {}, alias="service_level"
    )
    overflow: Many[Annotated[OverflowStep, _built(OverflowTable)]] = ()
    expertise: Many[Annotated[ExpertiseRule, _built(ExpertiseTable), _TARGET]] = ()
    #: the ``[[pbx]]`` its callers arrive on (the only one by default)
    pbx: str | None = None

    def build(self) -> QueueConfig:
        """Overflow steps in the order they fire; no service level: the channels' defaults."""
        return QueueConfig(
            **{key: value for key, value in self if key != "pbx"}
            | {
                "service_levels": self.service_levels or dict(DEFAULT_SERVICE_LEVELS),
                "overflow": tuple(sorted(self.overflow, key=lambda o: o.after)),
            }
        )


class AgentSettings(_Table):
    """``[[agent]]``: its endpoint (dialled to reach it), skills, queues."""

    id: Extension
    endpoint: Endpoint
    mode: Literal["ring", "nailed"] = "ring"
    skills: dict[str, Level] = {}
    capacity: Annotated[
        ByChannel[Annotated[int, Field(ge=0)]], AfterValidator(lambda c: c or {Channel.VOICE: 1})
    ] = {Channel.VOICE: 1}
    queues: Many[str] = ()
    team: str | None = None
    auto_login: bool = False
    #: the ``[[pbx]]`` its phone is on (the only one by default)
    pbx: str | None = None


_BLENDING = BlendingRules()


class BlendingTable(_Table):
    """``[routing.blending]``: :class:`BlendingRules`, two keys in the file's longer words."""

    block: ByChannel[Channels] = dict(_BLENDING.block)
    deferrable: Annotated[
        Channels,
        _rule(lambda v: Channel.VOICE not in v, "voice is real-time, it cannot be deferrable"),
    ] = _BLENDING.deferrable
    calls_waiting_interrupt: Count | None = Field(
        _BLENDING.calls_waiting_interrupt,
        alias="offer_calls_to_deferrable_when_calls_waiting_above",
    )
    calls_waiting_quiet: Count | None = Field(
        _BLENDING.calls_waiting_quiet,
        alias="offer_deferrable_to_voice_agents_when_calls_waiting_at_most",
    )


class RoutingTable(_Table):
    """``[routing]``."""

    policy: Annotated[
        str, _rule(lambda v: v in POLICIES, f"must be one of {', '.join(POLICIES)}")
    ] = "longest_idle"
    offer_timeout: Annotated[float, Field(ge=1)] = 30.0
    wrap_up: Annotated[float, Field(ge=0)] = 10.0
    blending: Annotated[BlendingRules, _built(BlendingTable)] = BlendingRules()


class RoutingSettings(RoutingTable):
    """``[routing]`` with the ``[[queue]]`` and ``[[agent]]`` tables beside it."""

    queues: Many[QueueConfig] = ()
    agents: Many[AgentSettings] = ()
    #: queue name -> the PBX its callers arrive on (every queue, once a PBX is configured)
    queue_pbx: dict[str, str] = {}
    #: the campaigns' queues without a ``[[queue]]`` table: they take only
    #: their campaign's persons (no chat is created in one, nothing transferred into one)
    campaign_only: frozenset[str] = frozenset()


class RetryRuleTable(_Table):
    delay: Annotated[float, _rule(lambda v: v >= 60, "at least 60 seconds")]
    max_attempts: Attempts


class _RetryBase(_Table):
    max_attempts_total: Attempts = 10
    #: an outcome that is never retried (``answered``, ``invalid`` ...): named as such
    refused = {
        outcome: f"no retry for this outcome (one of {', '.join(DEFAULT_RULES)})"
        for outcome in OUTCOMES
        if outcome not in DEFAULT_RULES
    }

    def build(self) -> RetryRules:
        own = {o: Rule(r.delay, r.max_attempts) for o in DEFAULT_RULES if (r := getattr(self, o))}
        return RetryRules({**DEFAULT_RULES, **own}, self.max_attempts_total)


#: a campaign's ``retry``: ``max_attempts_total``, and ``{ delay, max_attempts }``
#: for each outcome that is retried (``no-answer`` too: keys as the outcomes are named)
RetryTable = create_model(
    "RetryTable",
    __base__=_RetryBase,
    **{outcome: (RetryRuleTable | None, None) for outcome in DEFAULT_RULES},  # type: ignore[call-overload]
)


#: the ``[[campaign]]`` keys that make its :class:`CampaignSettings`: its own
#: fields, typed as it types them (left out: its defaults), but the two its
#: country decides (``legal_max_abandon``, ``windows``); an enum's
#: (``mode``, ``machine_action``) is text here, read into the enum by the
#: campaign's own check, whose refusal names the key and the choices
_DIALING: dict[str, Any] = {"name": (Name, ...), "country": (str, ...), "caller_id": (str, ...)}
_DIALING |= {
    key: ((str if isinstance(kind, type) and issubclass(kind, enum.Enum) else kind) | None, None)
    for key, kind in get_type_hints(CampaignSettings).items()
    if key not in {*_DIALING, "legal_max_abandon", "windows"}
}


class _CampaignTable(_Table):
    """One ``[[campaign]]`` as the file has it: the campaign's own keys and
    the dialing keys of :data:`_DIALING` (:data:`CampaignTable` adds them),
    built under its country's rules (:meth:`CampaignSetup.of_country`: each
    of its refusals names its key in this table)."""

    retry: Annotated[RetryRules, _built(RetryTable)] = RetryRules()
    drop_group: str | None = None  # campaigns measured together (Ofcom allows it)
    auto_start: bool = False
    max_attempts_per_day: Annotated[int, Field(ge=1)] | None = None
    holiday_subdivisions: Many[str] = ()
    #: the ``[[pbx]]`` it dials through (the only one by default)
    pbx: str | None = None
    timezone: TimeZone | None = None  # its country's by default

    def build(self) -> CampaignSetup:
        setup = CampaignSetup.of_country(**{key: value for key, value in self if value is not None})
        # the dialer passes its route through unread: the PBX adapter judges it
        route = setup.settings.trunk
        refused = None if route is None else customer_route_refusal(route)
        if refused is not None:
            raise Invalid("trunk", refused)
        return setup


CampaignTable = create_model("CampaignTable", __base__=_CampaignTable, **_DIALING)


class Settings(_Table):
    """What the server is built from: the tables above, the domain's objects built from them."""

    http: HttpSettings = HttpSettings()
    database: DatabaseSettings = DatabaseSettings()
    pbxs: Many[PbxSettings] = ()
    log_format: Literal["text", "json"] = "text"
    routing: RoutingSettings = RoutingSettings()
    campaigns: Many[CampaignSetup] = ()


class ConfigFile(_Table):
    """The whole file: its tables, in its layout; :meth:`settings` checks
    across them and lays them out for the server."""

    http: HttpSettings = HttpSettings()
    database: DatabaseSettings = DatabaseSettings()
    log: LogSettings = LogSettings()
    pbx: Many[PbxTable] = ()
    routing: RoutingTable = RoutingTable()
    queue: Many[QueueTable] = ()
    agent: Many[AgentSettings] = ()
    campaign: Many[Annotated[CampaignSetup, _built(CampaignTable)]] = ()

    def settings(self, env: Mapping[str, str], *, pbxs: bool = True) -> Settings:
        """The server's settings (``pbxs=False``: without the PBXs, whose
        secrets are then not demanded).

        Names are unique per kind; an agent's queues exist, a campaign's
        queue being one (it gets the defaults unless a ``[[queue]]`` has
        it); with several PBXs every queue, agent and campaign names its
        own, and an agent is on its queues' PBX."""
        for kind, key in (
            ("pbx", "name"),
            ("queue", "name"),
            ("agent", "id"),
            ("campaign", "name"),
        ):
            names = [getattr(table, key) for table in getattr(self, kind)]
            for i, name in enumerate(names):
                if name in names[:i]:
                    raise ConfigError(f"{kind}[{i}].{key}", f"duplicate {name!r}")
        inbound = {q.name for q in self.queue}
        for i, c in enumerate(self.campaign):
            if c.settings.queue is None and c.settings.name in inbound:
                reason = (
                    f"is the inbound queue {c.settings.name!r}'s name too: its persons would"
                    f' go to that queue; dial into it with queue = "{c.settings.name}",'
                    " or name the campaign otherwise"
                )
                raise ConfigError(f"campaign[{i}].name", reason)
        dialled = {c.settings.queue_name for c in self.campaign}
        queues = [q.build() for q in self.queue]
        queues += [QueueConfig(name) for name in sorted(dialled - {q.name for q in queues})]
        for i, agent in enumerate(self.agent):
            if unknown := [q for q in agent.queues if q not in {q.name for q in queues}]:
                raise ConfigError(f"agent[{i}].queues", f"unknown queue {unknown[0]!r}")
        pbx_names = [p.name for p in self.pbx]

        def pbx_of(kind: str, i: int, given: str | None) -> str | None:
            """The PBX it names; the only one when it names none."""
            if given is None and len(pbx_names) > 1:
                reason = f"required with several PBXs (one of {', '.join(pbx_names)})"
            elif given is not None and given not in pbx_names:
                reason = (
                    f"unknown PBX {given!r} (known: {', '.join(pbx_names) or 'none configured'})"
                )
            else:
                return given or next(iter(pbx_names), None)
            raise ConfigError(f"{kind}[{i}].pbx", reason)

        # queue -> PBX: a [[queue]]'s own, a campaign's queue its campaign's
        on = {q.name: pbx for i, q in enumerate(self.queue) if (pbx := pbx_of("queue", i, q.pbx))}
        campaigns = []
        for i, c in enumerate(self.campaign):
            pbx, name = pbx_of("campaign", i, c.pbx), c.settings.queue_name
            if pbx is not None and on.setdefault(name, pbx) != pbx:
                reason = f"its queue {name!r} is on PBX {on[name]!r}, not {pbx!r}"
                raise ConfigError(f"campaign[{i}].pbx", reason)
            campaigns.append(dataclasses.replace(c, pbx=pbx))
        agents = []
        for i, a in enumerate(self.agent):
            pbx = pbx_of("agent", i, a.pbx)
            for q in a.queues:
                if q in dialled and a.mode != "nailed":
                    raise ConfigError(f"agent[{i}].queues", f"campaign queue {q!r} {_NAILED}")
                if pbx is not None and on.get(q, pbx) != pbx:
                    reason = f"queue {q!r} is on PBX {on[q]!r}, the agent on {pbx!r}"
                    raise ConfigError(f"agent[{i}].queues", reason)
            agents.append(a.model_copy(update={"pbx": pbx}))
        # one phone, one agent: a second agent on it was rung on the first's
        # calls and nailed into the first's bridge (QA5 finding 24)
        phones: dict[tuple[str | None, str], str] = {}
        for i, a in enumerate(agents):
            first = phones.setdefault((a.pbx, a.endpoint), a.id)
            if first != a.id:
                reason = f"phone {a.endpoint!r} is taken by agent {first!r}"
                raise ConfigError(f"agent[{i}].endpoint", reason)
        owner = instance_name(self.database.url)
        return Settings(
            http=self.http,
            database=self.database,
            pbxs=tuple(p.build(env, owner, f"pbx[{i}]") for i, p in enumerate(self.pbx) if pbxs),
            log_format=self.log.format,
            routing=RoutingSettings(
                **dict(self.routing),
                queues=tuple(queues),
                agents=tuple(agents),
                queue_pbx=on,
                campaign_only=frozenset(dialled - inbound),
            ),
            campaigns=tuple(campaigns),
        )


#: why a campaign's queue takes only nailed-up agents
_NAILED = (
    'needs mode = "nailed": a person a campaign reaches must be with an agent within 2 s,'
    " and a phone rung per call is not"
)


# -- pydantic's errors in the file's words ---------------------------------------------------
#: the kinds of value pydantic names (``int_type`` ...), in the words of a TOML file
_KINDS = {
    "int": "an integer",
    "float": "a number",
    "string": "text",
    "bool": "true or false",
    "tuple": "a list",
    "dict": "a table",
    "model": "a table",
}

#: what a missing key must hold, where its name alone does not say it
_REQUIRED = {
    "name": _NAME_REASON,
    "id": _NAME_REASON,
    "endpoint": 'required: the agent\'s PJSIP endpoint, e.g. "1001"',
    "country": "required: US, GB or DE",
    "caller_id": "required: the presented number, +E.164",
}


def _config_error(error: ErrorDetails) -> ConfigError:
    """The first error of a validation, as ``key.path: reason``: a domain
    error's key (in its table) joined to the table's path, an unknown key's
    to its table's, a bad key of a mapping as itself; pydantic's own words
    turned into the file's (``Input should be`` as ``must be``)."""
    loc: list[int | str] = [part for part in error["loc"] if part != "[key]"]
    ctx, kind = error.get("ctx", {}), error["type"]
    cause = ctx.get("error")
    if isinstance(cause, DomainError):  # raised by a build, naming its key in the table
        loc, reason = [*loc, *cause.field.split(".")], cause.reason
    elif kind == "unknown_key":
        loc, reason = [*loc, ctx["key"]], error["msg"]
    elif cause is not None:  # a check of ours (:func:`_rule`)
        reason = str(cause)
    elif kind == "tuple_type" and len(loc) == 1:
        reason = f"must be an array of tables ([[{loc[0]}]])"
    elif kind.removesuffix("_type") in _KINDS:
        reason = f"must be {_KINDS[kind.removesuffix('_type')]}"
    elif kind == "greater_than_equal":
        reason = f"must be >= {ctx['ge']:g}"
    elif kind == "missing":
        reason = _REQUIRED.get(str(loc[-1]), "required")
    else:
        reason = error["msg"].replace("Input should be", "must be")
    key = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)
    return ConfigError(key.removeprefix(".") or "config", reason)


def parse_settings(
    data: Mapping[str, Any], env: Mapping[str, str] | None = None, *, pbxs: bool = True
) -> Settings:
    """Settings from a parsed TOML document, checked whole (keys, types,
    values, names across tables).  ``pbxs=False``: without the PBXs, so a
    command that only touches the database runs without a PBX's secret."""
    env = os.environ if env is None else env
    database = data.get("database", {})
    if (url := env.get("DIRIGENT_DATABASE_URL")) and isinstance(database, dict):
        data = {**data, "database": {**database, "url": url}}  # the environment wins
    try:
        doc = ConfigFile.model_validate(data)
    except ValidationError as exc:
        raise _config_error(exc.errors()[0]) from None
    return doc.settings(env, pbxs=pbxs)


def read_toml(path: str | Path) -> dict[str, Any]:
    """The parsed file, or a :class:`ConfigError` saying in words what is wrong with it."""
    try:
        return tomlfile.read_toml(path, "config")
    except Invalid as exc:
        raise ConfigError(exc.field, exc.reason) from None


def load_settings(
    path: str | Path, env: Mapping[str, str] | None = None, *, pbxs: bool = True
) -> Settings:
    """The settings of the file at ``path`` (``pbxs``: see :func:`parse_settings`)."""
    return parse_settings(read_toml(path), env, pbxs=pbxs)


def load_database_settings(
    path: str | Path, env: Mapping[str, str] | None = None
) -> DatabaseSettings:
    """Only ``[database]`` (the file checked whole): for the commands that
    touch nothing but the database (lists, contacts, consent, users ...)."""
    return load_settings(path, env, pbxs=False).database
