"""Dial lists, do-not-call and consent (campaign managers and supervisors);
every operation is database work and runs in a thread.

================================================  ==============================================
``POST  /api/lists?campaign=C&name=F[&region=]``  the file (CSV or .xlsx) as the body: an import
  ``[&dry_run=1][&create=1]``                     (``create``: make the campaign if it is new)
``POST  /api/lists/merge``                        ``{campaign, keep, drop: [...], region?}``
``PATCH /api/lists/<campaign>/<name>``            ``{active: true|false}``
``POST  /api/dnc``                                ``{numbers: [...], campaign?, region?, ...}``
``GET   /api/dnc/<number>[?campaign=]``           is the number blocked
``POST  /api/consent``                            ``{contact, channel, granted, source, ...}``
================================================  ==============================================
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from klein import Klein
from twisted.internet import threads
from twisted.web.server import Request

from core.errors import Forbidden, Invalid, NotFound
from cti.auth import CAMPAIGN_MANAGERS, User
from cti.errors import ApiError
from cti.http.audit import changed
from cti.http.context import (
    MAX_UPLOAD,
    ApiContext,
    ListOps,
    query,
    read_body,
    route,
)
from cti.responses import (
    ConsentAnswer,
    DncAnswer,
    DncCheckAnswer,
    ImportAnswer,
    ListActiveAnswer,
    MergeAnswer,
)
from cti.schemas import ConsentRequest, DncRequest, ListActiveRequest, MergeRequest, parse


def register(app: Klein, api: ApiContext) -> None:
    manager = api.requires(CAMPAIGN_MANAGERS, field="lists", refusal="{user} may not manage lists")

    def lists() -> ListOps:
        if api.lists is None:
            raise NotFound("lists", "no database in this setup")
        return api.lists

    def in_scope(user: User, campaign: object) -> None:
        """A supervisor of some teams manages the lists of the campaigns
        dialling into their queues only (do-not-call and consent are the
        whole centre's: a number's consent is not a team's)."""
        if isinstance(campaign, str) and not user.sees_campaign(campaign):
            raise Forbidden("campaign", f"{campaign} dials for no team {user.username} oversees")

    async def threaded(fn: Callable[..., dict[str, Any]], *args: Any, **kw: Any) -> dict[str, Any]:
        result: dict[str, Any] = await threads.deferToThread(fn, *args, **kw)
        return result

    @route(app, "/lists", "POST")
    @manager
    async def upload(request: Request, user: User) -> ImportAnswer:
        """The same import as ``dirigent lists import``; the body is the file, not JSON."""
        ops = lists()
        length = request.getHeader(b"content-length")
        if length is not None and int(length) > MAX_UPLOAD:
            raise ApiError(413, "body", f"larger than {MAX_UPLOAD // (1024 * 1024)} MB")
        args = query(request)
        campaign, name = args.get("campaign"), args.get("name")
        if not campaign:
            raise Invalid("campaign", "required (?campaign=...)")
        if not name:
            raise Invalid("name", "required: the file's name (?name=customers.csv)")
        in_scope(user, campaign)
        body = request.content
        if body is None:
            raise Invalid("body", "the list file is missing")
        body.seek(0)
        answer = await threaded(
            ops.import_upload,
            body,
            name,
            campaign,
            region=args.get("region"),
            dry_run=args.get("dry_run") in ("1", "true", "yes"),
            create=args.get("create") in ("1", "true", "yes"),
        )
        return ImportAnswer.model_validate(answer)

    @route(app, "/lists/merge", "POST")
    @manager
    async def merge(request: Request, user: User) -> MergeAnswer:
        ops = lists()
        raw = read_body(request)
        in_scope(user, raw.get("campaign"))  # before the body's shape: 403 tells no more
        body = parse(MergeRequest, raw)
        answer = await threaded(ops.merge, body.campaign, body.keep, body.drop, body.region)
        return MergeAnswer.model_validate(answer)

    @route(app, "/lists/<campaign>/<name>", "PATCH")
    @manager
    async def set_active(
        request: Request, user: User, campaign: str, name: str
    ) -> ListActiveAnswer:
        ops = lists()
        in_scope(user, campaign)
        body = parse(ListActiveRequest, read_body(request))
        answer = await threaded(ops.set_active, campaign, name, body.active)
        return ListActiveAnswer.model_validate(answer)

    @route(app, "/dnc", "POST")
    @manager
    async def add_dnc(request: Request, user: User) -> DncAnswer:
        ops = lists()
        body = parse(DncRequest, read_body(request))
        answer = await threaded(
            ops.add_dnc,
            body.numbers,
            campaign=body.campaign,
            region=body.region,
            source=body.source,
            reason=body.reason,
        )
        checked = DncAnswer.model_validate(answer)
        numbers = checked.numbers
        where = f"campaign {body.campaign}" if body.campaign else "global"
        changed(
            request,
            {"list": where, "listed": [n for n, how in numbers.items() if how == "already"]},
            {"list": where, "listed": list(numbers)},
        )
        return checked

    @route(app, "/dnc/<number>", "GET")
    @manager
    async def check_dnc(request: Request, user: User, number: str) -> DncCheckAnswer:
        ops = lists()
        answer = await threaded(ops.check_dnc, number, query(request).get("campaign") or None)
        return DncCheckAnswer.model_validate(answer)

    @route(app, "/consent", "POST")
    @manager
    async def add_consent(request: Request, user: User) -> ConsentAnswer:
        ops = lists()
        body = parse(ConsentRequest, read_body(request))
        answer = await threaded(
            ops.add_consent,
            body.contact,
            body.channel or "",
            body.granted,
            source=body.source,
            proof_ref=body.proof_ref,
        )
        checked = ConsentAnswer.model_validate(answer)
        # records are never overwritten: the new one is what changed
        changed(request, None, answer)
        return checked
