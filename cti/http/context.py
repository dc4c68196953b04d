"""What every resource group of the HTTP API shares: the ports it calls
(the centre's operations, campaigns, lists), the authorisation decorator,
the JSON body reader and the route helper that turns answers into JSON.

Authentication and authorisation are written once, here: a handler
declares the roles it admits with :meth:`ApiContext.requires` and gets the
:class:`~cti.auth.User` as its second argument.  Finer checks that depend
on the target (an agent acts only for itself) stay in the handler, next to
the thing they protect.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Callable, Collection, Coroutine, Mapping
from dataclasses import dataclass, field
from inspect import iscoroutine
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from klein import Klein
from pydantic_core import to_json
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.web.iweb import IRequest
from twisted.web.server import Request

from core.errors import NotFound
from cti.auth import ANY_USER, LoginThrottle, TokenStore, User
from cti.errors import ApiError
from routing.agent import Agent
from routing.model import Channel, Interaction

#: the largest JSON body accepted
MAX_BODY = 64 * 1024
#: the largest list upload accepted (a million rows of CSV is about 100 MB)
MAX_UPLOAD = 512 * 1024 * 1024


class Operations(Protocol):
    """What the API needs from the centre (implemented by ``center.hub.Hub``):
    its commands and queries, never its router.  Its queue figures are dicts
    (``center`` may not import ``cti``): the handler checks each against
    :class:`cti.responses.QueueAnswer` before it is sent."""

    def agent(self, agent_id: str) -> Agent | None: ...
    def agents(self) -> list[Agent]: ...
    def pbx_of(self, agent_id: str) -> str | None: ...
    def has_queue(self, name: str) -> bool: ...
    def is_waiting(self, interaction: str) -> bool: ...
    def handler_of(self, interaction: str) -> str | None: ...
    def handled(self, interaction: str) -> Interaction | None: ...
    def set_skills(self, agent: str, skills: Mapping[str, int]) -> None: ...
    def set_capacity(self, agent: str, capacity: Mapping[Channel, int]) -> None: ...
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
    def taken_over_by(self, attempt: str) -> str | None: ...


UserLookup = Callable[[str], tuple[User, str] | None]  # username -> (user, password hash)
#: (agent, start, end) -> seconds per state, read from the database (blocking: run in a thread)
ReportLookup = Callable[[str, float, float], dict[str, float]]
AuditSink = Callable[[dict[str, Any]], None]
#: PBX name -> whether its link is up now (None: no such PBX)
PbxLink = Callable[[str], bool | None]


class CampaignOps(Protocol):
    """The dialer's controls (``dialer.campaigns.Campaigns``); an unknown name is a NotFound.
    Its views are dicts (the dialer may not import ``cti``): the handlers check
    each against its answer model in :mod:`cti.responses` before it is sent."""

    def views(self) -> list[dict[str, Any]]: ...
    def view(self, name: str) -> dict[str, Any]: ...
    def control(self, name: str, action: str) -> dict[str, Any]: ...
    def change(self, name: str, changes: Mapping[str, Any]) -> dict[str, Any]: ...
    def preview(self, agent: str) -> dict[str, Any] | None: ...
    def preview_decision(self, agent: str, decision: str) -> Deferred[dict[str, Any]]:
        """Fires once the dial is written, or fails with a Conflict naming
        the record the compliance gate refused at this moment."""
        ...


class ListOps(Protocol):
    """Lists, do-not-call, consent, contacts, pool status (``store.list_ops``);
    every method blocks on the database: the API runs them in a thread.  The
    answers are dicts (``store`` may not import ``cti``): the handlers check
    each against its model in :mod:`cti.responses`, which refuses a key or a
    type the JSON contract does not have."""

    def import_upload(
        self, body: Any, name: str, campaign: str, *, region: str | None, dry_run: bool
    ) -> dict[str, Any]: ...
    def add_dnc(
        self,
        numbers: list[str],
        *,
        campaign: str | None = None,
        region: str | None = None,
        source: str | None = None,
        reason: str | None = None,
    ) -> dict[str, Any]: ...
    def check_dnc(self, number: str, campaign: str | None) -> dict[str, Any]: ...
    def add_consent(
        self,
        contact: int,
        channel: str,
        granted: bool,
        *,
        source: str | None = None,
        proof_ref: str | None = None,
    ) -> dict[str, Any]: ...
    def pool(self, campaign: str, now: float) -> dict[str, Any]: ...
    def unconfigured(self, campaign: str) -> NotFound: ...
    def merge(
        self, campaign: str, keep: str, drop: list[str], region: str | None = None
    ) -> dict[str, Any]: ...
    def set_active(self, campaign: str, name: str, active: bool) -> dict[str, Any]: ...
    def disposition(
        self,
        ref: str,
        code: str,
        agent: str | None,
        now: float,
        campaigns: Collection[str] | None = None,
        *,
        callback_at: dt.datetime | None = None,
    ) -> dict[str, Any]: ...
    def find_contacts(self, phone: str, region: str | None = None) -> dict[str, Any]: ...


P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class ApiContext:
    """The API's collaborators, handed to every resource group."""

    ops: Operations
    users: UserLookup
    tokens: TokenStore
    reports: ReportLookup | None = None
    campaigns: CampaignOps | None = None
    lists: ListOps | None = None
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    audit: AuditSink | None = None
    pbx_up: PbxLink | None = None

    # -- who is asking -----------------------------------------------------------------------
    @staticmethod
    def token(request: IRequest) -> str | None:
        header = (request.getHeader(b"authorization") or b"").decode("latin-1")
        return header[7:].strip() if header.lower().startswith("bearer ") else None

    def user(self, request: IRequest) -> User | None:
        return self.tokens.user(self.token(request))

    def requires(
        self,
        roles: frozenset[str] = ANY_USER,
        *,
        field: str = "role",
        refusal: str = "{user} may not do this",
    ) -> Callable[
        [Callable[Concatenate[Request, User, P], R]], Callable[Concatenate[Request, P], R]
    ]:
        """The authorisation of a route, written once: no valid bearer token
        is 401; a role not in ``roles`` is 403 with ``field`` and ``refusal``
        (formatted with ``user`` and the route's arguments).  The handler
        gets the user after the request."""

        def decorate(
            handler: Callable[Concatenate[Request, User, P], R],
        ) -> Callable[Concatenate[Request, P], R]:
            @functools.wraps(handler)
            def checked(request: Request, /, *args: P.args, **kwargs: P.kwargs) -> R:
                user = self.user(request)
                if user is None:
                    raise ApiError(
                        401, "authorization", "a valid bearer token is required (POST /api/login)"
                    )
                if user.role not in roles:
                    raise ApiError(403, field, refusal.format(user=user.username, **kwargs))
                return handler(request, user, *args, **kwargs)

            return checked

        return decorate

    # -- the state handlers look at --------------------------------------------------------------
    def agent(self, agent_id: str) -> Agent:
        agent = self.ops.agent(agent_id)
        if agent is None:
            raise NotFound("agent", f"unknown agent {agent_id!r}")
        return agent

    def now(self) -> float:
        """The centre's clock (the end of its day window is "now")."""
        return self.ops.day_window()[1]


def read_body(request: Request) -> dict[str, Any]:
    """The JSON object of a request: at most ``MAX_BODY`` bytes, an object,
    storable text (no lone surrogates); an empty body is ``{}``."""
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
    except ValueError:  # Python reads no integer of more than 4300 digits (not a JSONDecodeError)
        raise ApiError(400, "body", "holds a number of more than 4300 digits") from None
    if not isinstance(body, dict):
        raise ApiError(400, "body", "must be a JSON object")
    try:  # "\ud800" is valid JSON but no character: no database can store it
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(
            400, "body", "holds a lone surrogate (\\uD800-\\uDFFF), no character"
        ) from None
    return body


def query(request: Request) -> dict[str, str]:
    """The first value of every query argument, as text."""
    return {
        k.decode("utf-8", "replace"): v[0].decode("utf-8", "replace")
        for k, v in (request.args or {}).items()
        if v
    }


def encode(result: Any) -> bytes:
    """An answer as JSON: pydantic models by their schema, dicts and lists as they are."""
    return result if isinstance(result, bytes) else to_json(result)


Handler = Callable[..., Any]


def route(app: Klein, url: str, *methods: str) -> Callable[[Handler], Handler]:
    """Register ``handler`` for ``methods`` on ``url`` (relative to ``/api``);
    its answer (a value, or a coroutine of one) is sent as JSON."""

    def register(handler: Handler) -> Handler:
        def endpoint(request: Request, **kwargs: Any) -> Any:
            result = handler(request, **kwargs)
            if iscoroutine(result):
                coroutine: Coroutine[Any, Any, Any] = result
                return ensureDeferred(coroutine).addCallback(encode)
            return encode(result)

        name = f"{handler.__module__}:{'|'.join(methods)} {url}"
        app.route(url, methods=list(methods), endpoint=name, strict_slashes=False)(endpoint)
        return handler

    return register
