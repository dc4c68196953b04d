"""The dialer's campaigns: views, start / pause / stop, live settings, and
the address pool (campaign managers and supervisors).

==========================================  ====================================================
``GET   /api/campaigns``                    every campaign with its figures
``GET   /api/campaigns/<name>``             one campaign
``POST  /api/campaigns/<name>/start``       (and ``pause``, ``stop``)
``PATCH /api/campaigns/<name>``             live settings (abandon target, ...), all or none
``GET   /api/campaigns/<name>/pool``        records by status, dialable now, blocked, by list
==========================================  ====================================================
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from klein import Klein
from twisted.internet import threads
from twisted.web.server import Request

from core.errors import Forbidden, Invalid, NotFound
from cti.auth import CAMPAIGN_MANAGERS, User
from cti.http.context import ApiContext, CampaignOps, read_body, route
from cti.responses import CampaignAnswer, PoolAnswer
from cti.schemas import CampaignChange, parse


def register(app: Klein, api: ApiContext) -> None:
    manager = api.requires(
        CAMPAIGN_MANAGERS, field="campaign", refusal="{user} may not see or control campaigns"
    )

    def campaigns() -> CampaignOps:
        if api.campaigns is None:
            raise NotFound("campaign", "no campaigns are configured")
        return api.campaigns

    @route(app, "/campaigns", "GET")
    @manager
    def views(request: Request, user: User) -> list[CampaignAnswer]:
        if api.campaigns is None:  # no [[campaign]] table: none to show, not a 404
            return []
        return [
            CampaignAnswer.model_validate(v)
            for v in api.campaigns.views()
            if user.sees_campaign(v["campaign"])
        ]

    def in_scope(user: User, name: str) -> None:
        """A supervisor of some teams sees and controls the campaigns dialling
        into their queues; any other name is a 403, known or not (its teams
        cannot probe which campaigns the others have)."""
        if not user.sees_campaign(name):
            raise Forbidden("campaign", f"{name} dials for no team {user.username} oversees")

    @route(app, "/campaigns/<name>", "GET")
    @manager
    async def view(request: Request, user: User, name: str) -> CampaignAnswer:
        in_scope(user, name)
        try:
            return CampaignAnswer.model_validate(campaigns().view(name))
        except NotFound as unknown:
            if api.lists is None:
                raise
            # a campaign a list import made has records, but no table: say so
            raise await threads.deferToThread(api.lists.unconfigured, name) from unknown

    @route(app, "/campaigns/<name>/<any(start, pause, stop):action>", "POST")
    @manager
    def control(request: Request, user: User, name: str, action: str) -> CampaignAnswer:
        read_body(request)
        in_scope(user, name)
        return CampaignAnswer.model_validate(campaigns().control(name, action))

    @route(app, "/campaigns/<name>", "PATCH")
    @manager
    def change(request: Request, user: User, name: str) -> CampaignAnswer:
        raw = read_body(request)
        ops = campaigns()
        if not raw:
            raise Invalid("body", "give at least one setting to change")
        in_scope(user, name)
        return CampaignAnswer.model_validate(ops.change(name, parse(CampaignChange, raw).changes()))

    @route(app, "/campaigns/<name>/pool", "GET")
    @api.requires(CAMPAIGN_MANAGERS, field="lists", refusal="{user} may not manage lists")
    async def pool(request: Request, user: User, name: str) -> PoolAnswer:
        if api.lists is None:
            raise NotFound("lists", "no database in this setup")
        in_scope(user, name)
        status: Callable[[str, float], dict[str, Any]] = api.lists.pool
        result: dict[str, Any] = await threads.deferToThread(status, name, api.now())
        return PoolAnswer.model_validate(result)
