"""Phonetic duplicate search on 1,000,000 records (no all-pairs comparison).

Records: German first and last names drawn with a skewed (Zipf-like)
popularity, streets and postal codes; 3 % are planted duplicates of an
earlier record: the same person at the same address, the surname spelled
another way (Meyer/Meier/Maier, Schmidt/Schmitt, ...) or the street
abbreviated, with a different phone number.  Reported: seconds to block and
group them (``dialer.lists.PhoneticGroups``), groups found, and how many
planted duplicates were found (recall).  Baseline in the same run: the
all-pairs comparison on a sample, extrapolated to the full size (it grows
with the square of the records).

    python bench/phonetic.py [--records 1000000] [--runs 3] [--json]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import emit, machine
from dialer.lists import PhoneticGroups

VARIANTS = [
    ("Meyer", "Meier", "Maier", "Mayer"),
    ("Schmidt", "Schmitt", "Schmid"),
    ("Müller", "Mueller", "Miller"),
    ("Schneider", "Schnaider"),
    ("Fischer", "Fischr"),
    ("Weber", "Webber"),
    ("Hoffmann", "Hofmann"),
    ("Becker", "Bäcker"),
    ("Wagner", "Wagener"),
    ("Schulz", "Schultz", "Schulze"),
]
FIRST = [
    "Hans",
    "Eva",
    "Jürgen",
    "Anna",
    "Klaus",
    "Maria",
    "Peter",
    "Sabine",
    "Karl",
    "Carl",
    "Claudia",
    "Klaudia",
    "Stefan",
    "Stephan",
    "Monika",
    "Thomas",
    "Julia",
    "Lukas",
    "Lucas",
]
STREETS = ["Hauptstraße", "Bahnhofstraße", "Gartenweg", "Schulstraße", "Dorfstraße", "Ringstraße"]


def generate(n: int, seed: int = 1) -> tuple[list[tuple[str, dict[str, str]]], set[frozenset[str]]]:
    rng = random.Random(seed)
    # many rare surnames and a few common ones, as in a real list
    surnames = [v[0] for v in VARIANTS] + [f"Name{i}" for i in range(20_000)]
    cum: list[float] = []
    total = 0.0
    for k in range(len(surnames)):
        total += 1.0 / (k + 1) ** 0.9
        cum.append(total)
    rows: list[tuple[str, dict[str, str]]] = []
    planted: set[frozenset[str]] = set()
    for i in range(n):
        number = f"+49301{i:07d}"
        if rows and rng.random() < 0.03:
            orig_number, orig = rows[rng.randrange(len(rows))]
            fields = dict(orig)
            family = next((v for v in VARIANTS if fields["last_name"] in v), None)
            if family and rng.random() < 0.7:
                fields["last_name"] = rng.choice(
                    [v for v in family if v != fields["last_name"]] or list(family)
                )
            else:
                fields["street"] = fields["street"].replace("straße", "str.")
            planted.add(frozenset((orig_number, number)))
        else:
            fields = {
                "first_name": rng.choice(FIRST),
                "last_name": rng.choices(surnames, cum_weights=cum)[0],
                "street": f"{rng.choice(STREETS)} {rng.randint(1, 120)}",
                "postal_code": f"{rng.randint(1000, 99999):05d}",
                "city": "Stadt",
            }
        rows.append((number, fields))
    return rows, planted


def ours(rows: list[tuple[str, dict[str, str]]]) -> tuple[float, list[dict[str, Any]]]:
    t0 = time.perf_counter()
    groups = PhoneticGroups()
    for number, fields in rows:
        groups.add(number, fields)
    found = groups.groups()
    return time.perf_counter() - t0, found


def all_pairs(rows: list[tuple[str, dict[str, str]]], threshold: float = 85.0) -> float:
    """The naive way: every pair's similarity (on a sample)."""
    from rapidfuzz import fuzz
    from rapidfuzz.process import cdist

    idents = [" ".join(f.values()).lower() for _, f in rows]
    t0 = time.perf_counter()
    cdist(idents, idents, scorer=fuzz.token_sort_ratio, score_cutoff=threshold, workers=1)
    _ = fuzz
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sample", type=int, default=5_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows, planted = generate(args.records)
    times: list[float] = []
    found: list[dict[str, Any]] = []
    for _ in range(args.runs):
        seconds, found = ours(rows)
        times.append(seconds)
    pairs_found = {
        frozenset((a, b))
        for g in found
        for i, a in enumerate(g["numbers"])
        for b in g["numbers"][i + 1 :]
    }
    recall = len(planted & pairs_found) / len(planted) if planted else 1.0
    sample = all_pairs(rows[: args.sample])
    figures = {
        "records": args.records,
        "seconds": round(statistics.median(times), 1),
        "groups": len(found),
        "planted_duplicates": len(planted),
        "recall": round(recall, 3),
        "all_pairs_sample": args.sample,
        "all_pairs_sample_seconds": round(sample, 2),
        "all_pairs_extrapolated_seconds": round(sample * (args.records / args.sample) ** 2),
        "runs": args.runs,
        "machine": machine(),
    }
    if not args.json:
        print(
            f"{args.records:,} records: {figures['seconds']} s, {figures['groups']} groups,"
            f" recall {figures['recall']:.1%}; all pairs would take"
            f" ~{figures['all_pairs_extrapolated_seconds']:,} s"
        )
    emit(figures, args.json)


if __name__ == "__main__":
    main()
