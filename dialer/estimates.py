"""What a campaign has learned about its calls and its agents, for pacing.

Pacing needs, per campaign: how likely a dial ends with a person to connect
(AMD says "human"), how long calls ring before they are answered, how long
failures take to be signalled, and how long agents talk and wrap up.  Each
is estimated from the campaign's own recent calls, starting from priors
(a new campaign has no history; the priors are deliberately pessimistic
about the live-answer rate, so a new campaign starts careful) and
forgetting old calls so that a change during the day (a caller ID blocked
by carriers, a new list) shows within minutes.

The estimates are turned into lookup tables of conditional probabilities on
a grid of horizons (``HORIZONS`` seconds from now), which is what keeps the
pacing decision a few NumPy gathers per second:

* ``ring_table[e, j]`` -- a call still ringing after ``e`` seconds yields a
  "human" verdict within ``HORIZONS[j]`` seconds;
* ``talk_table[e, j]`` -- an agent ``e`` seconds into a conversation is free
  (talk and wrap-up done) within ``HORIZONS[j]``;
* ``wrap_table[e, j]`` -- the same for an agent ``e`` seconds into wrap-up;
* ``new_call[j]`` -- a call dialed now yields a "human" verdict within
  ``HORIZONS[j]``.

Pure: no clock, no I/O.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from itertools import chain

import numpy as np
from scipy.special import ndtri

#: seconds ahead the pacing looks (0..40 s: a new call's ring, AMD and the
#: 2 s connect limit fit in it)
HORIZONS = np.arange(0.0, 41.0, 1.0)


def columns(table: np.ndarray, c: float, n: int) -> np.ndarray:
    """Columns of ``table`` (last axis on the ``HORIZONS`` grid) for the
    horizons c, c + 1, ..., c + n - 1: a supply looked up ``c`` seconds after
    each horizon.

    The connect window ``c`` is counted from the end of the person's
    greeting (:func:`dialer.campaign.pacing_window`: 0.9 s after the verdict
    with AMD's 0.8 s of silence), not a whole number of seconds: between two
    whole seconds the probabilities (distribution functions of the agents'
    free times) are interpolated linearly.  A whole ``c`` gives the columns
    themselves."""
    lo = math.floor(c)
    frac = c - lo
    head = table[..., lo : lo + n]
    if frac < 1e-9:
        return head
    out: np.ndarray = head + frac * (table[..., lo + 1 : lo + 1 + n] - head)
    return out


#: talk elapsed-time grid (1 s steps); longer conversations use the last row
MAX_TALK = 1800
MAX_WRAP = 600
MAX_RING = 120

OUTCOME_KINDS = ("human", "machine", "failed", "no_answer")


@dataclass(frozen=True)
class Priors:
    """What a new campaign assumes before its own calls say otherwise."""

    human: float = 0.30  # share of dials that reach a person (AMD "human")
    machine: float = 0.25
    failed: float = 0.15  # busy, invalid, congestion
    ring_mean: float = 10.0
    ring_sd: float = 5.0
    fail_after: float = 4.0
    talk_mean: float = 150.0
    wrap_mean: float = 20.0
    weight: float = 40.0  # in dials (outcome shares) and in samples (durations)


def _lognormal_quantiles(mean: float, sd: float, n: int) -> np.ndarray:
    """``n`` evenly spaced quantiles of a lognormal: a deterministic prior sample."""
    sigma2 = np.log1p((sd / mean) ** 2)
    mu = np.log(mean) - sigma2 / 2
    q = (np.arange(n) + 0.5) / n
    quantiles: np.ndarray = np.exp(mu + np.sqrt(sigma2) * ndtri(q))  # scipy's ndtri: untyped
    return quantiles


class Estimates:
    """Smoothed outcome shares and duration samples of one campaign."""

    def __init__(
        self,
        *,
        ring_timeout: float = 22.0,
        amd_delay: float = 1.5,
        priors: Priors | None = None,
        half_life: float = 400.0,
        samples: int = 1500,
        refresh_every: int = 100,
        forget_priors_after: int = 100,
    ) -> None:
        self.priors = p = priors or Priors()
        self.ring_timeout = ring_timeout
        self.amd_delay = amd_delay
        #: exponential forgetting per dial: after ``half_life`` dials a dial weighs half
        self._decay = 0.5 ** (1.0 / half_life)
        no_answer = max(0.0, 1.0 - p.human - p.machine - p.failed)
        self._counts = {
            "human": p.human * p.weight,
            "machine": p.machine * p.weight,
            "failed": p.failed * p.weight,
            "no_answer": no_answer * p.weight,
        }
        n = int(p.weight)
        self.ring: deque[float] = deque(_lognormal_quantiles(p.ring_mean, p.ring_sd, n), samples)
        self.fail: deque[float] = deque([p.fail_after] * n, samples)
        talks = _lognormal_quantiles(p.talk_mean, p.talk_mean, n)
        wraps = _lognormal_quantiles(p.wrap_mean, p.wrap_mean / 2, n)
        self.handle: deque[tuple[float, float]] = deque(zip(talks, wraps, strict=True), samples)
        self.wrap: deque[float] = deque(wraps, samples)
        #: the prior's (talk, wrap-up) samples leave once the campaign has
        #: handled this many calls of its own (0: they stay until pushed out)
        self._forget_priors_after = forget_priors_after
        self._prior_samples = n
        self._handled = 0
        self._refresh_every = refresh_every
        self._since_refresh = refresh_every  # tables built on first use

    # -- learning ----------------------------------------------------------------------
    def outcome(self, kind: str) -> None:
        """One dial ended its ringing phase as ``kind`` (see ``OUTCOME_KINDS``)."""
        if kind not in self._counts:
            raise ValueError(f"kind: unknown outcome kind {kind!r}")
        for key in self._counts:
            self._counts[key] *= self._decay
        self._counts[kind] += 1.0
        self._touch()

    def answered_after(self, seconds: float) -> None:
        self.ring.append(max(0.0, seconds))
        self._touch()

    def failed_after(self, seconds: float) -> None:
        self.fail.append(max(0.0, seconds))

    def handled(self, talk: float, wrap: float) -> None:
        self.handle.append((max(0.0, talk), max(0.0, wrap)))
        self.wrap.append(max(0.0, wrap))
        self._handled += 1
        if self._handled == self._forget_priors_after:
            self._forget_priors()
        self._touch()

    def _forget_priors(self) -> None:
        """Drop the prior's talk and wrap-up samples: the campaign's own
        calls say enough now.

        The samples are kept in windows of 1,500, so the prior's 40 stayed
        until 1,460 calls had pushed them out: all day with ten agents.  A
        server campaign's prior after-call work is its ``wrap_up`` limit
        (:func:`dialer.pacing.estimates_for`), 60 s in the simulation where
        agents take 25 s: ten blended agents were paced for after-call work
        that never came, and lost about 1 % occupancy over the day."""
        for window in (self.handle, self.wrap):
            for _ in range(min(self._prior_samples, len(window) - self._handled)):
                window.popleft()
        self._since_refresh = self._refresh_every  # rebuild the tables now

    def _touch(self) -> None:
        self._since_refresh += 1

    # -- figures -------------------------------------------------------------------------
    def share(self, kind: str) -> float:
        return self._counts[kind] / sum(self._counts.values())

    @property
    def p_human(self) -> float:
        return self.share("human")

    # -- tables --------------------------------------------------------------------------
    def tables(self) -> Tables:
        if self._since_refresh >= self._refresh_every:
            self._tables = self._build()
            self._since_refresh = 0
        return self._tables

    def _build(self) -> Tables:
        h = HORIZONS
        shares = {k: self.share(k) for k in self._counts}
        # answer times: empirical CDF G, truncated at the ring timeout
        ring = np.sort(_floats(self.ring))
        ring = ring[ring < self.ring_timeout] if (ring < self.ring_timeout).any() else ring

        def g(x: np.ndarray) -> np.ndarray:
            return np.searchsorted(ring, x, side="right") / len(ring)

        fail = np.sort(_floats(self.fail))

        def f(x: np.ndarray) -> np.ndarray:
            return np.searchsorted(fail, x, side="right") / len(fail)

        e = np.arange(0, MAX_RING + 1, dtype=float)[:, None]
        answered_by = g(e + h[None, :] - self.amd_delay)
        survive = 1.0 - g(e)
        still_pending = (
            (shares["human"] + shares["machine"]) * survive
            + shares["failed"] * (1.0 - f(e))
            + shares["no_answer"] * (e < self.ring_timeout)
        )
        gain = shares["human"] * np.clip(answered_by - g(e), 0.0, None)
        ring_table = np.where(still_pending > 1e-12, gain / np.maximum(still_pending, 1e-12), 0.0)
        new_call = shares["human"] * g(h - self.amd_delay)

        # agents: P(talk + wrap <= e + h | talk > e), from the (talk, wrap) pairs.
        # Sample i counts for row e when total_i - h <= e < talk_i: an interval
        # of rows per horizon, summed with difference arrays (no e x i loop).
        pairs = (
            np.fromiter(chain.from_iterable(self.handle), float, 2 * len(self.handle)).reshape(
                -1, 2
            )
            if self.handle
            else np.asarray(self.handle, dtype=float)
        )
        talk, total = pairs[:, 0], pairs[:, 0] + pairs[:, 1]
        rows = MAX_TALK + 1
        # (the arrays here are horizons x samples and horizons x rows, half a
        # megabyte each: they are computed in place where they can be, since
        # every fresh one costs its page faults, and there are 41 x 1,500)
        hi = np.minimum(np.ceil(talk), rows).astype(np.int64)  # exclusive
        start = total[None, :] - h[:, None]
        np.ceil(start, out=start)
        lo = np.clip(start, 0, rows, out=start).astype(np.int64)
        np.minimum(lo, hi[None, :], out=lo)
        lo += (np.arange(len(h)) * (rows + 1))[:, None]  # each horizon's own stretch
        size = len(h) * (rows + 1)
        # the ends are the same for every horizon: one histogram, not one per horizon
        ends = np.bincount(hi, minlength=rows + 1)
        done = np.bincount(lo.ravel(), minlength=size).reshape(len(h), rows + 1)
        done -= ends
        np.cumsum(done, axis=1, out=done)
        alive = np.cumsum(ends[::-1])[::-1][1:]
        alive = alive[:rows] if len(alive) >= rows else np.pad(alive, (0, rows - len(alive)))
        # divided in the sums' (horizon, e) layout, then turned: the same quotients
        quotients = done[:, :rows] / np.maximum(alive, 1)
        quotients[:, alive <= 0] = 1.0
        talk_table = quotients.T[_carried_rows(alive)]
        wraps = np.sort(_floats(self.wrap))
        wgrid = np.arange(0, MAX_WRAP + 1, dtype=float)
        ended = np.searchsorted(wraps, wgrid, side="right")
        longer = len(wraps) - ended
        done_after = np.searchsorted(wraps, wgrid[:, None] + h[None, :], side="right")
        done_after -= ended[:, None]
        wrap_table = done_after / np.maximum(longer[:, None], 1)
        wrap_table[longer <= 0] = 1.0
        wrap_table = wrap_table[_carried_rows(longer)]
        answered = shares["human"] + shares["machine"]
        # when a new call that reaches a person needs an agent: share per horizon step
        density = np.diff(new_call, prepend=0.0)
        need_weights = density / density.sum() if density.sum() > 0 else density
        return Tables(
            ring_table,
            talk_table,
            wrap_table,
            new_call,
            need_weights,
            shares["human"],
            shares["human"] / answered if answered > 0 else 0.5,
        )


def _floats(samples: deque[float]) -> np.ndarray:
    """A window of samples as an array (np.fromiter: a third faster than
    np.asarray on a deque, the same numbers)."""
    return np.fromiter(samples, float, len(samples))


_ZERO = np.zeros(1)
_NOUGHT = np.zeros(())


@dataclass(frozen=True)
class Window:
    """The tables cut to the horizons one pacing decision looks at.

    Every elapsed-time row holds the probabilities for the ``J`` horizons
    followed by their Bernoulli variances ``p(1 - p)``, so that one gather
    and one sum give a Poisson-binomial mean and variance.  The talk,
    wrap-up, ring and verdict rows are stacked in one table behind a row of
    zeros: a decision gathers the supply (talking and wrapping agents) and
    the demand (calls ringing or waiting for their AMD verdict) in one
    ``take`` and sums both with one ``reduceat`` (a handful of NumPy calls
    per decision is what keeps a simulated day within seconds)."""

    #: (rows, 2J): zeros, talk (shifted by c), wrap (shifted), ring, then the verdict
    #: rows: a call answered and due for its AMD verdict in r seconds (r = 0..J) needs
    #: an agent, with the chance a verdict is "human", from horizon r on
    stacked: np.ndarray
    new_call: np.ndarray  # (J,)
    need_weights: np.ndarray  # (J,)
    spread: np.ndarray  # (J,) new_call (1 - new_call)
    some_need: bool  # need_weights has a non-zero weight: a new call can need an agent
    #: per part of :meth:`gather`'s index (zero row, talk, wrap-up, zero row,
    #: ring, verdict): the last row it may use, counted from its first
    limits: np.ndarray
    #: HORIZONS[:J] + c: the moment by which an agent must be free for a call
    #: needing one at each horizon
    reach: np.ndarray

    #: first row of each part in ``stacked``
    TALK = 1
    WRAP = TALK + MAX_TALK + 1
    RING = WRAP + MAX_WRAP + 1
    VERDICT = RING + MAX_RING + 1
    FIRSTS = np.array([0.0, TALK, WRAP, 0.0, RING, VERDICT])

    def supply_demand(
        self,
        talking: np.ndarray,
        wrapping: np.ndarray,
        ringing: np.ndarray,
        verdicts: np.ndarray = _ZERO[:0],
    ) -> np.ndarray:
        """``[supply, demand]``: the summed rows for agents talking and wrapping
        up, and for calls ringing, by elapsed seconds (clipped to the grid:
        below at 0, the longest ones share its last row), and for calls
        answered and waiting ``verdicts`` seconds for AMD (due by horizon h
        when h >= the wait; a wait past the last horizon is never due)."""
        return self.gather(talking, wrapping, ringing, verdicts)[0]

    def gather(
        self,
        talking: np.ndarray,
        wrapping: np.ndarray,
        ringing: np.ndarray,
        verdicts: np.ndarray = _ZERO[:0],
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`supply_demand`, and the wrapping agents' rows it summed:
        ``[:, :J]`` is ``columns(Tables.rows(wrap, wrapping), c, J)`` and
        ``[:, J:]`` its variance (interpolated once per window, not again
        for every decision).

        The row indices are built in one array: the elapsed times side by
        side, each part clipped to its own stretch of the grid by one
        ``minimum`` against the parts' limits repeated (one NumPy call, not
        one per part with a Python number, which NumPy 2 converts every
        time).  Whole numbers of seconds are added to non-negative floats
        below 2**52, so the indices are those of ``np.minimum(x, limit) +
        first`` part by part, and the rows and sums the same to the bit."""
        nt, nw = len(talking), len(wrapping)
        lengths = (1, nt, nw, 1, len(ringing), len(verdicts))
        elapsed = np.concatenate((_ZERO, talking, wrapping, _ZERO, ringing, np.ceil(verdicts)))
        np.minimum(elapsed, self.limits.repeat(lengths), out=elapsed)
        np.maximum(elapsed, _NOUGHT, out=elapsed)  # (a 0-d array: broadcast for free)
        elapsed += self.FIRSTS.repeat(lengths)
        rows = self.stacked.take(elapsed.astype(np.intp), axis=0)
        split = 1 + nt + nw  # the second zero row
        return np.add.reduceat(rows, (0, split), axis=0), rows[1 + nt : split]


def _with_variance(p: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.concatenate([p, p * (1.0 - p)], axis=1))


@dataclass(frozen=True)
class Tables:
    ring: np.ndarray
    talk: np.ndarray
    wrap: np.ndarray
    new_call: np.ndarray
    need_weights: np.ndarray  # sums to 1 over the grid (or all zero)
    p_human: float
    p_human_given_answer: float
    _windows: dict[float, Window] = field(default_factory=dict, compare=False, repr=False)

    @staticmethod
    def rows(table: np.ndarray, elapsed: np.ndarray) -> np.ndarray:
        """Rows of ``table`` for elapsed times (seconds; clipped to the grid)."""
        idx = np.minimum(elapsed.astype(np.int64), len(table) - 1)
        return table[np.maximum(idx, 0)]

    def window(self, connect_window: float) -> Window:
        """Horizons 0..40 - c with supply looked up ``c`` seconds later (cached:
        the tables change every 100 observations, decisions come every second).
        ``c``: the seconds a person may wait for an agent after the verdict
        (:func:`dialer.campaign.pacing_window`; between whole seconds, see
        :func:`columns`).

        The window ends at the last horizon at which a new call can need an
        agent (its ring timeout plus the AMD delay; 24 s on the standard
        workload): later horizons have no weight in any abandon chance, and
        leaving them out makes every gather of a decision a third smaller."""
        w = self._windows.get(connect_window)
        if w is None:
            c = connect_window
            weighted = np.flatnonzero(self.need_weights[: len(HORIZONS) - math.ceil(c)])
            j = int(weighted[-1]) + 1 if len(weighted) else 1
            new = self.new_call[:j]
            # row r: due from horizon r on; row j: after the last horizon (never)
            due = np.arange(j + 1)[:, None] <= np.arange(j)[None, :]
            stacked = np.concatenate(
                [
                    np.zeros((1, 2 * j)),
                    _with_variance(columns(self.talk, c, j)),
                    _with_variance(columns(self.wrap, c, j)),
                    _with_variance(self.ring[:, :j]),
                    _with_variance(due * self.p_human_given_answer),
                ]
            )
            if stacked.shape[0] != Window.VERDICT + j + 1:
                raise ValueError(f"tables: {stacked.shape[0]} rows, not the grid's")
            w = self._windows[c] = Window(
                stacked=stacked,
                new_call=new,
                need_weights=self.need_weights[:j],
                spread=new * (1.0 - new),
                some_need=bool(self.need_weights[:j].any()),
                limits=np.array([0.0, MAX_TALK, MAX_WRAP, 0.0, MAX_RING, j]),
                reach=HORIZONS[:j] + c,
            )
        return w


#: a row of the talk or wrap-up table needs this many samples still going at
#: its elapsed time; later rows repeat the last row that had them
MIN_SURVIVORS = 20


def _carried_rows(alive: np.ndarray) -> np.ndarray:
    """Row index per elapsed time: itself where ``alive`` (samples still in
    talk or wrap-up at that elapsed time) has enough samples, else the last
    row that had them.

    Past the longest sample the empirical table said "free now" (1.0): an
    agent 18 minutes into a call was counted as sure to be free, and with
    five agents the pacer dialed into a team where all were busy (two
    abandons in 12 s).  Rows with a handful of samples are noise either way;
    repeating the last well-sampled row carries its hazard forward."""
    need = min(MIN_SURVIVORS, int(alive[0])) if len(alive) else 0
    idx = np.arange(len(alive))
    if need <= 0:
        return idx
    ok = np.where(alive >= need, idx, -1)
    last = np.maximum.accumulate(ok)
    return np.where(last >= 0, last, idx)


class InboundRate:
    """How often other work (inbound calls of blended agents) takes one of a
    campaign's agents: arrivals per second over the last half hour.

    Inbound calls are routed ahead of the campaign's: an inbound caller who
    arrives while a call of ours rings takes the agent the pacing counted on
    for it (in the blended demo, an inbound call took the last ready agent
    seconds before each abandon).  The rate is counted from what happened
    to the campaign's own agents, so it holds whatever the queues and their
    members.  Until ``min_span`` seconds have been seen the count is spread
    over ``min_span``: a take in the first minute does not become a rate of
    one a minute."""

    def __init__(self, window: float = 1800.0, min_span: float = 300.0) -> None:
        self.window = window
        self.min_span = min_span
        self.since: float | None = None
        self.takes: deque[float] = deque()

    def took(self, now: float) -> None:
        """One of the campaign's agents was given other work at ``now``."""
        if self.since is None:
            self.since = now
        self.takes.append(now)

    def rate(self, now: float) -> float:
        if self.since is None:
            self.since = now
        while self.takes and self.takes[0] < now - self.window:
            self.takes.popleft()
        if not self.takes:
            return 0.0
        span = min(self.window, max(self.min_span, now - self.since))
        return len(self.takes) / span
