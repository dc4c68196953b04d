"""The abandon cap holds in the assembled server with blended agents (issue 15,
finding 1).

The README's demo (ten nailed-up agents in the inbound queue "sales" and in
the predictive campaign, 120 inbound calls an hour, the demo's campaign and
list, SQLite) reached 15 % abandoned in ten minutes: an inbound call took
the last ready agent seconds before each abandon.  Here the same
configuration runs as the server runs it -- the Dirigent service tree, the
simulated PBX over real AMI/TCP -- for one simulated hour, the server and the
PBX sharing one :class:`~sim.clock.ScaledClock`, and the cap is read from
what the server itself wrote to the database: the attempt rows (abandoned at
most 3 % of the persons who answered, as the demo reports it) and the
ledger's day bucket (with AMD's estimated misreads, at most 5 % for an hour).
With the pacing before 480f686 (no inbound demand, no small-sample bound)
the same hour gave 3.9 % counted, 4.9 % in the ledger.

Speed: up to 50 times real time (the hour in 72 s).  The loopback AMI round
trip (a few ms) becomes a few hundred virtual ms, and so does a SQLite commit
before each Originate and the reactor's lateness on a busy machine: they make
the server slower than it is, not faster, and a person who must reach an agent
within 2 s finds none when 40 real ms of lateness are 2 virtual seconds (a
loaded machine gave 3.7 % and 4.5 % abandoned that way).  So the test measures
the lateness every second and slows the clock down (to 25 times at the least,
the hour in 144 s) to keep it under a quarter of those 2 s; when even that is
not enough for much of the hour and the cap is missed, the hour says nothing
about the pacing and the test is skipped, saying so.  Unloaded the hour holds
about 120 live answers, on a 2-core machine loaded to 5-6 about 85-100."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import event, func, select
from twisted.internet import reactor
from twisted.internet.task import LoopingCall

from dirigent.cli.server import DEMO_CAMPAIGN, _demo_campaign, _demo_users
from dirigent.cli.server import demo_settings as demo_config
from dirigent.config import Settings
from dirigent.service import Dirigent
from sim.ami_server import SimAmiServer
from sim.clock import ScaledClock
from sim.pbx import SimPbx
from store import db
from tests.conftest import LOOP, run, stop_sim, wait_for

SPEED = 50.0
#: the slowest the clock may run: the hour in 144 s of wall time
MIN_SPEED = 25.0
#: the reactor's lateness allowed, in virtual seconds (the 90th percentile of a
#: second): a quarter of the 2 s in which a person must reach an agent
LAG_BOUND = 0.5
#: the share of the hour over that bound (at the slowest speed) that makes it meaningless
LAG_OVER_SHARE = 0.1
HOUR = 3600.0
#: the demo's defaults (``dirigent demo``): agents, inbound calls per hour, seed
AGENTS, INBOUND_RATE, SEED = 10, 120.0, 1
#: a Monday, 10:00 in London: the simulated hour is inside every calling window
START = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC).timestamp()


class ReactorLag:
    """How late the reactor runs its timers (real seconds): at 50 times real
    speed 10 ms late is 0.5 s of the simulated hour.  Every second the 90th
    percentile of that second's lateness, times the clock's speed, is held
    against :data:`LAG_BOUND`: over it the clock slows down (not below
    :data:`MIN_SPEED`), well under it speeds up again (not above
    :data:`SPEED`).  The seconds still over the bound are counted, and the
    figures go into the test's summary."""

    EVERY = 0.05
    WINDOW = 20  # ticks: one second

    def __init__(self, clock: ScaledClock | None = None) -> None:
        self.clock = clock
        self.late: list[float] = []
        self.windows = self.over = 0
        self.slowest = clock.speed if clock is not None else SPEED
        self._window: list[float] = []
        self._last: float | None = None
        self._loop = LoopingCall(self._tick)
        self._loop.clock = reactor

    def _tick(self) -> None:
        now = reactor.seconds()
        if self._last is not None:
            late = max(0.0, now - self._last - self.EVERY)
            self.late.append(late)
            self._window.append(late)
        self._last = now
        if len(self._window) >= self.WINDOW:
            self._adapt(sorted(self._window)[int(0.9 * (len(self._window) - 1))])
            self._window = []

    def _adapt(self, p90: float) -> None:
        if self.clock is None:
            return
        speed = self.clock.speed
        self.windows += 1
        if p90 * speed > LAG_BOUND:
            self.over += speed <= MIN_SPEED  # slowing down cannot help any more
            speed = max(MIN_SPEED, LAG_BOUND / p90 * 0.8)
        elif p90 * speed < LAG_BOUND / 2:
            speed = min(SPEED, speed * 1.25)
        self.clock.set_speed(speed)
        self.slowest = min(self.slowest, speed)

    @property
    def over_share(self) -> float:
        """The share of the seconds whose lateness stayed over the bound."""
        return self.over / self.windows if self.windows else 0.0

    def start(self) -> None:
        self._loop.start(self.EVERY)

    def stop(self) -> str:
        if self._loop.running:
            self._loop.stop()
        late = sorted(self.late) or [0.0]
        p95 = late[int(0.95 * (len(late) - 1))]
        return (
            f"reactor late p95 {p95 * 1000:.0f} ms, max {late[-1] * 1000:.0f} ms; clock down to"
            f" {self.slowest:.0f}x, {self.over_share:.0%} of the seconds over"
            f" {LAG_BOUND} virtual s late"
        )


def demo_settings(url: str, ami_port: int, campaign: Any) -> Settings:
    """What ``dirigent demo`` builds (the same function), on a free HTTP port."""
    return demo_config(url, ami_port, (campaign,), agents=AGENTS)


def counted(engine: Any) -> dict[str, int]:
    """The campaign's calls as the attempt rows say (persons connected to an
    agent, persons abandoned), and the inbound callers as the report rows say."""
    a, i = db.attempt, db.interaction
    with engine.connect() as conn:

        def n(*where: Any, table: Any = a) -> int:
            return conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()

        inbound = i.c.direction == "inbound"
        return {
            "dials": n(a.c.id.is_not(None)),
            "connected": n(a.c.connected_at.is_not(None)),
            "abandoned": n(a.c.abandoned.is_(True)),
            "open": n(a.c.outcome.is_(None)),
            "inbound": n(inbound, table=i),
            "inbound_answered": n(inbound, i.c.answered_at.is_not(None), table=i),
        }


def ledger(engine: Any) -> tuple[float, float]:
    """(live, abandoned) of the drop-rate group's day, as the server saved it
    (persons taken for machines by AMD included, as the regulator counts)."""
    t = db.abandon_count
    with engine.connect() as conn:
        rows = conn.execute(select(t.c.live, t.c.abandoned)).all()
    return sum(r.live for r in rows), sum(r.abandoned for r in rows)


@pytest.mark.timeout(300)
@pytest.mark.integration  # its tier, said as well as read from its code (tests/conftest.py)
@pytest.mark.serial  # its scaled clock needs the cores: scripts/test.sh runs it alone
def test_the_demo_blended_for_a_simulated_hour_keeps_abandons_under_three_percent(tmp_path):
    clock = ScaledClock(reactor, SPEED, start=START)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    db.upgrade(url)
    _demo_users(url, AGENTS)
    campaign = _demo_campaign(url, tmp_path)
    pbx = SimPbx(clock, seed=SEED, agents=AGENTS)
    # The dialplan's net plays the abandon message 2 s after the greeting, 0.3 s
    # after Dirigent's own deadline.  At 25-50 times real speed the AMI round
    # trip from AMD's UserEvent to the Redirect that follows it (30-60 real ms
    # on a loaded machine) is 1-3 virtual seconds: the net would play to persons
    # a server at real speed connects in time, and the hour would measure the
    # clock, not the pacing.  Here it stands back; it is measured at real speed
    # (tests/test_dialer_runner.py, tests/realpbx/test_restarts.py).
    pbx.globals["DIRIGENT_CONNECT_LIMIT"] = "30"
    server = SimAmiServer(pbx, reactor, clock=clock, username="dirigent", secret="demo-secret")
    server.listen(0)
    pbx.start_inbound(INBOUND_RATE)
    app = Dirigent(demo_settings(url, server.address[1], campaign), CollectorRegistry(), clock)
    app.service.startService()
    engine = db.make_engine(url)
    lag = ReactorLag(clock)
    lag.start()
    # issue 16: once started, the server never waits for the database on the
    # reactor thread (claims, attempt rows, outcomes, ledger, figures)
    reactor_thread, on_reactor = threading.get_ident(), []

    def watch(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if threading.get_ident() == reactor_thread:
            on_reactor.append(" ".join(statement.split())[:60])

    event.listen(app.database.engine, "before_cursor_execute", watch)
    try:
        assert app.campaigns is not None
        runner = app.campaigns.campaigns[DEMO_CAMPAIGN].runner
        run(wait_for(lambda: runner.stats.dials > 0, timeout=30, what="the campaign dialing"))
        began = clock.seconds()
        run(
            wait_for(
                lambda: clock.seconds() - began >= HOUR,
                timeout=HOUR / MIN_SPEED + 10,
                what="the simulated hour",
            ),
            timeout=HOUR / MIN_SPEED + 30,
        )
        # no new dials; the calls in progress end as usual
        app.campaigns.control(DEMO_CAMPAIGN, "pause")
        run(wait_for(lambda: not runner.live, timeout=30, what="the last calls ended"))
        run(app.campaigns.flush().asFuture(LOOP))
        assert app.database.recorder is not None
        app.database.recorder.flush()
        figures = counted(engine)
        live, abandoned_ledger = ledger(engine)
        event.remove(app.database.engine, "before_cursor_execute", watch)
    finally:
        lateness = lag.stop()
        if app.service.running:
            run(app.service.stopService().asFuture(LOOP))
        stop_sim(pbx, server)
        engine.dispose()

    answered = figures["connected"] + figures["abandoned"]  # persons who answered
    rate = figures["abandoned"] / answered
    summary = (
        f"{figures['dials']} dials, {answered} live answers, {figures['abandoned']} abandoned"
        f" ({rate:.2%}); ledger {abandoned_ledger:.1f} of {live:.1f}"
        f" ({abandoned_ledger / live:.2%} with the AMD estimate); inbound"
        f" {figures['inbound_answered']} of {figures['inbound']} answered; {lateness}"
    )
    print(summary)
    assert figures["open"] == 0, "every attempt has its outcome"
    assert not on_reactor, f"{len(on_reactor)} statements on the reactor thread: {on_reactor[:3]}"
    # the inbound callers come (120 an hour, a Poisson stream of the simulated PBX)
    assert figures["inbound"] >= 80
    held = {
        # about 120 live answers in the hour when the machine keeps up
        "too few calls for the figure to mean anything": answered >= 70,
        # the demo's figure (`dirigent demo` prints it from the same rows): the cap
        "abandon cap broken with blended agents": rate <= 0.03,
        # the ledger adds AMD's estimated misreads (1 % of persons), as Ofcom counts,
        # and the campaign's target is the legal 3 % of the day with them: one hour
        # of it stays within the worst-hour goal of issue 15 (5 %)
        "the server's own ledger is over 5 %": abandoned_ledger / live <= 0.05,
        # the inbound callers are served too
        "inbound callers not served": figures["inbound_answered"] >= 0.9 * figures["inbound"],
    }
    missed = [what for what, ok in held.items() if not ok]
    if missed and lag.over_share > LAG_OVER_SHARE:
        pytest.skip(
            f"the machine is too busy for the hour to judge the pacing: the reactor ran over"
            f" {LAG_BOUND} virtual s late in {lag.over_share:.0%} of the seconds even at"
            f" {MIN_SPEED:.0f} times real speed ({'; '.join(missed)}: {summary})"
        )
    assert not missed, f"{'; '.join(missed)}: {summary}"
