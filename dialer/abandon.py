"""Abandoned-call accounting over the regulatory windows.

The abandon rate is abandoned calls over live-answered calls.  Regulators
measure it over different windows: the US (FTC 16 CFR 310.4(b)(4)(i), FCC
47 CFR 64.1200(a)(7)) over each 30-day period of a campaign, Ofcom (UK) per
calendar day, midnight to midnight, counting an estimate of the persons that
answering-machine detection took for machines.  A ledger keeps one bucket
per local calendar day (enough for both windows, and small enough to persist
after every call), plus the last hour of calls for the pacing's short-term
view and the "worst 60 minutes" report.

One ledger serves one campaign or one drop-rate group of campaigns (UK
rules allow the rate to be measured over a group).  Pure: the caller passes
``now`` and a function giving the start of the local day.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from operator import itemgetter

DAY = 86_400.0
WINDOWS = ("30d", "day", "1h")


@dataclass
class DayCount:
    day: float  # start of the local day (epoch seconds)
    live: float = 0.0
    abandoned: float = 0.0


class AbandonLedger:
    def __init__(
        self,
        *,
        day_start: Callable[[float], float] = lambda now: now - now % DAY,
        amd_false_positive: float = 0.0,
        on_change: Callable[[DayCount], None] | None = None,
    ) -> None:
        if not 0.0 <= amd_false_positive < 1.0:
            raise ValueError("amd_false_positive: must be in [0, 1)")
        self.day_start = day_start
        #: estimated share of persons that AMD reports as machines (counted abandoned)
        self.amd_false_positive = amd_false_positive
        self.days: dict[float, DayCount] = {}
        self.recent: deque[tuple[float, float, float]] = deque()  # (at, live, abandoned)
        self._hour = [0.0, 0.0]  # running sums over ``recent``
        #: ``recent`` in time order (a clock never stepping back): a taken-back
        #: answer is found by bisection, not by a scan of the hour
        self._in_order = True
        #: the figures at ``_memo_now`` (counts per window, the hour's span),
        #: forgotten at every change: one pacing decision asks about eleven times
        self._memo: dict[str, tuple[float, float]] = {}
        self._memo_span: float | None = None
        self._memo_now: float | None = None
        self.on_change = on_change

    # -- recording -------------------------------------------------------------------------
    def _add(self, now: float, live: float, abandoned: float) -> None:
        start = self.day_start(now)
        bucket = self.days.get(start)
        if bucket is None:
            bucket = self.days[start] = DayCount(start)
            for old in [d for d in self.days if d < start - 31 * DAY]:
                del self.days[old]
        bucket.live += live
        bucket.abandoned += abandoned
        self._forget(None)
        if self.recent and now < self.recent[-1][0]:
            self._in_order = False
        self.recent.append((now, live, abandoned))
        self._hour[0] += live
        self._hour[1] += abandoned
        self._trim(now)
        if self.on_change is not None:
            self.on_change(bucket)

    def live(self, now: float) -> None:
        """A person answered (connected to an agent or not)."""
        self._add(now, 1.0, 0.0)

    def abandoned(self, now: float) -> None:
        """A person answered and no agent took the call in time."""
        self._add(now, 1.0, 1.0)

    def take_back_live(self, at: float, now: float) -> bool:
        """The live answer counted at ``at`` was an answering machine that
        AMD missed (the agent's disposition says so): it is no live answer.

        Every call connected to an agent is counted live when it connects;
        about one in six of them is an answering machine with the standard
        workload, and the rate (abandoned / persons who answered, the
        regulator's figure) came out that much too low -- for the report
        and for the guards of the pacing.  Taken back from the day bucket
        of ``at`` (saved through ``on_change``) and, when ``at`` is within
        the last hour, from the hour's events.  False if there is no such
        live answer to take back (the day is gone, or already taken)."""
        bucket = self.days.get(self.day_start(at))
        if bucket is None or bucket.live - bucket.abandoned < 1.0 - 1e-9:
            return False
        bucket.live -= 1.0
        self._forget(None)
        self._trim(now)
        if at >= now - 3600.0:
            i = self._live_event(at)
            if i is not None:
                del self.recent[i]
                self._hour[0] -= 1.0
            else:  # not kept as one event (rebuilt after a restart, rounded): a negative one
                events = sorted([*self.recent, (at, -1.0, 0.0)])
                self.recent = deque(events)
                self._in_order = True
                self._hour[0] -= 1.0
        if self.on_change is not None:
            self.on_change(bucket)
        return True

    def _live_event(self, at: float) -> int | None:
        """The index of the first event in ``recent`` that is one live answer
        at ``at`` (None if there is none).  A campaign takes back a few hundred
        answers a day from an hour of thousands of events: in time order the
        search bisects, else it scans."""
        recent = self.recent
        start = bisect_left(recent, at, key=itemgetter(0)) if self._in_order else 0
        for i in range(start, len(recent)):
            when, live, abandoned = recent[i]
            if when == at and live == 1.0 and abandoned == 0.0:
                return i
            if self._in_order and when > at:
                return None
        return None

    def human_verdict(self, now: float) -> None:
        """AMD said "human".  For every person it recognises, fp/(1 - fp) more
        were taken for machines and hung up on: Ofcom counts that estimate as
        live and abandoned."""
        fp = self.amd_false_positive
        if fp > 0:
            share = fp / (1.0 - fp)
            self._add(now, share, share)

    def _trim(self, now: float) -> None:
        while self.recent and self.recent[0][0] < now - 3600.0:
            _, live, abandoned = self.recent.popleft()
            self._hour[0] -= live
            self._hour[1] -= abandoned
        if not self.recent:
            self._hour = [0.0, 0.0]  # no drift from float sums

    # -- figures ---------------------------------------------------------------------------
    def counts(self, window: str, now: float) -> tuple[float, float]:
        """(live, abandoned) over ``window``: "30d", "day" or "1h"."""
        if now != self._memo_now:
            self._forget(now)
        hit = self._memo.get(window)
        if hit is None:
            hit = self._memo[window] = self._counts(window, now)
        return hit

    def _forget(self, now: float | None) -> None:
        self._memo = {}
        self._memo_span = None
        self._memo_now = now

    def _counts(self, window: str, now: float) -> tuple[float, float]:
        if window == "1h":
            self._trim(now)
            return self._hour[0], self._hour[1]
        today = self.day_start(now)
        if window == "day":
            b = self.days.get(today)
            return (b.live, b.abandoned) if b else (0.0, 0.0)
        if window == "30d":
            since = now - 30 * DAY
            picked = [b for b in self.days.values() if b.day + DAY > since]
            return sum(b.live for b in picked), sum(b.abandoned for b in picked)
        raise ValueError(f"window: unknown window {window!r} (one of {', '.join(WINDOWS)})")

    def hour_span(self, now: float) -> float:
        """How much of the last hour the short-term counts cover (seconds)."""
        if now != self._memo_now:
            self._forget(now)
        hit = self._memo_span
        if hit is None:
            self._trim(now)
            hit = self._memo_span = min(3600.0, now - self.recent[0][0]) if self.recent else 0.0
        return hit

    def rate(self, window: str, now: float) -> float | None:
        live, abandoned = self.counts(window, now)
        return abandoned / live if live > 0 else None

    # -- persistence -----------------------------------------------------------------------
    def load(self, rows: Iterable[DayCount]) -> None:
        """Restore the day buckets saved before a restart."""
        self._forget(None)
        for row in rows:
            self.days[row.day] = DayCount(row.day, row.live, row.abandoned)

    def load_recent(self, events: Iterable[tuple[float, float, float]], now: float) -> None:
        """Restore the last hour's (at, live, abandoned) events after a restart.

        The day buckets are saved after every change; the hour is rebuilt
        from what the store kept of the calls (attempt rows).  Without it a
        restart emptied the short-term view, and the hourly guard let a
        small campaign dial into a bad hour as if it were a new one.  The
        day buckets are not touched: they already hold these calls."""
        kept = [e for e in events if now - 3600.0 <= e[0] <= now]
        merged = sorted([*self.recent, *kept])
        self.recent = deque(merged)
        self._in_order = True
        self._forget(None)
        self._hour = [sum(e[1] for e in merged), sum(e[2] for e in merged)]
        self._trim(now)
