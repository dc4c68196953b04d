"""``dirigent serve``, ``demo`` and ``db upgrade``: the server, with a real or a simulated PBX."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dialer.campaign import CampaignSetup
    from dirigent.config import Settings

from core.events import AgentState, AgentStateChanged, Direction, InteractionChanged
from dirigent.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    bad_input,
    checked_database_url,
    database_source,
    make_sim,
    open_database,
    port_number,
    run_reactor,
    start_dirigent,
    url_key,
)


def register(sub: Any) -> None:
    """Add this group's commands to the ``dirigent`` parser."""
    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument("--config", required=True, help="TOML configuration file")

    demo = sub.add_parser("demo", help="server + simulated PBX on embedded defaults")
    demo.add_argument("--http-port", type=port_number, default=8080)
    demo.add_argument(
        "--ami-port", type=port_number, default=0, help="simulated PBX port (0: any free)"
    )
    demo.add_argument(
        "--data",
        default="dirigent-demo",
        help="folder the demo keeps its SQLite database and list in (kept between runs)",
    )
    demo.add_argument("--fresh", action="store_true", help="empty the data folder first")
    demo.add_argument(
        "--db", default=None, help="database URL (default: store.db in the data folder)"
    )
    demo.add_argument(
        "--summary-every", type=float, default=60.0, help="seconds between summary lines"
    )
    demo.add_argument("--agents", type=int, default=10)
    demo.add_argument("--inbound-rate", type=float, default=120.0, help="inbound calls per hour")
    demo.add_argument("--seed", type=int, default=1)
    demo.add_argument(
        "--duration",
        type=float,
        default=None,
        help="stop after this many seconds, at once (Ctrl-C waits for the lines in progress)",
    )
    demo.add_argument(
        "--no-campaign",
        action="store_true",
        help="inbound only: no predictive campaign (agents ring instead of staying on the line)",
    )

    dbp = sub.add_parser("db", help="database maintenance")
    dbsub = dbp.add_subparsers(dest="db_command", required=True)
    up = dbsub.add_parser("upgrade", help="apply migrations")
    up.add_argument(
        "--db", default=None, help="database URL (default: config or sqlite:///store.db)"
    )
    up.add_argument("--config", default=None)
    serve.set_defaults(handler=cmd_serve)
    demo.set_defaults(handler=cmd_demo)
    dbp.set_defaults(handler=cmd_db)


def cmd_serve(args: argparse.Namespace) -> int:
    """The server.  Its database is reached (and migrated, unless
    ``auto_upgrade = false``) before the reactor starts: one that cannot be
    opened is one line and exit 1 -- no retry; a supervisor that restarts
    on failure (systemd ``Restart=on-failure``) waits out a PostgreSQL
    that comes up after us."""
    import os

    from dirigent.config import ConfigError, load_settings

    env = os.environ.get("DIRIGENT_DATABASE_URL")
    if env:  # it wins over the file's: its errors name it, not database.url
        checked_database_url(env, "DIRIGENT_DATABASE_URL")
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        raise bad_input(exc) from None
    key = url_key(settings.database.url)
    url = checked_database_url(settings.database.url, key)
    open_database(url, key, upgrade=settings.database.auto_upgrade)
    return run_reactor(args, settings.log_format, lambda r: start_dirigent(r, settings))


def cmd_db(args: argparse.Namespace) -> int:
    from store import db

    url, key = database_source(args)
    open_database(url, key, upgrade=False)  # one that cannot be opened: named, exit 1
    try:
        db.upgrade(url)
    except Exception as exc:
        print(f"dirigent db upgrade failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    engine = db.make_engine(url)
    try:
        print(f"database at revision {db.current_revision(engine)}")
    finally:
        engine.dispose()
    return EXIT_OK


DEMO_SUPERVISOR_PASSWORD = "supervisor-demo"
DEMO_AGENT_PASSWORD = "agent-demo"


def _demo_users(url: str, agents: int) -> None:
    """API users for the demo: one supervisor and one user per simulated agent."""
    from cti.auth import hash_password
    from store import db

    engine = db.make_engine(url)
    try:
        db.add_user(
            engine, "supervisor", hash_password(DEMO_SUPERVISOR_PASSWORD), "supervisor", None
        )
        agent_hash = hash_password(DEMO_AGENT_PASSWORD)
        for i in range(agents):
            db.add_user(engine, f"agent{1001 + i}", agent_hash, "agent", f"agent{1001 + i}")
    finally:
        engine.dispose()


DEMO_CAMPAIGN = "demo-outbound"


#: the UK's rules but open all day, so the demo dials whenever it runs (never a shipped pack)
DEMO_POLICY: dict[str, Any] = {
    "country": "GB",
    "windows": [
        {
            "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
            "start": "00:00",
            "end": "23:59",
        }
    ],
    "public_holidays": False,
    "max_attempts_per_day": 0,
    "abandon_limit": 0.03,
    "abandon_window": "day",
    "abandon_lockout_hours": 72,
    "machine_retry_same_day_needs_agent": True,
    "requires_consent": False,
}


def _demo_campaign(url: str, directory: Path) -> Any:
    """The demo's predictive campaign: 2,000 records from Ofcom's ranges for
    drama (+44 20 7946 0xxx, +44 113 496 0xxx: never a real subscriber) that
    only the simulated PBX answers, imported like any list.  Its rules are
    the UK's except the calling hours (open all day, so the demo dials
    whenever it is started): a demo-only policy, never shipped as a pack."""
    from dialer.campaign import CampaignSetup, under_policy
    from dialer.compliance import Policy
    from store import db
    from store.lists_import import import_list

    path = directory / "demo-list.csv"
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("phone,first_name,last_name,plan\n")
        for i in range(1000):
            fh.write(f"+44 20 7946 {i:04d},Alex,Demo{i},basic\n")
            fh.write(f"+44 113 496 {i:04d},Sam,Demo{i},premium\n")
    engine = db.make_engine(url)
    try:
        import_list(engine, path, DEMO_CAMPAIGN, create=True)
    finally:
        engine.dispose()
    policy = Policy.parse(DEMO_POLICY, "demo policy")
    caller_id = "+442079460999"
    return CampaignSetup(
        settings=under_policy(policy, name=DEMO_CAMPAIGN, caller_id=caller_id, wrap_up=15.0),
        policy=policy,
        caller_id=caller_id,
        timezone="Europe/London",
        auto_start=True,
    )


def demo_settings(
    url: str,
    ami_port: int,
    campaigns: tuple[CampaignSetup, ...],
    *,
    agents: int,
    http_port: int = 0,
    ring: bool = False,
) -> Settings:
    """The demo's server: the simulated PBX on ``ami_port``, agents
    agent1001... on nailed-up lines in "sales" and the campaign's queue (ring
    mode in "sales" only with ``ring``, the inbound-only demo).  The
    assembled-server test builds the same."""
    from asterisk.session import PbxSettings
    from dirigent.config import (
        AgentSettings,
        DatabaseSettings,
        HttpSettings,
        RoutingSettings,
        Settings,
        instance_name,
    )
    from routing.model import QueueConfig

    queues = ("sales",) if ring else ("sales", DEMO_CAMPAIGN)
    return Settings(
        http=HttpSettings(host="127.0.0.1", port=http_port),
        database=DatabaseSettings(url=url),
        pbxs=(
            # the lease a configured [[pbx]] holds: another Dirigent pointed at the
            # demo's PBX (its address is printed) stays off it instead of taking
            # the agents' legs over
            PbxSettings(
                "sim",
                "127.0.0.1",
                ami_port,
                "dirigent",
                "demo-secret",
                keepalive_interval=5.0,
                owner=instance_name(url),
            ),
        ),
        routing=RoutingSettings(
            queues=tuple(QueueConfig(q) for q in queues),
            campaign_only=frozenset(queues) - {"sales"},
            agents=tuple(
                AgentSettings(
                    id=f"agent{1001 + i}",
                    endpoint=str(1001 + i),
                    mode="ring" if ring else "nailed",
                    queues=queues,
                    auto_login=True,
                )
                for i in range(agents)
            ),
        ),
        campaigns=campaigns,
    )


def cmd_demo(args: argparse.Namespace) -> int:
    data = Path(args.data).resolve()
    if args.fresh and data.exists():
        import shutil

        shutil.rmtree(data)
        print(f"demo: emptied {data}", flush=True)
    data.mkdir(parents=True, exist_ok=True)
    url = checked_database_url(args.db, "--db") if args.db else f"sqlite:///{data / 'store.db'}"
    print(f"demo: data in {data} (kept between runs; --fresh starts over)", flush=True)
    print("demo: migrating the database, adding users, importing the demo list ...", flush=True)
    open_database(url, "--db" if args.db else "--data")
    _demo_users(url, args.agents)
    args.username = "dirigent"
    campaigns = () if args.no_campaign else (_demo_campaign(url, data),)

    def setup(reactor: Any) -> None:
        pbx, server = make_sim(reactor, args, "demo-secret")
        server.listen(args.ami_port, "127.0.0.1")
        if args.inbound_rate:
            pbx.start_inbound(args.inbound_rate)
        settings = demo_settings(
            url,
            server.address[1],
            campaigns,
            agents=args.agents,
            http_port=args.http_port,
            ring=args.no_campaign,
        )
        app = start_dirigent(reactor, settings, args.duration)
        DemoReporter(reactor, app, args.summary_every).start()
        print(
            "\nDirigent demo is running (simulated PBX + server, SQLite):\n"
            f"  health:  http://127.0.0.1:{app.http_port}/healthz\n"
            f"  metrics: http://127.0.0.1:{app.http_port}/metrics\n"
            f"  simulated Asterisk AMI: 127.0.0.1:{server.address[1]}"
            f" (user dirigent, {args.agents} agent phones, {args.inbound_rate:g} inbound calls/h)\n"
            f"  simulated agents agent1001..agent{1000 + args.agents} log in to {' and '.join(q.name for q in settings.routing.queues)}"
            " and take the calls\n"
            + (
                ""
                if args.no_campaign
                else f"  predictive campaign '{DEMO_CAMPAIGN}' (2,000 records, abandon target 3 %):"
                f" dirigent campaign status {DEMO_CAMPAIGN} --server http://127.0.0.1:{app.http_port}"
                f" (password {DEMO_SUPERVISOR_PASSWORD} on stdin)\n"
            )
            + f"  API: http://127.0.0.1:{app.http_port}/api (POST /api/login as supervisor /"
            f" {DEMO_SUPERVISOR_PASSWORD}, or agent1001 / {DEMO_AGENT_PASSWORD}); push: ws://127.0.0.1:{app.http_port}/ws\n"
            f"  database: {url}\n"
            "Press Ctrl-C to stop.\n",
            flush=True,
        )

    code = run_reactor(args, "text", setup)
    if not args.no_campaign:
        print(_demo_outcome(url), flush=True)
    print(f"demo: data kept in {data}", flush=True)
    return code


class DemoReporter:
    """What the demo is doing, in words: each agent's first login, then
    one summary line a minute (agents by state, inbound calls, dials and
    abandons of the campaign)."""

    def __init__(self, reactor: Any, app: Any, every: float) -> None:
        from twisted.internet.task import LoopingCall

        self.reactor, self.app, self.every = reactor, app, every
        self.logged_in: set[str] = set()
        self.states: dict[str, str] = {}
        self.inbound = {"queued": 0, "answered": 0, "abandoned": 0, "fallback": 0}
        self._loop = LoopingCall(self.summary)
        self._loop.clock = reactor

    def start(self) -> None:
        if self.app.acd is None:
            return
        self.app.acd.bus.subscribe(AgentStateChanged, self.on_agent)
        self.app.acd.bus.subscribe(InteractionChanged, self.on_interaction)
        if self.every > 0:
            self._loop.start(self.every, now=False)

    def on_agent(self, e: AgentStateChanged) -> None:
        self.states[e.agent] = e.state.value
        if e.state is not AgentState.LOGGED_OUT and e.agent not in self.logged_in:
            self.logged_in.add(e.agent)
            print(f"demo: {e.agent} logged in ({e.state.value})", flush=True)

    def on_interaction(self, e: InteractionChanged) -> None:
        if e.direction is Direction.INBOUND and e.stage.value in self.inbound:
            self.inbound[e.stage.value] += 1

    def summary(self) -> None:
        import time as _time

        by_state: dict[str, int] = {}
        for state in self.states.values():
            by_state[state] = by_state.get(state, 0) + 1
        agents = ", ".join(f"{n} {st}" for st, n in sorted(by_state.items())) or "none"
        line = (
            f"demo {_time.strftime('%H:%M:%S')}: agents {agents}; inbound {self.inbound['queued']}"
            f" offered, {self.inbound['answered']} answered, {self.inbound['abandoned']} abandoned"
        )
        if self.app.campaigns is not None:
            for v in self.app.campaigns.views():
                day = v["abandon_rate"].get("day")
                rate = "-" if day is None else f"{day:.2%}"
                line += (
                    f"; {v['campaign']}: {v['status']}, {v['dials']} dials, {v['connected']}"
                    f" connected, {v['abandoned']} abandoned (today {rate} with the AMD estimate)"
                )
        print(line, flush=True)


def _demo_outcome(url: str) -> str:
    """The campaign's abandon rate from the database's own attempt rows
    (counted: persons answered and connected or not; AMD estimate apart)."""
    from store import db
    from store.attempts import attempt_totals

    engine = db.make_engine(url)
    try:
        t = attempt_totals(engine)
    finally:
        engine.dispose()
    rate = f"{t.abandoned / t.live:.2%}" if t.live else "-"
    return (
        f"demo: from the database: {t.dials} dials, {t.live} live answers, {t.connected} connected,"
        f" {t.abandoned} abandoned: abandon rate {rate} (all runs in this data folder)"
    )
