"""Pacing strategies in virtual time on the standard workload.

Runs ``dirigent sim dialer`` for each agent count and every strategy on the
same seeds (so every strategy meets the same customers) and reports the
median over the seeds of occupancy, abandon rate, worst-hour abandon rate
and idle wait, plus the wall time of the runs; and every seed's figures,
with the minimum occupancy and the highest abandon rates over the seeds
(the goals hold on every seed, not on the median).  The baseline in the
same run is the VICIdial-style adaptive dialer; progressive and the
clairvoyant bounds frame the result.  ``--inbound-share 0.2`` blends in
inbound callers taking a fifth of the agents' capacity (the workload's
``[inbound]`` table), with the inbound service level in the report.

    python bench/dialer.py [--agents 5,10,20,50,100] [--hours 8] [--seeds 1]
                           [--strategies all] [--inbound-share 0.2] [--jobs 2] [--json]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import emit, machine
from dirigent.lab import run as run_lab
from sim import lab
from sim.workload import load_workload

KEYS = (
    "occupancy",
    "abandon_rate",
    "worst_hour_abandon_rate",
    "idle_wait_mean",
    "dials_per_live_connect",
    "wall_seconds",
)


#: per-seed figures kept in the report (plus the inbound ones when blended)
SEED_KEYS = ("occupancy", "abandon_rate", "worst_hour_abandon_rate", "live_answers")
INBOUND_KEYS = ("inbound_service_level", "inbound_asa", "inbound_abandon_rate")


def _run(args: tuple[Any, int, float, str, int, float | None]) -> dict[str, Any]:
    workload, n, hours, name, seed, share = args
    return run_lab(workload, agents=n, hours=hours, strategy=name, seed=seed, inbound_share=share)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", default="5,10,20,50,100")
    parser.add_argument("--hours", type=float, default=8.0)
    parser.add_argument("--seeds", default="1", help="comma-separated seeds (median over them)")
    parser.add_argument("--strategies", default="all")
    parser.add_argument(
        "--inbound-share",
        type=float,
        default=None,
        help="inbound callers taking this share of the agents' capacity (default: the workload's)",
    )
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel processes")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.inbound_share is not None and not 0.0 <= args.inbound_share < 1.0:
        parser.error("--inbound-share: must be at least 0 and below 1")
    workload = load_workload(Path(__file__).with_name("workloads") / "standard.toml")
    strategies = lab.all_strategies() if args.strategies == "all" else args.strategies.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    counts = [int(a) for a in args.agents.split(",")]
    cells = [(n, name) for n in counts for name in strategies]
    jobs = [
        (workload, n, args.hours, name, seed, args.inbound_share)
        for n, name in cells
        for seed in seeds
    ]
    if args.jobs > 1:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            reports = list(pool.map(_run, jobs))
    else:
        reports = [_run(job) for job in jobs]
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for i, (n, name) in enumerate(cells):
        runs = reports[i * len(seeds) : (i + 1) * len(seeds)]
        row: dict[str, Any] = {k: statistics.median(r[k] for r in runs) for k in KEYS}
        row["min_occupancy"] = min(r["occupancy"] for r in runs)
        row["max_abandon_rate"] = max(r["abandon_rate"] for r in runs)
        row["max_worst_hour_abandon_rate"] = max(r["worst_hour_abandon_rate"] for r in runs)
        keys = SEED_KEYS + (INBOUND_KEYS if "inbound_calls" in runs[0] else ())
        row["seeds"] = {
            str(seed): {k: r[k] for k in keys} for seed, r in zip(seeds, runs, strict=True)
        }
        table.setdefault(str(n), {})[name] = row
        if not args.json:
            print(
                f"N={n:>4} {name:>14}  occupancy {row['occupancy']:.3f}"
                f" (min {row['min_occupancy']:.3f})  abandon {row['abandon_rate']:.2%}"
                f" (max {row['max_abandon_rate']:.2%})"
                f"  worst hour {row['worst_hour_abandon_rate']:.2%}"
                f" (max {row['max_worst_hour_abandon_rate']:.2%})"
                f"  idle {row['idle_wait_mean']:.1f} s  [{row['wall_seconds']:.1f} s]",
                flush=True,
            )
    emit(
        {
            "hours": args.hours,
            "seeds": seeds,
            "inbound_share": args.inbound_share,
            "results": table,
            "machine": machine(),
        },
        args.json,
    )


if __name__ == "__main__":
    main()
