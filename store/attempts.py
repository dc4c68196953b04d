"""Figures counted from the attempt rows themselves (the database's own
ledger), for reports that must not trust the live counters."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, func, select

from store import db


@dataclass(frozen=True)
class AttemptTotals:
    dials: int
    connected: int  # a person answered and was put through to an agent
    abandoned: int  # a person answered and no agent was free

    @property
    def live(self) -> int:
        """Persons who answered (the denominator of the abandon rate)."""
        return self.connected + self.abandoned


def attempt_totals(engine: Engine) -> AttemptTotals:
    """Every attempt in the database (all campaigns, all runs)."""
    a = db.attempt
    with engine.connect() as conn:
        dials = conn.execute(select(func.count()).select_from(a)).scalar_one()
        connected = conn.execute(
            select(func.count()).where(a.c.connected_at.is_not(None))
        ).scalar_one()
        abandoned = conn.execute(select(func.count()).where(a.c.abandoned.is_(True))).scalar_one()
    return AttemptTotals(dials=dials, connected=connected, abandoned=abandoned)
