"""Live KPI figures of the hub: service level (last 30 minutes, today),
abandoned callers (per queue, today), dialplan fallbacks.

Kept apart from the hub so that every channel adapter reports into one
place (a caller answered on either PBX counts in its queue's service level)
and so that the figures the API, the pacing and the gauges read have one
definition.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

from routing.model import Channel
from routing.router import Router

SL_WINDOW = 1800.0  # "service level over the last 30 minutes"
#: the latest abandoned callers kept for reporting (the per-queue counts are not bounded by it)
RECENT_ABANDONED = 10_000


class Kpi:
    def __init__(self, router: Router, day_start: Callable[[float], float], now: float) -> None:
        self.router = router
        self.day_start = day_start
        self.answers: deque[tuple[float, str, float]] = deque()  # (answered at, queue, wait)
        self.today: dict[str, list[int]] = {}  # queue -> [within target, answered]
        self._today_start = day_start(now)
        #: the latest abandoned callers, (interaction, wait), for reporting
        self.abandoned: deque[tuple[str, float]] = deque(maxlen=RECENT_ABANDONED)
        self.abandoned_today: dict[str, int] = {}  # queue -> callers who left waiting
        self.fallbacks = 0
        #: queues whose service level over 30 minutes is below target (each tick)
        self.low_service: set[str] = set()

    def _roll(self, now: float) -> None:
        """A new day starts today's figures afresh."""
        start = self.day_start(now)
        if start != self._today_start:
            self._today_start, self.today, self.abandoned_today = start, {}, {}

    def abandon(self, interaction: str, queue: str, wait: float, now: float) -> None:
        """A caller of ``queue`` left after waiting ``wait`` seconds."""
        self._roll(now)
        self.abandoned.append((interaction, wait))
        self.abandoned_today[queue] = self.abandoned_today.get(queue, 0) + 1

    def restore(
        self,
        answers: Iterable[tuple[float, str, float]],
        abandons: Iterable[tuple[float, str, str, float]],
        fallbacks: int,
        now: float,
    ) -> None:
        """Today's figures from the report rows, at start-up: a restart does
        not begin the day again.  ``answers``: (answered at, queue, wait);
        ``abandons``: (left at, interaction, queue, wait); both in time
        order.  Calls of a queue no longer configured are left out."""
        self._roll(now)
        for at, queue, wait in answers:
            if self.router.has_queue(queue) and self.day_start(at) == self._today_start:
                self.answered(queue, wait, at)
        for at, interaction, queue, wait in abandons:
            if self.router.has_queue(queue) and self.day_start(at) == self._today_start:
                self.abandon(interaction, queue, wait, at)
        self.fallbacks += fallbacks
        self._roll(now)

    def abandoned_in(self, queue: str, now: float) -> int:
        """Callers of ``queue`` who left waiting today."""
        self._roll(now)
        return self.abandoned_today.get(queue, 0)

    def answered(self, queue: str, wait: float, now: float) -> None:
        """A voice caller of ``queue`` answered after ``wait`` seconds."""
        self._roll(now)
        self.answers.append((now, queue, wait))
        target = self.router.queues[queue].service_level(Channel.VOICE).seconds
        day = self.today.setdefault(queue, [0, 0])
        day[0] += wait <= target
        day[1] += 1

    def service_level(self, queue: str, now: float) -> tuple[float | None, float | None]:
        """(last 30 minutes, today) shares answered within the voice target."""
        while self.answers and self.answers[0][0] < now - SL_WINDOW:
            self.answers.popleft()
        target = self.router.queues[queue].service_level(Channel.VOICE).seconds
        recent = [w for _, q, w in self.answers if q == queue]
        window = sum(w <= target for w in recent) / len(recent) if recent else None
        self._roll(now)
        within, total = self.today.get(queue, [0, 0])
        return window, (within / total if total else None)

    def levels(self, now: float) -> dict[str, tuple[float | None, float | None]]:
        """Every queue's service level; remembers which are below target."""
        levels = {queue: self.service_level(queue, now) for queue in self.router.queues}
        self.low_service = {
            queue
            for queue, (window, _today) in levels.items()
            if window is not None
            and window < self.router.queues[queue].service_level(Channel.VOICE).fraction
        }
        return levels
