"""Configuration: one TOML file, secrets also from the environment.

Unknown keys and invalid values stop start-up with a :class:`ConfigError`
naming the key (``pbx[0].port: must be an integer from 1 to 65535``), so a
typo never silently falls back to a default.  Secrets can stay out of the
file: ``DIRIGENT_PBX_<NAME>_SECRET`` overrides ``[[pbx]] secret`` for the PBX
called ``<name>`` (upper-cased, ``-`` as ``_``), and ``DIRIGENT_DATABASE_URL``
overrides ``[database] url``.  ``repr`` of the settings never shows a secret.
"""

from __future__ import annotations

import os
import re
import tomllib
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asterisk.session import PbxSettings
from dialer.campaign import CampaignError, CampaignSettings, validate
from dialer.compliance import Campaign, Policy, PolicyError, policy_for
from dialer.retry import RetryError, RetryRules
from routing.blending import BlendingRules
from routing.model import (
    Channel,
    ExpertiseRule,
    OverflowStep,
    QueueConfig,
    RoutingError,
    ServiceLevel,
)
from routing.router import POLICIES

DEFAULT_DATABASE_URL = "sqlite:///store.db"
#: a name the shipped dialplan patterns (``_[a-zA-Z0-9].``: a letter or digit,
#: then one character or more) can match -- endpoints dialled from
#: dirigent-connect, agent ids and queue names used as extensions -- with no
#: control characters, blanks or dialplan punctuation that would only fail
#: when the first call is sent
ENDPOINT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{1,63}")
_EXTEN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{1,39}")
_EXTEN_REASON = "two characters or more: the dialplan's _[a-zA-Z0-9]. patterns need them"
#: extension names Asterisk runs by itself (``failed``: a failed Originate's
#: placeholder channel; ``talk``, ``fax``): an agent or queue of that name
#: would share their calls
_RESERVED_EXTENS = frozenset({"failed", "talk", "fax"})


class ConfigError(ValueError):
    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


@dataclass(frozen=True)
class HttpSettings:
    host: str = "127.0.0.1"
    port: int = 8080


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = field(default=DEFAULT_DATABASE_URL, repr=False)
    auto_upgrade: bool = True


@dataclass(frozen=True)
class AgentSettings:
    id: str
    endpoint: str
    mode: str = "ring"
    skills: Mapping[str, int] = field(default_factory=dict)
    capacity: Mapping[Channel, int] = field(default_factory=lambda: {Channel.VOICE: 1})
    queues: tuple[str, ...] = ()
    team: str | None = None
    auto_login: bool = False


@dataclass(frozen=True)
class RoutingSettings:
    policy: str = "longest_idle"
    offer_timeout: float = 30.0
    wrap_up: float = 10.0
    blending: BlendingRules = field(default_factory=BlendingRules)
    queues: tuple[QueueConfig, ...] = ()
    agents: tuple[AgentSettings, ...] = ()


@dataclass(frozen=True)
class CampaignConfig:
    """One ``[[campaign]]``: dialing settings, the country's rules, retries."""

    settings: CampaignSettings
    policy: Policy
    caller_id: str
    timezone: str  # the local day of the abandon ledger and of the reports
    retry: RetryRules = field(default_factory=RetryRules)
    drop_group: str | None = None  # campaigns measured together (Ofcom allows it)
    auto_start: bool = False
    max_attempts_per_day: int | None = None
    holiday_subdivisions: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def ledger_group(self) -> str:
        return self.drop_group or self.settings.name

    def compliance(self) -> Campaign:
        """The campaign as the compliance gate sees it."""
        return Campaign(
            self.name,
            self.policy,
            self.caller_id,
            holiday_subdivisions=self.holiday_subdivisions,
            max_attempts_per_day=self.max_attempts_per_day,
            timezone=self.timezone,
        )


#: the local day for a country's ledger when ``timezone`` is not given
DEFAULT_TIMEZONES = {"US": "America/New_York", "GB": "Europe/London", "DE": "Europe/Berlin"}


@dataclass(frozen=True)
class Settings:
    http: HttpSettings = HttpSettings()
    database: DatabaseSettings = DatabaseSettings()
    pbxs: tuple[PbxSettings, ...] = ()
    log_format: str = "text"
    routing: RoutingSettings = RoutingSettings()
    campaigns: tuple[CampaignConfig, ...] = ()


_PBX_FIELDS: dict[str, type] = {
    "name": str,
    "host": str,
    "port": int,
    "username": str,
    "secret": str,
    "connect_timeout": float,
    "keepalive_interval": float,
    "keepalive_timeout": float,
    "backoff_initial": float,
    "backoff_max": float,
    "action_timeout": float,
    "exclude_events": list,
    "takeover": bool,
    "lease": bool,
}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")


def _check_keys(table: Mapping[str, Any], allowed: set[str], prefix: str) -> None:
    for key in table:
        if key not in allowed:
            where = f"{prefix}.{key}" if prefix else key
            raise ConfigError(where, f"unknown key (allowed: {', '.join(sorted(allowed))})")


def _table(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(key, "must be a table")
    return value


def _typed(value: Any, kind: type, key: str) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(key, "must be a list of strings")
        return tuple(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ConfigError(key, f"must be {_KIND_NAMES[kind]}")
    return value


_KIND_NAMES = {float: "a number", int: "an integer", str: "text", bool: "true or false"}


def _port(value: Any, key: str) -> int:
    value = _typed(value, int, key)
    if not 1 <= value <= 65535:
        raise ConfigError(key, "must be an integer from 1 to 65535")
    return value


def _named_table(
    raw: Any, prefix: str, allowed: set[str], id_key: str, taken: set[str]
) -> tuple[dict, str]:
    """One entry of an array of tables (``[[pbx]]``, ``[[queue]]``, ``[[agent]]``):
    a table with known keys only and a unique, well-formed ``id_key``."""
    if not isinstance(raw, dict):
        raise ConfigError(prefix, "must be a table")
    _check_keys(raw, allowed, prefix)
    name = raw.get(id_key)
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ConfigError(
            f"{prefix}.{id_key}", "required: letters, digits, '-' or '_' (at most 40)"
        )
    if name in taken:
        raise ConfigError(f"{prefix}.{id_key}", f"duplicate {name!r}")
    taken.add(name)
    return raw, name


def instance_name(database_url: str) -> str:
    """This installation's name on a PBX's lease: the host and its database
    (a restart of the same server is the same owner and takes its PBX back
    at once; another server, or another database, is not)."""
    import hashlib
    import socket

    digest = hashlib.sha256(database_url.encode()).hexdigest()[:10]
    return f"{socket.gethostname()}/{digest}"


def env_secret_name(pbx_name: str) -> str:
    return f"DIRIGENT_PBX_{pbx_name.upper().replace('-', '_')}_SECRET"


def parse_settings(data: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    _check_keys(
        data, {"http", "database", "pbx", "log", "routing", "queue", "agent", "campaign"}, ""
    )
    http = _table(data, "http")
    _check_keys(http, {"host", "port"}, "http")
    http_settings = HttpSettings(
        host=_typed(http.get("host", "127.0.0.1"), str, "http.host"),
        port=_port(http.get("port", 8080), "http.port"),
    )
    database = _table(data, "database")
    _check_keys(database, {"url", "auto_upgrade"}, "database")
    url = env.get("DIRIGENT_DATABASE_URL") or _typed(
        database.get("url", DEFAULT_DATABASE_URL), str, "database.url"
    )
    if not re.match(r"^(sqlite|postgresql)(\+\w+)?://", url):
        raise ConfigError("database.url", "must start with sqlite:// or postgresql://")
    db_settings = DatabaseSettings(
        url=url,
        auto_upgrade=_typed(database.get("auto_upgrade", True), bool, "database.auto_upgrade"),
    )
    log = _table(data, "log")
    _check_keys(log, {"format"}, "log")
    log_format = log.get("format", "text")
    if log_format not in ("text", "json"):
        raise ConfigError("log.format", "must be 'text' or 'json'")

    pbx_list = data.get("pbx", [])
    if not isinstance(pbx_list, list):
        raise ConfigError("pbx", "must be an array of tables ([[pbx]])")
    pbxs: list[PbxSettings] = []
    pbx_names: set[str] = set()
    for i, raw in enumerate(pbx_list):
        prefix = f"pbx[{i}]"
        raw, name = _named_table(raw, prefix, set(_PBX_FIELDS), "name", pbx_names)
        values: dict[str, Any] = {}
        for key, kind in _PBX_FIELDS.items():
            if key in raw:
                values[key] = (
                    _port(raw[key], f"{prefix}.port")
                    if key == "port"
                    else _typed(raw[key], kind, f"{prefix}.{key}")
                )
        for key in (
            "connect_timeout",
            "keepalive_interval",
            "keepalive_timeout",
            "backoff_initial",
            "backoff_max",
            "action_timeout",
        ):
            if key in values and values[key] <= 0:
                raise ConfigError(f"{prefix}.{key}", "must be a positive number of seconds")
        secret = env.get(env_secret_name(name), values.get("secret", ""))
        if not secret:
            raise ConfigError(
                f"{prefix}.secret", f"required (in the file or in {env_secret_name(name)})"
            )
        values["secret"] = secret
        if values.pop("lease", True):
            values["owner"] = instance_name(db_settings.url)
        pbxs.append(PbxSettings(**values))
    campaigns = parse_campaigns(data)
    routing = parse_routing(data, {c.settings.queue_name for c in campaigns})
    return Settings(http_settings, db_settings, tuple(pbxs), log_format, routing, campaigns)


def _levels(value: Any, key: str) -> dict[str, int]:
    if not isinstance(value, dict):
        raise ConfigError(key, "must be a table of skill = level")
    for skill, level in value.items():
        if not isinstance(level, int) or isinstance(level, bool) or not 1 <= level <= 10:
            raise ConfigError(f"{key}.{skill}", "level must be a whole number from 1 to 10")
    return dict(value)


def _channel(value: Any, key: str) -> Channel:
    try:
        return Channel(value)
    except ValueError:
        raise ConfigError(
            key, f"unknown channel {value!r} (one of {', '.join(c.value for c in Channel)})"
        ) from None


def _number(value: Any, key: str, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise ConfigError(key, f"must be a number >= {minimum:g}")
    return float(value)


def parse_routing(
    data: Mapping[str, Any], campaign_queues: set[str] = frozenset()
) -> RoutingSettings:  # type: ignore[assignment]
    """``[routing]`` (policy, timeouts, ``[routing.blending]``), ``[[queue]]``, ``[[agent]]``.

    A campaign's queue that is not configured as a ``[[queue]]`` is added
    with the defaults: agents log in to it to take the campaign's calls."""
    routing = _table(data, "routing")
    _check_keys(routing, {"policy", "offer_timeout", "wrap_up", "blending"}, "routing")
    policy = routing.get("policy", "longest_idle")
    if policy not in POLICIES:
        raise ConfigError("routing.policy", f"must be one of {', '.join(POLICIES)}")
    try:
        blending = BlendingRules.parse(_table(routing, "blending"))
    except RoutingError as exc:
        raise ConfigError(exc.field, exc.reason) from None
    queues: list[QueueConfig] = []
    queue_names: set[str] = set()
    for i, raw in enumerate(data.get("queue", [])):
        prefix = f"queue[{i}]"
        queue_keys = {
            "name",
            "skills",
            "priority",
            "max_wait",
            "service_level",
            "overflow",
            "expertise",
        }
        raw, name = _named_table(raw, prefix, queue_keys, "name", queue_names)
        if not _EXTEN_NAME.fullmatch(name):
            raise ConfigError(f"{prefix}.name", _EXTEN_REASON)
        if name in _RESERVED_EXTENS:
            raise ConfigError(f"{prefix}.name", f"{name!r} is an extension Asterisk keeps")
        levels = {}
        for channel, sl in _table(raw, "service_level").items():
            ch = _channel(channel, f"{prefix}.service_level")
            if not isinstance(sl, dict) or set(sl) != {"fraction", "seconds"}:
                raise ConfigError(
                    f"{prefix}.service_level.{channel}", "must be { fraction = 0.8, seconds = 20 }"
                )
            fraction = _number(sl["fraction"], f"{prefix}.service_level.{channel}.fraction")
            if not 0 < fraction <= 1:
                raise ConfigError(f"{prefix}.service_level.{channel}.fraction", "must be in (0, 1]")
            levels[ch] = ServiceLevel(
                fraction, _number(sl["seconds"], f"{prefix}.service_level.{channel}.seconds", 1)
            )
        overflow = []
        for j, step in enumerate(raw.get("overflow", [])):
            key = f"{prefix}.overflow[{j}]"
            if not isinstance(step, dict):
                raise ConfigError(key, "must be a table")
            _check_keys(step, {"after", "action", "skill", "min_level", "team", "queue"}, key)
            if step.get("action") not in (
                "widen",
                "drop_skill",
                "team",
                "queue",
                "callback",
                "voicemail",
            ):
                raise ConfigError(
                    f"{key}.action", "one of widen, drop_skill, team, queue, callback, voicemail"
                )
            overflow.append(
                OverflowStep(
                    _number(step.get("after"), f"{key}.after"),
                    step["action"],
                    step.get("skill"),
                    step.get("min_level"),
                    step.get("team"),
                    step.get("queue"),
                )
            )
        expertise = []
        for j, rule in enumerate(raw.get("expertise", [])):
            key = f"{prefix}.expertise[{j}]"
            if not isinstance(rule, dict):
                raise ConfigError(key, "must be a table")
            _check_keys(rule, {"attribute", "op", "value", "skill", "level", "team"}, key)
            if rule.get("op") not in ("==", "!=", ">", ">=", "<", "<=", "in"):
                raise ConfigError(f"{key}.op", "one of ==, !=, >, >=, <, <=, in")
            if not isinstance(rule.get("attribute"), str) or "value" not in rule:
                raise ConfigError(key, "needs attribute and value")
            if not rule.get("skill") and not rule.get("team"):
                raise ConfigError(key, "needs a skill or a team to route to")
            expertise.append(
                ExpertiseRule(
                    rule["attribute"],
                    rule["op"],
                    rule["value"],
                    rule.get("skill"),
                    int(rule.get("level", 1)),
                    rule.get("team"),
                )
            )
        max_wait = raw.get("max_wait")
        queues.append(
            QueueConfig(
                name,
                skills=_levels(raw.get("skills", {}), f"{prefix}.skills"),
                priority=int(_number(raw.get("priority", 0), f"{prefix}.priority")),
                service_levels=levels or dict(QueueConfig(name).service_levels),
                max_wait=None if max_wait is None else _number(max_wait, f"{prefix}.max_wait", 1),
                overflow=tuple(sorted(overflow, key=lambda o: o.after)),
                expertise=tuple(expertise),
            )
        )
    for name in sorted(campaign_queues - queue_names):
        queues.append(QueueConfig(name))
    names = queue_names | campaign_queues
    agents: list[AgentSettings] = []
    agent_ids: set[str] = set()
    for i, raw in enumerate(data.get("agent", [])):
        prefix = f"agent[{i}]"
        agent_keys = {
            "id",
            "endpoint",
            "mode",
            "skills",
            "capacity",
            "queues",
            "team",
            "auto_login",
        }
        raw, agent_id = _named_table(raw, prefix, agent_keys, "id", agent_ids)
        if not _EXTEN_NAME.fullmatch(agent_id):
            raise ConfigError(f"{prefix}.id", _EXTEN_REASON)
        if agent_id in _RESERVED_EXTENS:
            raise ConfigError(f"{prefix}.id", f"{agent_id!r} is an extension Asterisk keeps")
        endpoint = raw.get("endpoint")
        if not isinstance(endpoint, str) or not endpoint:
            raise ConfigError(
                f"{prefix}.endpoint", 'required: the agent\'s PJSIP endpoint, e.g. "1001"'
            )
        if not ENDPOINT_NAME.fullmatch(endpoint):
            raise ConfigError(
                f"{prefix}.endpoint",
                f"{endpoint!r} is not a PJSIP endpoint name (a letter or digit, then 1 to"
                " 63 of letters, digits and _ . + -)",
            )
        mode = raw.get("mode", "ring")
        if mode not in ("ring", "nailed"):
            raise ConfigError(f"{prefix}.mode", "must be 'ring' or 'nailed'")
        capacity = {
            _channel(c, f"{prefix}.capacity"): int(_number(n, f"{prefix}.capacity.{c}"))
            for c, n in _table(raw, "capacity").items()
        } or {Channel.VOICE: 1}
        agent_queues = raw.get("queues", [])
        for q in agent_queues:
            if q not in names:
                raise ConfigError(f"{prefix}.queues", f"unknown queue {q!r}")
        agents.append(
            AgentSettings(
                agent_id,
                endpoint,
                mode,
                _levels(raw.get("skills", {}), f"{prefix}.skills"),
                capacity,
                tuple(agent_queues),
                raw.get("team"),
                _typed(raw.get("auto_login", False), bool, f"{prefix}.auto_login"),
            )
        )
    return RoutingSettings(
        policy=policy,
        offer_timeout=_number(routing.get("offer_timeout", 30.0), "routing.offer_timeout", 1),
        wrap_up=_number(routing.get("wrap_up", 10.0), "routing.wrap_up"),
        blending=blending,
        queues=tuple(queues),
        agents=tuple(agents),
    )


_CAMPAIGN_FIELDS: dict[str, type] = {
    "mode": str,
    "queue": str,
    "trunk": str,
    "abandon_target": float,
    "ring_timeout": float,
    "amd": bool,
    "amd_delay": float,
    "machine_action": str,
    "amd_false_positive": float,
    "connect_within": float,
    "max_lines_per_agent": float,
    "power_ratio": float,
    "wrap_up": float,
    "preview_auto_dial": float,
}


def parse_campaigns(data: Mapping[str, Any]) -> tuple[CampaignConfig, ...]:
    """``[[campaign]]`` tables: the country picks the legal rules (calling
    hours, abandon limit and window, lock-outs); the abandon target may be
    lower than the country's limit, never higher."""
    raw_list = data.get("campaign", [])
    if not isinstance(raw_list, list):
        raise ConfigError("campaign", "must be an array of tables ([[campaign]])")
    out: list[CampaignConfig] = []
    names: set[str] = set()
    other = {
        "name",
        "country",
        "caller_id",
        "timezone",
        "retry",
        "drop_group",
        "auto_start",
        "max_attempts_per_day",
        "holiday_subdivisions",
    }
    for i, raw in enumerate(raw_list):
        prefix = f"campaign[{i}]"
        raw, name = _named_table(raw, prefix, set(_CAMPAIGN_FIELDS) | other, "name", names)
        country = raw.get("country")
        if not isinstance(country, str):
            raise ConfigError(f"{prefix}.country", "required: US, GB or DE")
        try:
            policy = policy_for(country)
        except PolicyError as exc:
            raise ConfigError(f"{prefix}.country", str(exc).split(": ", 1)[1]) from None
        caller_id = raw.get("caller_id")
        if not isinstance(caller_id, str):
            raise ConfigError(f"{prefix}.caller_id", "required: the presented number, +E.164")
        try:
            Campaign(name, policy, caller_id)
        except PolicyError as exc:
            raise ConfigError(f"{prefix}.caller_id", str(exc).split(": ", 1)[1]) from None
        values = {
            k: _typed(raw[k], kind, f"{prefix}.{k}")
            for k, kind in _CAMPAIGN_FIELDS.items()
            if k in raw
        }
        windows = ("30d", "day") if policy.abandon_window == "30d" else ("day",)
        try:
            settings = validate(
                CampaignSettings(
                    name,
                    caller_id=caller_id,
                    country=policy.country,
                    legal_max_abandon=policy.abandon_limit,
                    abandon_target=values.pop("abandon_target", policy.abandon_limit),
                    windows=windows,
                    **values,
                )
            )
        except CampaignError as exc:
            raise ConfigError(f"{prefix}.{exc.key}", str(exc).split(": ", 1)[1]) from None
        try:
            retry = RetryRules.parse(_table(raw, "retry"), f"{prefix}.retry")
        except RetryError as exc:
            raise ConfigError(exc.key, str(exc).split(": ", 1)[1]) from None
        timezone = _typed(
            raw.get("timezone", DEFAULT_TIMEZONES.get(policy.country, "UTC")),
            str,
            f"{prefix}.timezone",
        )
        try:
            zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"{prefix}.timezone", f"unknown time zone {timezone!r}") from None
        per_day = raw.get("max_attempts_per_day")
        subdivisions = raw.get("holiday_subdivisions", [])
        out.append(
            CampaignConfig(
                settings,
                policy,
                caller_id,
                timezone,
                retry,
                _typed(raw["drop_group"], str, f"{prefix}.drop_group")
                if "drop_group" in raw
                else None,
                _typed(raw.get("auto_start", False), bool, f"{prefix}.auto_start"),
                None
                if per_day is None
                else int(_number(per_day, f"{prefix}.max_attempts_per_day", 1)),
                _typed(subdivisions, list, f"{prefix}.holiday_subdivisions"),
            )
        )
    return tuple(out)


def load_settings(path: str | Path, env: Mapping[str, str] | None = None) -> Settings:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError("config", f"file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError("config", f"{path} is a folder, not a TOML file") from None
    except PermissionError:
        raise ConfigError("config", f"{path}: permission denied") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            "config", f"{path} is not UTF-8 text (byte {exc.start}): TOML files are UTF-8"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config", f"{path} is not valid TOML: {exc}") from None
    return parse_settings(data, env)
