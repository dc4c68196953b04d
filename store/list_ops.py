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

from sqlalchemy import Engine

from core.errors import Invalid, NotFound
from core.numbers import check_region
from dialer.compliance import Campaign, Compliance
from dialer.retry import RetryRules
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
    rules and its compliance rules (the configuration's ``CampaignConfig``)."""

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
                raise Invalid("campaign", str(exc)) from None
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

    def add_dnc(self, body: dict[str, Any]) -> dict[str, Any]:
        numbers = body.get("numbers")
        if (
            not isinstance(numbers, list)
            or not numbers
            or not all(isinstance(n, str) for n in numbers)
        ):
            raise Invalid("numbers", "a non-empty list of phone numbers")
        campaign = _optional_text(body, "campaign")
        region = _optional_text(body, "region")
        result = add_dnc(
            self.engine,
            numbers,
            campaign=campaign,
            region=region,
            source=_optional_text(body, "source") or "api",
            reason=_optional_text(body, "reason"),
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

    def add_consent(self, body: dict[str, Any]) -> dict[str, Any]:
        contact = body.get("contact")
        if not isinstance(contact, int) or isinstance(contact, bool) or not 0 < contact < 2**63:
            raise Invalid("contact", "the contact's id (a whole number from 1 to 2**63 - 1)")
        granted = body.get("granted")
        if not isinstance(granted, bool):
            raise Invalid("granted", "true (a grant) or false (a withdrawal)")
        channel = _optional_text(body, "channel") or ""
        record_consent(
            self.engine,
            contact,
            channel,
            granted,
            source=_optional_text(body, "source") or "",
            proof_ref=_optional_text(body, "proof_ref"),
        )
        return {"contact": contact, "channel": channel, "granted": granted}

    def merge(self, body: dict[str, Any]) -> dict[str, Any]:
        from core.numbers import Rejected, normalize
        from store.lists_merge import merge

        campaign = _optional_text(body, "campaign")
        if not campaign:
            raise Invalid("campaign", "required")
        raw_drop = body.get("drop")
        if not isinstance(raw_drop, list) or not all(isinstance(n, str) for n in raw_drop):
            raise Invalid("drop", "a list of numbers")

        def e164(raw: str, key: str) -> str:
            parsed = normalize(raw, _optional_text(body, "region"))
            if isinstance(parsed, Rejected):
                raise Invalid(key, f"{raw!r}: {parsed.reason}")
            return parsed.e164

        keep = e164(_optional_text(body, "keep") or "", "keep")
        return merge(self.engine, campaign, keep, [e164(n, "drop") for n in raw_drop]).summary()

    def set_active(self, campaign: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """``PATCH /api/lists/<campaign>/<list>`` with ``{"active": true|false}``."""
        active = body.get("active")
        if not isinstance(active, bool):
            raise Invalid("active", "must be true or false")
        return set_list_active(self.engine, campaign, name, active)

    def disposition(
        self,
        ref: str,
        body: dict[str, Any],
        agent: str | None,
        now: float,
        campaigns: Collection[str] | None = None,
    ) -> dict[str, Any]:
        """``POST /api/interactions/<id>/disposition`` ``{code, callback_at?}``
        (``campaigns``: the only ones a team supervisor may give results for)."""
        code = body.get("code")
        if not isinstance(code, str):
            raise Invalid("code", "give the call's result as text, e.g. 'sale' or 'callback'")
        raw_at = _optional_text(body, "callback_at")
        callback_at = None
        if raw_at is not None:
            try:
                callback_at = dt.datetime.fromisoformat(raw_at)
            except ValueError:
                raise Invalid("callback_at", f"{raw_at!r} is not an ISO 8601 time") from None
            if callback_at.tzinfo is None:
                raise Invalid("callback_at", "give the offset, e.g. 2026-11-24T10:00:00+01:00")
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
        )

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

        return find_by_phone(self.engine, phone, region).as_dict()

    def pool(self, campaign: str, now: float) -> dict[str, Any]:
        config = self.campaigns.get(campaign)
        if config is None:
            raise NotFound("campaign", f"unknown campaign {campaign!r}")
        gate = Compliance(DbDnc(self.engine), DbConsent(self.engine))
        return pool_status(
            self.engine, config.compliance(), gate, dt.datetime.fromtimestamp(now, dt.UTC)
        )


def _optional_text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise Invalid(key, "must be text")
    return value or None
