"""Interactions on every channel: a chat, e-mail or SMS created by an
integration, accepted, finished and transferred by agents; an outbound
call's disposition.

============================================  ===========  ====================================
``POST /api/interactions``                    supervisor   ``{channel, queue, priority?, ...}``
``POST /api/interactions/<id>/accept``        the agent    accept an offered chat / e-mail / SMS
``POST /api/interactions/<id>/finish``        the agent    ``{wrap_up: seconds}`` (not a call: 409)
``POST /api/interactions/<id>/transfer``      agent/sup.   ``{queue}`` or ``{agent}``: blind
``POST /api/interactions/<id>/disposition``   agent/sup.   ``{code, callback_at?}`` (outbound)
============================================  ===========  ====================================
"""

from __future__ import annotations

from typing import Any

from klein import Klein
from twisted.internet import threads
from twisted.web.server import Request

from core.errors import Forbidden, Invalid, NotFound
from cti.auth import SUPERVISORS, User
from cti.http.context import ApiContext, read_body, route
from cti.responses import DispositionAnswer
from cti.schemas import (
    AgentView,
    CreatedAnswer,
    DispositionRequest,
    FinishRequest,
    InteractionRequest,
    TransferAnswer,
    TransferRequest,
    parse,
)
from cti.views import agent_view


def register(app: Klein, api: ApiContext) -> None:
    ops = api.ops

    @route(app, "/interactions", "POST")
    @api.requires(
        SUPERVISORS,
        field="interactions",
        refusal="only supervisors and integrations create interactions",
    )
    def create(request: Request, user: User) -> CreatedAnswer:
        body = parse(InteractionRequest, read_body(request))
        if not ops.has_queue(body.queue):
            raise Invalid("queue", f"unknown queue {body.queue!r}")
        if not user.sees_queue(body.queue):
            raise Forbidden("queue", f"{body.queue} is not a queue of {user.username}'s teams")
        iid = ops.create_interaction(
            body.channel,
            body.queue,
            priority=body.priority,
            skills=body.skills,
            attributes=body.attributes,
            customer=body.customer,
        )
        return CreatedAnswer(id=iid, waiting=ops.is_waiting(iid))

    def own_agent(user: User) -> str:
        if user.agent is None:
            raise Forbidden("agent", "only an agent accepts or finishes interactions")
        return user.agent

    @route(app, "/interactions/<iid>/accept", "POST")
    @api.requires()
    def accept(request: Request, user: User, iid: str) -> AgentView:
        agent = own_agent(user)
        read_body(request)
        ops.accept(agent, iid)
        return agent_view(api.agent(agent))

    @route(app, "/interactions/<iid>/finish", "POST")
    @api.requires()
    def finish(request: Request, user: User, iid: str) -> AgentView:
        agent = own_agent(user)
        ops.finish(agent, iid, parse(FinishRequest, read_body(request)).wrap_up)
        return agent_view(api.agent(agent))

    @route(app, "/interactions/<iid>/transfer", "POST")
    @api.requires()
    def transfer(request: Request, user: User, iid: str) -> TransferAnswer:
        handler = ops.handler_of(iid)
        if handler is None:
            raise NotFound("interaction", f"{iid} is not being handled")
        if not user.may_act_for(handler):
            raise Forbidden("interaction", f"{user.username} may not transfer {iid}")
        body = parse(TransferRequest, read_body(request))
        if body.queue is not None and not ops.has_queue(body.queue):
            raise Invalid("queue", f"unknown queue {body.queue!r}")
        if body.agent is not None and ops.agent(body.agent) is None:
            raise Invalid("agent", f"unknown agent {body.agent!r}")
        interaction = ops.handled(iid)
        ops.transfer(handler, iid, queue=body.queue, to_agent=body.agent)
        history = interaction.history if interaction is not None else []
        steps = [entry.to_json() for entry in history]
        return TransferAnswer.model_validate({"id": iid, "history": steps})

    @route(app, "/interactions/<ref>/disposition", "POST")
    @api.requires()
    async def disposition(request: Request, user: User, ref: str) -> DispositionAnswer:
        """An outbound call's result, from the agent who took it (or a
        supervisor): recorded, and "do-not-call" / "callback" act at once."""
        if api.lists is None:
            raise NotFound("interaction", "no database in this setup")
        if user.agent is None and not user.supervises:
            raise Forbidden("agent", f"{user.username} did not take this call")
        agent = None if user.supervises else user.agent
        if agent is not None and ops.taken_over_by(ref) == agent:
            agent = None  # the colleague a transfer gave the person to: the result is theirs
        body = parse(DispositionRequest, read_body(request))
        result: dict[str, Any] = await threads.deferToThread(
            api.lists.disposition,
            ref,
            body.code,
            agent,
            api.now(),
            user.campaigns_seen,
            callback_at=body.callback_at,
        )
        return DispositionAnswer.model_validate(result)
