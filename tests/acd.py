"""The centre of one PBX for the tests: a :class:`~center.hub.Hub` with one
:class:`~channels.voice.VoiceInbound` (composition, so not in ``channels/``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from center.hub import Hub
from channels.voice import AgentEndpoint, VoiceInbound, _Call
from core.bus import EventBus
from core.telephony import Telephony, TelephonyEvent
from routing.router import Router


class InboundAcd(Hub):
    """The hub with the voice channel of a single PBX, as the tests assemble
    it (the server, :class:`dirigent.service.Dirigent`, builds a :class:`Hub`
    and one :class:`VoiceInbound` per PBX itself): the voice channel's
    state and commands read through the hub, as the tests drive them."""

    def __init__(
        self,
        telephony: Telephony,
        router: Router,
        clock: IReactorTime,
        endpoints: Mapping[str, AgentEndpoint],
        *,
        registry: CollectorRegistry | None = None,
        wrap_up: float = 10.0,
        tick_interval: float = 1.0,
        day_start: Callable[[float], float] | None = None,
        bus: EventBus | None = None,
        nail_retry_initial: float = 1.0,
        nail_retry_max: float = 60.0,
        nail_retries: int = 10,
    ) -> None:
        super().__init__(
            router,
            clock,
            registry=registry,
            wrap_up=wrap_up,
            tick_interval=tick_interval,
            day_start=day_start or (lambda now: now - now % 86_400),
            bus=bus,
        )
        self.voice = VoiceInbound(
            telephony,
            self,
            endpoints,
            nail_retry_initial=nail_retry_initial,
            nail_retry_max=nail_retry_max,
            nail_retries=nail_retries,
        )

    @property
    def telephony(self) -> Telephony:
        return self.voice.telephony

    @property
    def calls(self) -> dict[str, _Call]:
        return self.voice.calls

    @property
    def endpoints(self) -> dict[str, AgentEndpoint]:
        return self.voice.endpoints

    @property
    def by_nailed(self) -> dict[str, str]:
        return self.voice.by_nailed

    @property
    def lost_at(self) -> float | None:
        return self.voice.lost_at

    def on_event(self, event: TelephonyEvent) -> None:
        self.voice.on_event(event)

    def adopt_nailed(self, agent: str, queues: list[str]) -> bool:
        return self.voice.adopt_nailed(agent, queues)

    def nail_up(self, agent: str, queues: list[str] | None = None) -> Deferred[None]:
        return self.voice.nail_up(agent, queues)
