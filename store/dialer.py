"""The dialer's durable state in the database: attempts, the hopper, the ledger.

The campaign runner is pure and talks to three small ports (``AttemptLog``,
``LeadSource`` and the ledger's ``on_change``); this module implements them
over SQLAlchemy so that a restart finds everything it needs:

* :class:`DbAttemptLog` writes the attempt row (with the runner's attempt id
  in ``ref``, the same id the channel carries as ``DIRIGENT_ATTEMPT``) and
  commits it *before* ``begin`` returns, so the Originate that follows can
  always be matched to a row.  ``open_attempts`` finds what a crash left open.
* :class:`DbLeadSource` takes records through :func:`store.pool.claim`
  (the compliance gate, one transaction) and applies the retry rules after
  every attempt.  It says why the campaign is idle, and after a crash it
  returns records claimed (in the hopper) that never got an attempt row.
* :class:`DbLedgerStore` persists the abandon ledger's day buckets per
  campaign or drop-rate group, after every change, and rebuilds its last
  hour from the attempt rows after a restart.

The writes are synchronous on the reactor thread: one small indexed
statement each (well under a millisecond on SQLite, about one on a local
PostgreSQL), and the attempt row *must* be on disk before the Originate.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import Engine, and_, delete, insert, or_, select, update
from twisted.logger import Logger

from dialer.abandon import DayCount
from dialer.campaign import Lead
from dialer.compliance import Campaign, Compliance
from dialer.retry import RetryRules
from dialer.runner import Attempt
from store import db, pool

log = Logger(namespace="dirigent.dialer")


def _at(seconds: float | None) -> dt.datetime | None:
    return None if seconds is None else dt.datetime.fromtimestamp(seconds, dt.UTC)


def _seconds(value: dt.datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


def ensure_campaign(
    engine: Engine,
    name: str,
    *,
    country: str | None = None,
    dial_mode: str = "predictive",
    caller_id: str | None = None,
    settings: dict[str, Any] | None = None,
) -> int:
    """The campaign's row (created if a list import has not made it yet),
    updated with the configured mode, country and caller ID."""
    c = db.campaign
    values = {"country": country, "dial_mode": dial_mode, "caller_id": caller_id}
    if settings is not None:
        values["settings"] = settings
    with engine.begin() as conn:
        found = conn.execute(select(c.c.id).where(c.c.name == name)).scalar()
        if found is None:
            return conn.execute(
                insert(c).values(name=name, **{"settings": {}, **values})
            ).inserted_primary_key[0]
        conn.execute(update(c).where(c.c.id == found).values(**values))
        return found


def set_campaign_status(engine: Engine, name: str, status: str) -> None:
    with engine.begin() as conn:
        conn.execute(update(db.campaign).where(db.campaign.c.name == name).values(status=status))


def campaign_status(engine: Engine, name: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(select(db.campaign.c.status).where(db.campaign.c.name == name)).scalar()


class DbAttemptLog:
    """Attempt rows, one per dial; ``begin`` commits before returning."""

    def __init__(self, engine: Engine, campaign: str) -> None:
        self.engine = engine
        with engine.connect() as conn:
            self.campaign_id = pool.find_campaign_id(conn, campaign)

    def begin(self, attempt: Attempt) -> None:
        record = attempt.lead.record_id
        with self.engine.begin() as conn:
            conn.execute(
                insert(db.attempt).values(
                    ref=attempt.id,
                    record_id=record if isinstance(record, int) else None,
                    campaign_id=self.campaign_id,
                    e164=attempt.lead.number,
                    pbx=attempt.pbx,
                    started_at=_at(attempt.started),
                    uniqueid=attempt.channel_id,
                    agent_code=attempt.agent,
                )
            )
            if isinstance(record, int):
                pool.mark_dialing(conn, record)

    def end(self, attempt: Attempt) -> None:
        answered = attempt.answered
        ring_end = answered if answered is not None else attempt.ended
        with self.engine.begin() as conn:
            conn.execute(
                update(db.attempt)
                .where(db.attempt.c.ref == attempt.id)
                .values(
                    outcome=attempt.outcome,
                    hangup_cause=attempt.cause,
                    channel=attempt.channel,
                    ring_seconds=None if ring_end is None else ring_end - attempt.started,
                    answered_at=_at(answered),
                    connected_at=_at(attempt.connected),
                    talk_seconds=(
                        attempt.ended - attempt.connected
                        if attempt.connected is not None and attempt.ended is not None
                        else None
                    ),
                    verdict=attempt.verdict,
                    agent_code=attempt.agent,
                    abandoned=attempt.abandoned,
                    ended_at=_at(attempt.ended),
                )
            )

    def connected(self, attempt: Attempt) -> None:
        """A person reached an agent: kept so that a restart does not lose
        when the conversation began."""
        with self.engine.begin() as conn:
            conn.execute(
                update(db.attempt)
                .where(db.attempt.c.ref == attempt.id)
                .values(
                    answered_at=_at(attempt.answered),
                    connected_at=_at(attempt.connected),
                    verdict=attempt.verdict,
                    agent_code=attempt.agent,
                )
            )

    def open_attempts(self, campaign: str) -> list[Attempt]:
        a = db.attempt
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(a)
                .where(a.c.campaign_id == self.campaign_id, a.c.outcome.is_(None))
                .order_by(a.c.id)
            ).all()
        return [
            Attempt(
                row.ref or str(row.id),
                campaign,
                Lead(row.record_id if row.record_id is not None else row.ref, row.e164),
                _seconds(row.started_at) or 0.0,
                channel_id=row.uniqueid or "",
                pbx=row.pbx,
                agent=row.agent_code,
                answered=_seconds(row.answered_at),
                connected=_seconds(row.connected_at),
                verdict=row.verdict,
            )
            for row in rows
        ]


class DbLeadSource:
    """The hopper: records that pass the compliance gate now, each taken once."""

    def __init__(
        self,
        engine: Engine,
        campaign: Campaign,
        gate: Compliance,
        rules: RetryRules | None = None,
        *,
        reason_ttl: float = 15.0,
        in_thread: Callable[..., Any] | None = None,
    ) -> None:
        self.engine = engine
        self.campaign = campaign
        self.gate = gate
        self.rules = rules or RetryRules()
        self.reason_ttl = reason_ttl
        self._reason: tuple[float, str] | None = None
        self.in_thread = in_thread  # e.g. threads.deferToThread; None: on the caller's thread
        self._refreshing = False

    def take(self, n: int, now: float) -> list[Lead]:
        claimed = pool.claim(self.engine, self.campaign, self.gate, _at(now), limit=n)  # type: ignore[arg-type]
        if not claimed:
            return []
        self._reason = None
        ids = {c.contact_id for c in claimed}
        with self.engine.connect() as conn:
            names = dict(
                conn.execute(
                    select(db.contact.c.id, db.contact.c.display_name).where(
                        db.contact.c.id.in_(ids)
                    )
                ).all()
            )
        return [
            Lead(c.record_id, c.e164, str(c.contact_id), c.extra, names.get(c.contact_id) or None)
            for c in claimed
        ]

    def done(self, lead: Lead, outcome: str, now: float) -> None:
        if not isinstance(lead.record_id, int):
            return  # an attempt without a record (a manual dial)
        pool.record_outcome(
            self.engine,
            lead.record_id,
            outcome,
            _at(now),
            self.rules,
            counted=True,  # type: ignore[arg-type]
        )

    def release(self, lead: Lead, now: float) -> None:
        """A record taken but never dialed (a skipped preview) is due again,
        behind the records never tried, with no attempt counted."""
        if not isinstance(lead.record_id, int):
            return
        r = db.record
        with self.engine.begin() as conn:
            conn.execute(
                update(r)
                .where(
                    and_(r.c.id == lead.record_id, r.c.status.in_((*db.OPEN_STATUSES, "dialing")))
                )
                .values(status="scheduled", next_due_at=_at(now))
            )
            pool.unclaim(conn, [lead.record_id])

    def empty_reason(self, now: float) -> str:
        """Why nothing is dialable, from the pool status (cached a few seconds:
        an idle campaign asks every second).

        The pool status counts the whole campaign; with ``in_thread`` set
        (the server) it is worked out there and the last answer is given
        meanwhile, so the reactor never waits for it."""
        if self._reason is not None and now - self._reason[0] < self.reason_ttl:
            return self._reason[1]
        if self.in_thread is None:
            self._reason = (now, self.reason_now(now))
            return self._reason[1]
        if not self._refreshing:
            self._refreshing = True
            d = self.in_thread(self.reason_now, now)
            d.addCallback(lambda reason: setattr(self, "_reason", (now, reason)))
            d.addErrback(lambda f: log.warn("pool status failed: {e}", e=f.getErrorMessage()))
            d.addBoth(lambda _: setattr(self, "_refreshing", False))
        return self._reason[1] if self._reason is not None else "nothing dialable now"

    def reason_now(self, now: float) -> str:
        """The idle reason, from a fresh pool status (blocks on the database)."""
        status = pool.pool_status(self.engine, self.campaign, self.gate, _at(now), sample=500)  # type: ignore[arg-type]
        records = status["records"]
        open_ = records.get("new", 0) + records.get("scheduled", 0)
        if not records:
            reason = "the campaign has no records (import a list)"
        elif open_ == 0 and records.get("dialing", 0) == 0:
            reason = f"list exhausted ({records.get('completed', 0)} completed, {status['exhausted']} closed)"
        elif status["blocked_now"]:
            why = ", ".join(f"{k} {v}" for k, v in sorted(status["blocked_now"].items()))
            reason = f"no record may be dialed now (blocked: {why})"
        elif status["due_later_today"]:
            reason = f"nothing due now ({status['due_later_today']} due later today)"
        else:
            reason = "nothing due now"
        return reason

    def release_orphans(self) -> int:
        """Records a crash left claimed but never dialed (in the hopper, no
        attempt row) go back to the pool as they were; so do records left
        ``dialing`` without an open attempt.  Records with an open attempt
        stay until the reconciliation closes it.  Returns how many."""
        r, a, h, lst = db.record, db.attempt, db.hopper, db.dial_list
        with self.engine.begin() as conn:
            campaign_id = pool.find_campaign_id(conn, self.campaign.name)
            open_records = select(a.c.record_id).where(
                a.c.outcome.is_(None), a.c.record_id.is_not(None)
            )
            never_dialed = conn.execute(
                delete(h).where(
                    h.c.campaign_id == campaign_id,
                    h.c.record_id.not_in(open_records),
                    h.c.record_id.in_(select(r.c.id).where(r.c.status.in_(db.OPEN_STATUSES))),
                )
            ).rowcount
            lists = select(lst.c.id).where(lst.c.campaign_id == campaign_id)
            stuck = conn.execute(
                update(r)
                .where(
                    and_(
                        r.c.status == "dialing",
                        r.c.list_id.in_(lists),
                        r.c.id.not_in(open_records),
                    )
                )
                .values(status="scheduled", next_due_at=None)
            ).rowcount
            conn.execute(  # and the hopper rows of the records just freed
                delete(h).where(h.c.campaign_id == campaign_id, h.c.record_id.not_in(open_records))
            )
            return never_dialed + stuck


class DbLedgerStore:
    """One abandon ledger's day buckets, saved after every change, and its
    last hour, rebuilt from the attempt rows of the group's campaigns."""

    def __init__(self, engine: Engine, group: str, campaigns: Iterable[str] = ()) -> None:
        self.engine = engine
        self.group = group
        #: the campaigns whose calls the ledger counts (default: the one named ``group``)
        self.campaigns = tuple(campaigns) or (group,)

    def load(self) -> list[DayCount]:
        t = db.abandon_count
        with self.engine.connect() as conn:
            rows = conn.execute(select(t).where(t.c.grp == self.group)).all()
        return [DayCount(r.day_start, r.live, r.abandoned) for r in rows]

    def recent(
        self, now: float, amd_false_positive: float = 0.0, span: float = 3600.0
    ) -> list[tuple[float, float, float]]:
        """The ledger's events of the last ``span`` seconds, from the attempt
        rows: (when, live, abandoned), as the runner counted them: a person
        connected to an agent (live), a person who found none in time
        (abandoned), and per "human" verdict the estimate of persons AMD
        took for machines (``fp / (1 - fp)`` live and abandoned).  An
        abandon is placed at its answer (a few seconds before the runner
        counted it)."""
        t, c = db.attempt, db.campaign
        since = _at(now - span)
        ids = select(c.c.id).where(c.c.name.in_(self.campaigns))
        query = select(t.c.answered_at, t.c.connected_at, t.c.abandoned, t.c.verdict).where(
            t.c.campaign_id.in_(ids), or_(t.c.connected_at >= since, t.c.answered_at >= since)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        fp = amd_false_positive
        share = fp / (1.0 - fp) if 0.0 < fp < 1.0 else 0.0
        start = now - span
        events: list[tuple[float, float, float]] = []
        for r in rows:
            answered, connected = _seconds(r.answered_at), _seconds(r.connected_at)
            if connected is not None and connected >= start:
                events.append((connected, 1.0, 0.0))
            if answered is None or answered < start:
                continue
            if r.abandoned:
                events.append((answered, 1.0, 1.0))
            if share and r.verdict == "human":
                events.append((answered, share, share))
        return sorted(events)

    def save(self, bucket: DayCount) -> None:
        t = db.abandon_count
        where = and_(t.c.grp == self.group, t.c.day_start == bucket.day)
        values = {"live": bucket.live, "abandoned": bucket.abandoned}
        with self.engine.begin() as conn:
            if not conn.execute(update(t).where(where).values(**values)).rowcount:
                conn.execute(insert(t).values(grp=self.group, day_start=bucket.day, **values))
