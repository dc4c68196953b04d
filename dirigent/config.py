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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asterisk.session import PbxSettings

DEFAULT_DATABASE_URL = "sqlite:///dirigent.db"


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
class Settings:
    http: HttpSettings = HttpSettings()
    database: DatabaseSettings = DatabaseSettings()
    pbxs: tuple[PbxSettings, ...] = ()
    log_format: str = "text"


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


def env_secret_name(pbx_name: str) -> str:
    return f"DIRIGENT_PBX_{pbx_name.upper().replace('-', '_')}_SECRET"


def parse_settings(data: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    _check_keys(data, {"http", "database", "pbx", "log"}, "")
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
    for i, raw in enumerate(pbx_list):
        prefix = f"pbx[{i}]"
        if not isinstance(raw, dict):
            raise ConfigError(prefix, "must be a table")
        _check_keys(raw, set(_PBX_FIELDS), prefix)
        name = raw.get("name")
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ConfigError(
                f"{prefix}.name", "required: letters, digits, '-' or '_' (at most 40)"
            )
        if any(p.name == name for p in pbxs):
            raise ConfigError(f"{prefix}.name", f"duplicate PBX name {name!r}")
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
        pbxs.append(PbxSettings(**values))
    return Settings(http_settings, db_settings, tuple(pbxs), log_format)


def load_settings(path: str | Path, env: Mapping[str, str] | None = None) -> Settings:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError("config", f"file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config", f"{path} is not valid TOML: {exc}") from None
    return parse_settings(data, env)
