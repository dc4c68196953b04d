"""The dialer's durable state in the database: attempts, the hopper, the ledger.

The campaign runner is pure and talks to three small ports (``AttemptLog``,
``LeadSource`` and the ledger's ``on_change``); this module implements them
over SQLAlchemy so that a restart finds everything it needs:

* :class:`DbAttemptLog` writes the attempt row (with the runner's attempt id
  in ``ref``, the same id the channel carries as ``DIRIGENT_ATTEMPT``) and
  commits it *before* the Originate is sent.  ``open_attempts`` finds what
  a crash left open.
* :class:`DbLeadSource` takes records through :func:`store.pool.claim`
  (the compliance gate, one transaction) and applies the retry rules after
  every attempt.  It says why the campaign is idle, and after a crash it
  returns records claimed (in the hopper) that never got an attempt row.
* :class:`DbLedgerStore` persists the abandon ledger's day buckets per
  campaign or drop-rate group, after every change, and rebuilds its last
  hour from the attempt rows after a restart.
* :class:`DbCampaignStore` is the campaigns' port
  (:class:`dialer.ports.CampaignStore`): it makes the three above for
  each campaign and keeps its row (status, live settings).

In the server (``writer`` given) nothing here runs on the reactor thread:
every write and every claim goes to one :class:`DialerWriter` thread, in
the order the reactor asked for them, and ``begin`` returns a Deferred
that fires once the row is committed -- the runner sends the Originate
only then.  The hopper is a small buffer of claimed leads, refilled in
that thread ahead of demand, so pacing never waits for the database.
Without a writer (virtual-time simulations and tests) the same code runs
synchronously on the caller's thread.

A write refused for a moment (SQLite's lock held by a list import, a lost
PostgreSQL connection) is tried again with backoff; one that still fails is
logged with its traceback, counted, and kept to be tried again before the
next write (never dropped); an attempt whose outcome never lands is closed
"unknown" at the next start-up (:meth:`DbAttemptLog.open_attempts`).
"""

from __future__ import annotations

import datetime as dt
import functools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy import Engine, and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import DBAPIError
from twisted.internet import threads
from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from dialer.abandon import DayCount
from dialer.campaign import CampaignSetup, Lead
from dialer.compliance import Campaign, Compliance, Policy, Verdict
from dialer.ports import CampaignAttempts, Hopper
from dialer.retry import RetryRules
from dialer.runner import Attempt
from store import db, pool
from store.consent import DbConsent, DbDnc

__all__ = [
    "CHECKING",
    "DbAttemptLog",
    "DbCampaignStore",
    "DbLeadSource",
    "DbLedgerStore",
    "DialerWriter",
    "Engine",
    "WriteMetrics",
]

log = Logger(namespace="dirigent.dialer")

#: the idle reason while the first pool status is worked out (a thread's answer)
CHECKING = "checking the lists for records due"

#: seconds between the tries of a refused write (then it is logged, counted and kept)
RETRY_DELAYS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0)


class WriteMetrics:
    """The writer's counters (in the server's registry, beside ``DialerMetrics``)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = registry if registry is not None else CollectorRegistry()
        self.retries = Counter(
            "dirigent_attempt_write_retries",
            "Dialer writes (attempts, outcomes, claims, ledger) refused and tried again",
            ["kind"],
            registry=registry,
        )
        self.failures = Counter(
            "dirigent_attempt_write_failures",
            "Dialer writes that failed after every retry (kept and tried again later"
            " when the failure may pass)",
            ["kind"],
            registry=registry,
        )
        self.pending = Gauge(
            "dirigent_attempt_writes_pending",
            "Dialer writes that failed and wait for the database to take them",
            registry=registry,
        )
        self.lost = Counter(
            "dirigent_attempt_writes_lost",
            "Kept dialer writes the database had not taken when the server stopped",
            ["kind"],
            registry=registry,
        )


#: what a durable write's Deferred fires with when it is kept for later
PENDING = "pending"


@dataclass
class _Job:
    kind: str
    fn: Callable[[], Any]
    durable: bool
    what: str = ""
    tries: int = field(default=0)


class DialerWriter:
    """The dialer's database work on one thread, in order, with retries.

    ``submit`` returns a Deferred fired on the reactor thread with the
    job's result.  A *durable* job (an outcome, a status) that still fails
    after the retries is logged with its traceback, counted, and kept: the
    writer tries it again, in order, before the next durable write and at
    every :meth:`sweep` (its Deferred fires with :data:`PENDING`).  Other
    jobs (an attempt row before its call, a claim) fail their Deferred
    instead: a call whose row cannot be written is not made."""

    def __init__(
        self,
        *,
        reactor: Any = None,
        metrics: WriteMetrics | None = None,
        delays: tuple[float, ...] = RETRY_DELAYS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as default

            reactor = default
        self.reactor = reactor
        self.metrics = metrics or WriteMetrics()
        self.delays = delays
        self._sleep = sleep
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dirigent-dialer")
        self._backlog: deque[_Job] = deque()  # the writer thread's only
        self._lock = threading.Lock()  # the backlog, when run inline after close
        self.closed = False
        self.metrics.pending.set_function(lambda: len(self._backlog))

    def submit(
        self, kind: str, fn: Callable[..., Any], *args: Any, durable: bool = True, **kw: Any
    ) -> Deferred[Any]:
        job = _Job(kind, functools.partial(fn, *args, **kw), durable, _what(args))
        if self.closed:  # shutting down: the last outcomes are written here and now
            try:
                return succeed(self._run(job))
            except Exception:
                return fail(Failure())
        d: Deferred[Any] = Deferred()
        future = self._pool.submit(self._run, job)
        future.add_done_callback(lambda f: self.reactor.callFromThread(_fire, d, f))
        return d

    def sweep(self) -> Deferred[Any]:
        """Try the kept writes again (the database may take them now)."""
        return self.submit("sweep", _nothing, durable=False)

    def flush(self) -> Deferred[Any]:
        """Fires once everything submitted before has been tried."""
        return self.submit("flush", _nothing, durable=False)

    @property
    def backlog(self) -> int:
        return len(self._backlog)

    def close(self) -> None:
        """Write what is queued, each write tried once more (a stop does not
        wait out a database that is away: QA4 finding 1b, 74 s); what the
        database still refuses is logged, one error line per write naming
        it, and counted (``dirigent_attempt_writes_lost_total``): the
        start-up recovery closes such an attempt ``unknown``, and an abandon
        among them is missing from the ledger, so it must be seen.  Later
        submissions run on the caller's thread, tried once."""
        self.closed = True
        self._pool.shutdown(wait=True)
        with self._lock:
            self._drain()
            for job in self._backlog:
                self.metrics.lost.labels(job.kind).inc()
                log.error(
                    "dialer write {kind} {what} lost at shutdown: the database had not taken it"
                    " after {n} tries",
                    kind=job.kind,
                    what=job.what,
                    n=job.tries,
                )
            self._backlog.clear()

    # -- the writer thread --------------------------------------------------------------
    def _run(self, job: _Job) -> Any:
        with self._lock:
            self._drain()
            if job.durable and self._backlog:
                self._backlog.append(job)  # behind the writes still refused: in order
                return PENDING
            try:
                return self._try(job)
            except Exception as exc:
                failure = Failure()
                self.metrics.failures.labels(job.kind).inc()
                kept = job.durable and db.transient(exc)
                if not job.durable:
                    then = "the caller is told"
                elif kept:
                    then = "kept, tried again before the next write"
                else:
                    then = "not retried (the start-up recovery closes what it left open)"
                log.failure(
                    "dialer write {kind} {what} failed after {n} tries; {then}",
                    failure,
                    LogLevel.error,
                    kind=job.kind,
                    what=job.what,
                    n=job.tries,
                    then=then,
                )
                if not job.durable:
                    raise
                if kept:
                    self._backlog.append(job)
                return PENDING

    def _try(self, job: _Job) -> Any:
        # stopping (close() has begun): one try, the stop does not wait for the database
        for delay in (None,) if self.closed else (*self.delays, None):
            job.tries += 1
            try:
                return job.fn()
            except Exception as exc:
                if delay is None or not db.transient(exc):
                    raise
                self.metrics.retries.labels(job.kind).inc()
                log.warn(
                    "dialer write {kind} {what} refused ({e}); again in {d} s",
                    kind=job.kind,
                    what=job.what,
                    e=_short(exc),
                    d=delay,
                )
                self._sleep(delay)
        raise AssertionError("unreachable")

    def _drain(self) -> None:
        """Kept writes, oldest first, one try each; stops at the first refusal."""
        while self._backlog:
            job = self._backlog[0]
            try:
                job.tries += 1
                job.fn()
            except Exception as exc:
                if db.transient(exc):
                    return
                log.failure(
                    "kept dialer write {kind} {what} failed for good",
                    Failure(),
                    LogLevel.error,
                    kind=job.kind,
                    what=job.what,
                )
            else:
                log.info(
                    "kept dialer write {kind} {what} written after {n} tries",
                    kind=job.kind,
                    what=job.what,
                    n=job.tries,
                )
            self._backlog.popleft()


def _fire(d: Deferred[Any], future: Future[Any]) -> None:
    exc = future.exception()
    if exc is not None:
        d.errback(Failure(exc))
    else:
        d.callback(future.result())


def _nothing() -> None:
    """A job that only waits for the ones before it."""


def _what(args: tuple[Any, ...]) -> str:
    """What a job is about, for its log line (an attempt id, a record id)."""
    for a in args:
        if isinstance(a, dict) and "ref" in a:
            return str(a["ref"])
        if isinstance(a, str | int) and not isinstance(a, bool):
            return str(a)
    return ""


def _short(exc: BaseException) -> str:
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return f"{type(exc.orig).__name__}: {exc.orig}"
    return f"{type(exc).__name__}: {exc}"


def _at(seconds: float | None) -> dt.datetime | None:
    return None if seconds is None else dt.datetime.fromtimestamp(seconds, dt.UTC)


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def _seconds(value: dt.datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


def ensure_campaign(
    engine: Engine,
    name: str,
    *,
    country: str | None = None,
    dial_mode: str = "predictive",
    caller_id: str | None = None,
    settings: dict[str, Any] | None = None,
) -> int:
    """The campaign's row (created if a list import has not made it yet),
    updated with the configured mode, country and caller ID."""
    c = db.campaign
    values: dict[str, Any] = {"country": country, "dial_mode": dial_mode, "caller_id": caller_id}
    if settings is not None:
        values["settings"] = settings
    with engine.begin() as conn:
        found = conn.execute(select(c.c.id).where(c.c.name == name)).scalar()
        if found is None:
            key = conn.execute(
                insert(c).values(name=name, **{"settings": {}, **values})
            ).inserted_primary_key
            assert key is not None
            return int(key[0])
        conn.execute(update(c).where(c.c.id == found).values(**values))
        return found


def set_campaign_status(engine: Engine, name: str, status: str) -> None:
    with engine.begin() as conn:
        conn.execute(update(db.campaign).where(db.campaign.c.name == name).values(status=status))


def campaign_status(engine: Engine, name: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(select(db.campaign.c.status).where(db.campaign.c.name == name)).scalar()


def stored_settings(engine: Engine, name: str) -> dict[str, Any]:
    """The campaign row's settings: live changes and whether it was controlled."""
    with engine.connect() as conn:
        return _stored_settings(conn, name)


def _stored_settings(conn: Any, name: str) -> dict[str, Any]:
    found = conn.execute(select(db.campaign.c.settings).where(db.campaign.c.name == name))
    return dict(found.scalar() or {})


def store_settings(engine: Engine, name: str, updates: dict[str, Any], **columns: Any) -> None:
    """Merge ``updates`` into the campaign row's settings (kept across restarts)."""
    with engine.begin() as conn:
        stored = _stored_settings(conn, name)
        conn.execute(
            update(db.campaign)
            .where(db.campaign.c.name == name)
            .values(settings={**stored, **updates}, **columns)
        )


def count_records(
    engine: Engine, campaign_ids: dict[str, int]
) -> dict[str, dict[tuple[str, bool], dict[str, int]]]:
    """campaign -> (list, active) -> status -> records (a count over whole lists:
    run it in a thread)."""
    r, lst = db.record, db.dial_list
    out: dict[str, dict[tuple[str, bool], dict[str, int]]] = {}
    with engine.connect() as conn:
        for name, campaign_id in campaign_ids.items():
            per_list: dict[tuple[str, bool], dict[str, int]] = {}
            out[name] = per_list
            for list_name, active, status, n in conn.execute(
                select(lst.c.name, lst.c.active, r.c.status, func.count())
                .join(lst, lst.c.id == r.c.list_id)
                .where(lst.c.campaign_id == campaign_id)
                .group_by(lst.c.name, lst.c.active, r.c.status)
            ):
                per_list.setdefault((list_name, bool(active)), {})[status] = n
    return out


class DbAttemptLog:
    """Attempt rows, one per dial, committed before the Originate.

    Without ``writer`` each method writes before it returns; with one,
    ``begin`` returns a Deferred fired once the row is committed (the runner
    sends the Originate then) and the other writes follow it in order."""

    def __init__(
        self,
        engine: Engine,
        campaign: str,
        writer: DialerWriter | None = None,
        judge: Callable[[int, dt.datetime], Verdict] | None = None,
    ) -> None:
        self.engine = engine
        self.writer = writer
        #: the gate's verdict on a record now (:func:`store.pool.recheck`):
        #: asked again as the attempt is written, in the same thread
        self.judge = judge
        self._preloaded: list[Attempt] | None = None
        with engine.connect() as conn:
            self.campaign_id = pool.find_campaign_id(conn, campaign)

    def begin(self, attempt: Attempt) -> Deferred[Any] | Verdict | None:
        """The attempt's row, unless the gate refuses its record now (the
        refusing verdict is returned, or the Deferred's result, and nothing
        is written: the Originate is not sent)."""
        record = attempt.lead.record_id
        values = {
            "ref": attempt.id,
            "record_id": record if isinstance(record, int) else None,
            "campaign_id": self.campaign_id,
            "e164": attempt.lead.number,
            "pbx": attempt.pbx,
            "started_at": _at(attempt.started),
            "uniqueid": attempt.channel_id,
            "agent_code": attempt.agent,
        }
        if self.writer is None:
            return self._begin(values)
        return self.writer.submit("begin", self._begin, values, durable=False)

    def _begin(self, values: dict[str, Any]) -> Verdict | None:
        record = values["record_id"]
        if self.judge is not None and record is not None:
            verdict = self.judge(record, values["started_at"])
            if not verdict.allowed:
                return verdict
        with self.engine.begin() as conn:
            conn.execute(insert(db.attempt).values(**values))
            if record is not None:
                pool.mark_dialing(conn, record)
        return None

    def end(self, attempt: Attempt) -> Deferred[Any] | None:
        answered = attempt.answered
        ring_end = answered if answered is not None else attempt.ended
        values = {
            "outcome": attempt.outcome,
            "hangup_cause": attempt.cause,
            "channel": attempt.channel,
            "ring_seconds": None if ring_end is None else ring_end - attempt.started,
            "answered_at": _at(answered),
            "connected_at": _at(attempt.connected),
            "talk_seconds": (
                attempt.ended - attempt.connected
                if attempt.connected is not None and attempt.ended is not None
                else None
            ),
            "verdict": attempt.verdict,
            "agent_code": attempt.agent,
            "abandoned": attempt.abandoned,
            "ended_at": _at(attempt.ended),
        }
        return self._update("end", attempt.id, values)

    def connected(self, attempt: Attempt) -> Deferred[Any] | None:
        """A person reached an agent: kept so that a restart does not lose
        when the conversation began."""
        values = {
            "answered_at": _at(attempt.answered),
            "connected_at": _at(attempt.connected),
            "verdict": attempt.verdict,
            "agent_code": attempt.agent,
        }
        return self._update("connected", attempt.id, values)

    def _update(self, kind: str, ref: str, values: dict[str, Any]) -> Deferred[Any] | None:
        if self.writer is None:
            self._write(ref, values)
            return None
        return self.writer.submit(kind, self._write, ref, values)

    def _write(self, ref: str, values: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(db.attempt).where(db.attempt.c.ref == ref).values(**values))

    def preload_open(self, campaign: str) -> None:
        """Read the open attempts now (in the writer's thread) for the next
        :meth:`open_attempts` (on the reactor, after the first resync)."""
        self._preloaded = self._open_attempts(campaign)

    def open_attempts(self, campaign: str) -> list[Attempt]:
        if self._preloaded is not None:
            found, self._preloaded = self._preloaded, None
            return found
        return self._open_attempts(campaign)

    def _open_attempts(self, campaign: str) -> list[Attempt]:
        a = db.attempt
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(a)
                .where(a.c.campaign_id == self.campaign_id, a.c.outcome.is_(None))
                .order_by(a.c.id)
            ).all()
        return [
            Attempt(
                row.ref or str(row.id),
                campaign,
                Lead(row.record_id if row.record_id is not None else row.ref, row.e164),
                _seconds(row.started_at) or 0.0,
                channel_id=row.uniqueid or "",
                pbx=row.pbx,
                agent=row.agent_code,
                answered=_seconds(row.answered_at),
                connected=_seconds(row.connected_at),
                verdict=row.verdict,
            )
            for row in rows
        ]


class DbLeadSource:
    """The hopper: records that pass the compliance gate now, each taken once.

    With ``writer`` (the server) the claims run in the writer's thread into
    a small buffer of leads, refilled ahead of demand: :meth:`take` hands out
    what the buffer holds and never waits.  A lead waits there at most
    ``max_age`` seconds (the gate judged it when it was claimed; a later
    do-not-call entry or the end of the calling hours must not be missed by
    much), then goes back to the pool undialed.  ``on_filled`` is called
    when a refill brought leads (the runner paces again).  After a claim
    that found nothing the next waits ``empty_backoff`` seconds: an empty
    claim may read thousands of blocked records (a zone closed at the edge
    of its window), in the thread that writes every campaign's attempts,
    and an idle campaign asks every second."""

    def __init__(
        self,
        engine: Engine,
        campaign: Campaign,
        gate: Compliance,
        rules: RetryRules | None = None,
        *,
        reason_ttl: float = 15.0,
        in_thread: Callable[..., Any] | None = None,
        writer: DialerWriter | None = None,
        batch: int = 10,
        max_age: float = 10.0,
        empty_backoff: float = 5.0,
    ) -> None:
        self.engine = engine
        self.campaign = campaign
        self.gate = gate
        self.rules = rules or RetryRules()
        self.reason_ttl = reason_ttl
        self._reason: tuple[float, str] | None = None
        self.in_thread = in_thread  # e.g. threads.deferToThread; None: on the caller's thread
        self._refreshing = False
        self.writer = writer
        self.batch = batch
        self.max_age = max_age
        self.on_filled: Callable[[], None] | None = None
        self._buffer: deque[tuple[float, Lead]] = deque()
        self._filling = False
        #: whether the last claim came back with leads (None: none answered yet)
        self._found: bool | None = None
        #: why the last claim failed (the database away), None once one succeeds
        self._claim_error: str | None = None
        self.empty_backoff = empty_backoff
        self._next_claim = float("-inf")  # no claim before (after an empty one)

    def take(self, n: int, now: float) -> list[Lead]:
        if self.writer is None:
            return self.claim_now(n, now)
        self._drop_stale(now)
        out = [self._buffer.popleft()[1] for _ in range(min(n, len(self._buffer)))]
        if len(self._buffer) < max(n, self.batch // 2):
            self.fill(now, max(2 * n, self.batch))
        return out

    def fill(self, now: float, target: int | None = None) -> Deferred[Any]:
        """Claim up to ``target`` leads into the buffer (one claim at a time)."""
        want = (target or self.batch) - len(self._buffer)
        if self.writer is None or self._filling or want <= 0 or now < self._next_claim:
            return succeed(None)
        self._filling = True
        d = self.writer.submit("claim", self.claim_now, want, now, durable=False)

        def filled(leads: list[Lead]) -> None:
            self._claim_error = None
            self._found = bool(leads)
            self._next_claim = float("-inf") if leads else now + self.empty_backoff
            self._buffer.extend((now, lead) for lead in leads)
            if leads and self.on_filled is not None:
                self.on_filled()

        def failed(f: Failure) -> None:
            self._claim_error = _short(f.value) if f.value is not None else f.getErrorMessage()
            self._next_claim = now + self.empty_backoff  # not every pacing step while it lasts
            log.warn("campaign {c}: claim failed: {e}", c=self.campaign.name, e=f.getErrorMessage())

        d.addCallbacks(filled, failed)
        d.addBoth(lambda _: setattr(self, "_filling", False))
        return d

    def claim_now(self, n: int, now: float) -> list[Lead]:
        """Claim ``n`` records on this thread (blocks on the database)."""
        claimed = pool.claim(self.engine, self.campaign, self.gate, _utc(now), limit=n)
        if not claimed:
            return []
        self._reason = None
        ids = {c.contact_id for c in claimed}
        with self.engine.connect() as conn:
            names = dict(
                conn.execute(
                    select(db.contact.c.id, db.contact.c.display_name).where(
                        db.contact.c.id.in_(ids)
                    )
                ).all()
            )
        return [
            Lead(c.record_id, c.e164, str(c.contact_id), c.extra, names.get(c.contact_id) or None)
            for c in claimed
        ]

    def _drop_stale(self, now: float) -> None:
        stale = []
        while self._buffer and now - self._buffer[0][0] > self.max_age:
            stale.append(self._buffer.popleft()[1])
        self._give_back(stale)

    def release_buffer(self) -> int:
        """The buffered leads go back to the pool undialed (pause, stop)."""
        leads = [lead for _, lead in self._buffer]
        self._buffer.clear()
        self._give_back(leads)
        return len(leads)

    def _give_back(self, leads: list[Lead]) -> None:
        ids = [lead.record_id for lead in leads if isinstance(lead.record_id, int)]
        if ids and self.writer is not None:
            self.writer.submit("unclaim", self._unclaim, ids)

    def _unclaim(self, ids: list[int]) -> None:
        with self.engine.begin() as conn:
            pool.unclaim(conn, ids)

    def done(self, lead: Lead, outcome: str, now: float) -> None:
        if not isinstance(lead.record_id, int):
            return  # an attempt without a record (a manual dial)
        args = (self.engine, lead.record_id, outcome, _utc(now), self.rules)
        policy = self.campaign.policy
        if self.writer is None:
            pool.record_outcome(*args, counted=True, policy=policy)
        else:
            self.writer.submit("outcome", pool.record_outcome, *args, counted=True, policy=policy)

    def release(self, lead: Lead, now: float) -> None:
        """A record taken but never dialed (a skipped preview) is due again,
        behind the records never tried, with no attempt counted."""
        if not isinstance(lead.record_id, int):
            return
        if self.writer is None:
            self._release(lead.record_id, now)
        else:
            self.writer.submit("release", self._release, lead.record_id, now)

    def _release(self, record_id: int, now: float) -> None:
        r = db.record
        with self.engine.begin() as conn:
            conn.execute(
                update(r)
                .where(and_(r.c.id == record_id, r.c.status.in_((*db.OPEN_STATUSES, "dialing"))))
                .values(status="scheduled", next_due_at=_at(now))
            )
            pool.unclaim(conn, [record_id])

    def empty_reason(self, now: float) -> str | None:
        """Why nothing is dialable, from the pool status (cached a few seconds:
        an idle campaign asks every second).

        The pool status counts the whole campaign; with ``in_thread`` set
        (the server) it is worked out there and the last answer is given
        meanwhile, so the reactor never waits for it."""
        if self._claim_error is not None:  # QA4: "running", no reason, while nothing could dial
            return f"database unavailable: no record can be claimed ({self._claim_error})"
        if self._found and self.writer is not None:
            return None  # the last claim found records: the buffer ran dry for a moment
        if self._reason is not None and now - self._reason[0] < self.reason_ttl:
            return self._reason[1]
        if self._filling and self._found is None:
            return "filling the hopper"  # the first claim is on its way
        if self.in_thread is None:
            self._reason = (now, self.reason_now(now))
            return self._reason[1]
        if not self._refreshing:
            self._refreshing = True
            d = self.in_thread(self.reason_now, now)
            d.addCallback(lambda reason: setattr(self, "_reason", (now, reason)))
            d.addErrback(lambda f: log.warn("pool status failed: {e}", e=f.getErrorMessage()))
            d.addBoth(lambda _: setattr(self, "_refreshing", False))
        # not "nothing dialable": the lists may hold records due now (QA3)
        return self._reason[1] if self._reason is not None else CHECKING

    def reason_now(self, now: float) -> str:
        """The idle reason, from a fresh pool status (blocks on the database).

        Judged on the active lists only: with every list switched off the
        campaign never resumes by itself, and saying "due later today" of
        records it will not dial would have its manager wait for nothing."""
        sample = 500
        status = pool.pool_status(self.engine, self.campaign, self.gate, _utc(now), sample=sample)
        lists = status["lists"]
        # the hopper takes only from active lists: a switched-off list's open
        # records are not "left to dial" (the campaign will not resume by itself)
        active = [f for f in lists.values() if f["active"]]
        importing = sum(1 for f in lists.values() if not f["active"] and "importing" in f)
        off = len(lists) - len(active) - importing
        records: dict[str, int] = {}
        for figures in active:
            for key, n in figures["records"].items():
                records[key] = records.get(key, 0) + n
        open_ = records.get("new", 0) + records.get("scheduled", 0)
        switched_off = f"{off} list{'s' if off != 1 else ''} switched off" if off else ""
        also = f"; {switched_off}" if off else ""
        if not status["records"]:
            reason = "the campaign has no records (import a list)"
        elif not active:
            parts = [switched_off, f"{importing} being imported" if importing else ""]
            reason = f"no active list ({', '.join(p for p in parts if p)})"
        elif open_ == 0 and records.get("dialing", 0) == 0:
            reason = (
                f"list exhausted ({records.get('completed', 0)} completed, "
                f"{records.get('closed', 0)} closed{also})"
            )
        elif status["dialable_now"]:  # the hopper ran dry for a moment: records are there
            n = status["dialable_now"]  # of the first ``sample`` due records of each list
            many = f"{n} or more" if n >= sample else str(n)
            reason = f"filling the hopper ({many} record{'s' if n != 1 else ''} may be dialed now)"
        elif status["blocked_now"]:
            why = ", ".join(f"{k} {v}" for k, v in sorted(status["blocked_now"].items()))
            if status["sampled"]:  # of the first due records only: at least as many
                why += f" of the first {sample} due of a list"
            reason = f"no record may be dialed now (blocked: {why})"
        elif status["due_later_today"]:
            reason = f"nothing due now ({status['due_later_today']} due later today{also})"
        else:
            reason = f"nothing due now ({switched_off})" if off else "nothing due now"
        return reason

    def release_orphans(self) -> int:
        """Records a crash left claimed but never dialed (in the hopper, no
        attempt row) go back to the pool as they were; so do records left
        ``dialing`` without an open attempt.  Records with an open attempt
        stay until the reconciliation closes it.  Returns how many."""
        r, a, h, lst = db.record, db.attempt, db.hopper, db.dial_list
        with self.engine.begin() as conn:
            campaign_id = pool.find_campaign_id(conn, self.campaign.name)
            open_records = select(a.c.record_id).where(
                a.c.outcome.is_(None), a.c.record_id.is_not(None)
            )
            never_dialed = conn.execute(
                delete(h).where(
                    h.c.campaign_id == campaign_id,
                    h.c.record_id.not_in(open_records),
                    h.c.record_id.in_(select(r.c.id).where(r.c.status.in_(db.OPEN_STATUSES))),
                )
            ).rowcount
            lists = select(lst.c.id).where(lst.c.campaign_id == campaign_id)
            stuck = conn.execute(
                update(r)
                .where(
                    and_(
                        r.c.status == "dialing",
                        r.c.list_id.in_(lists),
                        r.c.id.not_in(open_records),
                    )
                )
                .values(status="scheduled", next_due_at=None)
            ).rowcount
            conn.execute(  # and the hopper rows of the records just freed
                delete(h).where(h.c.campaign_id == campaign_id, h.c.record_id.not_in(open_records))
            )
            return never_dialed + stuck


class DbLedgerStore:
    """One abandon ledger's day buckets, saved after every change, and its
    last hour, rebuilt from the attempt rows of the group's campaigns."""

    def __init__(
        self,
        engine: Engine,
        group: str,
        campaigns: Iterable[str] = (),
        writer: DialerWriter | None = None,
    ) -> None:
        self.engine = engine
        self.group = group
        self.writer = writer
        #: the campaigns whose calls the ledger counts (default: the one named ``group``)
        self.campaigns = tuple(campaigns) or (group,)

    def load(self) -> list[DayCount]:
        t = db.abandon_count
        with self.engine.connect() as conn:
            rows = conn.execute(select(t).where(t.c.grp == self.group)).all()
        return [DayCount(r.day_start, r.live, r.abandoned) for r in rows]

    def recent(
        self, now: float, amd_false_positive: float = 0.0, span: float = 3600.0
    ) -> list[tuple[float, float, float]]:
        """The ledger's events of the last ``span`` seconds, from the attempt
        rows: (when, live, abandoned), as the runner counted them: a person
        connected to an agent (live), a person who found none in time
        (abandoned), and per "human" verdict the estimate of persons AMD
        took for machines (``fp / (1 - fp)`` live and abandoned).  An
        abandon is placed at its answer (a few seconds before the runner
        counted it).  A connection the agent said was an answering machine
        (disposition "machine") is no live answer: the runner took it back."""
        t, c = db.attempt, db.campaign
        since = _at(now - span)
        ids = select(c.c.id).where(c.c.name.in_(self.campaigns))
        query = select(
            t.c.answered_at, t.c.connected_at, t.c.abandoned, t.c.verdict, t.c.disposition
        ).where(t.c.campaign_id.in_(ids), or_(t.c.connected_at >= since, t.c.answered_at >= since))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        fp = amd_false_positive
        share = fp / (1.0 - fp) if 0.0 < fp < 1.0 else 0.0
        start = now - span
        events: list[tuple[float, float, float]] = []
        for r in rows:
            answered, connected = _seconds(r.answered_at), _seconds(r.connected_at)
            if connected is not None and connected >= start and r.disposition != pool.MACHINE:
                events.append((connected, 1.0, 0.0))
            if answered is None or answered < start:
                continue
            if r.abandoned:
                events.append((answered, 1.0, 1.0))
            if share and r.verdict == "human":
                events.append((answered, share, share))
        return sorted(events)

    def save(self, bucket: DayCount) -> None:
        """Save a day bucket (with a writer: a copy of it, in the writer's order)."""
        if self.writer is not None:
            copy = DayCount(bucket.day, bucket.live, bucket.abandoned)
            self.writer.submit("ledger", self._save, copy)
            return
        self._save(bucket)

    def _save(self, bucket: DayCount) -> None:
        t = db.abandon_count
        where = and_(t.c.grp == self.group, t.c.day_start == bucket.day)
        values = {"live": bucket.live, "abandoned": bucket.abandoned}
        with self.engine.begin() as conn:
            if not conn.execute(update(t).where(where).values(**values)).rowcount:
                conn.execute(insert(t).values(grp=self.group, day_start=bucket.day, **values))


class DbCampaignStore:
    """The campaigns' store in the database (:class:`dialer.ports.CampaignStore`):
    their rows, hoppers, attempt logs and ledgers, every write and claim in
    one :class:`DialerWriter`.  Its metrics (``dirigent_attempt_write_*``)
    go to ``registry``."""

    def __init__(
        self,
        engine: Engine,
        *,
        registry: CollectorRegistry | None = None,
        writer: DialerWriter | None = None,
    ) -> None:
        self.engine = engine
        self.writer = writer or DialerWriter(metrics=WriteMetrics(registry))
        self._gate = Compliance(DbDnc(engine), DbConsent(engine))

    def open(self, setup: CampaignSetup) -> tuple[DbLeadSource, DbAttemptLog]:
        s = setup.settings
        ensure_campaign(
            self.engine, s.name, country=s.country, dial_mode=s.mode, caller_id=setup.caller_id
        )
        source = DbLeadSource(
            self.engine,
            setup.compliance(),
            self._gate,
            setup.retry,
            in_thread=threads.deferToThread,
            writer=self.writer,
        )
        judge = functools.partial(pool.recheck, self.engine, setup.compliance(), self._gate)
        return source, DbAttemptLog(self.engine, s.name, self.writer, judge)

    def stored_settings(self, name: str) -> dict[str, Any]:
        return stored_settings(self.engine, name)

    def ledger(self, group: str, members: Sequence[str]) -> DbLedgerStore:
        return DbLedgerStore(self.engine, group, members, writer=self.writer)

    def recovery(
        self, attempts: Mapping[str, CampaignAttempts]
    ) -> Deferred[dict[str, tuple[str | None, dict[str, Any]]]]:
        def read() -> dict[str, tuple[str | None, dict[str, Any]]]:
            states = {}
            for name, log_ in attempts.items():
                log_.preload_open(name)
                states[name] = (
                    campaign_status(self.engine, name),
                    stored_settings(self.engine, name),
                )
            return states

        return self.writer.submit("recover", read, durable=False)

    def release_orphans(self, source: Hopper) -> Deferred[int]:
        return self.writer.submit("orphans", source.release_orphans, durable=False)

    def set_status(self, name: str, status: str) -> None:
        self.writer.submit("status", set_campaign_status, self.engine, name, status)

    def store_settings(self, name: str, updates: dict[str, Any], **columns: Any) -> None:
        self.writer.submit("settings", store_settings, self.engine, name, updates, **columns)

    def machine_after_answer(
        self, ref: str, now: dt.datetime, retry: RetryRules, policy: Policy | None = None
    ) -> None:
        self.writer.submit(
            "machine", pool.machine_after_answer, self.engine, ref, now, retry, policy
        )

    def count_records(
        self, campaign_ids: Mapping[str, int]
    ) -> Deferred[dict[str, dict[tuple[str, bool], dict[str, int]]]]:
        return threads.deferToThread(count_records, self.engine, dict(campaign_ids))

    def flush(self) -> Deferred[Any]:
        return self.writer.flush()

    def sweep(self) -> Deferred[Any]:
        return self.writer.sweep()

    def close(self) -> None:
        self.writer.close()
