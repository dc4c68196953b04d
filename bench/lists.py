"""List import throughput and memory: a generated CSV into SQLite.

The file: German and international numbers, names, addresses; 5 % invalid
numbers, 3 % repeated numbers; written as German Excel does (cp1252, ``;``).
Each run imports it into a fresh SQLite file in a child process, which
reports wall time and its peak memory (ru_maxrss); ``--postgres-runs``
more go into a throwaway local PostgreSQL server (tests/pg.py).  Baseline in the same
run: a plain ``csv`` + ``phonenumbers.parse`` loop over the same file.

    python bench/lists.py [--rows 1000000] [--runs 5] [--json]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import contextlib

from bench.common import emit, machine

FIRST = [
    "Hans",
    "Eva",
    "Jürgen",
    "Anna",
    "Klaus",
    "Maria",
    "Peter",
    "Sabine",
    "Ömer",
    "Zoë",
    "John",
    "Ana",
]
LAST = [
    "Meyer",
    "Meier",
    "Maier",
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Groß",
    "Smith",
    "Núñez",
]
CITIES = [
    ("10115", "Berlin"),
    ("80331", "München"),
    ("50667", "Köln"),
    ("20095", "Hamburg"),
    ("60311", "Frankfurt"),
]


def generate(path: Path, rows: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    seen: list[str] = []
    with open(path, "w", encoding="cp1252", newline="") as fh:
        fh.write("Vorname;Nachname;Telefon;Straße;PLZ;Ort;Land;Kundennummer\r\n")
        for i in range(rows):
            roll = rng.random()
            if roll < 0.05:
                phone = f"0{rng.randint(10, 99)} {rng.randint(1, 999)}"  # invalid
            elif roll < 0.08 and seen:
                phone = rng.choice(seen)  # a repeat
            elif roll < 0.75:
                phone = f"0{rng.choice(['30', '89', '221', '40', '69'])} {rng.randint(1000000, 9999999)}"
            elif roll < 0.92:
                phone = f"015{rng.randint(1, 9)} {rng.randint(10000000, 99999999)}"
            else:
                phone = (
                    f"+44 20 7946 {rng.randint(0, 9999):04d}"
                    if rng.random() < 0.5
                    else f"+1 212 555 {rng.randint(100, 199):04d}"
                )
            if len(seen) < 10000:
                seen.append(phone)
            plz, city = rng.choice(CITIES)
            fh.write(
                f"{rng.choice(FIRST)};{rng.choice(LAST)};{phone};Hauptstr. {rng.randint(1, 200)};{plz};{city};DE;K{i}\r\n"
            )


def _import(path: str, url: str, out: mp.Queue) -> None:
    from store import db
    from store.lists_import import import_list

    db.upgrade(url)
    engine = db.make_engine(url)
    t0 = time.perf_counter()
    report = import_list(engine, path, "bench", region="DE", create=True)
    elapsed = time.perf_counter() - t0
    engine.dispose()
    out.put((elapsed, report.summary(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def _baseline(path: str, out: mp.Queue) -> None:
    import csv

    import phonenumbers

    t0 = time.perf_counter()
    n = 0
    with open(path, encoding="cp1252", newline="") as fh:
        reader = csv.reader(fh, delimiter=";")
        next(reader)
        for row in reader:
            with contextlib.suppress(phonenumbers.NumberParseException):
                phonenumbers.parse(row[2], "DE")
            n += 1
    out.put(
        (time.perf_counter() - t0, n, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    )


def child(target: Callable[..., None], *args: object) -> Any:
    """``target(*args, queue)`` in a fresh process (its own peak memory);
    what it put on the queue."""
    queue: mp.Queue[Any] = mp.Queue()
    proc = mp.Process(target=target, args=(*args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--postgres-runs", type=int, default=1, help="runs into a throwaway PostgreSQL (0: none)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    pg_times: list[float] = []
    with tempfile.TemporaryDirectory(prefix="dirigent-bench-") as tmp:
        path = Path(tmp) / "list.csv"
        generate(path, args.rows)
        times, peaks, base_times = [], [], []
        summary: dict = {}
        for run in range(args.runs):
            url = f"sqlite:///{Path(tmp) / f'run{run}.db'}"
            elapsed, summary, peak = child(_import, str(path), url)
            times.append(elapsed)
            peaks.append(peak)
            base_elapsed, _, _ = child(_baseline, str(path))
            base_times.append(base_elapsed)
        if args.postgres_runs:
            from tests.pg import pg_bin, temporary_postgres

            if pg_bin() is not None:
                for run in range(args.postgres_runs):
                    with temporary_postgres(f"bench{run}") as url:
                        pg_times.append(child(_import, str(path), url)[0])
    result = {
        "rows": args.rows,
        "rows_per_second": round(args.rows / statistics.median(times)),
        "peak_memory_mb": round(statistics.median(peaks), 1),
        "baseline_csv_phonenumbers_rows_per_second": round(
            args.rows / statistics.median(base_times)
        ),
        "postgresql_rows_per_second": (
            round(args.rows / statistics.median(pg_times)) if pg_times else None
        ),
        "imported": summary.get("imported"),
        "rejected": summary.get("rejected"),
        "duplicates": summary.get("duplicates"),
        "phonetic_duplicate_groups": summary.get("phonetic_duplicate_groups"),
        "runs": args.runs,
        "machine": machine(),
    }
    emit(result, args.json)


if __name__ == "__main__":
    main()
