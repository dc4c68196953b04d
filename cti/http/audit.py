"""The audit trail of the HTTP API: every change a supervisor or campaign
manager makes (refused ones too), with who, what, on whom, the request,
the state before and after, and the status answered.  An agent acting on
itself (its own state, its own interactions) is not audited.

It wraps the routes rather than living in each of them, so that no new
route can forget it; the "after" is taken when the answer is finished,
also for answers computed in a thread.
"""

from __future__ import annotations

import json
from typing import Any
from weakref import WeakKeyDictionary

from twisted.web.server import Request

from core.errors import NotFound
from cti.auth import User
from cti.http.context import MAX_BODY, ApiContext
from cti.schemas import AgentView
from cti.views import agent_view

#: the campaign settings an audit entry shows before and after: the status and
#: every setting ``PATCH /api/campaigns/<name>`` may change (``LIVE_SETTINGS`` of
#: dialer.campaign, which the faces may not import; tests/test_audit.py holds
#: the two together), each read from the campaign's view
CAMPAIGN_KEYS = ("status", "mode", "abandon_target", "max_lines_per_agent", "power_ratio",
                 "ring_timeout", "machine_action", "wrap_up")  # fmt: skip
_KINDS = {"agents": "agent", "campaigns": "campaign", "interactions": "interaction",
          "lists": "list", "dnc": "dnc", "consent": "consent"}  # fmt: skip


#: what a handler said its action changed, for the actions whose state is
#: only in the database (a do-not-call entry, a consent record): the audit
#: cannot read it on the event loop, so the handler, which learns it in its
#: thread, hands it over (see :func:`changed`)
_CHANGED: WeakKeyDictionary[Request, tuple[Any, Any]] = WeakKeyDictionary()


def changed(request: Request, before: Any, after: Any) -> None:
    """The state before and after this request's action, as its handler
    learnt it; the audit entry shows these instead of :func:`state_of`'s."""
    _CHANGED[request] = (before, after)


def own_path(user: User, path: list[str]) -> bool:
    """An agent acting on itself: not audited."""
    if len(path) >= 2 and path[0] == "agents":
        return path[1] == user.agent
    return path[:1] == ["interactions"] and user.role == "agent"


def target(path: list[str]) -> str | None:
    if not path:
        return None
    kind = _KINDS.get(path[0], path[0])
    return f"{kind} {'/'.join(path[1:2])}".strip() if len(path) > 1 else kind


def request_record(request: Request, path: list[str]) -> Any:
    """What the action asked for: the JSON body, or for a list upload its query."""
    if path == ["lists"]:
        return {k.decode("latin-1"): [v.decode("latin-1", "replace") for v in vs]
                for k, vs in (request.args or {}).items()}  # fmt: skip
    content = request.content
    if content is None:
        return None
    try:
        content.seek(0)
        raw = content.read(MAX_BODY)
        content.seek(0)  # the handler reads it next
        return json.loads(raw) if raw.strip() else None
    except (ValueError, OSError, RecursionError):
        return None


def state_of(api: ApiContext, path: list[str]) -> Any:
    """The state an action changes, for the audit's before and after."""
    try:
        agent = api.ops.agent(path[1]) if len(path) >= 2 and path[0] == "agents" else None
        if agent is not None:
            view: AgentView = agent_view(agent)
            return view.model_dump(include={"state", "pause_reason", "skills", "capacity"})
        if len(path) >= 2 and path[0] == "campaigns" and api.campaigns is not None:
            found = api.campaigns.view(path[1])
            return {k: found[k] for k in CAMPAIGN_KEYS if k in found}
    except (NotFound, AttributeError):  # the handler answers the 404
        return None
    return None


def audit(api: ApiContext, request: Request, path: list[str]) -> None:
    """Audit the request about to be answered, if it is an audited one."""
    method = request.method.decode("latin-1")
    sink = api.audit
    if method == "GET" or sink is None or path in (["login"], ["logout"]):
        return
    user = api.user(request)
    if user is None or not (user.supervises or user.manages_campaigns or not own_path(user, path)):
        return
    asked = request_record(request, path)
    named = target(path)
    if path == ["lists"] and isinstance(asked, dict):  # which list, of which campaign (QA4)
        name = (asked.get("name") or ["?"])[0]
        named = f"list {name} of campaign {(asked.get('campaign') or ['?'])[0]}"[:200]
    entry = {
        "actor": user.username,
        "role": user.role,
        "action": f"{method} /api/{'/'.join(path)}",
        "target": named,
        "request": asked,
        "before": state_of(api, path),
    }

    def finished(_result: object) -> None:
        noted = _CHANGED.pop(request, None)
        before, after = noted if noted is not None else (entry["before"], state_of(api, path))
        sink({**entry, "status": int(request.code or 200), "before": before, "after": after})

    request.notifyFinish().addBoth(finished)
