"""Domain objects as the faces show them (the answer schemas of ``cti.schemas``)."""

from __future__ import annotations

from cti.schemas import AgentDayView, AgentView, WorkView
from routing.agent import Agent


class AgentBoardView(AgentDayView):
    """An agent as ``GET /api/agents`` shows it to a supervisor: with the PBX
    its phone is on (two PBXs may both have a 1001) and whether that PBX's
    link is up (false: the agent can take no call there until it is back)."""

    pbx: str | None
    pbx_up: bool | None


def agent_view(agent: Agent) -> AgentView:
    return AgentView(
        id=agent.id,
        state=agent.state.value,
        pause_reason=agent.pause_reason,
        queues=sorted(agent.queues),
        skills=dict(agent.skills),
        capacity={c.value: n for c, n in agent.capacity.items()},
        team=agent.team,
        work=[
            WorkView(interaction=w.interaction, channel=w.channel.value, phase=w.phase.value)
            for w in agent.work.values()
        ],
    )


def agent_day_view(
    agent: Agent, today: tuple[float, float], pbx: str | None = None, pbx_up: bool | None = None
) -> AgentBoardView:
    """The agent with the seconds it spent in each state ``today`` (states
    never held left out), its PBX and whether that PBX is up."""
    spent = agent.time_in_state(*today)
    return AgentBoardView(
        **agent_view(agent).model_dump(),
        seconds_today={state.value: round(s, 3) for state, s in spent.items() if s},
        pbx=pbx,
        pbx_up=pbx_up,
    )
