"""``GET /api/contacts?phone=NUMBER[&region=DE]``: who a number belongs to.

The same facts as ``dirigent contacts find NUMBER``: the number in E.164,
its do-not-call entries, and every contact holding it with the id that
consent and merge take, the consent in force per channel and the records
that dial it.  For campaign managers and supervisors (the ids lead to
personal data); a number that does not parse is a 400 naming ``phone``.
"""

from __future__ import annotations

from typing import Any

from klein import Klein
from twisted.internet import threads
from twisted.web.server import Request

from core.errors import NotFound
from cti.auth import CAMPAIGN_MANAGERS, User
from cti.http.context import ApiContext, query, route
from cti.responses import ContactsAnswer
from cti.schemas import ContactsQuery, parse


def register(app: Klein, api: ApiContext) -> None:
    @route(app, "/contacts", "GET")
    @api.requires(CAMPAIGN_MANAGERS, field="contacts", refusal="{user} may not look up contacts")
    async def find(request: Request, user: User) -> ContactsAnswer:
        if api.lists is None:
            raise NotFound("contacts", "no database in this setup")
        asked = parse(ContactsQuery, query(request))
        found: dict[str, Any] = await threads.deferToThread(
            api.lists.find_contacts, asked.phone, asked.region
        )
        return ContactsAnswer.model_validate(found)
