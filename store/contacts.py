"""Finding contacts by phone number: who a number belongs to, with the ids
that consent and merge commands take, the consent in force per channel, the
do-not-call entries and the records that dial the number.

A campaign manager has a number (from a complaint, a CRM export, a call)
and needs the contact behind it; the ids were visible nowhere before.
Blocking database work: run it in a thread or a writer, not on the loop.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Engine, select

from core.errors import Invalid
from core.numbers import Rejected, normalize
from store import db


@dataclass(frozen=True)
class ConsentState:
    """The latest consent record of one channel (it decides, see compliance_store)."""

    channel: str
    granted: bool
    source: str
    given_at: str


@dataclass(frozen=True)
class DialRecord:
    campaign: str
    list: str
    record: int
    status: str
    attempts: int
    last_outcome: str | None


@dataclass(frozen=True)
class ContactMatch:
    id: int
    display_name: str
    company: str | None
    city: str | None
    phones: tuple[str, ...]
    consent: tuple[ConsentState, ...]
    records: tuple[DialRecord, ...]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class NumberLookup:
    e164: str
    do_not_call: tuple[str, ...]  # "global" or campaign names
    contacts: tuple[ContactMatch, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "e164": self.e164,
            "do_not_call": list(self.do_not_call),
            "contacts": [c.as_dict() for c in self.contacts],
        }


def e164_of(raw: str, region: str | None = None, region_example: str | None = None) -> str:
    """``raw`` in E.164, or ValueError naming the field and why; a national
    number without a region says how each face gives one (``region_example``:
    ``--region DE``, ``?region=DE``; QA12 finding 2: the API named the option)."""
    number = normalize(raw, region)
    if isinstance(number, Rejected):
        example = f", e.g. {region_example}" if region_example else ""
        national = not (region or raw.strip().startswith("+"))
        hint = f" (national numbers need a region{example})" if national else ""
        raise Invalid("phone", f"{raw!r}: {number.reason}{hint}")
    return number.e164


def find_by_phone(
    engine: Engine, raw: str, region: str | None = None, region_example: str | None = None
) -> NumberLookup:
    e164 = e164_of(raw, region, region_example)
    c, cp, r, dl, camp = db.contact, db.contact_phone, db.record, db.dial_list, db.campaign
    with engine.connect() as conn:
        ids = [
            i
            for (i,) in conn.execute(
                select(cp.c.contact_id).where(cp.c.e164 == e164).order_by(cp.c.contact_id)
            )
        ]
        dnc = [
            name or "global"
            for (name,) in conn.execute(
                select(camp.c.name)
                .select_from(db.dnc.outerjoin(camp, camp.c.id == db.dnc.c.campaign_id))
                .where(db.dnc.c.e164 == e164)
                .order_by(camp.c.name)
            )
        ]
        matches = []
        for contact_id in ids:
            row = conn.execute(
                select(c.c.display_name, c.c.company, c.c.city).where(c.c.id == contact_id)
            ).one()
            phones = tuple(
                p
                for (p,) in conn.execute(
                    select(cp.c.e164).where(cp.c.contact_id == contact_id).order_by(cp.c.id)
                )
            )
            latest: dict[str, ConsentState] = {}
            for ch, granted, source, given in conn.execute(
                select(
                    db.consent.c.channel,
                    db.consent.c.granted,
                    db.consent.c.source,
                    db.consent.c.given_at,
                )
                .where(db.consent.c.contact_id == contact_id)
                .order_by(db.consent.c.given_at, db.consent.c.id)
            ):
                latest[ch] = ConsentState(ch, bool(granted), source, _iso(given))
            records = tuple(
                DialRecord(cname, lname, rid, status, attempts, outcome)
                for cname, lname, rid, status, attempts, outcome in conn.execute(
                    select(
                        camp.c.name,
                        dl.c.name,
                        r.c.id,
                        r.c.status,
                        r.c.attempts,
                        r.c.last_outcome,
                    )
                    .select_from(
                        r.join(dl, dl.c.id == r.c.list_id).join(camp, camp.c.id == dl.c.campaign_id)
                    )
                    .where(r.c.contact_id == contact_id, r.c.e164 == e164)
                    .order_by(camp.c.name, dl.c.name)
                )
            )
            matches.append(
                ContactMatch(
                    contact_id,
                    row.display_name,
                    row.company,
                    row.city,
                    phones,
                    tuple(latest[k] for k in sorted(latest)),
                    records,
                )
            )
    return NumberLookup(e164, tuple(dnc), tuple(matches))


def _iso(value: dt.datetime | str | None) -> str:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.isoformat()
    return str(value or "")
