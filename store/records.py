"""Writes what routing does to the database, for reporting: every agent
state change (``agent_state_log``) and every interaction's life
(``interaction``: queued, answered, ended / abandoned / fallback, with its
history across transfers), the audit rows, and the API's tokens (their
SHA-256: issued, ended), so that a restart logs nobody out.

Subscribes to the in-process event bus (agent state changes and interaction
events, by their classes); the writes run on one worker thread
in order (the event loop never waits for the database), and :meth:`close`
drains the queue, so a clean shutdown loses nothing.  A write that fails
(SQLite's lock held by a list import, a PostgreSQL restart or fail-over)
is tried again with backoff for as long as the failure lasts, the rows
behind it waiting in order; one the database refuses for its values, or one
still refused when the server stops (a stop does not wait for the
database), is logged with its traceback and counted
(``dirigent_report_write_failures_total``), never dropped in silence.  What
the API lets in is checked against the columns at the edge (cti/api.py), so
no row is refused for its values.  At start-up, :func:`close_unfinished`
ends the interactions and agent states a crash left open; the calls among
them are read first (:func:`calls_left_open`), so that one the PBX's
resync finds still going on -- a conversation in the agent's bridge, or a
caller still waiting on hold -- is taken over and its row reopened (an
answer or queueing event clears the end) and ended as usual, with its true
talk time or wait.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import Engine, and_, func, insert, or_, select, update
from sqlalchemy.exc import DBAPIError, OperationalError
from twisted.logger import Logger
from twisted.python.failure import Failure

from core.bus import EventBus
from core.events import (
    AgentStateChanged,
    Direction,
    HistoryEntry,
    HistoryEvent,
    InteractionChanged,
    Stage,
)
from store import db

log = Logger(namespace="store.records")

#: the outcome of an interaction a clean stop left going on (or waiting)
STOPPED = "server-stopped"


def _ts(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


#: seconds between the tries of a failed write: while the failure may pass, the
#: last delay repeats for as long as it lasts (the server stopping ends it)
RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)
#: after the first tries, one warning every this many (once a minute at 5 s)
QUIET_EVERY = 12


class Recorder:
    def __init__(
        self,
        engine: Engine,
        bus: EventBus,
        registry: CollectorRegistry | None = None,
        sleep: Callable[[float], None] = time.sleep,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
    ) -> None:
        self.engine = engine
        self._sleep = sleep
        self._delays = retry_delays
        self.failures = Counter(
            "dirigent_report_write_failures",
            "Report rows (agent states, interactions) not written after every retry",
            ["kind"],
            registry=registry if registry is not None else CollectorRegistry(),
        )
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dirigent-records")
        self._last: Future[Any] | None = None
        #: set by :meth:`close`: a row still refused is given up at once
        self._closing = threading.Event()
        off = [
            bus.subscribe(AgentStateChanged, self.on_agent_state),
            bus.subscribe(InteractionChanged, self.on_interaction),
        ]
        self._unsubscribe = lambda: [unsubscribe() for unsubscribe in off]

    def on_agent_state(self, event: AgentStateChanged) -> None:
        what = f"state {event.state.value} of agent {event.agent}"
        self._submit(self._agent_state, event, event.TYPE, what)

    def on_interaction(self, event: InteractionChanged) -> None:
        what = f"{event.interaction} ({event.stage.value}, queue {event.queue})"
        self._submit(self._interaction, event, event.TYPE, what)

    def _submit(self, fn: Callable[[Any], None], item: Any, kind: str, what: str) -> None:
        """Write ``item`` by ``fn`` on the writer thread; ``kind`` and ``what``
        (which row: agent, interaction, request, user) name it in the log."""
        # events are frozen: the writer thread reads them as they were published
        self._last = self._pool.submit(self._safely, fn, item, kind, what)

    def _safely(self, fn: Callable[[Any], None], item: Any, kind: str, what: str) -> None:
        """Write one row, trying again while the failure may pass (a lock, a
        lost connection): as long as it lasts while the server runs, so that
        a PostgreSQL restart or fail-over of any length loses no row and
        keeps their order (the rows behind it wait; QA4: after 8 s a row was
        dropped, an audit row among them).  A row the database refuses for
        its values, or one still refused when the server stops, is logged
        with its traceback and counted."""
        failure: Failure | None = None
        tries = 0
        while True:
            tries += 1
            try:
                fn(item)
                if tries > 1:
                    log.info(
                        "recorded {kind} {what} after {n} tries", kind=kind, what=what, n=tries
                    )
                return
            except (OperationalError, DBAPIError) as exc:
                failure = Failure()
                if not db.transient(exc) or self._closing.is_set():
                    break
                delay = self._delays[min(tries, len(self._delays)) - 1]
                if tries <= len(self._delays) or tries % QUIET_EVERY == 0:
                    log.warn(
                        "recording {kind} failed ({exc}); again in {d} s (try {n}; kept, in"
                        " order, until the database takes it)",
                        kind=kind,
                        exc=type(exc.orig).__name__ if exc.orig is not None else exc,
                        d=delay,
                        n=tries,
                    )
                self._pause(delay)
            except Exception:
                failure = Failure()
                break
        # a lost report row must not stop routing, but it must be seen
        self.failures.labels(kind).inc()
        log.failure(
            "could not record {kind} {what}{why}",
            failure,
            kind=kind,
            what=what,
            why=" at shutdown: the database did not take it" if self._closing.is_set() else "",
        )

    def _pause(self, delay: float) -> None:
        """Wait before the next try; a stop ends the wait (and the retries)."""
        if self._sleep is time.sleep:
            self._closing.wait(delay)
        else:  # a test's clock
            self._sleep(delay)

    def audit(self, entry: dict[str, Any]) -> None:
        """An audit row, in order with the report rows (same writer, same retries)."""
        what = f"{entry.get('action')} by {entry.get('actor')} -> {entry.get('status')}"
        self._submit(self._audit_row, dict(entry), "audit", what)

    def _audit_row(self, entry: dict[str, Any]) -> None:
        db.add_audit(self.engine, entry)

    # -- tokens (cti.auth.TokenJournal): kept so that a restart logs nobody out --------------
    def token_issued(self, key: str, username: str, issued: float, expires: float) -> None:
        """A login's token (its SHA-256), in order with its logout."""
        self._submit(
            lambda _: db.add_token(self.engine, key, username, issued, expires),
            None,
            "token",
            f"of {username} (SHA-256 {key[:8]}...)",
        )

    def tokens_ended(self, keys: list[str]) -> None:
        """Tokens ended by a logout or a revocation."""
        first = f" (SHA-256 {keys[0][:8]}...)" if keys else ""
        what = f"of {len(keys)} token{'s' if len(keys) != 1 else ''}{first}"
        self._submit(lambda _: db.end_tokens(self.engine, keys), None, "token-end", what)

    def _agent_state(self, e: AgentStateChanged) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(db.agent_state_log).values(
                    agent_code=e.agent,
                    state=e.state.value,
                    reason=e.pause_reason,
                    at=_ts(e.at),
                )
            )

    def _interaction(self, e: InteractionChanged) -> None:
        t = db.interaction
        at = _ts(e.at)
        history = [entry.to_json() for entry in e.history]
        with self.engine.begin() as conn:
            row = conn.execute(select(t.c.id).where(t.c.uniqueid == e.interaction)).first()
            if row is None:
                conn.execute(
                    insert(t).values(
                        channel=e.channel.value,
                        direction=e.direction.value,
                        uniqueid=e.interaction,
                        arrived_at=at,
                        queue_name=e.queue,
                        customer=e.customer,
                        attributes={"history": history},
                    )
                )
                if e.stage is Stage.QUEUED:
                    return
            values: dict[str, Any] = {"queue_name": e.queue, "attributes": {"history": history}}
            if e.attempt is not None:  # a campaign call a colleague took over
                found = conn.execute(
                    select(db.attempt.c.id).where(db.attempt.c.ref == e.attempt)
                ).scalar()
                if found is not None:
                    values["attempt_id"] = found
            if e.stage is Stage.ANSWERED:
                # no end: a call taken over after a restart was closed at
                # start-up ("server-restart") and goes on (its end comes later)
                values.update(answered_at=at, agent_code=e.agent, ended_at=None, outcome=None)
            elif e.stage is Stage.QUEUED:
                # waiting again (a transfer, or a caller queued again after a
                # restart, whose row start-up closed): no end yet
                values.update(ended_at=None, outcome=None)
            elif e.stage is not Stage.QUEUED:
                # ended: "answered" unless cut ("pbx-lost": the channels vanished
                # with the PBX link, ended then); abandoned and fallback: themselves
                default = "answered" if e.stage is Stage.ENDED else e.stage.value
                values.update(ended_at=at, outcome=e.outcome or default)
            conn.execute(update(t).where(t.c.uniqueid == e.interaction).values(**values))

    def close_open(self, at: float, outcome: str = STOPPED) -> None:
        """End every interaction row still open at ``at`` with ``outcome``:
        a clean stop's (QA7 F10: a conversation going on left its row open
        until the next start closed it at its answer, so a report between
        the two counted a call in progress with every agent logged out).
        Written after every row submitted before it.  A conversation the
        PBX still has at the next start is taken over from the row
        (:func:`calls_left_open` reads the last stop's) and its end then
        replaces this one."""
        self._submit(self._close_open, (_ts(at), outcome), "stop", outcome)

    def _close_open(self, item: tuple[dt.datetime, str]) -> None:
        at, outcome = item
        t = db.interaction
        with self.engine.begin() as conn:
            conn.execute(
                update(t).where(t.c.ended_at.is_(None)).values(ended_at=at, outcome=outcome)
            )

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything submitted so far is written."""
        last = self._last
        if last is not None:
            last.result(timeout)

    def close(self) -> None:
        """Write what is queued; with the database away, each row left gets one
        more try and is logged and counted (a stop must not wait for it)."""
        self._unsubscribe()
        self._closing.set()
        self._pool.shutdown(wait=True)


def _aware(value: dt.datetime) -> float:
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()


@dataclass(frozen=True, slots=True)
class LeftOpen:
    """A call the last run left open: with an agent (``answered`` set) or
    waiting (``answered`` None).  What its voice adapter needs to take it
    over if the PBX still has it: in the agent's bridge, or on hold for the
    queue (``interaction`` is its id, the row's ``uniqueid``)."""

    interaction: str
    queue: str
    customer: str | None
    direction: Direction
    arrived: float
    answered: float | None
    agent: str | None
    history: tuple[HistoryEntry, ...]


@dataclass(frozen=True, slots=True)
class DayCall:
    """An inbound voice call of today as its report row has it (epoch seconds)."""

    interaction: str
    queue: str
    arrived: float
    answered: float | None
    ended: float | None
    outcome: str | None


def inbound_calls_since(engine: Engine, since: float) -> list[DayCall]:
    """Today's inbound voice calls, for the live figures a restart must not
    reset (``/api/queues``: abandoned today, service level today)."""
    t = db.interaction
    start = dt.datetime.fromtimestamp(since, dt.UTC)
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                t.c.uniqueid,
                t.c.queue_name,
                t.c.arrived_at,
                t.c.answered_at,
                t.c.ended_at,
                t.c.outcome,
            )
            .where(t.c.channel == "voice", t.c.direction == "inbound", t.c.arrived_at >= start)
            .order_by(t.c.arrived_at)
        ).all()
    return [
        DayCall(
            row.uniqueid or "",
            row.queue_name or "default",
            _aware(row.arrived_at),
            None if row.answered_at is None else _aware(row.answered_at),
            None if row.ended_at is None else _aware(row.ended_at),
            row.outcome,
        )
        for row in rows
    ]


def calls_left_open(engine: Engine) -> dict[str, LeftOpen]:
    """The voice interactions not ended (answered or still waiting), and
    those the last clean stop closed (outcome ``server-stopped``), by
    interaction id.  Read before :func:`close_unfinished` closes them."""
    t = db.interaction
    # the last clean stop's rows too: it closed them at one instant (close_open)
    last_stop = select(func.max(t.c.ended_at)).where(t.c.outcome == STOPPED).scalar_subquery()
    with engine.connect() as conn:
        rows = conn.execute(
            select(t).where(
                or_(
                    t.c.ended_at.is_(None),
                    and_(t.c.outcome == STOPPED, t.c.ended_at == last_stop),
                ),
                t.c.channel == "voice",
                t.c.uniqueid.is_not(None),
            )
        ).all()
    out: dict[str, LeftOpen] = {}
    for row in rows:
        try:
            history = tuple(_history_entry(h) for h in (row.attributes or {}).get("history", ()))
            out[row.uniqueid] = LeftOpen(
                row.uniqueid,
                row.queue_name or "default",
                row.customer,
                Direction(row.direction),
                _aware(row.arrived_at),
                None if row.answered_at is None else _aware(row.answered_at),
                row.agent_code,
                history,
            )
        except (TypeError, ValueError, KeyError, AttributeError):
            # not taken over (a channel nobody can name: the agent is held paused)
            log.failure("interaction {i}: its row cannot be read back", i=row.uniqueid)
    return out


def _history_entry(entry: dict[str, Any]) -> HistoryEntry:
    fields = {k: v for k, v in entry.items() if k not in ("event", "at") and v is not None}
    return HistoryEntry(HistoryEvent(entry["event"]), float(entry["at"]), **fields)


def close_unfinished(engine: Engine) -> tuple[int, int]:
    """End what a crash left open: interactions without an end, at the time
    of their last known event (answer or arrival) with outcome
    ``server-restart``,
    and agents whose last logged state is not ``logged_out``, logged out at
    the time of their last logged state with the reason "server restart".
    Returns (interactions, agents) closed.  Run before the server routes.

    Closed here even if the PBX still has the call: whether it does is known
    only at the resync, which may never come (the PBX gone for good), and a
    row left open until then would count as a call going on in every
    report.  A call taken over at the resync reopens its row (its answer
    event clears the end) and is ended with its true talk time when it is
    hung up; one the PBX no longer has keeps this close."""
    t, s = db.interaction, db.agent_state_log
    with engine.begin() as conn:
        rows = conn.execute(
            select(t.c.id, t.c.arrived_at, t.c.answered_at).where(t.c.ended_at.is_(None))
        ).all()
        for row in rows:
            last = row.answered_at or row.arrived_at
            conn.execute(
                update(t).where(t.c.id == row.id).values(ended_at=last, outcome="server-restart")
            )
        latest = (
            select(s.c.agent_code, func.max(s.c.id).label("last_id"))
            .group_by(s.c.agent_code)
            .subquery()
        )
        open_agents = conn.execute(
            select(s.c.agent_code, s.c.at)
            .join(latest, latest.c.last_id == s.c.id)
            .where(s.c.state != "logged_out")
        ).all()
        for agent, at in open_agents:
            conn.execute(
                insert(s).values(
                    agent_code=agent, state="logged_out", reason="server restart", at=at
                )
            )
    if rows or open_agents:
        log.info(
            "closed {i} interactions and {a} agent states left open by the last run",
            i=len(rows),
            a=len(open_agents),
        )
    return len(rows), len(open_agents)


def agent_states_since(engine: Engine, since: float) -> dict[str, list[tuple[float, str]]]:
    """Each agent's state changes from ``since`` on, in order, with the one
    it was in at ``since`` (at its own time): what the agents' day held
    before this process started (its board's seconds today go on from it)."""
    t = db.agent_state_log
    with engine.connect() as conn:
        last = (
            select(t.c.agent_code, func.max(t.c.id).label("id"))
            .where(t.c.at <= _ts(since))
            .group_by(t.c.agent_code)
            .subquery()
        )
        rows = conn.execute(
            select(t.c.agent_code, t.c.state, t.c.at)
            .where((t.c.at > _ts(since)) | t.c.id.in_(select(last.c.id)))
            .order_by(t.c.at, t.c.id)
        ).all()
    out: dict[str, list[tuple[float, str]]] = {}
    for agent, state, at in rows:
        at = at if at.tzinfo else at.replace(tzinfo=dt.UTC)
        out.setdefault(agent, []).append((at.timestamp(), state))
    return out


def time_in_state(engine: Engine, agent: str, start: float, end: float) -> dict[str, float]:
    """Seconds per state for ``agent`` between ``start`` and ``end``, from the log
    (the state before ``start`` counts from ``start``)."""
    t = db.agent_state_log
    with engine.connect() as conn:
        before = conn.execute(
            select(t.c.state)
            .where(t.c.agent_code == agent, t.c.at <= _ts(start))
            .order_by(t.c.at.desc(), t.c.id.desc())
            .limit(1)
        ).first()
        rows = conn.execute(
            select(t.c.state, t.c.at)
            .where(t.c.agent_code == agent, t.c.at > _ts(start), t.c.at < _ts(end))
            .order_by(t.c.at, t.c.id)
        ).all()
    points = [(start, before.state if before else "logged_out")]
    for state, at in rows:
        at = at if at.tzinfo else at.replace(tzinfo=dt.UTC)
        points.append((at.timestamp(), state))
    out: dict[str, float] = {}
    for (t0, state), (t1, _) in zip(points, [*points[1:], (end, None)], strict=True):
        out[state] = out.get(state, 0.0) + max(0.0, t1 - t0)
    return {k: v for k, v in out.items() if v > 0}
