"""Agent and supervisor operations over HTTP (JSON, bearer tokens).

========================================  ===========  =====================================
route                                     who          what
========================================  ===========  =====================================
``POST /api/login``                       anyone       ``{username, password}`` → ``{token, role, agent}``
``POST /api/logout``                      any user     ends the token it is sent with
``GET  /api/agents``                      any user     agents with state, skills, capacity, work
``GET  /api/agents/<id>``                 any user     one agent
``POST /api/agents/<id>/login``           self / sup.  ``{queues: [...]}``
``POST /api/agents/<id>/logout|ready``    self / sup.
``POST /api/agents/<id>/pause``           self / sup.  ``{reason}``
``POST /api/agents/<id>/end-wrap-up``     self / sup.
``PUT  /api/agents/<id>/skills``          supervisor   ``{skills: {name: level}}``
``PUT  /api/agents/<id>/capacity``        supervisor   ``{capacity: {channel: n}}``
``GET  /api/agents/<id>/report``          self / sup.  seconds per state (``?from=&to=``, default today), from the database
``GET  /api/queues``                      any user     waiting, oldest wait, service level, counts
``POST /api/interactions``                supervisor   a chat / e-mail / SMS: ``{channel, queue, ...}``
``POST /api/interactions/<id>/accept``    the agent    accept an offered chat / e-mail / SMS
``POST /api/interactions/<id>/finish``    the agent    ``{wrap_up: seconds}``
``POST /api/interactions/<id>/transfer``  the agent /  ``{queue}`` or ``{agent}``: blind transfer
                                          supervisor
========================================  ===========  =====================================

Errors are JSON ``{"error": "<field>: <reason>", "field": ...}`` with 400
(bad payload), 401 (no or bad token), 403 (not allowed), 404 (unknown),
409 (not possible in the agent's current state).  Payloads are validated
before anything changes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from twisted.internet import threads
from twisted.web import resource, server

from cti.auth import LoginThrottle, TokenStore, User, check_login
from routing.agent import Agent, IllegalTransition
from routing.model import Channel, RoutingError
from routing.router import Router

MAX_BODY = 64 * 1024


class Operations(Protocol):
    """What the API needs from the ACD (implemented by ``center.acd``)."""

    router: Router

    def login(self, agent: str, queues: list[str], paused: str | None = None) -> None: ...
    def logout(self, agent: str) -> None: ...
    def ready(self, agent: str) -> None: ...
    def pause(self, agent: str, reason: str) -> None: ...
    def end_wrap_up(self, agent: str) -> None: ...
    def queue_figures(self) -> list[dict[str, Any]]: ...
    def day_window(self) -> tuple[float, float]: ...
    def create_interaction(self, channel: Channel, queue: str, **fields: Any) -> str: ...
    def accept(self, agent: str, interaction: str) -> None: ...
    def finish(self, agent: str, interaction: str, wrap_up: float) -> None: ...
    def transfer(
        self, agent: str, interaction: str, *, queue: str | None = None, to_agent: str | None = None
    ) -> None: ...


UserLookup = Callable[[str], tuple[User, str] | None]  # username -> (user, password hash)
#: (agent, start, end) -> seconds per state, read from the database (blocking: run in a thread)
ReportLookup = Callable[[str, float, float], dict[str, float]]


class CampaignOps(Protocol):
    """The dialer's controls (``dirigent.campaigns.Campaigns``)."""

    def views(self) -> list[dict[str, Any]]: ...
    def view(self, name: str) -> dict[str, Any]: ...
    def control(self, name: str, action: str) -> dict[str, Any]: ...
    def change(self, name: str, changes: dict[str, Any]) -> dict[str, Any]: ...
    def preview(self, agent: str) -> dict[str, Any] | None: ...
    def preview_decision(self, agent: str, decision: str) -> dict[str, Any]: ...


class ListOps(Protocol):
    """Lists, do-not-call, consent, pool status (``store.list_ops``); blocking."""

    def import_upload(
        self, body: Any, name: str, campaign: str, *, region: str | None, dry_run: bool
    ) -> dict[str, Any]: ...
    def add_dnc(self, body: dict[str, Any]) -> dict[str, Any]: ...
    def check_dnc(self, number: str, campaign: str | None) -> dict[str, Any]: ...
    def add_consent(self, body: dict[str, Any]) -> dict[str, Any]: ...
    def pool(self, campaign: str, now: float) -> dict[str, Any]: ...
    def merge(self, body: dict[str, Any]) -> dict[str, Any]: ...


#: the largest list upload accepted (a million rows of CSV is about 100 MB)
MAX_UPLOAD = 512 * 1024 * 1024


class ApiError(Exception):
    def __init__(self, status: int, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.status, self.field, self.reason = status, field, reason


def agent_view(agent: Agent, today: tuple[float, float] | None = None) -> dict[str, Any]:
    view = _agent_fields(agent)
    if today is not None:
        spent = agent.time_in_state(*today)
        view["seconds_today"] = {
            state.value: round(seconds, 3) for state, seconds in spent.items() if seconds
        }
    return view


def _agent_fields(agent: Agent) -> dict[str, Any]:
    return {
        "id": agent.id,
        "state": agent.state.value,
        "pause_reason": agent.pause_reason,
        "queues": sorted(agent.queues),
        "skills": agent.skills,
        "capacity": {c.value: n for c, n in agent.capacity.items()},
        "team": agent.team,
        "work": [
            {"interaction": w.interaction, "channel": w.channel.value, "phase": w.phase.value}
            for w in agent.work.values()
        ],
    }


#: longest pause reason (``agent_state_log.reason`` holds 80 characters)
MAX_REASON = 80


def _reason(value: str, name: str) -> str:
    """A pause reason as it is shown and stored: one line of text.  Control
    characters (CR, LF, tab, escape ...) are refused here, at the edge: stored
    raw they would break log lines, CSV exports and the supervisors' screens."""
    if not value.strip():
        raise ApiError(400, name, "must not be empty")
    if any(ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0 for ch in value):
        raise ApiError(400, name, "must not contain control characters (CR, LF, tab ...)")
    if len(value) > MAX_REASON:
        raise ApiError(400, name, f"must be at most {MAX_REASON} characters")
    return value


def _field(
    body: Mapping[str, Any], name: str, kind: type | tuple[type, ...], required: bool = True
) -> Any:
    if name not in body:
        if required:
            raise ApiError(400, name, "required")
        return None
    value = body[name]
    if not isinstance(value, kind) or (
        isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,))
    ):
        names = {
            str: "text",
            int: "a whole number",
            float: "a number",
            list: "a list",
            dict: "an object",
        }
        want = " or ".join(
            names.get(k, k.__name__) for k in (kind if isinstance(kind, tuple) else (kind,))
        )
        raise ApiError(400, name, f"must be {want}")
    return value


def _levels(value: Any, name: str) -> dict[str, int]:
    if not isinstance(value, dict):
        raise ApiError(400, name, "must be an object of name: level")
    for skill, level in value.items():
        if not isinstance(level, int) or isinstance(level, bool) or not 1 <= level <= 10:
            raise ApiError(400, f"{name}.{skill}", "level must be a whole number from 1 to 10")
    return value


def _channel(value: Any, name: str) -> Channel:
    try:
        return Channel(value)
    except ValueError:
        raise ApiError(
            400, name, f"unknown channel {value!r} (one of {', '.join(c.value for c in Channel)})"
        ) from None


def _own_path(user: User, path: list[str]) -> bool:
    """An agent acting on itself (its own state, its own interactions):
    not audited; everything a supervisor or campaign manager does is."""
    if len(path) >= 2 and path[0] == "agents":
        return path[1] == user.agent
    return path[:1] == ["interactions"] and user.role == "agent"


def _target(path: list[str]) -> str | None:
    kinds = {"agents": "agent", "campaigns": "campaign", "interactions": "interaction",
             "lists": "list", "dnc": "dnc", "consent": "consent"}  # fmt: skip
    if not path:
        return None
    kind = kinds.get(path[0], path[0])
    return f"{kind} {'/'.join(path[1:2])}".strip() if len(path) > 1 else kind


def _request_record(request: server.Request, path: list[str]) -> Any:
    """What the action asked for: the JSON body, or for a list upload its query."""
    if path == ["lists"]:
        return {k.decode("latin-1"): [v.decode("latin-1", "replace") for v in vs]
                for k, vs in (request.args or {}).items()}  # fmt: skip
    content = request.content
    if content is None:
        return None
    try:
        content.seek(0)
        raw = content.read(MAX_BODY)
        return json.loads(raw) if raw.strip() else None
    except (ValueError, OSError, RecursionError):
        return None


#: the ``interaction.customer`` column's width
CUSTOMER_MAX = 200


def _text_fits(value: str, field: str, limit: int) -> None:
    """A text headed for a column of ``limit`` characters, without control
    characters: refused here with the field named, instead of dropped by the
    database later (PostgreSQL: value too long for character varying)."""
    if len(value) > limit:
        raise ApiError(400, field, f"at most {limit} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ApiError(400, field, "must not contain control characters")


#: the latest time a report may ask about (the year 3000): beyond it, or NaN,
#: the database's date conversion fails
LATEST_EPOCH = 32503680000.0


class ApiResource(resource.Resource):
    isLeaf = True

    def __init__(
        self,
        ops: Operations,
        users: UserLookup,
        tokens: TokenStore,
        reports: ReportLookup | None = None,
        *,
        campaigns: CampaignOps | None = None,
        lists: ListOps | None = None,
        throttle: LoginThrottle | None = None,
        audit: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        super().__init__()
        self.throttle = throttle or LoginThrottle()
        self.audit = audit
        self.ops = ops
        self.campaigns = campaigns
        self.lists = lists
        self.users = users
        self.tokens = tokens
        self.reports = reports

    # -- plumbing -----------------------------------------------------------------------------
    def render(self, request: server.Request) -> Any:
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        try:
            path = [p.decode() for p in request.postpath if p]
        except UnicodeDecodeError:
            return self._error(request, 400, "path", "not UTF-8 (a %-escape of no character)")
        method = request.method.decode("latin-1")
        if method == "GET" or self.audit is None or path in (["login"], ["logout"]):
            return self._render(request, method, path)
        user = self.tokens.user(self._token(request))
        before = self._audit_view(path)
        result = self._render(request, method, path)
        if user is not None and (
            user.supervises or user.manages_campaigns or not _own_path(user, path)
        ):
            entry = {
                "actor": user.username,
                "role": user.role,
                "action": f"{method} /api/{'/'.join(path)}",
                "target": _target(path),
                "request": _request_record(request, path),
                "before": before,
            }
            if result is server.NOT_DONE_YET:  # database work in a thread: when it is done
                request.notifyFinish().addBoth(
                    lambda _r: self._audited(entry, request.code, self._audit_view(path))
                )
            else:
                self._audited(entry, request.code, self._audit_view(path))
        return result

    def _audit_view(self, path: list[str]) -> Any:
        """The state an action changes, for the audit's before and after."""
        try:
            if len(path) >= 2 and path[0] == "agents" and path[1] in self.ops.router.agents:
                view = agent_view(self.ops.router.agents[path[1]])
                return {
                    k: view[k] for k in ("state", "pause_reason", "skills", "capacity") if k in view
                }
            if len(path) >= 2 and path[0] == "campaigns" and self.campaigns is not None:
                view = self.campaigns.view(path[1])
                keep = ("status", "mode", "abandon_target", "max_lines_per_agent", "power_ratio",
                        "ring_timeout", "machine_action", "wrap_up")  # fmt: skip
                return {k: view[k] for k in keep if k in view}
        except (KeyError, AttributeError):
            return None
        return None

    def _audited(self, entry: dict[str, Any], status: int, after: Any) -> None:
        assert self.audit is not None
        self.audit({**entry, "status": int(status or 200), "after": after})

    def _render(self, request: server.Request, method: str, path: list[str]) -> Any:
        try:
            if path == ["lists"] and method == "POST":
                return self._upload(request)  # the body is the list file, not JSON
            body = self._body(request) if method in ("POST", "PUT", "PATCH") else {}
            if path == ["login"] and method == "POST":
                return self._login(request, body)
            user = self.tokens.user(self._token(request))
            if user is None:
                raise ApiError(
                    401, "authorization", "a valid bearer token is required (POST /api/login)"
                )
            if path == ["logout"] and method == "POST":
                self.tokens.revoke(self._token(request) or "")
                return json.dumps({"logged_out": user.username}).encode()
            if method == "GET" and len(path) == 3 and path[0] == "agents" and path[2] == "report":
                return self._report(request, path[1], user)
            if path[:1] in (["dnc"], ["consent"], ["lists"]) or path[-1:] == ["pool"]:
                return self._list_route(request, method, path, body, user)
            if method == "POST" and len(path) == 3 and path[::2] == ["interactions", "disposition"]:
                return self._disposition(request, path[1], body, user)
            if path and path[0] == "campaigns":
                result = self._campaign(method, path[1:], body, user)
            else:
                result = self._dispatch(method, path, body, user)
        except ApiError as exc:
            return self._error(request, exc.status, exc.field, exc.reason)
        except IllegalTransition as exc:
            return self._error(request, 409, "state", str(exc))
        except RoutingError as exc:
            status = 404 if "unknown agent" in exc.reason or "unknown queue" in exc.reason else 400
            return self._error(request, status, exc.field, exc.reason)
        except ValueError as exc:
            field, _, reason = str(exc).partition(": ")
            return self._error(request, 400, field, reason or str(exc))
        return json.dumps(result).encode()

    @staticmethod
    def _token(request: server.Request) -> str | None:
        header = (request.getHeader(b"authorization") or b"").decode()
        return header[7:].strip() if header.lower().startswith("bearer ") else None

    @staticmethod
    def _body(request: server.Request) -> dict[str, Any]:
        raw = request.content.read(MAX_BODY + 1) if request.content else b""
        if len(raw) > MAX_BODY:
            raise ApiError(400, "body", f"larger than {MAX_BODY} bytes")
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ApiError(400, "body", f"not valid JSON ({exc})") from None
        except RecursionError:  # 64 KB of "[" is within the size limit
            raise ApiError(400, "body", "nested too deeply") from None
        if not isinstance(body, dict):
            raise ApiError(400, "body", "must be a JSON object")
        try:  # "\ud800" is valid JSON but no character: no database can store it
            json.dumps(body, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ApiError(
                400, "body", "holds a lone surrogate (\\uD800-\\uDFFF), no character"
            ) from None
        return body

    @staticmethod
    def _error(request: server.Request, status: int, field: str, reason: str) -> bytes:
        request.setResponseCode(status)
        return json.dumps({"error": f"{field}: {reason}", "field": field}).encode()

    def _login(self, request: server.Request, body: dict[str, Any]) -> Any:
        username = _field(body, "username", str)
        password = _field(body, "password", str)
        address = getattr(request.getClientAddress(), "host", "?")
        wait = self.throttle.begin(username, address)
        if wait is not None:
            request.setHeader(b"retry-after", str(math.ceil(wait)).encode())
            return self._error(
                request, 429, "login", f"too many failed logins: try again in {math.ceil(wait)} s"
            )

        def check() -> User | None:
            found = self.users(username)
            # the same scrypt work for an unknown user: no enumeration by timing
            if not check_login(password, found[1] if found else None):
                return None
            return found[0] if found else None

        def done(user: User | None) -> None:
            if user is None:
                request.write(
                    self._error(request, 401, "password", "unknown user or wrong password")
                )
            else:
                self.throttle.succeeded(username, address)
                token = self.tokens.issue(user)
                request.write(
                    json.dumps({"token": token, "role": user.role, "agent": user.agent}).encode()
                )
            request.finish()

        def failed(failure: Any) -> None:
            request.write(self._error(request, 500, "login", failure.getErrorMessage()))
            request.finish()

        threads.deferToThread(check).addCallbacks(done, failed)
        return server.NOT_DONE_YET

    def _report(self, request: server.Request, agent_id: str, user: User) -> Any:
        """``GET /api/agents/<id>/report?from=<epoch s>&to=<epoch s>`` (default:
        today): seconds per state from the database, so it survives restarts."""
        self._agent(agent_id)
        if not user.may_act_for(agent_id):
            raise ApiError(403, "agent", f"{user.username} may not see the report of {agent_id}")
        if self.reports is None:
            raise ApiError(404, "report", "no database reports in this setup")
        start, end = self.ops.day_window()
        for name in ("from", "to"):
            raw = request.args.get(name.encode())
            if raw:
                try:
                    value = float(raw[0])
                except ValueError:
                    raise ApiError(400, name, "must be seconds since the epoch") from None
                if not (math.isfinite(value) and 0 <= value <= LATEST_EPOCH):
                    raise ApiError(
                        400, name, f"must be seconds since the epoch, 0 to {LATEST_EPOCH:.0f}"
                    )
                start, end = (value, end) if name == "from" else (start, value)
        if end <= start:
            raise ApiError(400, "to", "must be after from")

        def done(seconds: dict[str, float]) -> None:
            request.write(
                json.dumps(
                    {"agent": agent_id, "from": start, "to": end, "seconds": seconds}
                ).encode()
            )
            request.finish()

        def failed(failure: Any) -> None:
            request.write(self._error(request, 500, "report", failure.getErrorMessage()))
            request.finish()

        threads.deferToThread(self.reports, agent_id, start, end).addCallbacks(done, failed)
        return server.NOT_DONE_YET

    def _campaign(self, method: str, path: list[str], body: dict[str, Any], user: User) -> Any:
        """``GET /api/campaigns[/<name>]``; ``POST /api/campaigns/<name>/start|pause|stop``;
        ``PATCH /api/campaigns/<name>`` with live settings (abandon target,
        max lines per agent, ...), all validated together."""
        if self.campaigns is None:
            raise ApiError(404, "campaign", "no campaigns are configured")
        if not user.manages_campaigns:
            raise ApiError(403, "campaign", f"{user.username} may not see or control campaigns")
        try:
            match method, path:
                case "GET", []:
                    return self.campaigns.views()
                case "GET", [name]:
                    return self.campaigns.view(name)
                case "POST", [name, ("start" | "pause" | "stop") as action]:
                    return self.campaigns.control(name, action)
                case "PATCH", [name]:
                    if not body:
                        raise ApiError(400, "body", "give at least one setting to change")
                    return self.campaigns.change(name, body)
        except KeyError as exc:
            raise ApiError(404, "campaign", f"unknown campaign {exc.args[0]!r}") from None
        raise ApiError(404, "path", f"no route {method} /api/campaigns/{'/'.join(path)}")

    # -- lists, do-not-call, consent, pool (database work: in a thread) -------------------------
    def _threaded(self, request: server.Request, fn: Any, *args: Any, **kw: Any) -> Any:
        def done(result: Any) -> None:
            request.write(json.dumps(result).encode())
            request.finish()

        def failed(failure: Any) -> None:
            exc = failure.value
            if isinstance(exc, KeyError):
                body = self._error(request, 404, "campaign", f"unknown campaign {exc.args[0]!r}")
            elif isinstance(exc, PermissionError):
                field, _, reason = str(exc).partition(": ")
                body = self._error(request, 403, field, reason or str(exc))
            elif isinstance(exc, LookupError):  # "field: what was not found"
                field, _, reason = str(exc).partition(": ")
                body = self._error(request, 404, field, reason or str(exc))
            elif isinstance(exc, ValueError):
                field, _, reason = str(exc).partition(": ")
                body = self._error(request, 400, field, reason or str(exc))
            else:
                body = self._error(request, 500, "server", failure.getErrorMessage())
            request.write(body)
            request.finish()

        threads.deferToThread(fn, *args, **kw).addCallbacks(done, failed)
        return server.NOT_DONE_YET

    def _disposition(
        self, request: server.Request, ref: str, body: dict[str, Any], user: User
    ) -> Any:
        """An outbound call's result, from the agent who took it (or a
        supervisor): recorded, and "do-not-call" / "callback" act at once."""
        if self.lists is None:
            raise ApiError(404, "interaction", "no database in this setup")
        if user.agent is None and not user.supervises:
            raise ApiError(403, "agent", f"{user.username} did not take this call")
        agent = None if user.supervises else user.agent
        now = self.ops.day_window()[1]
        return self._threaded(request, self.lists.disposition, ref, body, agent, now)

    def _list_user(self, request: server.Request) -> User:
        user = self.tokens.user(self._token(request))
        if user is None:
            raise ApiError(
                401, "authorization", "a valid bearer token is required (POST /api/login)"
            )
        if not user.manages_campaigns:
            raise ApiError(403, "lists", f"{user.username} may not manage lists")
        if self.lists is None:
            raise ApiError(404, "lists", "no database in this setup")
        return user

    def _upload(self, request: server.Request) -> Any:
        """``POST /api/lists?campaign=C&name=FILE[&region=DE][&dry_run=1]``, the
        file (CSV or .xlsx) as the body: the same import as ``dirigent lists import``."""
        self._list_user(request)
        length = request.getHeader(b"content-length")
        if length is not None and int(length) > MAX_UPLOAD:
            raise ApiError(413, "body", f"larger than {MAX_UPLOAD // (1024 * 1024)} MB")

        def arg(name: str) -> str | None:
            values = request.args.get(name.encode())
            return values[0].decode("utf-8", "replace") if values else None

        campaign, name = arg("campaign"), arg("name")
        if not campaign:
            raise ApiError(400, "campaign", "required (?campaign=...)")
        if not name:
            raise ApiError(400, "name", "required: the file's name (?name=customers.csv)")
        body = request.content
        if body is None:
            raise ApiError(400, "body", "the list file is missing")
        body.seek(0)
        return self._threaded(
            request,
            self.lists.import_upload,  # type: ignore[union-attr]
            body,
            name,
            campaign,
            region=arg("region"),
            dry_run=arg("dry_run") in ("1", "true", "yes"),
        )

    def _list_route(
        self,
        request: server.Request,
        method: str,
        path: list[str],
        body: dict[str, Any],
        user: User,
    ) -> Any:
        self._list_user(request)
        ops = self.lists
        assert ops is not None
        match method, path:
            case "POST", ["dnc"]:
                return self._threaded(request, ops.add_dnc, body)
            case "GET", ["dnc", number]:
                campaign = request.args.get(b"campaign", [b""])[0].decode() or None
                return self._threaded(request, ops.check_dnc, number, campaign)
            case "POST", ["consent"]:
                return self._threaded(request, ops.add_consent, body)
            case "POST", ["lists", "merge"]:
                return self._threaded(request, ops.merge, body)
            case "PATCH", ["lists", campaign, name]:
                return self._threaded(request, ops.set_active, campaign, name, body)
            case "GET", ["campaigns", name, "pool"]:
                return self._threaded(request, ops.pool, name, self.ops.day_window()[1])
        raise ApiError(404, "path", f"no route {method} /api/{'/'.join(path)}")

    # -- routes ---------------------------------------------------------------------------------
    def _agent(self, agent_id: str) -> Agent:
        agent = self.ops.router.agents.get(agent_id)
        if agent is None:
            raise ApiError(404, "agent", f"unknown agent {agent_id!r}")
        return agent

    def _agent_may(self, agent_id: str, user: User, what: str) -> None:
        self._agent(agent_id)
        if not user.may_act_for(agent_id):
            raise ApiError(403, "agent", f"{user.username} may not {what} {agent_id}")

    def _dispatch(self, method: str, path: list[str], body: dict[str, Any], user: User) -> Any:
        ops = self.ops
        match method, path:
            case "GET", ["agents"]:
                today = ops.day_window()
                return [agent_view(a, today) for _, a in sorted(ops.router.agents.items())]
            case "GET", ["agents", agent_id]:
                return agent_view(self._agent(agent_id), ops.day_window())
            case "GET", ["queues"]:
                return ops.queue_figures()
            case "GET", ["agents", agent_id, "preview"]:
                self._agent_may(agent_id, user, "see the preview of")
                return self.campaigns.preview(agent_id) if self.campaigns else None
            case "POST", ["agents", agent_id, ("preview-dial" | "preview-skip") as action]:
                self._agent_may(agent_id, user, action)
                if self.campaigns is None:
                    raise ApiError(404, "campaign", "no campaigns are configured")
                return self.campaigns.preview_decision(agent_id, action.split("-")[1])
            case (("POST" | "PUT"), ["agents", agent_id, action]):
                self._agent(agent_id)
                supervisor_only = action in ("skills", "capacity")
                if (supervisor_only and not user.supervises) or not user.may_act_for(agent_id):
                    raise ApiError(403, "agent", f"{user.username} may not {action} for {agent_id}")
                self._agent_action(method, agent_id, action, body)
                return agent_view(self._agent(agent_id))
            case "POST", ["interactions"]:
                if not user.supervises:
                    raise ApiError(
                        403, "interactions", "only supervisors and integrations create interactions"
                    )
                channel = _channel(_field(body, "channel", str), "channel")
                if channel is Channel.VOICE:
                    raise ApiError(400, "channel", "voice interactions come from the PBX")
                queue = _field(body, "queue", str)
                if queue not in ops.router.queues:
                    raise ApiError(400, "queue", f"unknown queue {queue!r}")
                priority = _field(body, "priority", int, required=False) or 0
                skills = _levels(body.get("skills", {}), "skills")
                attributes = _field(body, "attributes", dict, required=False) or {}
                customer = _field(body, "customer", str, required=False)
                if customer is not None:
                    _text_fits(customer, "customer", CUSTOMER_MAX)
                if not -1000 <= priority <= 1000:
                    raise ApiError(400, "priority", "must be from -1000 to 1000")
                iid = ops.create_interaction(
                    channel,
                    queue,
                    priority=priority,
                    skills=skills,
                    attributes=attributes,
                    customer=customer,
                )
                return {"id": iid, "waiting": iid in ops.router.waiting}
            case "POST", ["interactions", iid, "transfer"]:
                handler = ops.router.handling.get(iid)
                if handler is None:
                    raise ApiError(404, "interaction", f"{iid} is not being handled")
                if not user.may_act_for(handler):
                    raise ApiError(403, "interaction", f"{user.username} may not transfer {iid}")
                queue = _field(body, "queue", str, required=False)
                to_agent = _field(body, "agent", str, required=False)
                if (queue is None) == (to_agent is None):
                    raise ApiError(400, "queue", "give either a queue or an agent")
                if queue is not None and queue not in ops.router.queues:
                    raise ApiError(400, "queue", f"unknown queue {queue!r}")
                if to_agent is not None and to_agent not in ops.router.agents:
                    raise ApiError(400, "agent", f"unknown agent {to_agent!r}")
                interaction = ops.router.handled_interactions.get(iid)
                ops.transfer(handler, iid, queue=queue, to_agent=to_agent)
                history = interaction.history if interaction is not None else []
                return {"id": iid, "history": history}
            case "POST", ["interactions", iid, ("accept" | "finish") as action]:
                agent = user.agent
                if agent is None:
                    raise ApiError(403, "agent", "only an agent accepts or finishes interactions")
                if action == "accept":
                    ops.accept(agent, iid)
                else:
                    wrap = _field(body, "wrap_up", (int, float), required=False) or 0
                    if wrap < 0:
                        raise ApiError(400, "wrap_up", "must not be negative")
                    ops.finish(agent, iid, float(wrap))
                return agent_view(self._agent(agent))
        raise ApiError(404, "path", f"no route {method} /api/{'/'.join(path)}")

    def _agent_action(self, method: str, agent_id: str, action: str, body: dict[str, Any]) -> None:
        ops = self.ops
        if method == "POST" and action == "login":
            queues = _field(body, "queues", list)
            for q in queues:
                if q not in ops.router.queues:
                    raise ApiError(400, "queues", f"unknown queue {q!r}")
            paused = _field(body, "paused", str, required=False)
            ops.login(agent_id, queues, None if paused is None else _reason(paused, "paused"))
        elif method == "POST" and action == "logout":
            ops.logout(agent_id)
        elif method == "POST" and action == "ready":
            ops.ready(agent_id)
        elif method == "POST" and action == "pause":
            ops.pause(agent_id, _reason(_field(body, "reason", str), "reason"))
        elif method == "POST" and action == "end-wrap-up":
            ops.end_wrap_up(agent_id)
        elif method == "PUT" and action == "skills":
            ops.router.set_skills(agent_id, _levels(_field(body, "skills", dict), "skills"))
        elif method == "PUT" and action == "capacity":
            raw = _field(body, "capacity", dict)
            capacity = {}
            for name, n in raw.items():
                if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                    raise ApiError(400, f"capacity.{name}", "must be a whole number >= 0")
                capacity[_channel(name, "capacity")] = n
            ops.router.set_capacity(agent_id, capacity)
        else:
            raise ApiError(404, "path", f"no route {method} /api/agents/{agent_id}/{action}")
