"""In-process publish/subscribe of domain events (:mod:`core.events`): what
happens in the server, for the faces that show it (agent desktop,
supervisor dashboard, screen pops) and the report writer.

Subscribers name the event class they want (``bus.subscribe(OfferMade,
on_offer)``, a base class takes its subclasses) or take every event
(:meth:`EventBus.subscribe_all`, the WebSocket push).  Synchronous and small
on purpose: publishers are the router/ACD on the event loop; subscribers must
not block (a WebSocket hub only queues frames, the report writer hands rows
to its thread).  Subscribers are called in the order they subscribed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from core.events import DomainEvent

E = TypeVar("E", bound=DomainEvent)
Unsubscribe = Callable[[], None]


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[tuple[type[DomainEvent], Callable[[Any], None]]] = []

    def subscribe(self, kind: type[E], handler: Callable[[E], None]) -> Unsubscribe:
        """Call ``handler`` with every published event of class ``kind``."""
        entry: tuple[type[DomainEvent], Callable[[Any], None]] = (kind, handler)
        self._subscribers.append(entry)

        def unsubscribe() -> None:
            if entry in self._subscribers:
                self._subscribers.remove(entry)

        return unsubscribe

    def subscribe_all(self, handler: Callable[[DomainEvent], None]) -> Unsubscribe:
        return self.subscribe(DomainEvent, handler)

    def publish(self, event: DomainEvent) -> None:
        for kind, handler in list(self._subscribers):
            if isinstance(event, kind):
                handler(event)
