"""Pacing strategies in virtual time on the standard workload.

Runs ``dirigent sim dialer`` for each agent count and every strategy on the
same seeds (so every strategy meets the same customers) and reports the
median over the seeds of occupancy, abandon rate, worst-hour abandon rate
and idle wait, plus the wall time of the runs.  The baseline in the same
run is the VICIdial-style adaptive dialer; progressive and the clairvoyant
bounds frame the result.

    python bench/dialer.py [--agents 5,10,20,50,100] [--hours 8] [--seeds 1]
                           [--strategies all] [--json]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import emit, machine
from dirigent import sim_dialer
from sim.workload import load_workload

KEYS = (
    "occupancy",
    "abandon_rate",
    "worst_hour_abandon_rate",
    "idle_wait_mean",
    "dials_per_live_connect",
    "wall_seconds",
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", default="5,10,20,50,100")
    parser.add_argument("--hours", type=float, default=8.0)
    parser.add_argument("--seeds", default="1", help="comma-separated seeds (median over them)")
    parser.add_argument("--strategies", default="all")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    workload = load_workload(Path(__file__).with_name("workloads") / "standard.toml")
    strategies = (
        sim_dialer.all_strategies() if args.strategies == "all" else args.strategies.split(",")
    )
    seeds = [int(s) for s in args.seeds.split(",")]
    table: dict[str, dict[str, dict[str, float]]] = {}
    for n in (int(a) for a in args.agents.split(",")):
        for name in strategies:
            runs = [
                sim_dialer.run(workload, agents=n, hours=args.hours, strategy=name, seed=seed)
                for seed in seeds
            ]
            row = {k: statistics.median(r[k] for r in runs) for k in KEYS}
            table.setdefault(str(n), {})[name] = row
            if not args.json:
                print(
                    f"N={n:>4} {name:>14}  occupancy {row['occupancy']:.3f}"
                    f"  abandon {row['abandon_rate']:.2%}"
                    f"  worst hour {row['worst_hour_abandon_rate']:.2%}"
                    f"  idle {row['idle_wait_mean']:.1f} s  [{row['wall_seconds']:.1f} s]",
                    flush=True,
                )
    emit({"hours": args.hours, "seeds": seeds, "results": table, "machine": machine()}, args.json)


if __name__ == "__main__":
    main()
