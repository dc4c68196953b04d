"""The campaign's agents as pacing counts them, kept up to date as they change.

A pacing decision comes every second and after every call and agent event.
Walking every agent's work items for each decision cost a tenth of a
simulated day; the router tells its listeners of every change to an agent
anyway, so the board keeps each agent's part of the picture (counted or
not, ready or not, talking or wrapping up since when) and a decision only
reads the sums.  Pure: no clock.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, field
from itertools import chain

import numpy as np

from routing.agent import Agent, Phase
from routing.model import Channel

#: talk start of an agent offered a call but not talking yet (elapsed 0)
NOT_YET = math.inf

_NOUGHT = np.zeros(())  # a floor NumPy broadcasts without converting a Python number


@dataclass(frozen=True, slots=True)
class Part:
    """One agent's share of the picture."""

    counted: int  # logged in and not paused, or in a conversation or wrap-up
    ready: int  # free for a call now
    #: logged in to no queue but the campaign's: no inbound caller can take it
    only_ours: bool = False
    talk_since: float | None = None  # in a voice conversation since (NOT_YET: offered)
    wrap_since: float | None = None  # in wrap-up since
    wrap_until: float = math.inf  # ... which ends then at the latest (the campaign's wrap_up)


def part_of(agent: Agent) -> Part:
    """What one campaign member adds: a conversation or wrap-up counts even
    when the agent is paused next; an agent busy on another channel only
    (chat, e-mail) counts and is ready for a call unless paused."""
    available = agent.pause_reason is None
    if not agent.work:
        return Part(1, 1) if available else Part(0, 0)
    voice = next((w for w in agent.work.values() if w.channel is Channel.VOICE), None)
    if voice is None:
        return Part(1, 1 if available else 0)
    if voice.phase is Phase.WRAP_UP:
        until = voice.wrap_until if voice.wrap_until is not None else math.inf
        return Part(1, 0, wrap_since=voice.since, wrap_until=until)
    return Part(1, 0, talk_since=voice.since if voice.phase is Phase.ACTIVE else NOT_YET)


@dataclass
class Board:
    """Counts and start times of the campaign's members, from :meth:`update`."""

    counted: int
    ready: int
    talking: np.ndarray  # elapsed talk (s), per agent
    wrapping: np.ndarray  # elapsed wrap-up (s), per agent
    busy: list[str]  # the agents behind ``talking`` and ``wrapping``, in that order
    #: per wrapping agent: seconds until the wrap-up ends by itself (the time
    #: the router's wrap-up timer was set to; inf: no end set)
    wrap_left: np.ndarray = field(default_factory=lambda: np.zeros(0))
    #: of ``ready``: agents in no queue but the campaign's (no inbound caller takes them)
    ready_only_ours: int = 0


class AgentBoard:
    """The members of one campaign queue (agents logged in to it) and their parts."""

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self._parts: dict[str, Part] = {}  # one per member
        self._counted = 0
        self._ready = 0
        self._ready_ours = 0  # of them, in no queue but the campaign's
        self._talk_since: dict[str, float] = {}
        self._wrap_since: dict[str, float] = {}
        self._wrap_until: dict[str, float] = {}

    @property
    def members(self) -> Collection[str]:
        """The agents logged in to the campaign's queue."""
        return self._parts.keys()

    def update(self, agent: Agent) -> None:
        """``agent`` changed (logged in or out, paused, work taken or done)."""
        old = self._parts.pop(agent.id, None)
        if old is not None:
            self._counted -= old.counted
            self._ready -= old.ready
            self._ready_ours -= old.ready if old.only_ours else 0
            self._talk_since.pop(agent.id, None)
            self._wrap_since.pop(agent.id, None)
            self._wrap_until.pop(agent.id, None)
        if not (agent.logged_in and self.queue in agent.queues):
            return
        new = part_of(agent)
        if agent.queues == {self.queue}:
            # the fields spelled out: dataclasses.replace cost more than the update
            new = Part(new.counted, new.ready, True, new.talk_since, new.wrap_since, new.wrap_until)
        self._parts[agent.id] = new
        self._counted += new.counted
        self._ready += new.ready
        self._ready_ours += new.ready if new.only_ours else 0
        if new.talk_since is not None:
            self._talk_since[agent.id] = new.talk_since
        elif new.wrap_since is not None:
            self._wrap_since[agent.id] = new.wrap_since
            self._wrap_until[agent.id] = new.wrap_until

    def board(self, now: float, reserved: Collection[str] = ()) -> Board:
        """The picture at ``now``, without the ``reserved`` agents (blended
        agents the inbound side needs: pacing does not count on them)."""
        counted, ready = self._counted, self._ready
        ours = self._ready_ours
        talk, wrap, until = self._talk_since, self._wrap_since, self._wrap_until
        if reserved:
            for agent_id in reserved:
                part = self._parts.get(agent_id)
                if part is not None:
                    counted -= part.counted
                    ready -= part.ready
                    ours -= part.ready if part.only_ours else 0
            talk = {a: t for a, t in talk.items() if a not in reserved}
            wrap = {a: t for a, t in wrap.items() if a not in reserved}
        # the start and end times in one array (one NumPy call per step, not
        # one per kind): talks, wrap-ups, then the wrap-ups' ends, which
        # ``_wrap_until`` has in ``_wrap_since``'s order (set and dropped
        # together), unless some agents were left out
        nt, nw = len(talk), len(wrap)
        ends = until.values() if wrap is self._wrap_since else (until[a] for a in wrap)
        times = np.fromiter(chain(talk.values(), wrap.values(), ends), float, nt + 2 * nw)
        elapsed = now - times[: nt + nw]
        left = times[nt + nw :] - now
        talking = elapsed[:nt]
        np.maximum(talking, _NOUGHT, out=talking)  # offered, not talking yet: 0
        np.maximum(left, _NOUGHT, out=left)
        return Board(
            counted,
            ready,
            talking,
            elapsed[nt:],
            [*talk, *wrap],
            left,
            ours,
        )
