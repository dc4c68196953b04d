"""Service assembly: one Twisted ``MultiService`` tree per process.

Children start in order (PBX sessions, then the web server).  A stop
(:class:`ServerTree`) first drains the campaigns: no new dials, and the lines
already placed resolve -- ring out, or a person is connected to an agent or
given the abandon message -- with everything still running
(:meth:`dialer.campaigns.Campaigns.drain`, bounded); only then are the
children stopped (Twisted's ``MultiService``: all at once).  Stopping logs off
every PBX (AMI ``Logoff``, its lease released), drains the report writer and
disposes of the database engine, so SIGTERM leaves nothing half-done.  This
module is the only place that knows which implementation of a port is wired in.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import time
from collections.abc import Callable
from typing import Any, cast

from prometheus_client import CollectorRegistry
from twisted.application import internet, service
from twisted.internet import threads
from twisted.internet.defer import Deferred, gatherResults, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from asterisk.metrics import AmiMetrics
from asterisk.session import AmiSession
from asterisk.telephony import AmiTelephony
from center.hub import Hub
from channels.voice import AgentEndpoint, VoiceInbound
from core.telephony import PbxSynced, PbxUp, TelephonyEvent
from cti.api import ApiResource
from cti.auth import Scope, TokenStore, User, revoke_changed
from cti.web import make_site
from cti.ws import push_resource
from dialer.campaigns import Campaigns
from dirigent import logs
from dirigent.config import Settings
from routing.agent import Agent
from routing.router import Router
from store import db
from store.dialer import DbCampaignStore
from store.instance import hold_database
from store.list_ops import ListOps
from store.pool import MachineCall
from store.records import (
    DayCall,
    Recorder,
    agent_states_since,
    calls_left_open,
    close_unfinished,
    inbound_calls_since,
    time_in_state,
)

log = Logger(namespace="dirigent.service")

#: seconds between comparisons of the live tokens with the users table
REVOCATION_INTERVAL = 5.0


def _restore_kpi(hub: Hub, calls: list[DayCall], now: float) -> None:
    """Today's live figures from today's report rows (a restart does not
    begin the day again): answers with their waits, callers who left
    waiting, fallbacks."""
    answers = sorted(
        (c.answered, c.queue, c.answered - c.arrived) for c in calls if c.answered is not None
    )
    abandons = sorted(
        (c.ended, c.interaction, c.queue, c.ended - c.arrived)
        for c in calls
        if c.outcome == "abandoned" and c.answered is None and c.ended is not None
    )
    fallbacks = sum(1 for c in calls if c.outcome == "fallback")
    hub.kpi.restore(answers, abandons, fallbacks, now)


def freeze_startup_objects() -> None:
    """Exempt what start-up made (modules, phone-number metadata, SQL
    compilation caches, configuration) from the garbage collector's full
    passes, which otherwise walk all of it every few thousand allocations,
    on the reactor thread (58 ms a pass in the hopper benchmark; its p99
    halved, docs/benchmarks.md).  Called once, after start-up."""
    gc.collect()
    gc.freeze()


class ServerTree(service.MultiService):
    """The server's service tree.  Its stop runs the ``drains`` first (each
    a Deferred; while they run every child still runs), then stops the
    children: the PBX sessions must outlive the lines a drain waits for."""

    def __init__(self) -> None:
        super().__init__()
        self.drains: list[Callable[[], Deferred[None]]] = []
        #: run once the drains are done, before any child stops (the writer still takes rows)
        self.closing: list[Callable[[], None]] = []

    def stopService(self) -> Deferred[None]:
        drained = gatherResults([maybeDeferred(drain) for drain in self.drains], consumeErrors=True)
        drained.addErrback(lambda f: log.failure("the drain before the stop failed", f))
        stop = super().stopService

        def close(_: object) -> Deferred[None]:
            for step in self.closing:
                try:
                    step()
                except Exception:
                    log.failure("a step of the stop failed")
            return stop()

        return drained.addCallback(close)


class PbxService(service.Service):
    """Runs one :class:`AmiSession`; stopping logs off cleanly."""

    def __init__(self, session: AmiSession) -> None:
        self.session = session
        self.name = f"pbx:{session.name}"

    def startService(self) -> None:
        super().startService()
        self.session.start()

    def stopService(self) -> Deferred[Any]:
        super().stopService()
        return Deferred.fromFuture(asyncio.ensure_future(self.session.stop()))


class ErrorCountService(service.Service):
    """Counts error log events in ``dirigent_log_errors_total`` while it runs."""

    name = "error-count"

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._stop: Any = None

    def startService(self) -> None:
        super().startService()
        self._stop = logs.count_errors(self.registry)

    def stopService(self) -> None:
        super().stopService()
        if self._stop is not None:
            self._stop()
            self._stop = None


class DatabaseService(service.Service):
    name = "database"

    def __init__(self, url: str) -> None:
        # held first: a second server on this database stops here, before it
        # closes the first one's open rows or drives its PBXs (store.instance)
        self.hold = hold_database(url)
        self.engine = db.make_engine(url)
        self.recorder: Recorder | None = None

    def stopService(self) -> None:
        super().stopService()
        if self.recorder is not None:
            self.recorder.close()  # drain the report writes before the engine goes
        self.engine.dispose()
        self.hold.release()


class AcdService(service.Service):
    """The hub and its voice adapters, one per PBX; logs in a PBX's
    auto-login agents once that PBX is connected (nailed-up agents get
    their phone leg first)."""

    name = "acd"

    def __init__(
        self,
        acd: Hub,
        voices: dict[str, VoiceInbound],
        auto_login: dict[str, tuple[str, ...]],
    ) -> None:
        self.acd = acd
        self.auto_login = auto_login
        #: ring-mode agents whose login waits for their PBX's resync
        self._after_resync: set[str] = set()
        for voice in voices.values():
            voice.telephony.listen(functools.partial(self._on_event, voice))

    def _on_event(self, voice: VoiceInbound, event: TelephonyEvent) -> None:
        # ringing agents log in at once; nailed-up ones after the resync, which
        # shows whether their leg survived a restart of Dirigent -- and so do
        # ringing ones the last run left in a conversation (ready before the
        # resync, the next caller would ring the phone she talks on)
        late_step = isinstance(event, PbxSynced)
        if not (late_step or isinstance(event, PbxUp)):
            return
        for agent_id, queues in self.auto_login.items():
            ep = voice.endpoints.get(agent_id)
            if ep is None or self.acd.known_agent(agent_id).logged_in:
                continue  # an agent of another PBX, or already in
            nailed = ep.mode == "nailed"
            if not nailed and not late_step and voice.left_with(agent_id):
                self._after_resync.add(agent_id)
                continue
            late = nailed or agent_id in self._after_resync
            if late != late_step:
                continue
            if not nailed:
                self._after_resync.discard(agent_id)
                self.acd.login(agent_id, list(queues))
            elif not voice.adopt_nailed(agent_id, list(queues)):
                # logs in once bridged; a failure is logged, counted and retried
                # by the adapter (the agent shows "no phone" meanwhile)
                voice.nail_up(agent_id, list(queues))

    def startService(self) -> None:
        super().startService()
        self.acd.start()

    def stopService(self) -> None:
        super().stopService()
        self.acd.stop()


class CampaignService(service.Service):
    name = "campaigns"

    def __init__(self, campaigns: Campaigns) -> None:
        self.campaigns = campaigns

    def startService(self) -> None:
        super().startService()
        self.campaigns.start()

    def stopService(self) -> None:
        super().stopService()
        self.campaigns.stop()


class Dirigent:
    """The assembled server: settings, metrics, PBX sessions, database, web.

    ``clock``: the time of routing and dialing (the ACD, the campaigns and
    their runners); the reactor by default, a ``ScaledClock`` shared with a
    simulated PBX to run a simulated hour in a minute.  Network, database
    and token housekeeping keep the reactor's own time."""

    def __init__(
        self,
        settings: Settings,
        registry: CollectorRegistry | None = None,
        clock: IReactorTime | None = None,
    ) -> None:
        if clock is None:
            from twisted.internet import reactor

            clock = reactor
        self.clock: IReactorTime = clock
        self.settings = settings
        self.registry = registry or CollectorRegistry()
        self.ami_metrics = AmiMetrics(self.registry)
        self.service = ServerTree()
        ErrorCountService(self.registry).setServiceParent(self.service)
        self.database = DatabaseService(settings.database.url)
        self.database.setServiceParent(self.service)
        self.sessions: dict[str, AmiSession] = {}
        for pbx in settings.pbxs:
            session = AmiSession(pbx, metrics=self.ami_metrics)
            self.sessions[pbx.name] = session
            self.ami_metrics.pbx_up.labels(pbx.name).set(0)
            PbxService(session).setServiceParent(self.service)
        self.acd: Hub | None = None
        #: the voice channel of each PBX, by the PBX's name
        self.voices: dict[str, VoiceInbound] = {}
        routing = settings.routing
        if routing.queues and self.sessions:
            self.router = Router(
                {q.name: q for q in routing.queues},
                routing.blending,
                routing.policy,
                routing.offer_timeout,
            )
            only = next(iter(self.sessions)) if len(self.sessions) == 1 else None
            agent_pbx: dict[str, str] = {}
            endpoints: dict[str, dict[str, AgentEndpoint]] = {name: {} for name in self.sessions}
            for a in routing.agents:
                self.router.add_agent(
                    Agent(a.id, skills=dict(a.skills), capacity=dict(a.capacity), team=a.team)
                )
                home = a.pbx or only
                if home is None or home not in endpoints:
                    raise ValueError(f"agent {a.id}: pbx {home!r} is not one of {list(endpoints)}")
                agent_pbx[a.id] = home
                endpoints[home][a.id] = AgentEndpoint(a.id, a.endpoint, a.mode)
            self.acd = Hub(
                self.router,
                self.clock,
                registry=self.registry,
                wrap_up=routing.wrap_up,
                agent_pbx=agent_pbx,
                queue_pbx=routing.queue_pbx,
                campaign_queues=[c.settings.queue_name for c in settings.campaigns],
                campaign_only=routing.campaign_only,
                rung=[a.id for a in routing.agents if a.mode != "nailed"],
            )
            # today's figures (service level, abandoned) go on from the rows
            now = self.clock.seconds()
            today = inbound_calls_since(self.database.engine, self.acd.day_start(now))
            _restore_kpi(self.acd, today, now)
            # calls the last run left with agents: taken over if still bridged
            left_open = calls_left_open(self.database.engine)
            for name, session in self.sessions.items():
                self.voices[name] = VoiceInbound(
                    AmiTelephony(session),
                    self.acd,
                    endpoints[name],
                    name=name,
                    qualify_ids=len(self.sessions) > 1,
                    left_open=left_open,
                )
            # before anything routes: what the last run left open ends now
            close_unfinished(self.database.engine)
            # the agents' day so far, as the report has it (after that close)
            self.acd.restore_agent_days(
                agent_states_since(self.database.engine, self.acd.day_start(now)), now
            )
            self.database.recorder = Recorder(
                self.database.engine, self.acd.bus, registry=self.registry
            )
            auto = {a.id: a.queues for a in routing.agents if a.auto_login}
            AcdService(self.acd, self.voices, auto).setServiceParent(self.service)
        self.campaigns: Campaigns | None = None
        if settings.campaigns:
            if self.acd is None:
                raise ValueError("campaign: a campaign needs a [[pbx]] to dial through")
            self.campaigns = Campaigns(
                settings.campaigns,
                DbCampaignStore(self.database.engine, registry=self.registry),
                {name: voice.telephony for name, voice in self.voices.items()},
                self.acd,
                self.clock,
                registry=self.registry,
            )
            CampaignService(self.campaigns).setServiceParent(self.service)
            self.service.drains.append(self.campaigns.drain)
        self.service.closing.append(self._agents_stopped)
        children: dict[bytes, Any] = {}  # twisted.web resources (autobahn's is not typed as one)
        # tokens survive a restart: kept (hashed) by the report writer, the
        # ones still valid read back here (before the reactor runs)
        self.tokens = TokenStore(journal=self.database.recorder)
        kept = db.live_tokens(self.database.engine, time.time())
        restored = self.tokens.restore(
            (t.key, self._user_of(t.username, t.login), t.issued, t.expires) for t in kept
        )
        if restored:
            log.info("{n} API tokens of the last run are valid again", n=restored)
        #: the revocation check found the database away (said once until it is back)
        self._revocation_away = False
        #: supervisors whose teams have no configured agent (warned once each)
        self._warned_scopes: set[str] = set()
        # tokens end within REVOCATION_INTERVAL of a password change, a disabled
        # or removed user (done by `dirigent user` in another process)
        revocation = internet.TimerService(REVOCATION_INTERVAL, self._revoke_changed)
        revocation.setServiceParent(self.service)
        if self.acd is not None:
            engine = self.database.engine
            children[b"api"] = ApiResource(
                self.acd,
                self.find_user,
                self.tokens,
                lambda a, t0, t1: time_in_state(engine, a, t0, t1),
                campaigns=self.campaigns,
                lists=ListOps(engine, settings.campaigns, on_machine=self._machine_disposition),
                audit=self._audit,
                registry=self.registry,
                pbx_up=lambda name: (
                    self.sessions[name].connected if name in self.sessions else None
                ),
            )
            children[b"ws"] = push_resource(self.acd.bus, self.tokens)
        self.site = make_site(
            self.registry, self.pbx_status, lambda: db.ping(self.database.engine), children
        )
        self.web = internet.TCPServer(settings.http.port, self.site, interface=settings.http.host)
        self.web.setServiceParent(self.service)

    def stop_at_once(self) -> None:
        """A second stop signal: the stop's drain waits for nothing more."""
        if self.campaigns is not None:
            self.campaigns.stop_at_once()

    def _machine_disposition(self, call: MachineCall) -> None:
        """From the API's thread: an agent said a call was an answering
        machine.  The campaign's ledger (on the reactor) takes its live
        answer back before the API answers."""
        from twisted.internet import reactor
        from twisted.internet.interfaces import IReactorFromThreads

        if self.campaigns is not None:
            threads.blockingCallFromThread(
                cast(IReactorFromThreads, reactor),
                self.campaigns.answering_machine,
                call.campaign,
                call.ref,
                call.connected_at,
            )

    def _audit(self, entry: dict[str, Any]) -> None:
        """A supervisor's or campaign manager's action: in the log at once,
        in the ``audit`` table by the report writer (in order, retried; a row
        that still fails is logged with its traceback and counted)."""
        import datetime as dt

        log.info(
            "audit: {actor} ({role}) {action} {target} -> {status}; request {request};"
            " before {before}; after {after}",
            **entry,
        )
        row = {**entry, "at": dt.datetime.now(dt.UTC)}
        if self.database.recorder is not None:
            self.database.recorder.audit(row)

    def _agents_stopped(self) -> None:
        if self.acd is not None and self.database.recorder is not None:
            now = self.clock.seconds()
            for closed in self.acd.close_agent_days(now):
                self.database.recorder.on_agent_state(closed)
            # and the report rows of the calls and chats going on end at the stop too
            self.database.recorder.close_open(now)

    def _revoke_changed(self) -> Deferred[Any]:
        engine = self.database.engine

        def ended(names: list[str]) -> None:
            for name in names:
                log.info("tokens of user {u} ended (password changed or user removed)", u=name)

        def compare(credentials: dict[str, tuple[bool, float | None]]) -> None:
            if self._revocation_away:
                self._revocation_away = False
                log.info("revocation check: the database is back")
            ended(revoke_changed(self.tokens, credentials))

        def failed(failure: Any) -> None:
            if db.transient(failure.value):
                # the database is away (/healthz says so): said once, not a
                # traceback every 5 s for the whole outage (QA4 finding 4)
                if not self._revocation_away:
                    self._revocation_away = True
                    log.warn(
                        "revocation check: the database is away ({e}); tried again every"
                        " 5 s, tokens already issued stay valid meanwhile",
                        e=type(failure.value).__name__,
                    )
                return
            log.failure("revocation check failed", failure)

        d = threads.deferToThread(db.user_credentials, engine)
        return d.addCallbacks(compare, failed)

    def find_user(self, username: str) -> tuple[User, str] | None:
        """Database look-up for API logins (runs in a thread)."""
        found = db.find_user(self.database.engine, username)
        if found is None:
            return None
        return self._user_of(username, found), found.password_hash

    def _user_of(self, username: str, found: db.LoginRow) -> User:
        """The user of a login (or of a token kept from the last run): its
        role, agent and a supervisor's scope of the configured teams."""
        scope = None
        if found.teams is not None and found.role == "supervisor":
            routing = self.settings.routing
            scope = Scope.of(
                found.teams,
                {a.id: (a.team, a.queues) for a in routing.agents},
                {c.name: c.settings.queue_name for c in self.settings.campaigns},
            )
            if not scope.agents and username not in self._warned_scopes:
                self._warned_scopes.add(username)  # once: logins are looked up before the check
                log.warn(
                    "user {u}: no configured agent is in the teams {t}: it sees nothing",
                    u=username,
                    t=", ".join(sorted(found.teams)),
                )
        return User(username, found.role, found.agent, scope)

    def pbx_status(self) -> dict[str, dict[str, Any]]:
        status: dict[str, dict[str, Any]] = {}
        for name, s in self.sessions.items():
            status[name] = {
                "connected": s.connected,
                # unknown while the link is down (the mirror holds the last it saw)
                "channels": len(s.mirror.channels) if s.connected else None,
                "connects": s.connects,
            }
            if s.refused:  # its lease is held, its login refused, or a class missing
                status[name]["refused"] = s.refused
        return status

    @property
    def http_port(self) -> int:
        port = getattr(self.web, "_port", None)
        return port.getHost().port if port is not None else self.settings.http.port
