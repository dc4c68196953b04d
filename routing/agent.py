"""The agent state machine, for every channel at once.

An agent has a *presence* chosen by the agent or a supervisor (logged out,
available, paused with a reason) and *work*: the interactions offered to,
handled by, or in after-call work for the agent, each on its channel.  The
agent's state is derived from both, in this order of precedence:

======================  ===========================================
state                   when
======================  ===========================================
``logged_out``          not logged in
``reserved``            an offer is pending (any channel)
``busy``                handling at least one interaction
``wrap_up``             only after-call work left
``paused``              paused (a pause asked for while busy waits
                        until the work is done)
``ready``               available and idle
======================  ===========================================

Every change of the derived state is recorded with its time, so time in
state per agent per day can be reported.  Operations not allowed in the
current state raise :class:`IllegalTransition` naming the current state and
the requested operation.  Pure: the caller passes the time.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from core.errors import Conflict, Invalid
from core.events import AgentState as AgentState  # one list of states (events carry them)
from routing.model import Channel


class Phase(enum.StrEnum):
    OFFERED = "offered"
    ACTIVE = "active"
    WRAP_UP = "wrap_up"


class IllegalTransition(Conflict):
    """An operation the agent's current state does not allow: a
    :class:`~core.errors.Conflict` (409 to the API, by type) on the field
    ``state``.  ``str()`` stays the message it always was ("agent a1: cannot
    pause while logged_out"), without the "state: " prefix of other domain
    errors: logs, tests and the command line read it so."""

    def __init__(self, agent: str, current: AgentState, requested: str, why: str = "") -> None:
        detail = f" ({why})" if why else ""
        super().__init__("state", f"agent {agent}: cannot {requested} while {current}{detail}")
        self.agent = agent
        self.current = current
        self.requested = requested

    def __str__(self) -> str:
        return self.reason


@dataclass
class WorkItem:
    interaction: str
    channel: Channel
    phase: Phase
    since: float
    wrap_until: float | None = None


@dataclass(frozen=True)
class Transition:
    at: float
    state: AgentState
    reason: str | None = None


#: Pause reason set when an offer is not answered in time.
NO_ANSWER = "no answer"


@dataclass
class Agent:
    id: str
    skills: dict[str, int] = field(default_factory=dict)  # skill -> level 1..10
    capacity: dict[Channel, int] = field(default_factory=lambda: {Channel.VOICE: 1})
    team: str | None = None
    queues: set[str] = field(default_factory=set)
    #: the same queues in the order given at login (the agent's configuration's):
    #: a transfer to the agent waits in the first of them (:func:`routing.router.transfer_queue`)
    queue_order: tuple[str, ...] = ()
    logged_in: bool = False
    pause_reason: str | None = None  # None = available (when logged in)
    work: dict[str, WorkItem] = field(default_factory=dict)
    history: list[Transition] = field(default_factory=list)
    #: when the agent last became free of voice work (longest-idle policy)
    idle_since: float = 0.0

    def __post_init__(self) -> None:
        for skill, level in self.skills.items():
            if not 1 <= level <= 10:
                raise Invalid(f"skills.{skill}", f"level must be 1..10, not {level}")
        for channel, n in self.capacity.items():
            if n < 0:
                raise Invalid(f"capacity.{channel}", "must not be negative")
        if not self.history:
            self.history.append(Transition(0.0, AgentState.LOGGED_OUT))

    # -- derived state --------------------------------------------------------------
    @property
    def state(self) -> AgentState:
        if not self.logged_in:
            return AgentState.LOGGED_OUT
        phases = {w.phase for w in self.work.values()}
        if Phase.OFFERED in phases:
            return AgentState.RESERVED
        if Phase.ACTIVE in phases:
            return AgentState.BUSY
        if Phase.WRAP_UP in phases:
            return AgentState.WRAP_UP
        return AgentState.PAUSED if self.pause_reason is not None else AgentState.READY

    @property
    def available(self) -> bool:
        """May be offered new work at all (logged in, not paused)."""
        return self.logged_in and self.pause_reason is None

    def load(self, channel: Channel) -> int:
        """Items of ``channel`` taking capacity: offered, active or wrapping up."""
        return sum(1 for w in self.work.values() if w.channel is channel)

    def channels_in_use(self) -> set[Channel]:
        return {w.channel for w in self.work.values()}

    def occupancy(self) -> float:
        """Share of total capacity in use, across channels (least-occupied policy)."""
        total = sum(self.capacity.values())
        return len(self.work) / total if total else 1.0

    # -- operations -------------------------------------------------------------------
    def _record(self, now: float, before: AgentState, reason: str | None = None) -> None:
        after = self.state
        if after is not before:
            self.history.append(Transition(now, after, reason))
        if not self.work and before in (AgentState.BUSY, AgentState.WRAP_UP):
            self.idle_since = now  # free again: the longest-idle clock restarts

    def _refuse(self, requested: str, why: str = "") -> IllegalTransition:
        return IllegalTransition(self.id, self.state, requested, why)

    def login(self, now: float, queues: Iterable[str] = (), paused: str | None = None) -> None:
        if self.logged_in:
            raise self._refuse("log in", "already logged in")
        before = self.state
        self.logged_in = True
        self.pause_reason = paused
        self.queue_order = tuple(dict.fromkeys(queues))
        self.queues = set(self.queue_order)
        self.idle_since = now
        self._record(now, before, paused)

    def logout(self, now: float) -> None:
        if not self.logged_in:
            raise self._refuse("log out", "not logged in")
        if self.work:
            raise self._refuse("log out", f"{len(self.work)} interaction(s) in hand")
        before = self.state
        self.logged_in = False
        self.pause_reason = None
        self._record(now, before)

    def pause(self, now: float, reason: str) -> None:
        if not self.logged_in:
            raise self._refuse("pause", "not logged in")
        if not reason:
            raise Invalid("reason", "a pause needs a reason code")
        before = self.state
        self.pause_reason = reason
        self._record(now, before, reason)

    def ready(self, now: float) -> None:
        if not self.logged_in:
            raise self._refuse("become ready", "not logged in")
        before = self.state
        self.pause_reason = None
        self._record(now, before)

    def reserve(self, now: float, interaction: str, channel: Channel) -> None:
        """An offer is pending (the router checked capacity and blending)."""
        if not self.available:
            raise self._refuse("be reserved", "not available")
        if interaction in self.work:
            raise self._refuse("be reserved", f"already has {interaction}")
        if self.load(channel) >= self.capacity.get(channel, 0):
            raise self._refuse("be reserved", f"no {channel} capacity left")
        before = self.state
        self.work[interaction] = WorkItem(interaction, channel, Phase.OFFERED, now)
        self._record(now, before)

    def _item(self, interaction: str, phase: Phase, requested: str) -> WorkItem:
        item = self.work.get(interaction)
        if item is None or item.phase is not phase:
            have = "nothing" if item is None else item.phase
            raise self._refuse(requested, f"{interaction} is {have}, not {phase}")
        return item

    def accept(self, now: float, interaction: str) -> None:
        item = self._item(interaction, Phase.OFFERED, "accept")
        before = self.state
        item.phase, item.since = Phase.ACTIVE, now
        self._record(now, before)

    def start(self, now: float, interaction: str, channel: Channel) -> None:
        """Work that starts active without an offer (an outbound call connected
        to a nailed-up agent, a call the agent dialed)."""
        self.reserve(now, interaction, channel)
        self.accept(now, interaction)

    def decline(self, now: float, interaction: str, timed_out: bool = False) -> None:
        """The offer was rejected, or not answered in time (then the agent is
        paused with reason "no answer", so the router stops offering)."""
        self._item(interaction, Phase.OFFERED, "decline")
        before = self.state
        del self.work[interaction]
        if timed_out:
            self.pause_reason = NO_ANSWER
        self._record(now, before, NO_ANSWER if timed_out else None)

    def finish(self, now: float, interaction: str, wrap_up: float = 0.0) -> None:
        """The interaction ended; after-call work for ``wrap_up`` seconds."""
        item = self._item(interaction, Phase.ACTIVE, "finish")
        before = self.state
        if wrap_up > 0:
            item.phase, item.since, item.wrap_until = Phase.WRAP_UP, now, now + wrap_up
        else:
            del self.work[interaction]
        self._record(now, before)

    def extend_wrap_up(self, now: float, interaction: str, seconds: float) -> None:
        item = self._item(interaction, Phase.WRAP_UP, "extend wrap-up")
        if seconds <= 0:
            raise Invalid("seconds", "must be positive")
        item.wrap_until = max(item.wrap_until or now, now) + seconds

    def end_wrap_up(self, now: float, interaction: str | None = None) -> None:
        """End after-call work (one interaction, or all of it)."""
        items = (
            [self._item(interaction, Phase.WRAP_UP, "end wrap-up")]
            if interaction
            else [w for w in self.work.values() if w.phase is Phase.WRAP_UP]
        )
        if not items:
            raise self._refuse("end wrap-up", "no after-call work")
        before = self.state
        for item in items:
            del self.work[item.interaction]
        self._record(now, before)

    def drop(self, now: float, interaction: str, reason: str | None = None) -> bool:
        """Remove work whatever its phase (the call vanished with the PBX)."""
        if interaction not in self.work:
            return False
        before = self.state
        del self.work[interaction]
        self._record(now, before, reason)
        return True

    def expire_wrap_ups(self, now: float) -> list[str]:
        """End the after-call work whose time is up; return those interactions."""
        due = [
            w.interaction
            for w in self.work.values()
            if w.phase is Phase.WRAP_UP and (w.wrap_until or 0) <= now
        ]
        if due:
            before = self.state
            for interaction in due:
                del self.work[interaction]
            self._record(now, before)
        return due

    # -- reporting ------------------------------------------------------------------------
    def restore_day(self, before: Sequence[Transition], now: float) -> None:
        """The state changes of the day before this process (``before``, from
        the report) go ahead of this run's, and the agent is logged out from
        ``now`` until it logs in: :meth:`time_in_state` counts the whole day.
        Nothing to restore (``before`` empty): the history is left alone."""
        if before:
            self.history[1:1] = [*before, Transition(now, AgentState.LOGGED_OUT)]

    def time_in_state(self, start: float, end: float) -> dict[AgentState, float]:
        """Seconds spent in each state between ``start`` and ``end`` (e.g. one day)."""
        out = {state: 0.0 for state in AgentState}
        history = self.history
        for i, tr in enumerate(history):
            until = history[i + 1].at if i + 1 < len(history) else end
            lo, hi = max(tr.at, start), min(until, end)
            if hi > lo:
                out[tr.state] += hi - lo
        return out


def transfer_queue(own: str, target: Agent) -> str | None:
    """The queue a transfer to the agent ``target`` waits in -- one rule for
    the router, the voice adapter (the caller's hold) and a campaign's
    hand-over: the transferred interaction's own queue ``own`` when
    ``target`` serves it, else ``target``'s first configured queue (the
    order it logged in with, as its configuration lists them), never the
    alphabetically first.  None: ``target`` is in no queue."""
    if own in target.queues:
        return own
    return target.queue_order[0] if target.queue_order else None
