"""AMI actions, validated before a single byte is sent.

AMI is a line protocol: a CR or LF inside a header value ends the header and
lets the rest of the value be read as new headers (AMI header injection: a
caller-ID field from a web form could append ``Action: Originate`` lines).
Every action therefore passes :func:`validate_headers`, which refuses control
characters, over-long values and empty required fields with an error that
names the field.

The builders return plain header lists; :mod:`asterisk.session` sends them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

#: Longest header value we send.  Asterisk reads a manager request into a
#: fixed buffer and truncates beyond it; refusing early is clearer than a
#: silently cut dial string.
MAX_VALUE_LENGTH: Final = 1024

#: Header names: letters, digits, ``-`` and ``_`` (``CID-CallingPres``).
_NAME_RE: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
#: Control characters, including CR, LF, NUL and DEL.
_CONTROL_RE: Final = re.compile(r"[\x00-\x1f\x7f]")

#: Channel variables we set ourselves; ``=`` separates name and value.
_VARNAME_RE: Final = re.compile(r"^_{0,2}[A-Za-z][A-Za-z0-9_]{0,79}$")


class ActionError(ValueError):
    """An action that must not be sent; ``field`` names the culprit."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


Header = tuple[str, str]


def validate_headers(headers: Iterable[Header], required: Iterable[str] = ()) -> list[Header]:
    """Check every header name and value; return them as a list.

    Raises :class:`ActionError` naming the first bad field.
    """
    checked: list[Header] = []
    for name, value in headers:
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ActionError(str(name), "invalid header name")
        if not isinstance(value, str):
            raise ActionError(name, f"value must be text, not {type(value).__name__}")
        # isprintable() is false for every control character (category Cc), and
        # a C loop: the search runs only for a value that may hold one
        if not value.isprintable() and _CONTROL_RE.search(value):
            raise ActionError(name, "contains a control character (CR, LF or other)")
        if len(value) > MAX_VALUE_LENGTH:
            raise ActionError(name, f"longer than {MAX_VALUE_LENGTH} characters")
        checked.append((name, value))
    present = {name.lower(): value for name, value in checked}
    for name in required:
        if not present.get(name.lower(), "").strip():
            raise ActionError(name, "required and empty")
    return checked


@dataclass(frozen=True, slots=True)
class Action:
    """A validated AMI action: its name and its headers (no ActionID yet)."""

    name: str
    headers: tuple[Header, ...]

    def all_headers(self, action_id: str) -> list[Header]:
        return [("Action", self.name), ("ActionID", action_id), *self.headers]


def action(name: str, headers: Iterable[Header] = (), required: Iterable[str] = ()) -> Action:
    """Build any action (the generic escape hatch), validated."""
    if not name or not _NAME_RE.match(name):
        raise ActionError("Action", "invalid action name")
    checked = validate_headers(headers, required)
    for key, _ in checked:
        if key.lower() in ("action", "actionid"):
            raise ActionError(key, "set by the session, not by the caller")
    return Action(name, tuple(checked))


def _variables(variables: Mapping[str, str] | None) -> list[Header]:
    out: list[Header] = []
    for key, value in (variables or {}).items():
        if not _VARNAME_RE.match(key):
            raise ActionError(f"Variable {key}", "invalid channel variable name")
        out.append(("Variable", f"{key}={value}"))
    return out


def originate(
    channel: str,
    *,
    context: str | None = None,
    exten: str | None = None,
    priority: int = 1,
    application: str | None = None,
    data: str | None = None,
    timeout_ms: int = 30_000,
    caller_id: str | None = None,
    variables: Mapping[str, str] | None = None,
    channel_id: str | None = None,
    other_channel_id: str | None = None,
    account: str | None = None,
) -> Action:
    """An asynchronous Originate (we never block a manager thread on a dial).

    Exactly one of ``context``+``exten`` or ``application`` must be given,
    as for Asterisk's own action.  ``channel_id`` fixes the Uniqueid of the
    new channel, which lets the caller match every later event to its dial.
    """
    if (application is None) == (context is None or exten is None):
        raise ActionError("Context", "give either Context and Exten, or Application")
    if timeout_ms <= 0:
        raise ActionError("Timeout", "must be positive milliseconds")
    headers: list[Header] = [("Channel", channel)]
    if application is not None:
        headers.append(("Application", application))
        if data is not None:
            headers.append(("Data", data))
    else:
        headers += [("Context", context or ""), ("Exten", exten or ""), ("Priority", str(priority))]
    headers.append(("Timeout", str(timeout_ms)))
    if caller_id is not None:
        headers.append(("CallerID", caller_id))
    if account is not None:
        headers.append(("Account", account))
    headers += _variables(variables)
    if channel_id is not None:
        headers.append(("ChannelId", channel_id))
    if other_channel_id is not None:
        headers.append(("OtherChannelId", other_channel_id))
    headers.append(("Async", "true"))
    required = ["Channel"] + (["Application"] if application else ["Context", "Exten"])
    return action("Originate", headers, required)


def redirect(channel: str, context: str, exten: str, priority: int = 1) -> Action:
    return action(
        "Redirect",
        [("Channel", channel), ("Context", context), ("Exten", exten), ("Priority", str(priority))],
        ["Channel", "Context", "Exten"],
    )


def bridge(channel1: str, channel2: str, tone: bool = False) -> Action:
    return action(
        "Bridge",
        [("Channel1", channel1), ("Channel2", channel2), ("Tone", "yes" if tone else "no")],
        ["Channel1", "Channel2"],
    )


def hangup(channel: str, cause: int = 16) -> Action:
    return action("Hangup", [("Channel", channel), ("Cause", str(cause))], ["Channel"])


def setvar(channel: str, variable: str, value: str) -> Action:
    if not _VARNAME_RE.match(variable):
        raise ActionError("Variable", "invalid channel variable name")
    return action(
        "Setvar",
        [("Channel", channel), ("Variable", variable), ("Value", value)],
        ["Channel", "Variable"],
    )


def getvar(channel: str, variable: str) -> Action:
    return action("Getvar", [("Channel", channel), ("Variable", variable)], ["Channel", "Variable"])


def play_moh(channel: str, moh_class: str = "default") -> Action:
    return action("MusicOnHold", [("Channel", channel), ("Class", moh_class)], ["Channel"])


def stop_moh(channel: str) -> Action:
    return action("StopMusicOnHold", [("Channel", channel)], ["Channel"])


def message_send(to: str, body: str, sender: str | None = None) -> Action:
    headers: list[Header] = [("To", to)]
    if sender is not None:
        headers.append(("From", sender))
    headers.append(("Body", body))
    return action("MessageSend", headers, ["To"])


def user_event(name: str, fields: Mapping[str, str] | None = None) -> Action:
    return action("UserEvent", [("UserEvent", name), *(fields or {}).items()], ["UserEvent"])


def core_show_channels() -> Action:
    return action("CoreShowChannels")


def status(variables: Iterable[str] = ()) -> Action:
    names = ",".join(variables)
    return action("Status", [("Variables", names)] if names else [])


def db_get(family: str, key: str) -> Action:
    """AstDB read (a list action in Asterisk 22: DBGetResponse, DBGetComplete)."""
    return action("DBGet", [("Family", family), ("Key", key)], ["Family", "Key"])


def db_put(family: str, key: str, value: str) -> Action:
    return action("DBPut", [("Family", family), ("Key", key), ("Val", value)], ["Family", "Key"])


def db_del(family: str, key: str) -> Action:
    return action("DBDel", [("Family", family), ("Key", key)], ["Family", "Key"])


def ping() -> Action:
    return action("Ping")


def login(username: str, secret: str) -> Action:
    return action("Login", [("Username", username), ("Secret", secret)], ["Username", "Secret"])


def logoff() -> Action:
    return action("Logoff")


def filter_out(event_name: str) -> Action:
    """Drop an event server-side (Asterisk 22 syntax, as in the fixtures)."""
    return action(
        "Filter",
        [
            ("Operation", "Add"),
            ("MatchCriteria", f"action(exclude),name({event_name})"),
            ("Filter", ""),
        ],
    )
