"""Dial lists, do-not-call, consent and the address pool for the HTTP API.

The same operations as ``dirigent lists import``, ``dirigent dnc`` and
``dirigent consent``, for a campaign manager's browser or a CRM
integration.  Every method blocks on the database: the API runs them in a
thread.  An upload is written to a private temporary directory under its
own (sanitised) file name, which becomes the list's name, imported in one
transaction, and deleted; rejected rows come back in the answer instead of
a ``.rejected.csv`` beside the file.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import tempfile
from collections.abc import Callable, Collection
from pathlib import Path
from typing import IO, Any, Protocol

from sqlalchemy import Engine, func, select

from core.errors import Invalid, NotFound
from core.numbers import Number, check_region
from dialer.compliance import Campaign, Compliance
from dialer.retry import RetryRules
from store import db
from store.consent import DbConsent, DbDnc, add_dnc, record_consent, require_campaign
from store.lists_import import UnknownCampaign, import_list
from store.pool import MachineCall, apply_disposition, pool_status, set_list_active

#: rejected rows listed in an upload's answer (the counts are always complete)
MAX_PROBLEMS = 1000
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")


def safe_list_name(name: str) -> str:
    """The uploaded file's name without any path or odd characters."""
    base = _SAFE_NAME.sub("_", Path(name.replace("\\", "/")).name).strip(" .")
    if not base:
        raise Invalid("name", "give the file's name (e.g. name=customers.csv)")
    return base[:200]


class CampaignRules(Protocol):
    """What list operations need of a configured campaign: its name, its retry
    rules and its compliance rules (a :class:`dialer.campaign.CampaignSetup`)."""

    @property
    def name(self) -> str: ...

    @property
    def retry(self) -> RetryRules: ...

    def compliance(self) -> Campaign: ...


class ListOps:
    def __init__(
        self,
        engine: Engine,
        campaigns: tuple[CampaignRules, ...] = (),
        *,
        on_machine: Callable[[MachineCall], None] | None = None,
    ) -> None:
        self.engine = engine
        self.campaigns = {c.name: c for c in campaigns}
        #: told (in the API's thread) of a call an agent said was an answering
        #: machine: the running campaign takes the live answer back
        self.on_machine = on_machine
        #: the hours and holidays of a call-back time (its look-ups unused there)
        self._gate = Compliance(DbDnc(engine), DbConsent(engine))

    def import_upload(
        self,
        body: IO[bytes],
        name: str,
        campaign: str,
        *,
        region: str | None = None,
        dry_run: bool = False,
        create: bool = False,
    ) -> dict[str, Any]:
        if not campaign.strip():
            raise Invalid("campaign", "required")
        if region is not None:
            try:
                region = check_region(region)
            except ValueError as exc:
                raise Invalid("region", str(exc)) from None
        directory = Path(tempfile.mkdtemp(prefix="dirigent-upload-"))
        try:
            path = directory / safe_list_name(name)
            with open(path, "wb") as fh:
                shutil.copyfileobj(body, fh, 1 << 20)
            try:
                report = import_list(
                    self.engine,
                    path,
                    campaign,
                    region=region,
                    dry_run=dry_run,
                    create=create,
                    configured=tuple(self.campaigns),
                    country=self._country(campaign),
                )
            except UnknownCampaign as exc:
                raise Invalid("campaign", f"{exc}; &create=1 makes a new one") from None
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        out = report.summary()
        out.pop("rejected_file", None)
        out["list"] = path.name
        out["problems"] = [
            {"row": p.row, "field": p.field, "reason": p.reason}
            for p in report.problems[:MAX_PROBLEMS]
        ]
        out["phonetic_groups"] = report.groups[:MAX_PROBLEMS]
        return out

    def add_dnc(
        self,
        numbers: list[str],
        *,
        campaign: str | None = None,
        region: str | None = None,
        source: str | None = None,
        reason: str | None = None,
    ) -> dict[str, Any]:
        """``POST /api/dnc`` (its body's shape checked by ``cti.schemas.DncRequest``)."""
        if not numbers:
            raise Invalid("numbers", "a non-empty list of phone numbers")
        result = add_dnc(
            self.engine,
            numbers,
            campaign=campaign,
            region=region,
            source=source or "api",
            reason=reason,
            configured=tuple(self.campaigns),
        )
        return {
            "added": result.added,
            "already": result.already,
            "rejected": [{"number": n, "reason": r} for n, r in result.rejected],
            #: each accepted number in E.164: "added", or "already" listed
            "numbers": result.numbers,
        }

    def check_dnc(self, number: str, campaign: str | None) -> dict[str, Any]:
        from core.numbers import Rejected, normalize

        parsed = normalize(number, None)
        if isinstance(parsed, Rejected):
            raise Invalid("number", parsed.reason)
        if campaign is not None:  # a misspelt one is not "not blocked"
            require_campaign(self.engine, campaign, tuple(self.campaigns))
        blocked = DbDnc(self.engine).blocked(parsed.e164, campaign or "")
        return {"number": parsed.e164, "blocked": blocked}

    def add_consent(
        self,
        contact: int,
        channel: str,
        granted: bool,
        *,
        source: str | None = None,
        proof_ref: str | None = None,
    ) -> dict[str, Any]:
        """``POST /api/consent`` (its body's shape: ``cti.schemas.ConsentRequest``)."""
        record_consent(
            self.engine, contact, channel, granted, source=source or "", proof_ref=proof_ref
        )
        return {"contact": contact, "channel": channel, "granted": granted}

    def merge(
        self, campaign: str, keep: str, drop: list[str], region: str | None = None
    ) -> dict[str, Any]:
        """``POST /api/lists/merge`` (its body's shape: ``cti.schemas.MergeRequest``)."""
        from core.numbers import Rejected, normalize
        from store.lists_merge import merge

        def e164(raw: str, key: str) -> str:
            parsed = normalize(raw, region)
            if isinstance(parsed, Rejected):
                raise Invalid(key, f"{raw!r}: {parsed.reason}")
            return parsed.e164

        kept = e164(keep, "keep")
        return merge(self.engine, campaign, kept, [e164(n, "drop") for n in drop]).summary()

    def set_active(self, campaign: str, name: str, active: bool) -> dict[str, Any]:
        """``PATCH /api/lists/<campaign>/<list>`` with ``{"active": true|false}``."""
        return set_list_active(self.engine, campaign, name, active)

    def disposition(
        self,
        ref: str,
        code: str,
        agent: str | None,
        now: float,
        campaigns: Collection[str] | None = None,
        *,
        callback_at: dt.datetime | None = None,
    ) -> dict[str, Any]:
        """``POST /api/interactions/<id>/disposition`` ``{code, callback_at?}``
        (its body's shape: ``cti.schemas.DispositionRequest``; ``campaigns``:
        the only ones a team supervisor may give results for)."""
        return apply_disposition(
            self.engine,
            ref,
            code,
            dt.datetime.fromtimestamp(now, dt.UTC),
            self._retry_rules,
            callback_at=callback_at,
            agent=agent,
            campaigns=campaigns,
            on_machine=self.on_machine,
            closed=self._closed,
        )

    def _closed(self, campaign: str, number: Number, at: dt.datetime) -> str | None:
        """Why a configured campaign may not call ``number`` at ``at``."""
        config = self.campaigns.get(campaign)
        if config is None:
            return None  # a campaign no longer configured: nothing dials it
        refused = self._gate.hours_refusal(config.compliance(), number, at)
        return refused.reason if refused is not None else None

    def _country(self, campaign: str) -> str | None:
        """The configured campaign's country: the default region of its
        lists' national numbers (None: the import asks the campaign's row)."""
        config = self.campaigns.get(campaign)
        return config.compliance().policy.country if config is not None else None

    def _retry_rules(self, campaign: str) -> RetryRules:
        config = self.campaigns.get(campaign)
        return config.retry if config is not None else RetryRules()

    def find_contacts(self, phone: str, region: str | None = None) -> dict[str, Any]:
        """``GET /api/contacts?phone=``: what ``dirigent contacts find`` shows."""
        from store.contacts import find_by_phone

        return find_by_phone(self.engine, phone, region, "?region=DE").as_dict()

    def unconfigured(self, campaign: str) -> NotFound:
        """The 404 of a campaign no ``[[campaign]]`` table configures.  One a
        list import made (``--create``) is a row with records that never
        dials: the answer says so, not "unknown" (QA12 finding 4).  Its pool
        is not shown: what may be dialed depends on the table's country and rules."""
        c, lst, r = db.campaign, db.dial_list, db.record
        with self.engine.connect() as conn:
            found = conn.execute(select(c.c.id).where(c.c.name == campaign)).scalar()
            if found is None:
                return NotFound("campaign", f"unknown campaign {campaign!r}")
            n = conn.execute(
                select(func.count())
                .select_from(r.join(lst, r.c.list_id == lst.c.id))
                .where(lst.c.campaign_id == found)
            ).scalar_one()
        return NotFound(
            "campaign",
            f"{campaign!r} has {n} records but no [[campaign]] table, so it does not dial"
            " (add one to the configuration)",
        )

    def pool(self, campaign: str, now: float) -> dict[str, Any]:
        config = self.campaigns.get(campaign)
        if config is None:
            raise self.unconfigured(campaign)
        gate = Compliance(DbDnc(self.engine), DbConsent(self.engine))
        return pool_status(
            self.engine, config.compliance(), gate, dt.datetime.fromtimestamp(now, dt.UTC)
        )
