"""WebSocket push of what happens (``/ws``), via autobahn.

Each message is one JSON object made from a typed event of the in-process
:class:`EventBus` by :func:`core.events.to_message` (the one serialiser):
``{"type": "agent", "agent": ..., "state": ...}``, ``{"type": "offer",
"agent": ..., "interaction": ..., "channel": ..., ...}``, and when that
offer is over, however it ended, ``{"type": "offer_ended", "agent": ...,
"interaction": ..., "end": "accepted" | "declined" | "timed_out" |
"withdrawn" | "gone"}`` (the desktop closes the pop).

Who sees what: an agent's socket carries the messages that name that agent
(its own state, its own offers and previews, the interactions it answers and
ends) and nothing else -- a queued call or chat names no agent yet and
carries a customer's number, so it is for supervisors only.  Admins see
everything, and so do supervisors of the whole centre; a supervisor who
oversees some teams (:class:`~cti.auth.Scope`) sees their agents, the
interactions of the queues they serve, and the campaigns dialling into them.

The token is never in the URL, where proxies and access logs keep it: send
it in an ``Authorization: Bearer`` header (programs) or as the first message
``{"type": "auth", "token": "..."}`` within :data:`AUTH_WITHIN` seconds
(browsers, which cannot set headers on a WebSocket).  A bad header token is
refused with HTTP 401; a bad or late first message closes the socket with
code 4401; ``?token=`` is refused with HTTP 400 saying where the token goes.
A socket lives no longer than its token: once a logout, a password change, a
disabled or removed user or the token's age ends it, the socket is closed
with 4401 before anything more is pushed.
"""

from __future__ import annotations

import json
from typing import Any

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.internet.interfaces import IDelayedCall

from core.bus import EventBus
from core.events import (
    AgentStateChanged,
    CampaignFigures,
    DomainEvent,
    InteractionChanged,
    OfferEnded,
    OfferMade,
    PreviewShown,
    to_message,
)
from cti.auth import TokenStore, User

#: seconds a socket opened without a header token has to send its auth message
AUTH_WITHIN = 10.0
#: close code for a socket that did not authenticate (4000-4999: the application's own)
CLOSE_UNAUTHENTICATED = 4401


def visible_to(user: User, event: DomainEvent) -> bool:
    """Whether ``user``'s socket may carry ``event`` (see the module's rules)."""
    if user.supervises:
        match event:
            case CampaignFigures(campaign=campaign):
                return user.sees_campaign(campaign)
            case (
                AgentStateChanged(agent=agent)
                | OfferMade(agent=agent)
                | OfferEnded(agent=agent)
                | PreviewShown(agent=agent)
            ):
                return user.sees_agent(agent)
            case InteractionChanged(agent=agent, queue=queue):
                return user.sees_queue(queue) or (agent is not None and user.sees_agent(agent))
        return user.scope is None
    match event:
        case CampaignFigures():
            return False  # campaign figures are for supervisors, not every desktop
        case (
            AgentStateChanged(agent=agent)
            | OfferMade(agent=agent)
            | OfferEnded(agent=agent)
            | PreviewShown(agent=agent)
        ):
            return user.agent is not None and agent == user.agent
        case InteractionChanged(agent=agent):
            return user.agent is not None and agent == user.agent
    return False


class PushProtocol(WebSocketServerProtocol):
    factory: PushFactory
    # set before onConnect: a plain HTTP request (a health check, a scanner) is
    # closed without onConnect ever being called
    user: User | None = None
    _token: str | None = None
    _unsubscribe: Any = None
    _auth_timer: IDelayedCall | None = None

    def onConnect(self, request: Any) -> None:
        self.user: User | None = None
        self._token: str | None = None
        self._unsubscribe: Any = None
        self._auth_timer: IDelayedCall | None = None
        params = request.params or {}
        if "token" in params:
            raise ConnectionDeny(
                400,
                "the token does not go in the URL: send an Authorization: Bearer header "
                'or a first message {"type": "auth", "token": ...}',
            )
        header = (request.headers or {}).get("authorization", "")
        if header:
            scheme, _, token = header.partition(" ")
            user = self.factory.tokens.user(token.strip()) if scheme.lower() == "bearer" else None
            if user is None:
                raise ConnectionDeny(401, "a valid bearer token is required")
            self.user, self._token = user, token.strip()

    def onOpen(self) -> None:
        if self.user is not None:
            self._subscribe()
        else:
            self._auth_timer = self.factory.clock.callLater(AUTH_WITHIN, self._auth_too_late)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if self.user is not None:
            return  # the push is one-way once authenticated
        user = None
        try:
            message = json.loads(payload)
            if isinstance(message, dict) and message.get("type") == "auth":
                token = message.get("token")
                user = self.factory.tokens.user(token) if isinstance(token, str) else None
        except (ValueError, UnicodeDecodeError, RecursionError):  # deep nesting is no ValueError
            pass
        if user is None:
            self._cancel_timer()
            self.sendClose(CLOSE_UNAUTHENTICATED, "a valid token is required")
            return
        self._cancel_timer()
        self.user, self._token = user, token
        self._subscribe()
        self.sendMessage(
            json.dumps({"type": "authenticated", "user": user.username}).encode(), isBinary=False
        )

    def _subscribe(self) -> None:
        self._unsubscribe = self.factory.bus.subscribe_all(self._on_event)

    def _auth_too_late(self) -> None:
        self._auth_timer = None
        if self.user is None:
            self.sendClose(CLOSE_UNAUTHENTICATED, f"no auth message within {AUTH_WITHIN:g} s")

    def _cancel_timer(self) -> None:
        if self._auth_timer is not None and self._auth_timer.active():
            self._auth_timer.cancel()
        self._auth_timer = None

    def _on_event(self, event: DomainEvent) -> None:
        """Pushed if its user may see it -- while the token lives: a logout,
        a password change, a disabled or removed user or a changed scope ends
        the token, and the socket is closed before anything more goes out."""
        if self.user is None:
            return
        user = self.factory.tokens.user(self._token)
        if user is None:
            self.user = None
            if self._unsubscribe is not None:
                self._unsubscribe()
                self._unsubscribe = None
            self.sendClose(CLOSE_UNAUTHENTICATED, "the token has ended: log in again")
            return
        if visible_to(user, event):
            self.sendMessage(json.dumps(to_message(event)).encode(), isBinary=False)

    def onClose(self, wasClean: bool, code: Any, reason: Any) -> None:
        self._cancel_timer()
        unsubscribe = getattr(self, "_unsubscribe", None)
        if unsubscribe is not None:
            unsubscribe()
            self._unsubscribe = None


class PushFactory(WebSocketServerFactory):
    protocol = PushProtocol  # type: ignore[assignment]  # autobahn: untyped base

    def __init__(self, bus: EventBus, tokens: TokenStore, clock: Any = None) -> None:
        # no product banner; a request that is no WebSocket upgrade gets 426, not
        # autobahn's status page (whose ?redirect= would send anyone anywhere)
        super().__init__(server="Dirigent")
        self.setProtocolOptions(webStatus=False)
        if clock is None:
            from twisted.internet import reactor as clock
        self.bus = bus
        self.tokens = tokens
        self.clock = clock


def push_resource(bus: EventBus, tokens: TokenStore) -> WebSocketResource:
    return WebSocketResource(PushFactory(bus, tokens))
