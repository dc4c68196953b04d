"""Merging duplicates: one person, one contact, one history.

The import reports groups of records that are probably the same person
(phonetic name and address) and suggests the one with the most data to
keep.  Merging, in one transaction:

* the kept record stays; the others are closed ("merged into record N") and
  keep their own attempts, so no dial is forgotten;
* the other records' contacts are folded into the kept record's contact:
  phone numbers, consent records (moved, never rewritten), interactions and
  records in other lists now belong to it, so the history is one history;
  empty fields of the kept contact are filled from the others, custom fields
  added where the kept contact has none; the emptied contacts are deleted;
* the kept record's extra fields are completed the same way.

A record being dialed right now cannot be merged (try again after the call).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, delete, select, update

from core.errors import Invalid
from store import db
from store.pool import find_campaign_id


class MergeError(Invalid):
    """A merge refused; ``field`` names the input at fault (a 400 to the API)."""


@dataclass
class MergeReport:
    kept: int
    closed: list[int]
    contacts_folded: int
    numbers_moved: int
    consents_moved: int
    interactions_moved: int

    def summary(self) -> dict[str, Any]:
        return {
            "kept": self.kept,
            "closed": self.closed,
            "contacts_folded": self.contacts_folded,
            "numbers_moved": self.numbers_moved,
            "consents_moved": self.consents_moved,
            "interactions_moved": self.interactions_moved,
        }


def _record(conn: Connection, campaign_id: int, e164: str, field: str) -> Any:
    r, lst, h = db.record, db.dial_list, db.hopper
    row = conn.execute(
        select(r, h.c.record_id.label("claimed"))
        .join(lst, lst.c.id == r.c.list_id)
        .outerjoin(h, h.c.record_id == r.c.id)
        .where(lst.c.campaign_id == campaign_id, r.c.e164 == e164)
    ).first()
    if row is None:
        raise MergeError(field, f"no record with number {e164} in this campaign")
    if row.status == "dialing" or row.claimed is not None:
        raise MergeError(field, f"record {row.id} ({e164}) is being dialed; merge after the call")
    return row


def merge(engine: Engine, campaign: str, keep: str, drop: list[str]) -> MergeReport:
    """Merge the records with numbers ``drop`` into the one with ``keep``."""
    if not drop:
        raise MergeError("drop", "give at least one number to merge")
    if keep in drop:
        raise MergeError("drop", f"{keep} is the record to keep")
    c, cp, cs, it, r = db.contact, db.contact_phone, db.consent, db.interaction, db.record
    with engine.begin() as conn:
        try:
            campaign_id = find_campaign_id(conn, campaign)
        except LookupError:
            raise MergeError("campaign", f"unknown campaign {campaign!r}") from None
        kept = _record(conn, campaign_id, keep, "keep")
        others = [_record(conn, campaign_id, e164, "drop") for e164 in dict.fromkeys(drop)]
        target = conn.execute(select(c).where(c.c.id == kept.contact_id)).one()
        fields = {k: getattr(target, k) for k in db.CONTACT_FIELDS}
        custom = dict(target.custom or {})
        extra = dict(kept.extra or {})
        report = MergeReport(kept.id, [], 0, 0, 0, 0)
        folded: set[int] = set()
        for other in others:
            extra = {**(other.extra or {}), **extra}
            conn.execute(
                update(r)
                .where(r.c.id == other.id)
                .values(status="closed", closed_reason=f"merged into record {kept.id}")
            )
            report.closed.append(other.id)
            source = other.contact_id
            if source == target.id or source in folded:
                continue
            folded.add(source)
            old = conn.execute(select(c).where(c.c.id == source)).one()
            for k in db.CONTACT_FIELDS:
                if not fields[k] and getattr(old, k):
                    fields[k] = getattr(old, k)
            custom = {**(old.custom or {}), **custom}
            have = {
                row.e164
                for row in conn.execute(select(cp.c.e164).where(cp.c.contact_id == target.id))
            }
            for phone in conn.execute(select(cp).where(cp.c.contact_id == source)).all():
                if phone.e164 in have:
                    conn.execute(delete(cp).where(cp.c.id == phone.id))
                else:
                    conn.execute(update(cp).where(cp.c.id == phone.id).values(contact_id=target.id))
                    report.numbers_moved += 1
            report.consents_moved += conn.execute(
                update(cs).where(cs.c.contact_id == source).values(contact_id=target.id)
            ).rowcount
            report.interactions_moved += conn.execute(
                update(it).where(it.c.contact_id == source).values(contact_id=target.id)
            ).rowcount
            conn.execute(update(r).where(r.c.contact_id == source).values(contact_id=target.id))
            conn.execute(delete(c).where(c.c.id == source))
            report.contacts_folded += 1
        conn.execute(update(c).where(c.c.id == target.id).values(**fields, custom=custom))
        conn.execute(update(r).where(r.c.id == kept.id).values(extra=extra))
    return report
