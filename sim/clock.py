"""A virtual clock for long simulations: ``IReactorTime`` on a heap.

``twisted.internet.task.Clock`` keeps its calls in a list it re-sorts on
every ``callLater`` and runs everything due when time jumps, each call
seeing the *end* time of the jump.  For an 8-hour campaign with thousands
of timers that sort dominates, and the end-time semantics blur the order
of events.  This clock keeps a heap (lazy deletion for cancelled and reset
calls) and :meth:`run_until` runs each call at its own time, in order.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Any

from twisted.internet.base import DelayedCall
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer


@implementer(IReactorTime)
class HeapClock:
    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self._heap: list[tuple[float, int, DelayedCall]] = []
        self._seq = itertools.count()

    def seconds(self) -> float:
        return self.now

    def callLater(
        self, delay: float, callable: Callable[..., Any], *args: Any, **kw: Any
    ) -> DelayedCall:
        call = DelayedCall(
            self.now + max(0.0, delay),
            callable,
            args,
            kw,
            self._cancelled,
            self._reset,
            seconds=self.seconds,
        )
        heapq.heappush(self._heap, (call.time, next(self._seq), call))
        return call

    def _cancelled(self, call: DelayedCall) -> None:
        """Cancelled calls stay in the heap and are skipped when popped."""

    def _reset(self, call: DelayedCall) -> None:
        heapq.heappush(self._heap, (call.time, next(self._seq), call))

    def getDelayedCalls(self) -> list[DelayedCall]:
        return [c for _, _, c in self._heap if c.active()]

    def run_until(self, end: float) -> None:
        """Run every call due up to ``end``, each at its own time, in order."""
        heap = self._heap
        while heap and heap[0][0] <= end:
            at, _, call = heapq.heappop(heap)
            if call.cancelled or call.called or call.time != at:
                continue  # cancelled, or reset to another time (a newer entry exists)
            self.now = at
            call.called = 1
            call.func(*call.args, **call.kw)
        self.now = max(self.now, end)

    def advance(self, amount: float) -> None:
        self.run_until(self.now + amount)


@implementer(IReactorTime)
class ScaledClock:
    """The reactor's time, running ``speed`` times faster.

    For real-time runs that must be short: the simulated PBX and the dialer
    see minutes pass while the AMI traffic between them goes over real TCP in
    seconds.  Delays are divided by ``speed`` on the way into the reactor;
    network latency is multiplied by it in the virtual view, so keep the
    speed modest (10 turns 5 ms of loopback latency into 50 ms)."""

    def __init__(self, reactor: Any, speed: float, start: float | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed: must be positive")
        self.reactor = reactor
        self.speed = speed
        self._real0 = reactor.seconds()
        self._virtual0 = self._real0 if start is None else start

    def seconds(self) -> float:
        return self._virtual0 + (self.reactor.seconds() - self._real0) * self.speed

    def callLater(
        self, delay: float, callable: Callable[..., Any], *args: Any, **kw: Any
    ) -> DelayedCall:
        return self.reactor.callLater(max(0.0, delay) / self.speed, callable, *args, **kw)

    def getDelayedCalls(self) -> list[DelayedCall]:
        return self.reactor.getDelayedCalls()
