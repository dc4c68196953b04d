"""The address pool of a campaign: hopper, outcomes, status, export.

* :func:`claim` fills the hopper: the next due records (priority first, then
  due time) that pass the compliance gate now, put in the ``hopper`` table in
  the same transaction, so two dialers never take the same record.  It reads
  a bounded window of candidates through the two partial indexes, never the
  whole list.  The attempt marks its record ``dialing``.
* :func:`record_outcome` applies the retry rules after an attempt and takes
  the record out of the hopper.
* :func:`pool_status` is the supervisor's "Adressvorrat": records by status,
  dialable now, due later today, blocked (and why).
* :func:`export_results` writes records with their last outcome as CSV,
  neutralising cells a spreadsheet would run as formulas.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import zoneinfo
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    Select,
    Text,
    and_,
    bindparam,
    case,
    cast,
    delete,
    func,
    or_,
    select,
    text,
    update,
)

from core.errors import Conflict, Forbidden, Invalid, NotFound
from core.numbers import Number, normalize
from dialer.compliance import (
    Campaign,
    Compliance,
    DialHistory,
    Policy,
    PolicyError,
    Verdict,
    default_zone,
    lockout_end,
    policy_for,
)
from dialer.lists import export_safe
from dialer.retry import Next, RetryRules
from store import db
from store.consent import DbConsent, DbDnc

OPEN = db.OPEN_STATUSES


@dataclass(frozen=True)
class Claimed:
    record_id: int
    e164: str
    contact_id: int
    #: the record's own list columns, as text (an import keeps every cell so)
    extra: dict[str, str]


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    return value.replace(tzinfo=dt.UTC) if value is not None and value.tzinfo is None else value


def _number(conn: Connection, e164: str) -> Number:
    row = conn.execute(
        select(db.contact_phone).where(db.contact_phone.c.e164 == e164).limit(1)
    ).first()
    zones = tuple(z for z in (row.timezones or "").split(",") if z) if row else ()
    return Number(e164, row.number_type if row else "", row.region if row else "", zones)


def _candidates(
    conn: Connection,
    campaign_id: int,
    now: dt.datetime,
    limit: int,
    offset: int = 0,
    only: int | None = None,
    looked_up: tuple[Any, ...] = (),
    skip_zones: Collection[str] = (),
    regions: Collection[str] | None = None,
):
    """Due records in hopper order (priority, then new before scheduled, then
    due time, then list order).  Two index-ordered reads (never-tried records
    and due retries, each on its own partial index) merged here, so a refill
    reads about ``limit`` rows whatever the list's size.  ``only``: one list's.
    ``looked_up``: further columns (see :func:`_lookups`), computed by the
    database for the rows read only.  ``skip_zones``, ``regions``: see
    :func:`_from_record`."""
    r, lst = db.record, db.dial_list
    lists = [
        row.id
        for row in conn.execute(
            select(lst.c.id).where(lst.c.campaign_id == campaign_id, lst.c.active.is_(True))
        )
        if only is None or row.id == only
    ]
    if not lists:
        return []
    columns = (*_CANDIDATE, *looked_up)
    want = limit + offset
    fresh = conn.execute(
        _from_record(columns, skip_zones=skip_zones, regions=regions)
        .where(r.c.list_id.in_(lists), _OPEN_SQL, r.c.next_due_at.is_(None))
        .order_by(r.c.priority.desc(), r.c.id)
        .limit(want)
    ).all()
    retries = [
        row
        for list_id in lists
        for row in _due_retries(conn, list_id, now, want, columns, skip_zones, regions)
    ]
    if not retries:  # the fresh read is in hopper order already
        return fresh[offset:want]
    rows = sorted(
        (*fresh, *retries),
        key=lambda x: (
            -x.priority,
            x.next_due_at is not None,
            _aware(x.next_due_at) or _EPOCH,
            x.id,
        ),
    )
    return rows[offset:want]


#: a candidate record's own columns (the gate's look-ups come beside them)
_CANDIDATE = (
    db.record.c.id,
    db.record.c.e164,
    db.record.c.contact_id,
    db.record.c.attempts,
    db.record.c.callback_at,
    db.record.c.priority,
    db.record.c.next_due_at,
)


def _from_record(
    columns: tuple[Any, ...],
    claimed: bool = False,
    skip_zones: Collection[str] = (),
    regions: Collection[str] | None = None,
) -> Select[Any]:
    """SELECT ``columns`` FROM record, with the record's own number (its
    contact's phone row: type, region, time zones) beside it; merging moves
    phone rows with their records, so the pair always exists.  Records in
    the hopper (claimed already) are left out unless ``claimed``; so are
    numbers whose time zones are one of ``skip_zones`` (closed now: see
    :func:`claim`), and with ``regions``, numbers of any other region (another
    country's, which the campaign's rules do not govern: see :func:`claim`;
    a number of no known region is the gate's to judge)."""
    r, p, h = db.record, db.contact_phone, db.hopper
    query = select(*columns).select_from(
        r.outerjoin(p, and_(p.c.contact_id == r.c.contact_id, p.c.e164 == r.c.e164))
    )
    if skip_zones:
        query = query.where(or_(p.c.timezones.is_(None), p.c.timezones.not_in(list(skip_zones))))
    if regions is not None:
        query = query.where(
            or_(p.c.region.is_(None), p.c.region == "", p.c.region.in_(list(regions)))
        )
    if claimed:
        return query
    return query.where(~select(h.c.record_id).where(h.c.record_id == r.c.id).exists())


def _lookups(campaign_id: int, now: dt.datetime, consent: bool) -> tuple[Any, ...]:
    """What the gate needs to know of each candidate, as columns of the
    candidate read itself: correlated look-ups the database answers per row
    read, through the indexes on ``attempt.e164``, ``dnc.e164`` and
    ``consent.contact_id``.  Sending a thousand numbers back as ``IN`` lists
    (as before) cost more in building the statements than in running them.

    ``dnc``: 0 on the global list, 1 on the campaign's only, NULL on neither.
    ``recent``: attempts in the last 24 hours (their times are read only for
    the few numbers that have any).  ``consented``: the latest voice consent
    given by ``now`` (NULL: none)."""
    r, p, a, d, c = db.record, db.contact_phone, db.attempt, db.dnc, db.consent
    mine = a.c.e164 == r.c.e164
    cols = [
        p.c.number_type,
        p.c.region,
        p.c.timezones,
        select(func.max(a.c.started_at))
        .where(mine, a.c.abandoned.is_(True))
        .scalar_subquery()
        .label("last_abandoned"),
        select(func.max(a.c.started_at))
        .where(mine, a.c.outcome == "machine")
        .scalar_subquery()
        .label("last_machine"),
        select(func.count())
        .where(mine, a.c.started_at >= now - dt.timedelta(hours=24))
        .scalar_subquery()
        .label("recent"),
        select(func.min(case((d.c.campaign_id.is_(None), 0), else_=1)))
        .where(d.c.e164 == r.c.e164, or_(d.c.campaign_id.is_(None), d.c.campaign_id == campaign_id))
        .scalar_subquery()
        .label("dnc"),
    ]
    if consent:
        cols.append(
            select(c.c.granted)
            .where(c.c.contact_id == r.c.contact_id, c.c.channel == "voice", c.c.given_at <= now)
            .order_by(c.c.given_at.desc(), c.c.id.desc())
            .limit(1)
            .scalar_subquery()
            .label("consented")
        )
    return tuple(cols)


def _due_retries(
    conn: Connection,
    list_id: int,
    now: dt.datetime,
    want: int,
    columns: tuple[Any, ...],
    skip_zones: Collection[str] = (),
    regions: Collection[str] | None = None,
) -> list[Any]:
    """One list's first ``want`` due retries in hopper order, one priority at
    a time, highest first.  Each read seeks (list, priority, due time) on the
    retry index and stops at ``now``.  One read over all priorities cannot
    stop there: it walked every retry scheduled for later (200,000 in the
    benchmark) to find the due ones, 23 ms even when none were due."""
    r = db.record
    retry = (r.c.list_id == list_id, _OPEN_SQL, r.c.next_due_at.is_not(None))
    out: list[Any] = []
    top = conn.execute(select(func.max(r.c.priority)).where(*retry)).scalar()
    while top is not None and len(out) < want:
        out += conn.execute(
            _from_record(columns, skip_zones=skip_zones, regions=regions)
            .where(*retry, r.c.priority == top, r.c.next_due_at <= now)
            .order_by(r.c.next_due_at, r.c.id)
            .limit(want - len(out))
        ).all()
        top = conn.execute(
            select(func.max(r.c.priority)).where(*retry, r.c.priority < top)
        ).scalar()
    return out


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
#: the partial indexes' own condition, as literal SQL: with bound parameters
#: (``status IN (?, ?)``) neither SQLite nor PostgreSQL can prove that a
#: partial index applies, and the hopper would sort the whole list
_OPEN_SQL = text(f"record.{db.OPEN_CONDITION}")


def find_campaign_id(conn: Connection, name: str) -> int:
    found = conn.execute(select(db.campaign.c.id).where(db.campaign.c.name == name)).scalar()
    if found is None:
        raise NotFound("campaign", f"unknown campaign {name!r}")
    return found


def _history(conn: Connection, number: Number, now: dt.datetime) -> DialHistory:
    """Attempts today count from midnight in the number's (first) time zone."""
    a = db.attempt
    e164 = number.e164
    day_start = _local_midnight((number.timezones or (default_zone(number.region),))[0], now)
    today = (
        conn.execute(
            select(func.count()).where(a.c.e164 == e164, a.c.started_at >= day_start)
        ).scalar()
        or 0
    )
    return DialHistory(today, *_last_abandoned_and_machine(conn, e164))


def _last_abandoned_and_machine(
    conn: Connection, e164: str
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """The number's last abandoned call and last answering machine, in any
    campaign: what the law's lock-outs run from (the gate's history, and
    when a retry may be due: :func:`_lockout_end`)."""
    a = db.attempt
    abandoned = conn.execute(
        select(func.max(a.c.started_at)).where(a.c.e164 == e164, a.c.abandoned.is_(True))
    ).scalar()
    machine = conn.execute(
        select(func.max(a.c.started_at)).where(a.c.e164 == e164, a.c.outcome == "machine")
    ).scalar()
    return _aware(abandoned), _aware(machine)


def _local_midnight(zone: str, now: dt.datetime, days: int = 0) -> dt.datetime:
    """Start of the calendar day ``days`` after ``now``'s in ``zone``, in UTC
    (today's: attempts per day; tomorrow's: what is due later today)."""
    tz = zoneinfo.ZoneInfo(zone)
    day = now.astimezone(tz).date() + dt.timedelta(days=days)
    return dt.datetime.combine(day, dt.time(), tz).astimezone(dt.UTC)


@dataclass
class _Listed:
    """The do-not-call answers of one batch (``DbDnc``'s, read with the candidates)."""

    listed: dict[str, str]
    campaign: str

    def blocked(self, e164: str, campaign: str) -> str | None:
        return self.listed.get(e164) if campaign == self.campaign else None


@dataclass
class _Consented:
    """The consent answers of one batch (``DbConsent``'s, read with the candidates)."""

    latest: dict[int, bool]

    def granted(self, contact: str, channel: str, at: dt.datetime) -> bool:
        return channel == "voice" and self.latest.get(int(contact), False)


def _needs_consent(campaign: Campaign) -> bool:
    if campaign.requires_consent is None:
        return campaign.policy.requires_consent
    return campaign.requires_consent


def _read(
    conn: Connection,
    campaign_id: int,
    campaign: Campaign,
    gate: Compliance,
    now: dt.datetime,
    limit: int,
    offset: int = 0,
    only: int | None = None,
    extra: bool = False,
    skip_zones: Collection[str] = (),
    regions: Collection[str] | None = None,
) -> list[tuple[Any, Verdict]]:
    """Candidates in hopper order, each with the gate's verdict.  Everything
    the gate looks up comes with the candidate read (:func:`_lookups`); only
    the times of attempts in the last 24 hours, for the few numbers that
    have any, take one more query.  ``extra``: the records' own fields too,
    as JSON text (:func:`_fields`): decoded for the records claimed only."""
    rows = _candidates(
        conn,
        campaign_id,
        now,
        limit,
        offset,
        only,
        looked_up=(
            *_lookups(campaign_id, now, _needs_consent(campaign)),
            *((cast(db.record.c.extra, Text).label("extra"),) if extra else ()),
        ),
        skip_zones=skip_zones,
        regions=regions,
    )
    return _judged(conn, rows, campaign, gate, now)


def _judged(
    conn: Connection, rows: Sequence[Any], campaign: Campaign, gate: Compliance, now: dt.datetime
) -> list[tuple[Any, Verdict]]:
    """Each candidate row read with its look-ups (:func:`_lookups`), with the gate's verdict."""
    if not rows:
        return []
    a = db.attempt
    recent: dict[str, list[dt.datetime]] = {}
    dialed = {row.e164 for row in rows if row.recent}
    if dialed:
        since = now - dt.timedelta(hours=24)
        for row in conn.execute(
            select(a.c.e164, a.c.started_at).where(a.c.e164.in_(dialed), a.c.started_at >= since)
        ):
            recent.setdefault(row.e164, []).append(_aware(row.started_at))  # type: ignore[arg-type]
    dnc, consent = gate.dnc, gate.consent
    if isinstance(dnc, DbDnc):
        kinds = ("global", "campaign")
        dnc = _Listed(
            {row.e164: kinds[row.dnc] for row in rows if row.dnc is not None}, campaign.name
        )
    if isinstance(consent, DbConsent) and _needs_consent(campaign):
        consent = _Consented(
            {row.contact_id: bool(row.consented) for row in rows if row.consented is not None}
        )
    granted = (
        {row.contact_id for row in rows if consent.granted(str(row.contact_id), "voice", now)}
        if _needs_consent(campaign)
        else set()
    )
    batch = gate.for_batch(dnc, consent)
    # most candidates have nothing of their own for the gate to weigh (no
    # list entry, no attempt, no call-back time): their verdict depends on
    # the number's region and zones (and the contact's consent) only, and
    # is worked out once per such kind in a batch
    plain: dict[tuple[Any, ...], Verdict] = {}
    out = []
    for row in rows:
        key = None
        if not (row.recent or row.dnc is not None or row.last_abandoned or row.last_machine) and (
            row.callback_at is None
        ):
            key = (row.number_type, row.region, row.timezones, row.contact_id in granted)
            if key in plain:
                out.append((row, plain[key]))
                continue
        verdict = _verdict(batch, campaign, row, now, recent.get(row.e164))
        if key is not None:
            plain[key] = verdict
        out.append((row, verdict))
    return out


def _verdict(
    gate: Compliance,
    campaign: Campaign,
    row: Any,
    now: dt.datetime,
    started: list[dt.datetime] | None,
) -> Verdict:
    """The gate's verdict on one candidate read with its look-ups."""
    zones = tuple(z for z in (row.timezones or "").split(",") if z)
    number = Number(row.e164, row.number_type or "", row.region or "", zones)
    today = 0
    if started:
        midnight = _local_midnight((zones or (default_zone(number.region),))[0], now)
        today = sum(1 for t in started if t >= midnight)
    history = DialHistory(today, _aware(row.last_abandoned), _aware(row.last_machine))
    return gate.check(campaign, number, str(row.contact_id), now, history, _aware(row.callback_at))


#: how many due records a claim reads at most to find its batch (blocked ones
#: are skipped): a zone's whole share of a list is blocked at its window's edge
CLAIM_SCAN = 5000


def claim(
    engine: Engine, campaign: Campaign, gate: Compliance, now: dt.datetime, limit: int = 100
) -> list[Claimed]:
    """Up to ``limit`` records to dial now, put in the hopper in the same
    transaction (a concurrent claimer's records are skipped: the hopper's
    key takes each record once).  The records themselves are not written:
    the attempt marks its record ``dialing`` (:func:`mark_dialing`), the
    outcome takes it out of the hopper (:func:`record_outcome`)."""
    with engine.begin() as conn:
        campaign_id = find_campaign_id(conn, campaign.name)
        allowed: list[Any] = []
        offset, chunk = 0, limit + limit // 4 + 8
        # most due records pass the gate: read a little more than needed, and
        # more, twice as much each time, while blocked ones leave the batch
        # short.  At a window's edge a whole zone is blocked at once (21:00 in
        # New York: a national list's first hundreds of records) while the
        # West may still be called: a scan of 8 x limit gave up and the
        # campaign idled with records dialable (found by exploratory testing)
        skip: frozenset[str] = frozenset()
        regions: tuple[str, ...] | None = None
        foreign = False  # another country's number among those read
        while len(allowed) < limit:
            read = _read(
                conn,
                campaign_id,
                campaign,
                gate,
                now,
                chunk,
                offset,
                extra=True,
                skip_zones=skip,
                regions=regions,
            )
            allowed += [row for row, v in read if v.allowed]
            foreign = foreign or any(v.check == "country" for _, v in read)
            if len(read) < chunk:
                break
            offset += chunk
            chunk *= 2
            if offset >= max(8 * limit, CLAIM_SCAN):
                if allowed or regions is not None:
                    break
                # a scan of blocked records only: numbers of zones closed now
                # (a national list sorted by area code at 21:00 in New York; a
                # big list whose window is closed ahead of a small open one)
                # are left out in the database and the scan starts again,
                # where it found nothing behind 120,000 of them (QA4); so are
                # other countries' numbers, which the gate refuses whenever
                # they come (a list imported before its campaign had a
                # country, or under a pack that governed them)
                skip = _closed_zone_sets(conn, campaign_id, campaign, gate, now)
                if not skip and not foreign:
                    break
                regions = campaign.policy.governed
                offset, chunk = 0, limit + limit // 4 + 8
        allowed = allowed[:limit]
        if not allowed:
            return []
        taken = _into_hopper(conn, campaign_id, [row.id for row in allowed], now)
        return [
            Claimed(row.id, row.e164, row.contact_id, _fields(row.extra))
            for row in allowed
            if row.id in taken
        ]


def _closed_zone_sets(
    conn: Connection, campaign_id: int, campaign: Campaign, gate: Compliance, now: dt.datetime
) -> frozenset[str]:
    """The time-zone sets (``contact_phone.timezones`` as stored) of the
    campaign's open records in which no call may be made now: outside the
    calling hours or on a holiday in one of their zones."""
    r, p, lst = db.record, db.contact_phone, db.dial_list
    active = select(lst.c.id).where(lst.c.campaign_id == campaign_id, lst.c.active.is_(True))
    sets = conn.execute(
        select(p.c.timezones)
        .distinct()
        .select_from(r.join(p, and_(p.c.contact_id == r.c.contact_id, p.c.e164 == r.c.e164)))
        .where(r.c.list_id.in_(active), _OPEN_SQL, p.c.timezones.is_not(None))
    ).scalars()
    return frozenset(
        zones
        for zones in sets
        if zones and gate.closed_in(campaign, [z for z in zones.split(",") if z], now)
    )


def recheck(
    engine: Engine, campaign: Campaign, gate: Compliance, record_id: int, now: dt.datetime
) -> Verdict:
    """The gate's verdict on a claimed record at the moment of its dial.

    A record is judged when it is claimed; a preview may then stay on an
    agent's screen for minutes, a claimed lead waits up to ten seconds in
    the buffer.  A number put on the do-not-call list, a consent withdrawn
    or a calling window closed meanwhile must stop the dial: the gate is the
    one way to a number.  A record no longer open (closed meanwhile) is
    refused too."""
    with engine.connect() as conn:
        campaign_id = find_campaign_id(conn, campaign.name)
        columns = (*_CANDIDATE, *_lookups(campaign_id, now, _needs_consent(campaign)))
        rows = conn.execute(
            _from_record((*columns, db.dial_list.c.active.label("list_active")), claimed=True)
            .join(db.dial_list, db.dial_list.c.id == db.record.c.list_id)
            .where(db.record.c.id == record_id, _OPEN_SQL)
        ).all()
        if not rows:
            return Verdict(False, f"record {record_id} is no longer open", "record")
        if not rows[0].list_active:  # switched off after its claim (QA4: dialed 2 s after)
            return Verdict(False, f"record {record_id}: its list is switched off", "list")
        ((_row, verdict),) = _judged(conn, rows, campaign, gate, now)
        return verdict


def _fields(raw: str | None) -> dict[str, str]:
    """A record's own fields from their JSON text (most lists have none)."""
    return json.loads(raw) if raw and raw != "{}" else {}


#: the hopper insert: the ids travel as one JSON array (SQLite) or one
#: integer array (PostgreSQL), one statement whatever their number; an
#: ``executemany`` of a thousand rows cost a quarter of a claim in
#: SQLAlchemy's per-row parameter handling
_INTO_HOPPER = {
    "sqlite": "SELECT value, :campaign, :now FROM json_each(:ids) WHERE true",
    "postgresql": "SELECT unnest(CAST(:ids AS integer[])), :campaign, :now",
}


def _into_hopper(conn: Connection, campaign_id: int, ids: list[int], now: dt.datetime) -> set[int]:
    """Put records in the hopper; the ones another claimer holds already are
    skipped (the hopper's key).  Returns the ids taken."""
    dialect = conn.dialect.name
    stmt = text(
        "INSERT INTO hopper (record_id, campaign_id, claimed_at) "
        f"{_INTO_HOPPER[dialect]} "
        "ON CONFLICT (record_id) DO NOTHING RETURNING record_id"
    ).bindparams(
        bindparam("ids", json.dumps(ids) if dialect == "sqlite" else ids),
        bindparam("campaign", campaign_id, type_=Integer),
        bindparam("now", now, type_=db.hopper.c.claimed_at.type),
    )
    return set(conn.execute(stmt).scalars())


def mark_dialing(conn: Connection, record_id: int) -> None:
    """The record's attempt is written: the record is being dialed."""
    conn.execute(update(db.record).where(db.record.c.id == record_id).values(status="dialing"))


def unclaim(conn: Connection, record_ids: list[int]) -> None:
    """Out of the hopper (an outcome, a record handed back)."""
    conn.execute(delete(db.hopper).where(db.hopper.c.record_id.in_(record_ids)))


def claim_one_by_one(
    engine: Engine, campaign: Campaign, gate: Compliance, now: dt.datetime, limit: int = 100
) -> list[Claimed]:
    """The first claim: four queries per candidate.  Kept as the benchmark's
    baseline and as the reference the batched claim is tested against."""
    out: list[Claimed] = []
    with engine.begin() as conn:
        campaign_id = find_campaign_id(conn, campaign.name)
        for row in _candidates(conn, campaign_id, now, limit * 4):
            number = _number(conn, row.e164)
            verdict = gate.check(
                campaign,
                number,
                str(row.contact_id),
                now,
                _history(conn, number, now),
                _aware(row.callback_at),
            )
            if not verdict.allowed:
                continue
            if _into_hopper(conn, campaign_id, [row.id], now):
                extra = conn.execute(
                    select(db.record.c.extra).where(db.record.c.id == row.id)
                ).scalar()
                out.append(Claimed(row.id, row.e164, row.contact_id, dict(extra or {})))
            if len(out) >= limit:
                break
    return out


def _campaign_policy(conn: Connection, record_id: int) -> Policy | None:
    """The country pack of the campaign a record's list belongs to (None:
    a campaign without a known country)."""
    r, lst, c = db.record, db.dial_list, db.campaign
    country = conn.execute(
        select(c.c.country)
        .select_from(r.join(lst, lst.c.id == r.c.list_id).join(c, c.c.id == lst.c.campaign_id))
        .where(r.c.id == record_id)
    ).scalar()
    if not country:
        return None
    try:
        return policy_for(country)
    except PolicyError:
        return None


def _lockout_end(
    conn: Connection,
    record_id: int,
    e164: str,
    policy: Policy | None,
    now: dt.datetime,
    outcome: str | None = None,
) -> dt.datetime | None:
    """When the law's lock-outs on the record's number end (the gate's
    look-ups: its last abandoned call and last answering machine, in any
    campaign), so that a retry is not due before the gate would let it be
    dialed (QA8 F18).  No agent is guaranteed: the gate is asked so at the
    claim.  ``outcome``: the attempt just ended, at ``now``, if its row does
    not carry it (yet).  ``policy``: None, the campaign's own pack."""
    if policy is None:
        policy = _campaign_policy(conn, record_id)
    if policy is None or not (
        policy.abandon_lockout_hours or policy.machine_retry_same_day_needs_agent
    ):
        return None
    abandoned, machine = _last_abandoned_and_machine(conn, e164)
    if outcome == "abandoned":
        abandoned = max(abandoned, now) if abandoned is not None else now
    if outcome == "machine":
        machine = max(machine, now) if machine is not None else now
    return lockout_end(policy, DialHistory(0, abandoned, machine))


def record_outcome(
    engine: Engine,
    record_id: int,
    outcome: str,
    now: dt.datetime,
    rules: RetryRules,
    *,
    callback_at: dt.datetime | None = None,
    counted: bool = False,
    policy: Policy | None = None,
) -> str:
    """Apply the retry rules after an attempt; returns the record's new status.

    A retry is due no earlier than the end of the law's lock-outs on the
    number (``policy``'s, None: the campaign's country pack): 24 h after an
    answering machine, 72 h after an abandoned call in the UK.

    ``counted``: the attempt's own row already carries ``outcome`` (the
    dialer writes it first), so it is not counted a second time.  The agent's
    result may have come between that write and this one (the API's thread
    beside the dialer's): a call-back or do-not-call it gave has set the
    record's next step already and stands (the step for "answered" undid a
    promised call-back); a "machine" it gave is the outcome retried."""
    with engine.begin() as conn:
        rec = conn.execute(select(db.record).where(db.record.c.id == record_id)).one()
        given = _result_given(conn, record_id) if counted else None
        if given in (DO_NOT_CALL, CALLBACK) and rec.status != "dialing":
            # (still "dialing": it came while the call was up, and a
            # do-not-call then blocks the number but leaves the record's step here)
            conn.execute(
                update(db.record)
                .where(db.record.c.id == record_id)
                .values(attempts=rec.attempts + 1)
            )
            unclaim(conn, [record_id])
            return str(rec.status)
        if given == MACHINE:
            outcome = MACHINE
        not_before = _lockout_end(
            conn, record_id, rec.e164, policy, now, None if counted else outcome
        )
        attempts = rec.attempts + 1
        same = (0 if counted else 1) + (
            conn.execute(
                select(func.count()).where(
                    db.attempt.c.record_id == record_id, db.attempt.c.outcome == outcome
                )
            ).scalar()
            or 0
        )
        step = rules.next(outcome, now, attempts, same, callback_at, not_before)
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
        unclaim(conn, [record_id])
    return step.status


def _result_given(conn: Connection, record_id: int) -> str | None:
    """The agent's result on this call: the record's latest attempt started
    since the record was claimed for it (a record is dialled once at a time,
    and stays in the hopper until its outcome).  Not the call before's: a
    call whose attempt row was never written (refused past every retry)
    found that one's call-back or machine and took it for its own (found in
    review)."""
    a, h = db.attempt, db.hopper
    claimed = select(h.c.claimed_at).where(h.c.record_id == record_id).scalar_subquery()
    return conn.execute(
        select(a.c.disposition)
        .where(a.c.record_id == record_id, a.c.started_at >= claimed)
        .order_by(a.c.id.desc())
        .limit(1)
    ).scalar()


def pool_status(
    engine: Engine, campaign: Campaign, gate: Compliance, now: dt.datetime, sample: int = 2000
) -> dict[str, Any]:
    """The campaign's pool, and the same for each of its lists.

    Records by status (all lists, active or not); of the active lists'
    records due now, how many may be dialed now and why the others may not
    (from the first ``sample`` due records of each list, in hopper order:
    ``sampled`` says a list had more, so its figures are "at least");
    how many of the active lists' records fall due later today (a switched
    off list's never do: the hopper does not take from it); how many are
    closed ("exhausted")."""
    r, lst = db.record, db.dial_list
    with engine.connect() as conn:
        campaign_id = find_campaign_id(conn, campaign.name)
        lists = conn.execute(
            select(lst.c.id, lst.c.name, lst.c.active, lst.c.import_state)
            .where(lst.c.campaign_id == campaign_id)
            .order_by(lst.c.id)
        ).all()
        ids = [row.id for row in lists]
        by_status: dict[int, dict[str, int]] = {i: {} for i in ids}
        for list_id, status, n in conn.execute(
            select(r.c.list_id, r.c.status, func.count())
            .where(r.c.list_id.in_(ids))
            .group_by(r.c.list_id, r.c.status)
        ):
            by_status[list_id][status] = n
        end_of_day = _local_midnight(campaign.timezone, now, days=1)
        later_today: dict[int, int] = dict(
            conn.execute(
                select(r.c.list_id, func.count())
                .where(
                    r.c.list_id.in_([row.id for row in lists if row.active]),
                    r.c.status.in_(OPEN),
                    r.c.next_due_at > now,
                    r.c.next_due_at < end_of_day,
                )
                .group_by(r.c.list_id)
            ).all()
        )
        per_list: dict[str, dict[str, Any]] = {}
        for row in lists:
            blocked: Counter[str] = Counter()
            dialable = judged = 0
            if row.active:
                read = _read(conn, campaign_id, campaign, gate, now, sample, only=row.id)
                judged = len(read)
                for _row, verdict in read:
                    if verdict.allowed:
                        dialable += 1
                    else:
                        blocked[verdict.check] += 1
            per_list[row.name] = {
                "active": bool(row.active),
                "records": by_status[row.id],
                "dialable_now": dialable,
                "due_later_today": later_today.get(row.id, 0),
                "blocked_now": dict(blocked),
                "exhausted": by_status[row.id].get("closed", 0),
                # dialable_now and blocked_now judge the first `sample` due
                # records only: with more due, they are "at least" (QA4: 2,000
                # of 60,000 read as the count)
                "sampled": judged >= sample,
            }
            if row.import_state is not None:  # an import not finished (see lists_import)
                per_list[row.name]["importing"] = row.import_state
    total: Counter[str] = Counter()
    blocked_all: Counter[str] = Counter()
    for figures in per_list.values():
        total.update(figures["records"])
        blocked_all.update(figures["blocked_now"])
    return {
        "campaign": campaign.name,
        "records": dict(total),
        "dialable_now": sum(f["dialable_now"] for f in per_list.values()),
        "due_later_today": sum(f["due_later_today"] for f in per_list.values()),
        "blocked_now": dict(blocked_all),
        "exhausted": total.get("closed", 0),
        #: dialable_now / blocked_now judge at most this many due records a list
        "sample": sample,
        "sampled": any(f["sampled"] for f in per_list.values()),
        "lists": per_list,
    }


#: dispositions with an effect beyond being recorded (spelling is normalised:
#: "Do not call", "do_not_call", "DNC" are one code; "Call back", "callback";
#: "Answering machine", "AM", "machine")
DO_NOT_CALL, CALLBACK, MACHINE = "do-not-call", "callback", "machine"
_SPECIAL_CODES = {
    "do-not-call": DO_NOT_CALL,
    "dnc": DO_NOT_CALL,
    "callback": CALLBACK,
    "call-back": CALLBACK,
    "machine": MACHINE,
    "answering-machine": MACHINE,
    "am": MACHINE,
}


@dataclass(frozen=True)
class MachineCall:
    """A call the agent says reached an answering machine (AMD took it for a
    person): its campaign's ledger takes the live answer back."""

    campaign: str
    ref: str
    connected_at: float | None  # when it reached the agent (epoch seconds)


def disposition_code(raw: str) -> str:
    """The code an agent gave, trimmed and checked; special codes normalised."""
    code = " ".join(raw.split())
    if not code or len(code) > 40:
        raise Invalid("code", "give the call's result in 1 to 40 characters")
    key = "-".join(code.lower().replace("_", " ").split())
    return _SPECIAL_CODES.get(key, code)


def _took_over(conn: Connection, attempt_id: int, agent: str) -> bool:
    """Whether ``agent`` answered the person of that attempt after a transfer
    (the interaction row the report writer keeps for the colleague's call)."""
    t = db.interaction
    found = conn.execute(
        select(t.c.id)
        .where(t.c.attempt_id == attempt_id, t.c.agent_code == agent, t.c.answered_at.is_not(None))
        .limit(1)
    ).first()
    return found is not None


#: how far ahead a call-back may be set (a typo's year 2099 would hold the
#: record for ever, out of every report of what is due)
CALLBACK_HORIZON = dt.timedelta(days=366)


def apply_disposition(
    engine: Engine,
    ref: str,
    raw_code: str,
    now: dt.datetime,
    rules: Callable[[str], RetryRules],
    *,
    callback_at: dt.datetime | None = None,
    agent: str | None = None,
    campaigns: Collection[str] | None = None,
    on_machine: Callable[[MachineCall], None] | None = None,
    closed: Callable[[str, Number, dt.datetime], str | None] | None = None,
) -> dict[str, Any]:
    """An agent's result for an outbound call (attempt ``ref``).

    Recorded on the attempt row.  ``do-not-call`` puts the number on the
    global do-not-call list at once (every campaign) and closes the record;
    ``callback`` schedules the record at ``callback_at``, with the attempt
    limits of the retry rules (only once the call has ended: the hang-up
    would otherwise complete the record after it).  ``machine``: an
    answering machine that AMD took for a person; once committed,
    ``on_machine`` is told (the first time only), and the campaign takes
    the live answer back from its abandon ledger and retries the record as
    a machine (:meth:`dialer.campaigns.Campaigns.answering_machine`); only
    ``do-not-call`` or ``callback`` may follow it (else :class:`Conflict`),
    and a live answer leaves the ledger once per call, ever.
    ``closed(campaign, number, at)``: why the campaign may not call the
    number at ``at`` (its hours and holidays), or None; a call-back for such
    a time is refused, naming the hours (the dialer would only call at the
    next opening, not when the customer was told).
    ``agent``: the one giving it, who must be the one who took the call
    (None: a supervisor; ``campaigns``: the campaigns a team supervisor's
    scope holds, None: all).  ``rules``: a campaign's retry rules, by its name."""
    from store.consent import opt_out

    code = disposition_code(raw_code)
    a, r, p = db.attempt, db.record, db.contact_phone
    with engine.begin() as conn:
        row = conn.execute(
            select(
                a.c.id,
                a.c.record_id,
                a.c.e164,
                a.c.outcome,
                a.c.agent_code,
                a.c.disposition,
                a.c.connected_at,
                db.campaign.c.name,
                p.c.timezones,
                p.c.region,
                p.c.number_type,
                r.c.status.label("record_status"),
                r.c.closed_reason,
            )
            .outerjoin(db.campaign, db.campaign.c.id == a.c.campaign_id)
            .outerjoin(r, r.c.id == a.c.record_id)
            .outerjoin(p, and_(p.c.contact_id == r.c.contact_id, p.c.e164 == r.c.e164))
            .where(a.c.ref == ref)
        ).first()
        if row is None:
            raise NotFound("interaction", f"no outbound call {ref!r}")
        if agent is not None and row.agent_code != agent and not _took_over(conn, row.id, agent):
            raise Forbidden("agent", f"{agent} did not take call {ref}")
        if campaigns is not None and row.name not in campaigns:
            raise Forbidden("campaign", f"call {ref} is not of a campaign of your teams")
        if callback_at is not None and code != CALLBACK:
            # it was dropped, and an earlier call-back stayed scheduled (QA5 F5)
            raise Invalid("callback_at", f"only with the code {CALLBACK!r}, not {code!r}")
        if row.disposition == DO_NOT_CALL and code != DO_NOT_CALL:
            # the customer's word stays on the attempt and in the export (QA5 F13)
            raise Conflict(
                "code",
                f"call {ref} was given 'do-not-call' (the number is on the do-not-call "
                f"list): it cannot become {code!r}",
            )
        if (
            code == CALLBACK
            and row.record_status == "closed"
            and _closed_for_good(row.closed_reason)
        ):
            # a merged record reopened beside the one it was merged into, or a
            # do-not-call record scheduled for a call it may not get (QA5 F16)
            raise Conflict(
                "callback_at",
                f"the record of call {ref} is closed ({row.closed_reason}): no call-back on it",
            )
        if row.disposition == MACHINE and code not in (MACHINE, DO_NOT_CALL, CALLBACK):
            # its live answer left the ledger and its record is retried as a machine;
            # a "do not call" (the law) or a call-back time still follow it
            raise Conflict(
                "code",
                f"call {ref} was given 'machine' (its live answer taken back from the "
                f"abandon ledger, its record retried as a machine): it cannot become "
                f"{code!r} (do-not-call and callback can still follow)",
            )
        if code == CALLBACK:
            if callback_at is None:
                raise Invalid("callback_at", "a call-back needs its time (ISO 8601 with offset)")
            if callback_at <= now:
                raise Invalid("callback_at", "must be in the future")
            if callback_at > now + CALLBACK_HORIZON:
                latest = now + CALLBACK_HORIZON
                raise Invalid("callback_at", f"must be within a year (by {latest:%Y-%m-%d})")
            # stored as UTC: SQLite keeps a time's wall clock and drops its offset
            callback_at = callback_at.astimezone(dt.UTC)
            number = _attempt_number(row)
            why = closed(row.name or "", number, callback_at) if closed is not None else None
            if why is not None:
                raise Invalid("callback_at", f"{why}: the call-back could not be made then")
            if row.outcome is None:
                raise Invalid("state", "the call is still up; set the call-back once it has ended")
        if code == DO_NOT_CALL:
            opt_out(engine, row.e164)  # first: whatever else fails, the number is blocked
        conn.execute(update(a).where(a.c.id == row.id).values(disposition=code))
        status = None
        if (
            row.record_id is not None
            and row.outcome is not None
            and code in (DO_NOT_CALL, CALLBACK)
        ):
            rec = conn.execute(select(r.c.attempts).where(r.c.id == row.record_id)).one()
            step = rules(row.name or "").next(code, now, rec.attempts, 1, callback_at)
            _record_step(
                conn,
                row.record_id,
                step,
                code,
                callback_at=callback_at if code == CALLBACK else None,
            )
            status = step.status
    # once per call, ever: not after a first "machine" (its outcome is "machine"
    # once written), nor again after a do-not-call or call-back that followed it
    taken_back = row.disposition == MACHINE or row.outcome == MACHINE
    if code == MACHINE and not taken_back and on_machine is not None:
        connected = row.connected_at
        if connected is not None and connected.tzinfo is None:
            connected = connected.replace(tzinfo=dt.UTC)  # SQLite drops the offset
        on_machine(MachineCall(row.name or "", ref, connected.timestamp() if connected else None))
    return {"interaction": ref, "disposition": code, "record_status": status}


def _closed_for_good(reason: str | None) -> bool:
    """A record closed by a merge or a do-not-call, which no call-back may
    reopen (one closed by its retry limits may: the agent spoke with the
    person, who asked to be called again)."""
    return reason is not None and (reason == "do not call" or reason.startswith("merged into"))


def _attempt_number(row: Any) -> Number:
    """The attempt's number as its record's phone row holds it (a dial
    without a record, a preview's: read from the number itself)."""
    if row.region is None:
        parsed = normalize(row.e164)
        if isinstance(parsed, Number):
            return parsed
    zones = tuple(z for z in (row.timezones or "").split(",") if z)
    return Number(row.e164, row.number_type or "", row.region or "", zones)


def machine_after_answer(
    engine: Engine, ref: str, now: dt.datetime, rules: RetryRules, policy: Policy | None = None
) -> str | None:
    """A call that ended "answered" and that the agent then said was an
    answering machine: the attempt ends "machine", and its record, completed
    as a person reached, is retried by the machine rule instead (no attempt
    counted twice).  Nothing if the attempt is not "answered" (it ended
    "machine" already, the disposition came while it was up) or the record
    has been dialed since.  Returns the record's status, if changed."""
    a, r = db.attempt, db.record
    with engine.begin() as conn:
        row = conn.execute(select(a.c.id, a.c.record_id, a.c.outcome).where(a.c.ref == ref)).first()
        if row is None or row.outcome != "answered":
            return None
        conn.execute(update(a).where(a.c.id == row.id).values(outcome=MACHINE))
        if row.record_id is None:
            return None
        rec = conn.execute(
            select(r.c.attempts, r.c.last_outcome, r.c.e164).where(r.c.id == row.record_id)
        ).one()
        if rec.last_outcome != "answered":
            return None
        same = conn.execute(
            select(func.count()).where(a.c.record_id == row.record_id, a.c.outcome == MACHINE)
        ).scalar()
        # the attempt's row says "machine" now: its lock-out counts from its start
        not_before = _lockout_end(conn, row.record_id, rec.e164, policy, now)
        step = rules.next(MACHINE, now, rec.attempts, same or 1, not_before=not_before)
        _record_step(conn, row.record_id, step, MACHINE)
    return step.status


def _record_step(
    conn: Connection, record_id: int, step: Next, last_outcome: str, **callback: Any
) -> None:
    """A record's next step after an agent's result (the retry rules'
    answer); ``callback_at=`` when the result sets or clears a call-back."""
    r = db.record
    conn.execute(
        update(r)
        .where(r.c.id == record_id)
        .values(
            status=step.status,
            next_due_at=step.due,
            closed_reason=step.reason,
            last_outcome=last_outcome,
            **callback,
        )
    )


def set_list_active(engine: Engine, campaign: str, name: str, active: bool) -> dict[str, Any]:
    """Switch a list on or off for the hopper.  Records of an inactive list
    are kept with their history, never dialed, and not counted as another
    active list's duplicates; switching it back on resumes where it was."""
    lst = db.dial_list
    with engine.begin() as conn:
        campaign_id = find_campaign_id(conn, campaign)
        row = conn.execute(
            select(lst.c.id, lst.c.active, lst.c.import_state).where(
                lst.c.campaign_id == campaign_id, lst.c.name == name
            )
        ).first()
        if row is None:
            raise NotFound("list", f"no list {name!r} in campaign {campaign!r}")
        if row.import_state == "new":
            raise NotFound(
                "list",
                f"{name!r} is still being imported (not whole yet): import the file "
                "again to finish it, or lists discard",
            )
        conn.execute(update(lst).where(lst.c.id == row.id).values(active=active))
    return {"campaign": campaign, "list": name, "active": active, "was_active": bool(row.active)}


def export_results(engine: Engine, campaign: str, path: str | Path) -> int:
    """Records with their last outcome as CSV; returns the row count."""
    r, lst, c, a = db.record, db.dial_list, db.contact, db.attempt
    # the agent's result of the record's latest call that has one
    last_disposition = (
        select(a.c.disposition)
        .where(a.c.record_id == r.c.id, a.c.disposition.is_not(None))
        .order_by(a.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    with engine.connect() as conn:
        campaign_id = find_campaign_id(conn, campaign)  # before the file is created
    with engine.connect() as conn, open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            [
                "list",
                "e164",
                "name",
                "status",
                "attempts",
                "last_outcome",
                "disposition",
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
                last_disposition,
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
