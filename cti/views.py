"""Domain objects as the faces show them (the answer schemas of ``cti.schemas``)."""

from __future__ import annotations

from cti.schemas import AgentDayView, AgentView, WorkView
from routing.agent import Agent


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


def agent_day_view(agent: Agent, today: tuple[float, float]) -> AgentDayView:
    """The agent with the seconds it spent in each state ``today`` (states never held left out)."""
    spent = agent.time_in_state(*today)
    return AgentDayView(
        **agent_view(agent).model_dump(),
        seconds_today={state.value: round(s, 3) for state, s in spent.items() if s},
    )
