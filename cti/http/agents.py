"""Agents and queues: who is logged in, in which state, with which skills;
an agent's own state changes (self, or a supervisor for anyone); skills and
capacity (supervisors); the day report from the database; preview dialling.

========================================  ===========  =====================================
``GET  /api/agents``                      any user     agents with state, skills, capacity, work
``GET  /api/agents/<id>``                 any user     one agent
``POST /api/agents/<id>/login``           self / sup.  ``{queues: [...], paused?}``
``POST /api/agents/<id>/logout|ready``    self / sup.
``POST /api/agents/<id>/pause``           self / sup.  ``{reason}``
``POST /api/agents/<id>/end-wrap-up``     self / sup.
``PUT  /api/agents/<id>/skills``          supervisor   ``{skills: {name: level}}``
``PUT  /api/agents/<id>/capacity``        supervisor   ``{capacity: {channel: n}}``
``GET  /api/agents/<id>/report``          self / sup.  seconds per state (``?from=&to=``)
``GET  /api/agents/<id>/preview``         self / sup.  the preview record on the agent's screen
``POST /api/agents/<id>/preview-dial``    self / sup.  (and ``preview-skip``)
``GET  /api/queues``                      any user     waiting, oldest wait, service level
========================================  ===========  =====================================
"""

from __future__ import annotations

from typing import Any

from klein import Klein
from twisted.internet import threads
from twisted.web.server import Request

from core.errors import Forbidden, Invalid, NotFound
from cti.auth import SUPERVISORS, User
from cti.http.context import ApiContext, query, read_body, route
from cti.responses import PreviewAnswer, PreviewDialAnswer, PreviewSkipAnswer, QueueAnswer
from cti.schemas import (
    AgentDayView,
    AgentLoginRequest,
    AgentView,
    CapacityRequest,
    PauseRequest,
    ReportAnswer,
    ReportQuery,
    SkillsRequest,
    parse,
)
from cti.views import agent_day_view, agent_view
from routing.agent import Agent


def register(app: Klein, api: ApiContext) -> None:
    ops = api.ops

    def may_act(user: User, agent_id: str, what: str) -> None:
        api.agent(agent_id)
        if not user.may_act_for(agent_id):
            raise Forbidden("agent", f"{user.username} may not {what} {agent_id}")

    def acted(agent_id: str) -> AgentView:
        return agent_view(api.agent(agent_id))

    def board_view(agent: Agent, today: tuple[float, float]) -> AgentDayView:
        pbx = ops.pbx_of(agent.id)
        up = api.pbx_up(pbx) if pbx is not None and api.pbx_up is not None else None
        return agent_day_view(agent, today, pbx, up)

    @route(app, "/agents", "GET")
    @api.requires()
    def agents(request: Request, user: User) -> list[AgentDayView]:
        today = ops.day_window()
        return [board_view(a, today) for a in ops.agents() if user.sees_agent(a.id)]

    @route(app, "/agents/<agent_id>", "GET")
    @api.requires()
    def agent(request: Request, user: User, agent_id: str) -> AgentDayView:
        found = api.agent(agent_id)
        if not user.sees_agent(agent_id):
            if user.role == "agent":
                raise Forbidden("agent", f"{user.username} may see its own state only")
            raise Forbidden("agent", f"{agent_id} is not in the teams {user.username} oversees")
        return board_view(found, ops.day_window())

    @route(app, "/queues", "GET")
    @api.requires()
    def queues(request: Request, user: User) -> list[QueueAnswer]:
        return [
            QueueAnswer.model_validate(q)
            for q in ops.queue_figures()
            if user.sees_queue(q["queue"])
        ]

    # -- the agent's own state (or a supervisor's hand) ------------------------------------------
    @route(app, "/agents/<agent_id>/login", "POST")
    @api.requires()
    def login(request: Request, user: User, agent_id: str) -> AgentView:
        may_act(user, agent_id, "login for")
        body = parse(AgentLoginRequest, read_body(request))
        for q in body.queues:
            if not ops.has_queue(q):
                raise Invalid("queues", f"unknown queue {q!r}")
            if not user.sees_queue(q):  # a team supervisor staffs its teams' queues
                raise Forbidden("queues", f"{q} is not a queue of {user.username}'s teams")
        ops.login(agent_id, body.queues, body.paused)
        return acted(agent_id)

    @route(app, "/agents/<agent_id>/pause", "POST")
    @api.requires()
    def pause(request: Request, user: User, agent_id: str) -> AgentView:
        may_act(user, agent_id, "pause for")
        ops.pause(agent_id, parse(PauseRequest, read_body(request)).reason)
        return acted(agent_id)

    def simple(action: str, do: Any) -> None:
        @route(app, f"/agents/<agent_id>/{action}", "POST")
        @api.requires()
        def change(request: Request, user: User, agent_id: str) -> AgentView:
            may_act(user, agent_id, f"{action} for")
            read_body(request)  # a malformed body is refused even where none is needed
            do(agent_id)
            return acted(agent_id)

    simple("logout", ops.logout)
    simple("ready", ops.ready)
    simple("end-wrap-up", ops.end_wrap_up)

    # -- the supervisor's settings ----------------------------------------------------------------
    supervisor = api.requires(
        SUPERVISORS,
        field="agent",
        refusal="{user} may not change the skills or capacity of {agent_id}",
    )

    @route(app, "/agents/<agent_id>/skills", "PUT")
    @supervisor
    def skills(request: Request, user: User, agent_id: str) -> AgentView:
        may_act(user, agent_id, "change the skills of")
        ops.set_skills(agent_id, parse(SkillsRequest, read_body(request)).skills)
        return acted(agent_id)

    @route(app, "/agents/<agent_id>/capacity", "PUT")
    @supervisor
    def capacity(request: Request, user: User, agent_id: str) -> AgentView:
        may_act(user, agent_id, "change the capacity of")
        ops.set_capacity(agent_id, parse(CapacityRequest, read_body(request)).capacity)
        return acted(agent_id)

    # -- the day report (from the database, so it survives restarts) ------------------------------
    @route(app, "/agents/<agent_id>/report", "GET")
    @api.requires()
    async def report(request: Request, user: User, agent_id: str) -> ReportAnswer:
        """``?from=<epoch s>&to=<epoch s>``, default: today."""
        may_act(user, agent_id, "see the report of")
        if api.reports is None:
            raise NotFound("report", "no database reports in this setup")
        window = parse(ReportQuery, query(request))
        day_start, now = ops.day_window()
        start = day_start if window.start is None else window.start
        if start >= now:
            raise Invalid("from", "must be in the past (the report counts what has happened)")
        # the future has no states yet: the present one was counted up to ``to``
        end = now if window.end is None else min(window.end, now)
        if end <= start:
            raise Invalid("to", "must be after from")
        seconds = await threads.deferToThread(api.reports, agent_id, start, end)
        return ReportAnswer(agent=agent_id, start=start, end=end, seconds=seconds)

    # -- preview dialling -------------------------------------------------------------------------
    @route(app, "/agents/<agent_id>/preview", "GET")
    @api.requires()
    def preview(request: Request, user: User, agent_id: str) -> PreviewAnswer | None:
        """The record on the agent's screen; null when there is none."""
        may_act(user, agent_id, "see the preview of")
        shown = api.campaigns.preview(agent_id) if api.campaigns else None
        return None if shown is None else PreviewAnswer.model_validate(shown)

    @route(app, "/agents/<agent_id>/<any('preview-dial', 'preview-skip'):action>", "POST")
    @api.requires()
    async def decide(
        request: Request, user: User, agent_id: str, action: str
    ) -> PreviewDialAnswer | PreviewSkipAnswer:
        may_act(user, agent_id, action)
        if api.campaigns is None:
            raise NotFound("campaign", "no campaigns are configured")
        decision = action.split("-")[1]
        decided = await api.campaigns.preview_decision(agent_id, decision)
        if decision == "dial":
            return PreviewDialAnswer.model_validate(decided)
        return PreviewSkipAnswer.model_validate(decided)
