"""Hopper refill: claim 1,000 due records from a 1,000,000-record campaign.

The campaign's records are written straight into SQLite (contacts, numbers,
records; a share already dialed, on the do-not-call list, or due later).
Each run claims 1,000 records through the compliance gate (``pool.claim``:
into the hopper table) and puts them back, so every run sees the same pool.  Reported: median and
p99 of the claim time over the runs, after a first claim (cold: the
indexes are read from disk) reported on its own.  Baseline in the same run: the same
claim done record by record (the way it was written first: four queries per
candidate).

After set-up the objects made so far are frozen out of the garbage
collector's full passes, as the server does after start-up
(``--no-freeze``: not).

    python bench/hopper.py [--records 1000000] [--runs 200] [--no-freeze] [--json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Engine, delete, insert

from bench.common import emit, machine
from dialer.compliance import Campaign, Compliance, policy_for
from dirigent.service import freeze_startup_objects
from store import db
from store.consent import DbConsent, DbDnc
from store.pool import Claimed, claim, claim_one_by_one

NOW = dt.datetime(2026, 11, 23, 15, 0, tzinfo=dt.UTC)  # Monday 16:00 in Berlin


def build(url: str, records: int, seed: int = 1) -> None:
    db.upgrade(url)
    engine = db.make_engine(url)
    rng = random.Random(seed)
    with engine.begin() as conn:
        cid = db.insert_id(conn, insert(db.campaign).values(name="bench", settings={}))
        lid = db.insert_id(conn, insert(db.dial_list).values(campaign_id=cid, name="big.csv"))
        batch = 50_000
        for start in range(0, records, batch):
            ids = range(start + 1, min(records, start + batch) + 1)
            conn.execute(
                insert(db.contact),
                [{"id": i, "display_name": f"Kunde {i}", "custom": {}} for i in ids],
            )
            phones, rows = [], []
            for i in ids:
                e164 = f"+49301{i:07d}"
                phones.append(
                    {
                        "contact_id": i,
                        "e164": e164,
                        "number_type": "fixed_line",
                        "region": "DE",
                        "timezones": "Europe/Berlin",
                    }
                )
                roll = rng.random()
                status, due = "new", None
                if roll < 0.2:
                    status, due = "scheduled", NOW + dt.timedelta(hours=rng.randint(1, 48))
                elif roll < 0.3:
                    status = "closed"
                rows.append(
                    {
                        "list_id": lid,
                        "contact_id": i,
                        "e164": e164,
                        "status": status,
                        "next_due_at": due,
                        "priority": 1 if rng.random() < 0.01 else 0,
                        "extra": {},
                    }
                )
            conn.execute(insert(db.contact_phone), phones)
            conn.execute(insert(db.record), rows)
        # some history and do-not-call entries among the first records due
        conn.execute(
            insert(db.attempt),
            [
                {
                    "campaign_id": cid,
                    "record_id": i,
                    "e164": f"+49301{i:07d}",
                    "pbx": "sim",
                    "started_at": NOW - dt.timedelta(hours=2),
                    "outcome": "busy",
                }
                for i in range(1, 3000, 3)
            ],
        )
        conn.execute(
            insert(db.dnc),
            [{"e164": f"+49301{i:07d}", "source": "bench"} for i in range(5, 3000, 50)],
        )
    engine.dispose()


def timed(
    fn: Callable[..., list[Claimed]],
    engine: Engine,
    campaign: Campaign,
    gate: Compliance,
    runs: int,
) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        claimed = fn(engine, campaign, gate, NOW, limit=1000)
        out.append(time.perf_counter() - t0)
        assert len(claimed) == 1000, len(claimed)
        with engine.begin() as conn:  # back into the pool for the next run
            conn.execute(delete(db.hopper))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--baseline-runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--no-freeze", action="store_true", help="leave start-up objects to the collector"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'hopper.db'}"
        t0 = time.perf_counter()
        build(url, args.records)
        built = time.perf_counter() - t0
        engine = db.make_engine(url)
        # a B2B campaign: no consent records needed (UWG 7(2) applies to consumers)
        campaign = Campaign("bench", policy_for("DE"), "+4930555000", requires_consent=False)
        gate = Compliance(DbDnc(engine), DbConsent(engine))
        if not args.no_freeze:  # as the server does once it has started
            freeze_startup_objects()
        # the first claim after start reads the indexes from disk: reported on
        # its own, the percentiles are over the steady refills that follow
        first = timed(claim, engine, campaign, gate, 1)[0]
        ours = timed(claim, engine, campaign, gate, args.runs)
        base = timed(claim_one_by_one, engine, campaign, gate, args.baseline_runs)
        engine.dispose()

    def p99(xs: list[float]) -> float:
        return sorted(xs)[min(len(xs) - 1, round(0.99 * (len(xs) - 1)))]

    figures = {
        "records": args.records,
        "claim": 1000,
        "build_seconds": round(built, 1),
        "batched_median_ms": round(statistics.median(ours) * 1000, 1),
        "batched_p99_ms": round(p99(ours) * 1000, 1),
        "batched_first_ms": round(first * 1000, 1),
        "one_by_one_median_ms": round(statistics.median(base) * 1000, 1),
        "runs": args.runs,
        "frozen": not args.no_freeze,
        "machine": machine(),
    }
    if not args.json:
        print(
            f"refill 1000 of {args.records:,}: batched median {figures['batched_median_ms']} ms,"
            f" p99 {figures['batched_p99_ms']} ms; one by one median"
            f" {figures['one_by_one_median_ms']} ms"
        )
    emit(figures, args.json)


if __name__ == "__main__":
    main()
