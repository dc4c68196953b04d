"""Before and after a change, in the same sitting: every benchmark run on two
trees in alternating order, each figure's median and its ratio to the
benchmark's own baseline (a ratio survives a noisy machine better than a
raw figure: both sides of it meet the same load).

The *before* tree is ``git archive REF`` unpacked in a temporary folder and
put first on ``PYTHONPATH``; the *after* tree is this checkout.  Each tree
runs its own copy of the benchmark script, so a module that moved between
the two is found where that tree keeps it.

    python bench/before_after.py --before 480f686 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))

from bench.common import machine  # noqa: E402


@dataclass(frozen=True)
class Bench:
    """One benchmark: the script and its arguments, the figures compared
    (``True`` where higher is better) and the key of its own baseline."""

    name: str
    argv: tuple[str, ...]
    figures: tuple[tuple[str, bool], ...]  # the first one is in the baseline's units
    baseline: str | None
    path: tuple[str, ...] = ()  # where the figures sit in the JSON object


BENCHES = (
    Bench(
        "AMI event path",
        ("bench/ami_throughput.py", "--calls", "4000", "--runs", "3"),
        (("events_per_second", True), ("p99_latency_ms", False)),
        "baseline_panoramisk_parse_events_per_second",
    ),
    Bench(
        "Routing decisions",
        ("bench/routing.py", "--agents", "5000", "--runs", "3"),
        (("decisions_per_second", True), ("p99_decision_ms", False)),
        "baseline_naive_decisions_per_second",
    ),
    Bench(
        "Hopper refill",
        ("bench/hopper.py", "--records", "200000", "--runs", "50", "--baseline-runs", "2"),
        (("batched_median_ms", False), ("batched_p99_ms", False)),
        "one_by_one_median_ms",
    ),
    Bench(
        "List import",
        ("bench/lists.py", "--rows", "100000", "--runs", "1", "--postgres-runs", "0"),
        (("rows_per_second", True),),
        "baseline_csv_phonenumbers_rows_per_second",
    ),
    Bench(
        "Sim dialer, 8 h x 50 agents",
        (
            "bench/dialer.py",
            "--agents",
            "50",
            "--hours",
            "8",
            "--strategies",
            "predictive",
            "--seeds",
            "1",
        ),
        (("wall_seconds", False), ("occupancy", True), ("abandon_rate", False)),
        None,
        ("results", "50", "predictive"),
    ),
)


def unpack(ref: str, into: Path) -> Path:
    """The tree of ``ref`` as files (no .git), for running its own code."""
    archive = into / "before.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "-C", str(HERE), "archive", ref], stdout=out, check=True)
    tree = into / "before"
    tree.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    archive.unlink()
    return tree


def run(tree: Path, bench: Bench) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    out = subprocess.run(
        [sys.executable, *bench.argv, "--json"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    base = result.get(bench.baseline) if bench.baseline else None
    for key in bench.path:
        result = result[key]
    figures = {key: float(result[key]) for key, _ in bench.figures}
    if base is not None:
        figures["baseline"] = float(base)
    return figures


def compare(before: Path, after: Path, rounds: int, only: set[str]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for bench in BENCHES:
        if only and not any(word.lower() in bench.name.lower() for word in only):
            continue
        seen: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
        for n in range(rounds):  # alternate which tree goes first
            order = [("before", before), ("after", after)]
            for side, tree in order if n % 2 == 0 else reversed(order):
                seen[side].append(run(tree, bench))
                print(f"  {bench.name} round {n + 1} {side}: {seen[side][-1]}", file=sys.stderr)
        for i, (key, higher) in enumerate(bench.figures):
            row: dict[str, object] = {"benchmark": bench.name, "figure": key}
            for side in ("before", "after"):
                med = statistics.median(r[key] for r in seen[side])
                row[side] = med
                if bench.baseline and i == 0:
                    ratios = [
                        (r[key] / r["baseline"]) if r["baseline"] else float("nan")
                        for r in seen[side]
                    ]
                    row[f"{side}_vs_baseline"] = statistics.median(ratios)
            b, a = float(row["before"]), float(row["after"])  # type: ignore[arg-type]
            row["after_over_before"] = a / b if b else float("nan")
            row["better"] = (a >= b) if higher else (a <= b)
            rows.append(row)
    return rows


def table(rows: list[dict[str, object]]) -> str:
    lines = [
        "| benchmark | figure | before | after | after/before | before vs baseline | after vs baseline |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        vb = r.get("before_vs_baseline")
        va = r.get("after_vs_baseline")
        lines.append(
            f"| {r['benchmark']} | {r['figure']} | {r['before']:.4g} | {r['after']:.4g} | "
            f"{r['after_over_before']:.3f} | "
            + (f"{vb:.3f} | {va:.3f} |" if vb is not None and va is not None else "- | - |")
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="git ref of the before tree")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each tree (median)")
    parser.add_argument(
        "--only", action="append", default=[], help="benchmarks whose name has this"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dirigent-before-") as tmp:
        before = unpack(args.before, Path(tmp))
        rows = compare(before, HERE, args.rounds, set(args.only))
    print(f"{machine()}; before {args.before}, {args.rounds} rounds, median")
    print(table(rows))
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
