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

from twisted.internet import error
from twisted.internet.base import DelayedCall
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from zope.interface import implementer


@implementer(IDelayedCall)
class HeapCall:
    """One call on a :class:`HeapClock`: what ``IDelayedCall`` promises,
    without the bookkeeping of Twisted's ``DelayedCall`` that only its reactor
    uses (a simulated day makes a quarter of a million of them).  Cancelled
    and moved calls stay in the heap and are skipped when popped."""

    __slots__ = ("_clock", "args", "called", "cancelled", "func", "kw", "time")

    def __init__(
        self, clock: HeapClock, time: float, func: Callable[..., Any], args: Any, kw: Any
    ) -> None:
        self._clock = clock
        self.time, self.func, self.args, self.kw = time, func, args, kw
        self.cancelled = self.called = 0

    def getTime(self) -> float:
        return self.time

    def active(self) -> bool:
        return not (self.cancelled or self.called)

    def _check(self) -> None:
        if self.cancelled:
            raise error.AlreadyCancelled
        if self.called:
            raise error.AlreadyCalled

    def cancel(self) -> None:
        self._check()
        self.cancelled = 1
        self.func, self.args, self.kw = _nothing, (), {}  # let go of what it held

    def reset(self, secondsFromNow: float) -> None:
        self._check()
        self.time = self._clock.now + max(0.0, secondsFromNow)
        self._clock._push(self)

    def delay(self, secondsLater: float) -> None:
        self._check()
        self.time += secondsLater
        self._clock._push(self)

    def __repr__(self) -> str:
        state = "cancelled" if self.cancelled else "called" if self.called else "pending"
        return f"<HeapCall {getattr(self.func, '__qualname__', self.func)} at {self.time} {state}>"


def _nothing(*args: Any, **kw: Any) -> None:
    """What a cancelled call would run."""


@implementer(IReactorTime)
class HeapClock:
    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self._heap: list[tuple[float, int, HeapCall]] = []
        self._seq = itertools.count()

    def seconds(self) -> float:
        return self.now

    def callLater(
        self, delay: float, callable: Callable[..., Any], *args: Any, **kw: Any
    ) -> HeapCall:
        call = HeapCall(self, self.now + (delay if delay > 0.0 else 0.0), callable, args, kw)
        heapq.heappush(self._heap, (call.time, next(self._seq), call))
        return call

    def _push(self, call: HeapCall) -> None:
        heapq.heappush(self._heap, (call.time, next(self._seq), call))

    def getDelayedCalls(self) -> list[HeapCall]:
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
    speed modest (10 turns 5 ms of loopback latency into 50 ms).  So is the
    reactor's lateness on a busy machine: :meth:`set_speed` slows the clock
    down when it grows (a test measures it and decides)."""

    def __init__(self, reactor: Any, speed: float, start: float | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed: must be positive")
        self.reactor = reactor
        self.speed = speed
        self._real0 = reactor.seconds()
        self._virtual0 = self._real0 if start is None else start
        #: the calls made through this clock (pruned as they run): a new speed moves them
        self._calls: list[DelayedCall] = []
        self._prune_at = 1024

    def seconds(self) -> float:
        return self._virtual0 + (self.reactor.seconds() - self._real0) * self.speed

    def callLater(
        self, delay: float, callable: Callable[..., Any], *args: Any, **kw: Any
    ) -> DelayedCall:
        call = self.reactor.callLater(max(0.0, delay) / self.speed, callable, *args, **kw)
        self._calls.append(call)
        if len(self._calls) >= self._prune_at:
            self._calls = [c for c in self._calls if c.active()]
            self._prune_at = max(1024, 2 * len(self._calls))
        return call

    def set_speed(self, speed: float) -> None:
        """Run ``speed`` times faster from now on.  The virtual time goes on
        from where it is, and every pending call keeps its virtual due time
        (a ring timeout of 30 s stays 30 s): only real time stretches."""
        if speed <= 0:
            raise ValueError("speed: must be positive")
        if speed == self.speed:
            return
        real = self.reactor.seconds()
        self._virtual0, self._real0 = self.seconds(), real
        old, self.speed = self.speed, speed
        live = [c for c in self._calls if c.active()]
        for call in live:
            call.reset(max(0.0, call.getTime() - real) * old / speed)
        self._calls = live

    def getDelayedCalls(self) -> list[DelayedCall]:
        return self.reactor.getDelayedCalls()
