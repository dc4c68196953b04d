"""Agents required for 10,000 intervals: ours (vectorised) vs pyworkforce.

Intervals: 30 minutes each, arrivals drawn uniformly from 5 to 1,500 calls,
AHT from 60 to 600 s (seeded), goal 80 % within 20 s.  Both must give the
same agent counts (checked); the figure is the median wall time of 5 runs.

    python bench/erlang.py [--intervals 10000] [--runs 5] [--json]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import emit, machine
from dialer.erlang import agents_required


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--intervals", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from pyworkforce.queuing import ErlangC

    rng = np.random.default_rng(1)
    calls = rng.integers(5, 1500, args.intervals).astype(float)
    aht = rng.integers(60, 600, args.intervals).astype(float)
    ours_t, theirs_t = [], []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        ours = agents_required(calls, 1800, aht, 0.8, 20)
        ours_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        theirs = [
            ErlangC(transactions=c, aht=h / 60, asa=20 / 60, interval=30).required_positions(
                service_level=0.8, max_occupancy=1.0
            )["raw_positions"]
            for c, h in zip(calls, aht, strict=True)
        ]
        theirs_t.append(time.perf_counter() - t0)
        assert ours.tolist() == theirs, "both must staff every interval the same"
    ours_s, theirs_s = statistics.median(ours_t), statistics.median(theirs_t)
    result = {
        "intervals": args.intervals,
        "ours_seconds": round(ours_s, 4),
        "baseline_pyworkforce_seconds": round(theirs_s, 3),
        "speedup": round(theirs_s / ours_s, 1),
        "max_agents": int(ours.max()),
        "runs": args.runs,
        "machine": machine(),
    }
    emit(result, args.json)


if __name__ == "__main__":
    main()
