"""The address pool of a campaign: hopper, outcomes, status, export.

* :func:`claim` fills the hopper: the next due records (priority first, then
  due time) that pass the compliance gate now, marked ``dialing`` in the same
  transaction, so two dialers never take the same record.  It reads a bounded
  window of candidates through the ``ix_record_hopper`` index, never the
  whole list.
* :func:`record_outcome` applies the retry rules after an attempt.
* :func:`pool_status` is the supervisor's "Adressvorrat": records by status,
  dialable now, due later today, blocked (and why).
* :func:`export_results` writes records with their last outcome as CSV,
  neutralising cells a spreadsheet would run as formulas.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, and_, func, or_, select, update

from dialer.compliance import Campaign, Compliance, DialHistory
from dialer.lists import export_safe
from dialer.numbers import Number
from dialer.retry import RetryRules
from dirigent import db

OPEN = ("new", "scheduled")


@dataclass(frozen=True)
class Claimed:
    record_id: int
    e164: str
    contact_id: int
    extra: dict[str, Any]


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    return value.replace(tzinfo=dt.UTC) if value is not None and value.tzinfo is None else value


def _number(conn, e164: str) -> Number:  # type: ignore[no-untyped-def]
    row = conn.execute(
        select(db.contact_phone).where(db.contact_phone.c.e164 == e164).limit(1)
    ).first()
    zones = tuple(z for z in (row.timezones or "").split(",") if z) if row else ()
    return Number(e164, row.number_type if row else "", row.region if row else "", zones)


def _candidates(conn, campaign_id: int, now: dt.datetime, limit: int):  # type: ignore[no-untyped-def]
    r, lst = db.record, db.dial_list
    return conn.execute(
        select(r.c.id, r.c.e164, r.c.contact_id, r.c.extra, r.c.attempts, r.c.callback_at)
        .join(lst, lst.c.id == r.c.list_id)
        .where(
            lst.c.campaign_id == campaign_id,
            lst.c.active.is_(True),
            r.c.status.in_(OPEN),
            or_(r.c.next_due_at.is_(None), r.c.next_due_at <= now),
        )
        .order_by(r.c.priority.desc(), r.c.next_due_at.asc().nulls_first(), r.c.id)
        .limit(limit)
    ).all()


def find_campaign_id(conn, name: str) -> int:  # type: ignore[no-untyped-def]
    found = conn.execute(select(db.campaign.c.id).where(db.campaign.c.name == name)).scalar()
    if found is None:
        raise LookupError(f"unknown campaign {name!r}")
    return found


def _history(conn, e164: str, now: dt.datetime) -> DialHistory:  # type: ignore[no-untyped-def]
    a = db.attempt
    day_start = now - dt.timedelta(hours=24)
    today = (
        conn.execute(
            select(func.count()).where(a.c.e164 == e164, a.c.started_at >= day_start)
        ).scalar()
        or 0
    )
    abandoned = conn.execute(
        select(func.max(a.c.started_at)).where(a.c.e164 == e164, a.c.abandoned.is_(True))
    ).scalar()
    machine = conn.execute(
        select(func.max(a.c.started_at)).where(a.c.e164 == e164, a.c.outcome == "machine")
    ).scalar()
    return DialHistory(today, _aware(abandoned), _aware(machine))


def claim(
    engine: Engine, campaign: Campaign, gate: Compliance, now: dt.datetime, limit: int = 100
) -> list[Claimed]:
    """Up to ``limit`` records to dial now, marked ``dialing``."""
    out: list[Claimed] = []
    with engine.begin() as conn:
        campaign_id = find_campaign_id(conn, campaign.name)
        for row in _candidates(conn, campaign_id, now, limit * 4):
            verdict = gate.check(
                campaign,
                _number(conn, row.e164),
                str(row.contact_id),
                now,
                _history(conn, row.e164, now),
                _aware(row.callback_at),
            )
            if not verdict.allowed:
                continue
            changed = conn.execute(
                update(db.record)
                .where(and_(db.record.c.id == row.id, db.record.c.status.in_(OPEN)))
                .values(status="dialing")
            ).rowcount
            if changed:
                out.append(Claimed(row.id, row.e164, row.contact_id, dict(row.extra or {})))
            if len(out) >= limit:
                break
    return out


def record_outcome(
    engine: Engine,
    record_id: int,
    outcome: str,
    now: dt.datetime,
    rules: RetryRules,
    *,
    callback_at: dt.datetime | None = None,
    counted: bool = False,
) -> str:
    """Apply the retry rules after an attempt; returns the record's new status.

    ``counted``: the attempt's own row already carries ``outcome`` (the
    dialer writes it first), so it is not counted a second time."""
    with engine.begin() as conn:
        rec = conn.execute(select(db.record).where(db.record.c.id == record_id)).one()
        attempts = rec.attempts + 1
        same = (0 if counted else 1) + (
            conn.execute(
                select(func.count()).where(
                    db.attempt.c.record_id == record_id, db.attempt.c.outcome == outcome
                )
            ).scalar()
            or 0
        )
        step = rules.next(outcome, now, attempts, same, callback_at)
        conn.execute(
            update(db.record)
            .where(db.record.c.id == record_id)
            .values(
                status=step.status,
                attempts=attempts,
                last_outcome=outcome,
                next_due_at=step.due,
                callback_at=callback_at if outcome == "callback" else None,
                closed_reason=step.reason,
            )
        )
    return step.status


def pool_status(
    engine: Engine, campaign: Campaign, gate: Compliance, now: dt.datetime, sample: int = 2000
) -> dict[str, Any]:
    """Records by status; of the open ones due now, how many may be dialed
    now and why the others may not (from a bounded sample)."""
    r, lst = db.record, db.dial_list
    with engine.connect() as conn:
        campaign_id = find_campaign_id(conn, campaign.name)
        by_status = dict(
            conn.execute(
                select(r.c.status, func.count())
                .join(lst, lst.c.id == r.c.list_id)
                .where(lst.c.campaign_id == campaign_id)
                .group_by(r.c.status)
            ).all()
        )
        end_of_day = now.replace(hour=23, minute=59, second=59)
        later_today = conn.execute(
            select(func.count())
            .select_from(r.join(lst, lst.c.id == r.c.list_id))
            .where(
                lst.c.campaign_id == campaign_id,
                r.c.status.in_(OPEN),
                r.c.next_due_at > now,
                r.c.next_due_at <= end_of_day,
            )
        ).scalar()
        blocked: Counter[str] = Counter()
        dialable = 0
        for row in _candidates(conn, campaign_id, now, sample):
            verdict = gate.check(
                campaign,
                _number(conn, row.e164),
                str(row.contact_id),
                now,
                _history(conn, row.e164, now),
                _aware(row.callback_at),
            )
            if verdict.allowed:
                dialable += 1
            else:
                blocked[verdict.check] += 1
    return {
        "campaign": campaign.name,
        "records": by_status,
        "dialable_now": dialable,
        "due_later_today": later_today,
        "blocked_now": dict(blocked),
        "exhausted": by_status.get("closed", 0),
    }


def export_results(engine: Engine, campaign: str, path: str | Path) -> int:
    """Records with their last outcome as CSV; returns the row count."""
    r, lst, c = db.record, db.dial_list, db.contact
    with engine.connect() as conn, open(path, "w", encoding="utf-8", newline="") as fh:
        campaign_id = find_campaign_id(conn, campaign)
        writer = csv.writer(fh)
        writer.writerow(
            [
                "list",
                "e164",
                "name",
                "status",
                "attempts",
                "last_outcome",
                "closed_reason",
                "next_due_at",
            ]
        )
        n = 0
        for row in conn.execute(
            select(
                lst.c.name,
                r.c.e164,
                c.c.display_name,
                r.c.status,
                r.c.attempts,
                r.c.last_outcome,
                r.c.closed_reason,
                r.c.next_due_at,
            )
            .join(lst, lst.c.id == r.c.list_id)
            .join(c, c.c.id == r.c.contact_id)
            .where(lst.c.campaign_id == campaign_id)
            .order_by(r.c.id)
        ):
            # e164 is validated digits: it cannot carry a formula, and must stay dialable
            writer.writerow(
                [
                    v
                    if i == 1
                    else export_safe(v)
                    if isinstance(v, str)
                    else ("" if v is None else v)
                    for i, v in enumerate(row)
                ]
            )
            n += 1
    return n
