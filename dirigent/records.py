"""Writes what routing does to the database, for reporting: every agent
state change (``agent_state_log``) and every interaction's life
(``interaction``: queued, answered, ended / abandoned / fallback, with its
history across transfers).

Subscribes to the in-process event bus; the writes run on one worker thread
in order (the event loop never waits for the database), and :meth:`close`
drains the queue, so a clean shutdown loses nothing.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from sqlalchemy import Engine, insert, select, update
from twisted.logger import Logger

from cti.bus import EventBus, Message
from dirigent import db

log = Logger(namespace="dirigent.records")


def _ts(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


class Recorder:
    def __init__(self, engine: Engine, bus: EventBus) -> None:
        self.engine = engine
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dirigent-records")
        self._last: Future[Any] | None = None
        self._unsubscribe = bus.subscribe(self.on_message)

    def on_message(self, message: Message) -> None:
        if message["type"] == "agent":
            self._submit(self._agent_state, message)
        elif message["type"] == "interaction":
            self._submit(self._interaction, message)

    def _submit(self, fn: Any, message: Message) -> None:
        self._last = self._pool.submit(self._safely, fn, dict(message))

    @staticmethod
    def _safely(fn: Any, message: Message) -> None:
        try:
            fn(message)
        except Exception as exc:  # a lost report row must not stop routing
            log.error("could not record {kind}: {exc}", kind=message.get("type"), exc=exc)

    def _agent_state(self, m: Message) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(db.agent_state_log).values(
                    agent_code=m["agent"],
                    state=m["state"],
                    reason=m.get("pause_reason"),
                    at=_ts(m["at"]),
                )
            )

    def _interaction(self, m: Message) -> None:
        t = db.interaction
        at = _ts(m["at"])
        with self.engine.begin() as conn:
            row = conn.execute(select(t.c.id).where(t.c.uniqueid == m["interaction"])).first()
            if row is None:
                conn.execute(
                    insert(t).values(
                        channel=m["channel"],
                        direction=m.get("direction", "inbound"),
                        uniqueid=m["interaction"],
                        arrived_at=at,
                        queue_name=m["queue"],
                        customer=m.get("customer"),
                        attributes={"history": m["history"]},
                    )
                )
                if m["event"] == "queued":
                    return
            values: dict[str, Any] = {
                "queue_name": m["queue"],
                "attributes": {"history": m["history"]},
            }
            event = m["event"]
            if event == "answered":
                values.update(answered_at=at, agent_code=m.get("agent"))
            elif event in ("ended", "abandoned", "fallback"):
                values.update(ended_at=at, outcome={"ended": "answered"}.get(event, event))
            conn.execute(update(t).where(t.c.uniqueid == m["interaction"]).values(**values))

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything submitted so far is written."""
        last = self._last
        if last is not None:
            last.result(timeout)

    def close(self) -> None:
        self._unsubscribe()
        self._pool.shutdown(wait=True)


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
