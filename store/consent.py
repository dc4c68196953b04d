"""Do-not-call entries and consent records in the database, and the lookups
(``core.consent``'s ports) the compliance gate (``dialer/compliance.py``)
reads them through.

Consent records are never overwritten: a withdrawal is a new row, and the
latest record at the time asked about decides (UWG §7a: the proof of consent
is kept).  An opt-out ("do not call") is a global DNC entry at once.
Blocking database work: run it in a thread or a writer, not on the loop.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Connection, Engine, and_, insert, or_, select

from core.consent import CHANNELS
from core.numbers import Rejected, normalize
from dialer.lists import ListError, ListReader, detect_encoding
from store import db
from store.db import column_limit


@dataclass
class DncResult:
    added: int = 0
    already: int = 0
    #: (the input, why it was refused)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    #: each number accepted, in E.164: "added" or "already" (listed before),
    #: for the audit of what an entry changed
    numbers: dict[str, str] = field(default_factory=dict)


def check_fits(column: Column[Any], value: str | None, field: str) -> None:
    """Refuse ``value`` for ``field`` (the input's name) if ``column`` cannot
    hold it, before anything is written: the same answer on both databases."""
    limit = column_limit(column)
    if value is not None and limit is not None and len(value) > limit:
        raise ListError(field, f"at most {limit} characters ({len(value)} given)")


def _campaign_id(
    conn: Connection, name: str | None, configured: Collection[str] = ()
) -> int | None:
    """The campaign's row id, or a :class:`ListError` naming ``campaign`` if
    there is no such campaign: a campaign exists once it has a row (the server
    started it, or a list was imported with ``--create``) or is one of
    ``configured`` (the ``[[campaign]]`` tables; its row is made here, as a
    list import does).  A do-not-call entry never makes a campaign of its own:
    one for a misspelt name was stored against a phantom campaign nothing
    dials, while the real campaign kept dialling the number."""
    if name is None:
        return None
    found = conn.execute(select(db.campaign.c.id).where(db.campaign.c.name == name)).scalar()
    if found is None and name in configured:
        found = db.insert_id(conn, insert(db.campaign).values(name=name, settings={}))
    if found is None:
        raise ListError("campaign", f"unknown campaign {name!r}")
    return found


def require_campaign(engine: Engine, name: str, configured: Collection[str] = ()) -> None:
    """A :class:`ListError` naming ``campaign`` unless the campaign exists
    (a row, or one of ``configured``): for a look-up that writes nothing."""
    if name in configured:
        return
    with engine.connect() as conn:
        _campaign_id(conn, name)


def add_dnc(
    engine: Engine,
    numbers: Iterable[str],
    *,
    campaign: str | None = None,
    region: str | None = None,
    source: str = "manual",
    reason: str | None = None,
    configured: Collection[str] = (),
) -> DncResult:
    """Add numbers to the global list (``campaign=None``) or a campaign's.

    A ``source``, ``reason`` or campaign name longer than its column, or a
    campaign that does not exist (no row and not in ``configured``), is a
    :class:`ListError` naming it, raised before any number is written."""
    check_fits(db.dnc.c.source, source, "source")
    check_fits(db.dnc.c.reason, reason, "reason")
    check_fits(db.campaign.c.name, campaign, "campaign")
    result = DncResult()
    with engine.begin() as conn:
        campaign_id = _campaign_id(conn, campaign, configured)
        for raw in numbers:
            number = normalize(raw, region)
            if isinstance(number, Rejected):
                result.rejected.append((raw, number.reason))
                continue
            t = db.dnc
            clause = (
                t.c.campaign_id.is_(None) if campaign_id is None else t.c.campaign_id == campaign_id
            )
            if conn.execute(select(t.c.id).where(t.c.e164 == number.e164, clause)).first():
                if number.e164 not in result.numbers:
                    result.numbers[number.e164] = "already"
                result.already += 1
                continue
            conn.execute(
                insert(t).values(
                    e164=number.e164, campaign_id=campaign_id, source=source, reason=reason
                )
            )
            result.numbers[number.e164] = "added"
            result.added += 1
    return result


def import_dnc(
    engine: Engine,
    path: str | Path,
    *,
    campaign: str | None = None,
    region: str | None = None,
    reason: str | None = None,
    configured: Collection[str] = (),
) -> DncResult:
    """A DNC file: a CSV with a phone column, or one number per line.

    The source is ``file:<name>``, cut to its column (it only says where the
    entries came from; a file's name may be longer than the column).  The
    campaign is checked as by :func:`add_dnc`, before the file is read."""
    check_fits(db.dnc.c.reason, reason, "reason")
    check_fits(db.campaign.c.name, campaign, "campaign")
    if campaign is not None:
        require_campaign(engine, campaign, configured)
    source = f"file:{Path(path).name}"[: column_limit(db.dnc.c.source)]
    try:
        with open(path, "rb") as fh:
            text = fh.read(4096)
    except OSError as exc:  # a folder, a file not there: named, not Python's words
        raise ListError("file", f"cannot read {path}: {exc.strerror}") from None
    if text.startswith(b"PK\x03\x04") or b";" in text or b"," in text or b"\t" in text:
        reader = ListReader(path, region=region)
        numbers = [row.number.e164 for row in reader]
        result = add_dnc(
            engine,
            numbers,
            campaign=campaign,
            source=source,
            reason=reason,
            configured=configured,
        )
        result.rejected += [(f"row {p.row}", p.reason) for p in reader.problems]
        return result
    # UTF-8 or Windows-1252 as a list's CSV; NUL bytes (UTF-16, a binary file)
    # refused; an empty file (an export with no new numbers) adds nothing
    try:
        encoding = detect_encoding(text) if text else "utf-8"
    except ListError as exc:  # which of the files given
        raise ListError("file", f"{path}: {exc.reason}") from None
    lines = Path(path).read_text(encoding=encoding, errors="replace").splitlines()
    return add_dnc(
        engine,
        [line for line in lines if line.strip()],
        campaign=campaign,
        region=region,
        source=source,
        reason=reason,
        configured=configured,
    )


def opt_out(engine: Engine, e164: str, reason: str = "do not call (disposition)") -> None:
    """The person asked not to be called: global DNC, for every campaign, at once."""
    add_dnc(engine, [e164], source="disposition", reason=reason)


def record_consent(
    engine: Engine,
    contact_id: int,
    channel: str,
    granted: bool,
    *,
    source: str,
    proof_ref: str | None = None,
    given_at: dt.datetime | None = None,
) -> None:
    if channel not in CHANNELS:
        raise ListError("channel", f"one of {', '.join(CHANNELS)}")
    if not source.strip():
        raise ListError("source", "required: where the consent (or withdrawal) came from")
    if granted and not (proof_ref or "").strip():
        raise ListError("proof_ref", "required for a grant: UWG 7a asks for documented proof")
    check_fits(db.consent.c.source, source, "source")
    check_fits(db.consent.c.proof_ref, proof_ref, "proof_ref")
    with engine.begin() as conn:
        if (
            conn.execute(select(db.contact.c.id).where(db.contact.c.id == contact_id)).first()
            is None
        ):
            raise ListError("contact", f"unknown contact {contact_id}")
        conn.execute(
            insert(db.consent).values(
                contact_id=contact_id,
                channel=channel,
                granted=granted,
                source=source,
                proof_ref=proof_ref,
                given_at=given_at or dt.datetime.now(dt.UTC),
            )
        )


class DbDnc:
    """``core.consent.DncLookup`` over the dnc table."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def blocked(self, e164: str, campaign: str) -> str | None:
        t, c = db.dnc, db.campaign
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.c.campaign_id)
                .select_from(t.outerjoin(c, c.c.id == t.c.campaign_id))
                .where(t.c.e164 == e164, or_(t.c.campaign_id.is_(None), c.c.name == campaign))
            ).all()
        if not rows:
            return None
        return "global" if any(r.campaign_id is None for r in rows) else "campaign"


class DbConsent:
    """``core.consent.ConsentLookup`` over the consent table (latest record wins)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def granted(self, contact: str, channel: str, at: dt.datetime) -> bool:
        t = db.consent
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.c.granted)
                .where(
                    and_(t.c.contact_id == int(contact), t.c.channel == channel, t.c.given_at <= at)
                )
                .order_by(t.c.given_at.desc(), t.c.id.desc())
                .limit(1)
            ).first()
        return bool(row and row.granted)
