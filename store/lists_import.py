"""``dirigent lists import``: a list file into a campaign, all or nothing
for dialing, without stopping a running server.

Rows are written in batches, each batch its own short transaction: on
SQLite a writer holds the one write lock, so an import in one transaction
froze the running server's writes (outcomes, report rows) for as long as it
ran.  Until the import is whole, nothing of it is dialed:

* a new list is written inactive (``import_state = "new"``) and switched on
  in one small transaction at the end;
* records added to a live list are written ``staged`` (the hopper takes only
  ``new`` and ``scheduled``) under ``import_state = "adding"``, and made
  ``new`` in batches at the end (``"switching"``; a switch cut short is
  finished by the next import of the list).

A failure or Ctrl-C midway discards what the import wrote (its records, its
new list, the contacts it created) and the old list goes on dialing; after a
``kill -9`` the list stays as it was before (a new list inactive, staged
records undialed) and running the same import again resumes it (every row is
matched by number), or ``dirigent lists discard`` drops it.

Re-importing the same file changes nothing but the ``updated`` count
(records are unique per list and number; contacts are matched by phone
number, so a person's history stays one history whatever list they came
from).  Numbers that are already in another active list of the campaign, or
twice in the file, are duplicates: reported and not imported again.  A dry
run is one transaction rolled back.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import logging
import sys
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import (
    ARRAY,
    Connection,
    Engine,
    String,
    and_,
    any_,
    bindparam,
    delete,
    insert,
    literal,
    select,
    text,
    update,
)

from core.errors import Invalid, NotFound
from core.numbers import check_region
from dialer.campaign import CAMPAIGN_NAME, CAMPAIGN_NAME_RULE
from dialer.compliance import Policy, PolicyError, foreign_number, policy_for
from dialer.lists import (
    FIELDS,
    ListError,
    ListReader,
    ListRow,
    Member,
    RowProblem,
    block_groups,
    member,
    phonetic_key,
)
from store import db
from store.consent import check_fits
from store.db import column_limit

log = logging.getLogger("dirigent.lists")

BATCH = 1000

#: the most characters each list field may have: the size of the contact
#: column that holds it (store/db.py is the one source).  The reader rejects a
#: longer value as its row; PostgreSQL would refuse the whole batch (COPY), and
#: SQLite would keep it.  ``country`` is not here: the reader's own rule (a
#: two-letter code) says more.
FIELD_LIMITS: dict[str, int] = {
    name: limit
    for name in FIELDS
    if name in db.contact.c
    and name != "country"
    and (limit := column_limit(db.contact.c[name])) is not None
}
#: what an INTEGER column holds (``record.priority``) on PostgreSQL
_INTEGER = (-(2**31), 2**31 - 1)
#: batch counts after which PostgreSQL's statistics are refreshed during a load
ANALYZE_AFTER = frozenset({2, 10, 50, 200, 500})


@dataclass
class ImportReport:
    rows: int = 0
    imported: int = 0
    updated: int = 0
    rejected: int = 0
    duplicates: int = 0
    phonetic_duplicate_groups: int = 0
    formula_like_fields: int = 0
    encoding: str = ""
    delimiter: str = ""
    dry_run: bool = False
    resumed: bool = False
    #: the default country of national numbers, and where it came from:
    #: "given" (``--region``, ``region=``) or "campaign" (the campaign's country)
    region: str | None = None
    region_from: str | None = None
    rejected_file: str | None = None
    problems: list[RowProblem] = field(default_factory=list)
    groups: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "imported": self.imported,
            "updated": self.updated,
            "rejected": self.rejected,
            "duplicates": self.duplicates,
            "phonetic_duplicate_groups": self.phonetic_duplicate_groups,
            "formula_like_fields": self.formula_like_fields,
            "encoding": self.encoding,
            "delimiter": self.delimiter,
            "dry_run": self.dry_run,
            "rejected_file": self.rejected_file,
            "region": self.region,
            "region_from": self.region_from,
        }


class _DryRun(Exception):
    pass


def import_list(
    engine: Engine,
    path: str | Path,
    campaign: str,
    *,
    region: str | None = None,
    mapping: dict[str, str] | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    dry_run: bool = False,
    progress: Callable[[int, float], None] | None = None,
    create: bool = False,
    configured: Collection[str] = (),
    country: str | None = None,
) -> ImportReport:
    """Import the list file at ``path`` into ``campaign``.

    The campaign must exist (a row, or a name in ``configured``, the
    server's ``[[campaign]]`` tables) unless ``create`` is set: a misspelt
    name would otherwise make a campaign of its own that nothing dials, while
    ``lists export`` says it does not exist.  :class:`UnknownCampaign` is
    raised before any row is read.

    National numbers are read as ``region``'s; without it, as the campaign's
    country: ``country`` (its ``[[campaign]]`` table, when the caller has
    one), else its row's (the server writes it): a UK campaign's list of
    ``020 ...`` numbers was otherwise rejected row by row.  A row's own
    ``country`` column still wins for that row."""
    name = Path(path).name
    limit = column_limit(db.dial_list.c.name)
    if limit is not None and len(name) > limit:
        raise ListError(
            "file",
            f"the file's name is the list's name: at most {limit} characters "
            f"({len(name)} given); rename the file",
        )
    check_fits(db.campaign.c.name, campaign, "campaign")
    reader = ListReader(
        path,
        region=region,
        mapping=mapping,
        encoding=encoding,
        delimiter=delimiter,
        limits=FIELD_LIMITS,
    )
    if not create and campaign not in configured:
        _require_campaign(engine, campaign)
    elif campaign not in configured and not CAMPAIGN_NAME.fullmatch(campaign):
        try:  # one made earlier keeps its name; a new one gets one a [[campaign]] can give
            _require_campaign(engine, campaign)
        except UnknownCampaign:
            raise ListError(
                "campaign",
                f"{campaign!r} cannot be a new campaign's name: {CAMPAIGN_NAME_RULE},"
                " as a [[campaign]] table must name it to dial its records",
            ) from None
    report = ImportReport(
        encoding=reader.encoding,
        delimiter=reader.dialect.delimiter if reader.kind == "csv" else "",
        dry_run=dry_run,
        region=region,
        region_from="given" if region else None,
    )
    countries = _campaign_countries(engine, campaign, country)
    if region is None:
        reader.region = report.region = _campaign_region(countries)
        report.region_from = "campaign" if report.region else None
    policy = _campaign_policy(countries)
    if policy is not None:
        reader.foreign = functools.partial(foreign_number, campaign, policy)
    if dry_run:
        _dry_run(engine, reader, campaign, Path(path), report, progress)
    else:
        _staged_import(engine, reader, campaign, Path(path), report, progress)
    report.rows = reader.rows_read
    report.problems = list(reader.problems)  # the first 1,000; all are in the file
    report.rejected = len(reader.problems)
    report.formula_like_fields = reader.formula_fields
    report.phonetic_duplicate_groups = len(report.groups)
    if reader.problems and not dry_run:
        target = Path(path).with_suffix(Path(path).suffix + ".rejected.csv")
        reader.problems.write_csv(target)
        report.rejected_file = str(target)
    reader.problems.close()
    return report


def _campaign_countries(engine: Engine, campaign: str, configured: str | None) -> list[str]:
    """The campaign's country as configured, then as on its row (one read),
    the ones given: what the import reads national numbers as, and the
    pack its rows are checked against."""
    with engine.connect() as conn:
        stored = conn.execute(
            select(db.campaign.c.country).where(db.campaign.c.name == campaign)
        ).scalar()
    return [country for country in (configured, stored) if country]


def _campaign_region(countries: list[str]) -> str | None:
    """The first of ``countries`` phonenumbers knows as a region, else None
    (a hand-edited row's country may be none)."""
    for country in countries:
        try:
            return check_region(country)
        except ValueError:
            continue
    return None


def _campaign_policy(countries: list[str]) -> Policy | None:
    """The country pack the campaign dials under (the first of ``countries``
    that has one), None when none does: its numbers of another country are
    rejected at import (QA6 F3), and the gate refuses them anyway."""
    for country in countries:
        try:
            return policy_for(country)
        except PolicyError:
            continue
    return None


def _dry_run(
    engine: Engine,
    reader: ListReader,
    campaign: str,
    path: Path,
    report: ImportReport,
    progress: Callable[[int, float], None] | None,
) -> None:
    """Everything an import does, in one transaction that is rolled back."""
    try:
        with engine.begin() as conn:
            campaign_id = _campaign(conn, campaign)
            list_id = _list(conn, campaign_id, path.name, _source(path))
            _hold_write_lock(conn, list_id)
            seen = SeenNumbers()
            for batch in _batches(reader, seen, report, progress):
                _write(conn, campaign_id, list_id, batch, report, "new", [])
            report.groups = _phonetic_groups(conn, list_id)
            raise _DryRun
    except _DryRun:
        pass


def _staged_import(
    engine: Engine,
    reader: ListReader,
    campaign: str,
    path: Path,
    report: ImportReport,
    progress: Callable[[int, float], None] | None,
) -> None:
    with engine.begin() as conn:
        campaign_id = _campaign(conn, campaign)
        list_id, state = _stage_list(conn, campaign_id, path.name, _source(path))
    report.resumed = state == "resumed"
    if state == "switching":  # an earlier import was cut short in its switch
        _go_live(engine, list_id)
        _stage_list_again(engine, list_id)
    status = "staged" if _state_of(engine, list_id) == "adding" else "new"
    created: list[int] = []
    try:
        seen = SeenNumbers()
        written = 0
        with engine.connect() as conn, _batch_durability(conn):
            for batch in _batches(reader, seen, report, progress):
                with conn.begin():
                    _hold_write_lock(conn, list_id)
                    _write(conn, campaign_id, list_id, batch, report, status, created)
                    written += 1
                    if written in ANALYZE_AFTER and conn.dialect.name == "postgresql":
                        # a bulk load outgrows the planner's statistics: without
                        # fresh ones PostgreSQL scans the growing tables for
                        # every batch's look-ups (quadratic)
                        conn.execute(text("ANALYZE record, contact_phone, contact"))
            report.groups = _phonetic_groups(conn, list_id)
            conn.rollback()  # the read's transaction
        _go_live(engine, list_id)
    except BaseException:
        _discard(engine, list_id, created, reason="the import failed midway")
        raise


def _source(path: Path) -> str:
    """Where the list came from, cut to its column (it only informs)."""
    return str(path)[: column_limit(db.dial_list.c.source)]


@contextlib.contextmanager
def _batch_durability(conn: Connection) -> Iterator[None]:
    """SQLite's ``synchronous = NORMAL`` on the import's own connection while
    it writes its batches: in WAL mode a commit then waits for no fsync (20 ms
    a batch here, a seventh of a million-row import).  A power cut can lose
    the last batches, which the same import run again puts back (the list is
    not dialed until whole); the server's own connections keep ``FULL``."""
    if conn.dialect.name != "sqlite":
        yield
        return
    conn.exec_driver_sql("PRAGMA synchronous=NORMAL")
    conn.commit()  # SQLAlchemy's autobegun transaction around the pragma
    try:
        yield
    finally:
        if conn.in_transaction():
            conn.rollback()
        conn.exec_driver_sql("PRAGMA synchronous=FULL")
        conn.commit()


def _batches(
    reader: ListReader,
    seen: SeenNumbers,
    report: ImportReport,
    progress: Callable[[int, float], None] | None,
) -> Iterator[list[ListRow]]:
    """The file's rows in batches of :data:`BATCH`, duplicates in the file
    counted and left out, rows the database cannot hold rejected (with the
    reader's own); progress reported after each batch."""
    batch: list[ListRow] = []
    for row in reader:
        problem = _unstorable(row)
        if problem is not None:
            reader.problems.append(problem)
            continue
        if not seen.add(row.number.e164):
            report.duplicates += 1
            continue
        batch.append(row)
        if len(batch) >= BATCH:
            yield batch
            batch = []
            if progress:
                progress(reader.rows_read, reader.position())
    if batch:
        yield batch


def _unstorable(row: ListRow) -> RowProblem | None:
    """Why the store cannot keep ``row`` although the reader took it: a
    priority beyond an INTEGER column."""
    low, high = _INTEGER
    if not low <= row.priority <= high:
        return RowProblem(row.row, "priority", f"a whole number from {low} to {high}")
    return None


def _stage_list(conn: Connection, campaign_id: int, name: str, source: str) -> tuple[int, str]:
    """The list's row, marked as being imported: (id, what was found):
    "created", "live" (records will be added staged), "resumed" (an import
    that did not end: go on with it) or "switching"."""
    t = db.dial_list
    found = conn.execute(
        select(t.c.id, t.c.import_state).where(
            and_(t.c.campaign_id == campaign_id, t.c.name == name)
        )
    ).first()
    if found is None:
        list_id = db.insert_id(
            conn,
            insert(t).values(
                campaign_id=campaign_id, name=name, source=source, active=False, import_state="new"
            ),
        )
        return list_id, "created"
    if found.import_state == "switching":
        return found.id, "switching"
    if found.import_state in ("new", "adding"):
        return found.id, "resumed"
    conn.execute(update(t).where(t.c.id == found.id).values(import_state="adding"))
    return found.id, "live"


def _stage_list_again(engine: Engine, list_id: int) -> None:
    t = db.dial_list
    with engine.begin() as conn:
        conn.execute(update(t).where(t.c.id == list_id).values(import_state="adding"))


def _state_of(engine: Engine, list_id: int) -> str | None:
    t = db.dial_list
    with engine.connect() as conn:
        return conn.execute(select(t.c.import_state).where(t.c.id == list_id)).scalar()


#: staged records made "new" per transaction when a re-import goes live
SWITCH_BATCH = 5000


def _go_live(engine: Engine, list_id: int) -> None:
    """Make the imported list dialable: a new list is switched on in one
    small transaction; staged records of a live list are made ``new`` a few
    thousand at a time (the list is marked ``switching`` first, so that a
    switch cut short is finished, not forgotten)."""
    t, r = db.dial_list, db.record
    with engine.begin() as conn:
        state = conn.execute(select(t.c.import_state).where(t.c.id == list_id)).scalar()
        if state == "new":
            conn.execute(update(t).where(t.c.id == list_id).values(active=True, import_state=None))
            return
        conn.execute(update(t).where(t.c.id == list_id).values(import_state="switching"))
    while True:
        with engine.begin() as conn:
            ids = (
                select(r.c.id)
                .where(r.c.list_id == list_id, r.c.status == "staged")
                .limit(SWITCH_BATCH)
                .scalar_subquery()
            )
            done = conn.execute(update(r).where(r.c.id.in_(ids)).values(status="new")).rowcount
        if not done:
            break
    with engine.begin() as conn:
        conn.execute(update(t).where(t.c.id == list_id).values(import_state=None))


def _discard(engine: Engine, list_id: int, created: list[int], reason: str) -> None:
    """Take back what an unfinished import wrote: its staged records (all
    records of a list it created, and the list), and the contacts it created
    that nothing else refers to.  A discard that fails itself leaves the
    list marked as being imported: not dialed, and resumable."""
    t, r = db.dial_list, db.record
    try:
        with engine.begin() as conn:
            state = conn.execute(select(t.c.import_state).where(t.c.id == list_id)).scalar()
        if state == "switching":
            return  # every row is written: the next import finishes the switch
        staged = (
            r.c.list_id == list_id
            if state == "new"
            else and_(r.c.list_id == list_id, r.c.status == "staged")
        )
        while True:
            with engine.begin() as conn:
                ids = select(r.c.id).where(staged).limit(SWITCH_BATCH).scalar_subquery()
                if not conn.execute(delete(r).where(r.c.id.in_(ids))).rowcount:
                    break
        for start in range(0, len(created), SWITCH_BATCH):
            _drop_contacts(engine, created[start : start + SWITCH_BATCH])
        with engine.begin() as conn:
            if state == "new":
                conn.execute(delete(t).where(t.c.id == list_id))
            else:
                conn.execute(update(t).where(t.c.id == list_id).values(import_state=None))
        log.warning("list %s: import discarded (%s)", list_id, reason)
    except Exception as exc:
        if db.transient(exc):  # the database went away: said in one line, not three tracebacks
            log.warning(
                "list %s: the unfinished import stays staged (not dialed; the same import"
                " resumes it): the database went away (%s)",
                list_id,
                type(exc).__name__,
            )
        else:
            log.exception(
                "list %s: discarding an unfinished import failed; it stays staged", list_id
            )


def _drop_contacts(engine: Engine, ids: list[int]) -> None:
    """Delete the contacts among ``ids`` that no record, consent,
    interaction or attempt refers to (an import's own, unused ones)."""
    c, cp = db.contact, db.contact_phone
    with engine.begin() as conn:
        used: set[int] = set()
        for table in (db.record, db.consent, db.interaction):
            if "contact_id" in table.c:
                used.update(
                    conn.execute(
                        select(table.c.contact_id).where(table.c.contact_id.in_(ids))
                    ).scalars()
                )
        unused = [i for i in ids if i not in used]
        if unused:
            conn.execute(delete(cp).where(cp.c.contact_id.in_(unused)))
            conn.execute(delete(c).where(c.c.id.in_(unused)))


def discard_import(engine: Engine, campaign: str, name: str) -> dict[str, Any]:
    """``dirigent lists discard``: drop an import that was killed midway
    (its list marked "new" or "adding").  The contacts it created stay (the
    process that knew them is gone); they have no records and are not dialed."""
    t = db.dial_list
    with engine.connect() as conn:
        campaign_id = conn.execute(
            select(db.campaign.c.id).where(db.campaign.c.name == campaign)
        ).scalar()
        row = conn.execute(
            select(t.c.id, t.c.import_state).where(t.c.campaign_id == campaign_id, t.c.name == name)
        ).first()
    if row is None:
        raise NotFound("list", f"no list {name!r} in campaign {campaign!r}")
    if row.import_state not in ("new", "adding"):
        raise Invalid(
            "list",
            f"{name!r} is not an unfinished import"
            + (" (its switch is under way: import it again to finish)" if row.import_state else ""),
        )
    _discard(engine, row.id, [], reason="discarded on request")
    return {"campaign": campaign, "list": name, "discarded": True}


class SeenNumbers:
    """The numbers met so far in one file, for its duplicates.

    A million numbers as Python strings in a set take about 90 MB; here they
    are 64-bit integers (an E.164 number has at most 15 digits and never a
    leading zero) in a sorted NumPy array, 8 bytes each, with a small set of
    the newest ones merged in every few thousand."""

    MERGE_EVERY = 8192

    def __init__(self) -> None:
        self._sorted = np.empty(0, dtype=np.int64)
        self._recent: set[int] = set()

    def add(self, e164: str) -> bool:
        """True the first time ``e164`` is seen."""
        value = int(e164[1:])
        if value in self._recent:
            return False
        i = int(np.searchsorted(self._sorted, value))
        if i < len(self._sorted) and self._sorted[i] == value:
            return False
        self._recent.add(value)
        if len(self._recent) >= self.MERGE_EVERY:
            fresh = np.fromiter(self._recent, dtype=np.int64, count=len(self._recent))
            self._sorted = np.union1d(self._sorted, fresh)
            self._recent.clear()
        return True

    def __len__(self) -> int:
        return len(self._sorted) + len(self._recent)


#: contact columns counted as "data" when suggesting which duplicate to keep
_FILLED = ("first_name", "last_name", "company", "street", "postal_code", "city", "email")


def _phonetic_groups(conn: Connection, list_id: int) -> list[dict[str, Any]]:
    """Possible duplicates among the list's records, read back from the
    database in phonetic-key order, so only one block is in memory at a
    time (a million rows held for grouping took about 150 MB)."""
    c, r = db.contact, db.record
    rows = conn.execution_options(yield_per=5000).execute(
        select(c.c.phonetic_key, r.c.e164, *(c.c[name] for name in _FILLED))
        .join(c, c.c.id == r.c.contact_id)
        .where(r.c.list_id == list_id, c.c.phonetic_key.is_not(None), c.c.phonetic_key != "|")
        .order_by(c.c.phonetic_key)
    )

    def blocks() -> Iterator[tuple[str, list[Member]]]:
        for key, same in itertools.groupby(rows, key=lambda x: x.phonetic_key):
            members = []
            for x in same:
                fields = {name: getattr(x, name) or "" for name in _FILLED}
                members.append(member(x.e164, fields))
            yield key, members

    return block_groups(blocks())


class UnknownCampaign(LookupError):
    """A list import into a campaign nobody configured or created."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name, self.known = name, known
        listed = ", ".join(known[:20]) if known else "none yet"
        # how to make a new one is the caller's to say (``--create``, ``?create=1``)
        super().__init__(f"unknown campaign {name!r} (known: {listed})")


def _require_campaign(engine: Engine, name: str) -> None:
    with engine.connect() as conn:
        names = [
            n for (n,) in conn.execute(select(db.campaign.c.name).order_by(db.campaign.c.name))
        ]
    if name not in names:
        raise UnknownCampaign(name, names)


def _campaign(conn: Connection, name: str) -> int:
    found = conn.execute(select(db.campaign.c.id).where(db.campaign.c.name == name)).scalar()
    if found is not None:
        return found
    return db.insert_id(conn, insert(db.campaign).values(name=name, settings={}))


def _list(conn: Connection, campaign_id: int, name: str, source: str) -> int:
    t = db.dial_list
    found = conn.execute(
        select(t.c.id).where(and_(t.c.campaign_id == campaign_id, t.c.name == name))
    ).scalar()
    if found is not None:
        return found
    return db.insert_id(conn, insert(t).values(campaign_id=campaign_id, name=name, source=source))


def _write(
    conn: Connection,
    campaign_id: int,
    list_id: int,
    batch: list[ListRow],
    report: ImportReport,
    status: str,
    created: list[int],
) -> None:
    if not batch:
        return
    numbers = [r.number.e164 for r in batch]
    rec, lst, phone = db.record, db.dial_list, db.contact_phone
    found = conn.execute(
        select(rec.c.e164, rec.c.id, rec.c.status).where(
            rec.c.list_id == list_id, _among(conn, rec.c.e164, numbers)
        )
    ).all()
    existing = {e164: rid for e164, rid, _status in found}
    # written by this import before it was cut short (a resumed import): every
    # record of a list not yet switched on, a live list's staged ones -- they
    # are imported, not updated
    ours = {e164 for e164, _rid, was in found if status == "new" or was == "staged"}
    elsewhere = set(
        conn.execute(
            select(rec.c.e164)
            .join(lst, lst.c.id == rec.c.list_id)
            .where(
                lst.c.campaign_id == campaign_id,
                lst.c.active.is_(True),
                lst.c.id != list_id,
                _among(conn, rec.c.e164, numbers),
            )
        ).scalars()
    )
    contacts = dict(
        conn.execute(
            select(phone.c.e164, phone.c.contact_id).where(_among(conn, phone.c.e164, numbers))
        ).all()
    )
    new_rows = [
        r for r in batch if r.number.e164 not in existing and r.number.e164 not in elsewhere
    ]
    report.duplicates += sum(
        1 for r in batch if r.number.e164 in elsewhere and r.number.e164 not in existing
    )
    # the CRM's word on the contacts it lists again (a corrected name, a new
    # e-mail): a re-imported row, or a new record of a contact known already
    refreshed = [
        (contacts[r.number.e164], r)
        for r in batch
        if r.number.e164 in contacts
        and (r.number.e164 in existing or r.number.e164 not in elsewhere)
    ]
    if refreshed:
        _refresh_contacts(conn, refreshed)
    needing_contact = [r for r in new_rows if r.number.e164 not in contacts]
    if needing_contact:
        ids = _reserve_ids(conn, "contact", len(needing_contact))
        _insert_many(
            conn,
            "contact",
            ("id", *_CONTACT_COLUMNS),
            [(cid, *_contact_values(r)) for cid, r in zip(ids, needing_contact, strict=True)],
        )
        _insert_many(
            conn,
            "contact_phone",
            ("contact_id", "e164", "number_type", "region", "timezones"),
            [
                (
                    cid,
                    r.number.e164,
                    r.number.number_type,
                    r.number.region,
                    ",".join(r.number.timezones),
                )
                for cid, r in zip(ids, needing_contact, strict=True)
            ],
        )
        contacts.update({r.number.e164: cid for cid, r in zip(ids, needing_contact, strict=True)})
        created.extend(ids)
    if new_rows:
        _insert_many(
            conn,
            "record",
            ("list_id", "contact_id", "e164", "status", "priority", "extra"),
            [
                (
                    list_id,
                    contacts[r.number.e164],
                    r.number.e164,
                    status,
                    r.priority,
                    json.dumps(r.extra),
                )
                for r in new_rows
            ],
        )
        report.imported += len(new_rows)
    updates = [
        {"rid": existing[r.number.e164], "new_priority": r.priority, "new_extra": r.extra}
        for r in batch
        if r.number.e164 in existing
    ]
    if updates:  # one executemany for the batch (a re-import updates every row)
        conn.execute(
            update(rec)
            .where(rec.c.id == bindparam("rid"))
            .values(priority=bindparam("new_priority"), extra=bindparam("new_extra")),
            updates,
        )
        resumed = sum(1 for r in batch if r.number.e164 in ours)
        report.imported += resumed
        report.updated += len(updates) - resumed


#: the contact columns an import fills, in the order of ``_contact_values``
_CONTACT_COLUMNS = (*db.CONTACT_FIELDS, "custom")

#: the contact fields a re-import sets where its row gives a value (a file
#: without an e-mail column, or a row whose e-mail is empty, wipes none);
#: the display name and phonetic key follow from the names that result.  Its
#: extra columns are the record's (``record.extra``, replaced as before).
_GIVEN = tuple(n for n in db.CONTACT_FIELDS if n not in ("display_name", "phonetic_key"))


def _refresh_contacts(conn: Connection, rows: list[tuple[int, ListRow]]) -> None:
    """The batch's known contacts (``(id, row)``) as the CRM has them now,
    in one read and one ``executemany``: the screen pop, the export and the
    duplicate search show the corrected name, not the first import's."""
    c = db.contact
    ids = [contact_id for contact_id, _ in rows]
    stored = {
        row.id: row._asdict()
        for row in conn.execute(select(c.c.id, *(c.c[n] for n in _GIVEN)).where(c.c.id.in_(ids)))
    }
    params = []
    for contact_id, r in rows:
        was = stored.get(contact_id)
        if was is None:
            continue
        given = dict(zip(_CONTACT_COLUMNS, _contact_values(r), strict=True))
        now = {n: given[n] or was[n] for n in _GIVEN}
        if now == {n: was[n] for n in _GIVEN}:
            continue  # nothing new: no write
        names = [x for x in (now["first_name"], now["last_name"]) if x]
        display = " ".join(names) or now["company"] or ""
        key = phonetic_key(now["first_name"] or "", now["last_name"] or "")
        params.append(
            {"cid": contact_id, "new_display": display[:_DISPLAY], "new_key": key[:_PHONETIC]}
            | {f"new_{n}": v for n, v in now.items()}
        )
    if params:
        conn.execute(
            update(c)
            .where(c.c.id == bindparam("cid"))
            .values(
                display_name=bindparam("new_display"),
                phonetic_key=bindparam("new_key"),
                **{n: bindparam(f"new_{n}") for n in _GIVEN},
            ),
            params,
        )


def _among(conn: Connection, column: Any, values: list[str]) -> Any:
    """``column IN values``; on PostgreSQL as ``= ANY(array)`` with one
    bound array: a thousand separate parameters made every look-up a new
    statement to parse and plan."""
    if conn.dialect.name == "postgresql":
        return column == any_(literal(values, ARRAY(String)))
    return column.in_(values)


#: the derived columns' sizes: a display name (first and last name, each
#: within its own column, may be longer together) and the phonetic key are
#: cut to fit; the names themselves are kept whole in their own columns
_DISPLAY = column_limit(db.contact.c.display_name)
_PHONETIC = column_limit(db.contact.c.phonetic_key)


def _contact_values(r: ListRow) -> tuple[Any, ...]:
    f = r.fields
    display = " ".join(x for x in (f.get("first_name"), f.get("last_name")) if x) or f.get(
        "company", ""
    )
    return (
        display[:_DISPLAY],
        f.get("first_name") or None,
        f.get("last_name") or None,
        f.get("company") or None,
        f.get("street") or None,
        f.get("postal_code") or None,
        f.get("city") or None,
        f.get("country") or r.number.region or None,
        f.get("email") or None,
        r.phonetic[:_PHONETIC],
        json.dumps(r.extra),
    )


def _reserve_ids(conn: Connection, table: str, count: int) -> range | list[int]:
    """``count`` fresh primary keys of ``table``, so that a batch's rows can
    be written in one ``executemany`` without ``RETURNING`` (which SQLAlchemy
    runs row by row on SQLite to keep the order).

    PostgreSQL hands them out from the table's sequence.  On SQLite each
    batch's transaction takes the write lock before it reads the largest id
    (``_hold_write_lock``), so no one else can take the ids after it."""
    if conn.dialect.name == "postgresql":
        return list(
            conn.execute(
                text(
                    "SELECT nextval(pg_get_serial_sequence(:t, 'id')) FROM generate_series(1, :n)"
                ),
                {"t": table, "n": count},
            ).scalars()
        )
    top = conn.exec_driver_sql(f"SELECT coalesce(max(id), 0) FROM {table}").scalar_one()
    return range(top + 1, top + 1 + count)


def _hold_write_lock(conn: Connection, list_id: int) -> None:
    """Take SQLite's write lock now (a write opens the transaction's lock):
    the ids ``_reserve_ids`` reads stay free until the batch commits.
    Readers (the running server) go on reading the last committed state.
    On PostgreSQL the row lock keeps a second import of the same list
    waiting until this one ends."""
    t = db.dial_list
    conn.execute(update(t).where(t.c.id == list_id).values(active=t.c.active))  # changes nothing


def _insert_many(
    conn: Connection, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]
) -> None:
    """One ``executemany`` straight on the driver (SQLAlchemy's per-row
    parameter processing was a fifth of an import), or on PostgreSQL one
    ``COPY … FROM STDIN`` in the import's transaction (psycopg's
    ``executemany`` still sends a statement per row: two thirds of a
    PostgreSQL import).  JSON values come already encoded; the values are
    bound or streamed, never spliced into the SQL."""
    if conn.dialect.name == "postgresql":
        import psycopg

        raw = conn.connection.driver_connection
        assert isinstance(raw, psycopg.Connection), raw
        with (
            raw.cursor() as cur,
            cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        return
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(mark for _ in columns)})"
    conn.exec_driver_sql(sql, rows)


class TerminalProgress:
    """A progress bar on stderr when it is a terminal (tqdm): the share of
    the file read, rows so far, rate and time left."""

    def __init__(self, path: str | Path) -> None:
        from tqdm import tqdm

        self.total = 1000  # per mille of the file read
        self.bar = tqdm(
            total=self.total,
            desc=Path(path).name,
            unit="‰",
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix} [{elapsed}<{remaining}]",
            file=sys.stderr,
            leave=True,
        )

    def __call__(self, rows: int, fraction: float) -> None:
        self.bar.n = int(fraction * self.total)
        self.bar.set_postfix_str(f"{rows:,} rows", refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.n = self.total
        self.bar.close()


def terminal_progress(path: str | Path) -> TerminalProgress | None:
    """The progress bar, or None when stderr is not a terminal (logs, CI)."""
    return TerminalProgress(path) if sys.stderr.isatty() else None
