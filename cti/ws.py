"""WebSocket push of what happens (``/ws?token=...``), via autobahn.

Each message is one JSON object from the in-process :class:`EventBus`:
``{"type": "agent", "agent": ..., "state": ...}``, ``{"type": "offer",
"agent": ..., "interaction": ..., "channel": ..., ...}``.  An agent's socket
receives the messages about that agent; supervisors receive everything.
A connection without a valid token is refused with HTTP 401.
"""

from __future__ import annotations

import json
from typing import Any

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny

from cti.auth import TokenStore, User
from cti.bus import EventBus, Message

#: campaign figures are for supervisors, not for every agent's desktop
SUPERVISOR_ONLY = frozenset({"campaign"})


class PushProtocol(WebSocketServerProtocol):
    factory: PushFactory

    def onConnect(self, request: Any) -> None:
        params = request.params or {}
        token = (params.get("token") or [None])[0]
        user = self.factory.tokens.user(token)
        if user is None:
            raise ConnectionDeny(401, "a valid token is required")
        self.user: User = user
        self._unsubscribe = self.factory.bus.subscribe(self._on_message)

    def _on_message(self, message: Message) -> None:
        if self.user.supervises or (
            message["type"] not in SUPERVISOR_ONLY
            and message.get("agent") in (None, self.user.agent)
        ):
            self.sendMessage(json.dumps(message).encode(), isBinary=False)

    def onClose(self, wasClean: bool, code: Any, reason: Any) -> None:
        unsubscribe = getattr(self, "_unsubscribe", None)
        if unsubscribe is not None:
            unsubscribe()


class PushFactory(WebSocketServerFactory):
    protocol = PushProtocol

    def __init__(self, bus: EventBus, tokens: TokenStore) -> None:
        super().__init__()
        self.bus = bus
        self.tokens = tokens


def push_resource(bus: EventBus, tokens: TokenStore) -> WebSocketResource:
    return WebSocketResource(PushFactory(bus, tokens))
