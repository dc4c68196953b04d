"""In-process publish/subscribe: what happens in the server, for the faces
that show it (agent desktop, supervisor dashboard, screen pops).

Synchronous and small on purpose: publishers are the router/ACD on the event
loop; subscribers must not block (a WebSocket hub only queues frames).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Message = dict[str, Any]
Subscriber = Callable[[Message], None]


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    def publish(self, kind: str, **payload: Any) -> None:
        message = {"type": kind, **payload}
        for callback in list(self._subscribers):
            callback(message)
