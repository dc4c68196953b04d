"""The ``dirigent`` command line (contract in DESIGN.md).

Exit codes: 0 success, 1 failure of the job, 2 bad usage or bad input.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    pass


def _host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host or "127.0.0.1", int(port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dirigent", description="CTI and predictive dialer server"
    )
    parser.add_argument("--log-format", choices=["text", "json"], default=None)
    parser.add_argument("--log-level", choices=["debug", "info", "warn", "error"], default="info")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument("--config", required=True, help="TOML configuration file")

    demo = sub.add_parser("demo", help="server + simulated PBX on embedded defaults")
    demo.add_argument("--http-port", type=int, default=8080)
    demo.add_argument("--ami-port", type=int, default=0, help="simulated PBX port (0: any free)")
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
    demo.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
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

    lists = sub.add_parser("lists", help="dial lists")
    listsub = lists.add_subparsers(dest="lists_command", required=True)
    imp = listsub.add_parser("import", help="import a CSV or .xlsx list into a campaign")
    imp.add_argument("file")
    imp.add_argument("--campaign", required=True)
    imp.add_argument(
        "--create", action="store_true", help="make the campaign if it does not exist yet"
    )
    imp.add_argument("--region", default=None, help="default country of national numbers, e.g. DE")
    imp.add_argument("--mapping", default=None, help='TOML [columns] field = "header"')
    imp.add_argument("--encoding", default=None, help="override the detected encoding")
    imp.add_argument("--delimiter", default=None, help="override the detected delimiter")
    imp.add_argument("--db", default=None)
    imp.add_argument("--config", default=None)
    imp.add_argument("--dry-run", action="store_true", help="check and count, write nothing")
    imp.add_argument("--json", action="store_true")

    mrg = listsub.add_parser(
        "merge", help="merge duplicate records into one (one contact, one history)"
    )
    mrg.add_argument("--campaign", required=True)
    mrg.add_argument("--keep", required=True, help="number of the record to keep")
    mrg.add_argument("--drop", required=True, nargs="+", help="numbers of the records to merge in")
    mrg.add_argument("--region", default=None, help="country of national numbers, e.g. DE")
    mrg.add_argument("--db", default=None)
    mrg.add_argument("--config", default=None)
    mrg.add_argument("--json", action="store_true")

    exp = listsub.add_parser(
        "export", help="the campaign's records with their last outcome and disposition (CSV)"
    )
    exp.add_argument("--campaign", required=True)
    exp.add_argument("--out", required=True, help="the CSV file to write")
    exp.add_argument("--db", default=None)
    exp.add_argument("--config", default=None)

    for verb, what in (("activate", "dial"), ("deactivate", "stop dialing")):
        act = listsub.add_parser(verb, help=f"{what} a list's records (kept, with their history)")
        act.add_argument("name", help="the list's name (the imported file's name)")
        act.add_argument("--campaign", required=True)
        act.add_argument("--db", default=None)
        act.add_argument("--config", default=None)
        act.add_argument("--json", action="store_true")

    dis = listsub.add_parser(
        "discard",
        help="drop an import that was killed midway (never dialed), instead of resuming it",
    )
    dis.add_argument("name", help="the list's name (the imported file's name)")
    dis.add_argument("--campaign", required=True)
    dis.add_argument("--db", default=None)
    dis.add_argument("--config", default=None)
    dis.add_argument("--json", action="store_true")

    dnc = sub.add_parser("dnc", help="do-not-call lists")
    dncsub = dnc.add_subparsers(dest="dnc_command", required=True)
    for name, helptext in (
        ("add", "add numbers"),
        ("import", "import a file (CSV or one number per line)"),
    ):
        p = dncsub.add_parser(name, help=helptext)
        p.add_argument("items", nargs="+", metavar="NUMBER" if name == "add" else "FILE")
        p.add_argument(
            "--campaign", default=None, help="the campaign's list (default: the global list)"
        )
        p.add_argument("--region", default=None, help="country of national numbers, e.g. DE")
        p.add_argument("--reason", default=None)
        p.add_argument("--db", default=None)
        p.add_argument("--config", default=None)

    consent = sub.add_parser("consent", help="consent records (never overwritten)")
    consentsub = consent.add_subparsers(dest="consent_command", required=True)
    cadd = consentsub.add_parser("add", help="record a grant or a withdrawal")
    who = cadd.add_mutually_exclusive_group(required=True)
    who.add_argument("--contact", type=_record_id, help="the contact's id (dirigent contacts find)")
    who.add_argument("--phone", help="the contact's phone number (must name one contact)")
    cadd.add_argument("--region", default=None, help="country of a national --phone, e.g. DE")
    cadd.add_argument("--channel", choices=["voice", "sms", "email"], required=True)
    group = cadd.add_mutually_exclusive_group(required=True)
    group.add_argument("--granted", action="store_true")
    group.add_argument("--withdrawn", action="store_true")
    cadd.add_argument("--source", required=True, help="where it came from, e.g. web form 2026-11")
    cadd.add_argument(
        "--proof", default=None, help="reference to the stored proof (required for a grant)"
    )
    cadd.add_argument("--db", default=None)
    cadd.add_argument("--config", default=None)

    contacts = sub.add_parser("contacts", help="contacts (people and companies called)")
    contactsub = contacts.add_subparsers(dest="contacts_command", required=True)
    cfind = contactsub.add_parser(
        "find", help="who a phone number belongs to: contact ids, consent, DNC, records"
    )
    cfind.add_argument("number")
    cfind.add_argument("--region", default=None, help="country of a national number, e.g. DE")
    cfind.add_argument("--db", default=None)
    cfind.add_argument("--config", default=None)
    cfind.add_argument("--json", action="store_true")

    users = sub.add_parser("user", help="API users")
    usersub = users.add_subparsers(dest="user_command", required=True)
    add = usersub.add_parser("add", help="create a user or reset its password (read from stdin)")
    add.add_argument("username")
    add.add_argument(
        "--role", required=True, choices=["agent", "supervisor", "campaign_manager", "admin"]
    )
    add.add_argument("--agent", default=None, help="the routing agent id this user logs in as")
    add.add_argument(
        "--db", default=None, help="database URL (default: config or sqlite:///store.db)"
    )
    add.add_argument("--config", default=None)
    for verb, helptext in (
        ("list", "the users, their roles and whether they may log in"),
        (
            "passwd",
            "a new password (asked without echo, or one line on stdin); ends the user's tokens",
        ),
        ("disable", "the user can no longer log in; ends the user's tokens"),
        ("enable", "a disabled user may log in again"),
        ("remove", "delete the user; ends the user's tokens"),
    ):
        p = usersub.add_parser(verb, help=helptext)
        if verb != "list":
            p.add_argument("username")
        else:
            p.add_argument("--json", action="store_true")
        p.add_argument("--db", default=None)
        p.add_argument("--config", default=None)

    camp = sub.add_parser(
        "campaign", help="campaign controls and figures (through a running server's API)"
    )
    camp.add_argument(
        "action", choices=["list", "status", "start", "pause", "stop", "set"], help="what to do"
    )
    camp.add_argument("name", nargs="?", help="the campaign (all but list)")
    camp.add_argument("--server", default="http://127.0.0.1:8080", help="the server's base URL")
    camp.add_argument(
        "--user",
        default="supervisor",
        help="API user (supervisor, campaign_manager or admin); the password comes from "
        "DIRIGENT_PASSWORD or one line on standard input",
    )
    camp.add_argument("--abandon-target", type=float, default=None, help="set: e.g. 0.02")
    camp.add_argument("--max-lines-per-agent", type=float, default=None, help="set: e.g. 2.5")
    camp.add_argument(
        "--mode", choices=["preview", "progressive", "power", "predictive"], default=None
    )
    camp.add_argument("--power-ratio", type=float, default=None, help="set: lines per agent")
    camp.add_argument("--json", action="store_true")

    erl = sub.add_parser("erlang", help="Erlang C (and A) staffing for one interval")
    erl.add_argument("--calls", type=float, required=True, help="calls arriving in the interval")
    erl.add_argument("--interval", type=float, required=True, help="interval length in seconds")
    erl.add_argument("--aht", type=float, required=True, help="average handle time in seconds")
    erl.add_argument("--target-sl", type=float, default=0.8, help="service level goal (0..1)")
    erl.add_argument("--target-time", type=float, default=20.0, help="answer-within seconds")
    erl.add_argument(
        "--shrinkage", type=float, default=0.0, help="share of paid time off the phones"
    )
    erl.add_argument("--max-occupancy", type=float, default=1.0)
    erl.add_argument("--agents", type=int, default=None, help="evaluate this many agents instead")
    erl.add_argument("--patience", type=float, default=None, help="mean caller patience (Erlang A)")
    erl.add_argument("--json", action="store_true")

    sim = sub.add_parser("sim", help="simulations")
    simsub = sim.add_subparsers(dest="sim_command", required=True)
    pbx = simsub.add_parser("pbx", help="stand-alone simulated Asterisk (AMI over TCP)")
    pbx.add_argument("--listen", type=_host_port, default=("127.0.0.1", 5038))
    pbx.add_argument("--username", default="dirigent")
    pbx.add_argument("--secret", default=None, help="AMI secret (or DIRIGENT_SIM_SECRET)")
    pbx.add_argument("--seed", type=int, default=0)
    pbx.add_argument("--agents", type=int, default=10)
    pbx.add_argument("--inbound-rate", type=float, default=0.0, help="inbound calls per hour")
    pbx.add_argument("--workload", default=None, help="workload TOML (default: standard)")
    pbx.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    dialer = simsub.add_parser(
        "dialer", help="virtual-time pacing experiment (campaign runner against the simulated PBX)"
    )
    dialer.add_argument(
        "--agents", default="10", help="agents (one number, or a list like 5,10,20,50,100)"
    )
    dialer.add_argument("--hours", type=float, default=8.0, help="campaign length (virtual)")
    dialer.add_argument(
        "--strategy",
        default="predictive",
        help="progressive, ratio:X, vicidial, predictive, oracle-agents, oracle-calls, or all",
    )
    dialer.add_argument("--workload", default=None, help="workload TOML (default: standard)")
    dialer.add_argument("--seed", type=int, default=1)
    dialer.add_argument("--max-lines-per-agent", type=float, default=3.0)
    dialer.add_argument("--json", action="store_true")
    dialer.add_argument("--plot", default=None, metavar="FILE.png", help="occupancy vs abandon")
    dialer.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="runs at once, in separate processes (results are the same: each run is seeded)",
    )
    phones = simsub.add_parser("phones", help="pyVoIP SIP endpoint farm for a real Asterisk")
    phones.add_argument(
        "--asterisk", type=_host_port, default=("127.0.0.1", 5060), help="Asterisk SIP HOST:PORT"
    )
    phones.add_argument("--agents", type=int, default=3, help="agent phones 1001.. that register")
    phones.add_argument("--first-agent", type=int, default=1001)
    phones.add_argument(
        "--first-sip-port", type=int, default=5071, help="local SIP port of agent 1"
    )
    phones.add_argument(
        "--customers",
        type=_host_port,
        default=("127.0.0.1", 5080),
        help="where the customer side listens (the trunk's contact)",
    )
    phones.add_argument("--no-customers", action="store_true", help="agent phones only")
    phones.add_argument("--seed", type=int, default=0)
    phones.add_argument("--workload", default=None, help="workload TOML (default: standard)")
    phones.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "erlang": cmd_erlang,
        "campaign": cmd_campaign,
        "user": cmd_user,
        "lists": cmd_lists,
        "dnc": cmd_dnc,
        "consent": cmd_consent,
        "contacts": cmd_contacts,
        "serve": cmd_serve,
        "demo": cmd_demo,
        "db": cmd_db,
        "sim": cmd_sim,
    }
    try:
        return handlers[args.command](args)
    except UsageError as exc:
        print(f"dirigent: {exc}", file=sys.stderr)
        return EXIT_USAGE


# -- helpers --------------------------------------------------------------------------
def _record_id(text: str) -> int:
    """A database id on the command line: a whole number from 1 to 2**63 - 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 < value < 2**63:
        raise argparse.ArgumentTypeError(f"{text} is not an id (1 to 2**63 - 1)")
    return value


def _bad_input(exc: Exception) -> UsageError:
    return UsageError(str(exc))


def _run(args: argparse.Namespace, log_format: str, setup: Callable[[Any], Any]) -> int:
    """Install the asyncio reactor, start logging, run ``setup`` and the reactor."""
    from dirigent import reactor as reactor_setup

    reactor_setup.install()
    from twisted.internet import reactor
    from twisted.logger import Logger

    from dirigent import logs

    logs.setup(args.log_format or log_format, args.log_level)
    log = Logger(namespace="dirigent")
    status = {"code": EXIT_OK}

    def start() -> None:
        try:
            setup(reactor)
        except Exception as exc:
            log.failure("start-up failed: {exc}", exc=exc)
            status["code"] = EXIT_FAILED
            reactor.stop()

    reactor.callWhenRunning(start)
    reactor.run()
    return status["code"]


def _start_dirigent(reactor: Any, settings: Any, duration: float | None = None) -> Any:
    from dirigent.service import Dirigent, freeze_startup_objects

    app = Dirigent(settings)
    reactor.addSystemEventTrigger("before", "shutdown", app.service.stopService)
    app.service.startService()
    freeze_startup_objects()
    if duration is not None:
        reactor.callLater(duration, reactor.stop)
    return app


# -- commands -------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    from dirigent.config import ConfigError, load_settings
    from store import db

    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        raise _bad_input(exc) from None
    if settings.database.auto_upgrade:
        db.upgrade(settings.database.url)
    return _run(args, settings.log_format, lambda r: _start_dirigent(r, settings))


def cmd_db(args: argparse.Namespace) -> int:
    from store import db

    url = _database_url(args)
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


def _make_sim(reactor: Any, args: argparse.Namespace, secret: str) -> Any:
    from sim.ami_server import SimAmiServer
    from sim.pbx import SimPbx
    from sim.workload import WorkloadError, load_workload

    workload = None
    if getattr(args, "workload", None):
        try:
            workload = load_workload(args.workload)
        except WorkloadError as exc:
            raise _bad_input(exc) from None
    pbx = SimPbx(reactor, seed=args.seed, agents=args.agents, workload=workload)
    server = SimAmiServer(
        pbx, reactor, username=getattr(args, "username", "dirigent"), secret=secret
    )
    return pbx, server


def _database_url(args: argparse.Namespace) -> str:
    from dirigent.config import DEFAULT_DATABASE_URL, ConfigError, load_settings

    url = args.db
    if url is None and args.config:
        try:
            url = load_settings(args.config).database.url
        except ConfigError as exc:
            raise _bad_input(exc) from None
    return url or os.environ.get("DIRIGENT_DATABASE_URL") or DEFAULT_DATABASE_URL


@contextlib.contextmanager
def _database(args: argparse.Namespace) -> Iterator[Any]:
    """The command's database (``--db``, the config, or the default), at the
    newest revision, disposed of when the command is done."""
    from store import db

    url = _database_url(args)
    db.upgrade(url)
    engine = db.make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def cmd_lists(args: argparse.Namespace) -> int:
    import json

    if args.lists_command == "merge":
        return cmd_lists_merge(args)
    if args.lists_command in ("activate", "deactivate"):
        return cmd_lists_activate(args)
    if args.lists_command == "export":
        return cmd_lists_export(args)
    if args.lists_command == "discard":
        return cmd_lists_discard(args)

    from core.numbers import check_region
    from dialer.lists import ListError, load_mapping
    from store.lists_import import UnknownCampaign, import_list, terminal_progress

    if args.region is not None:
        try:
            args.region = check_region(args.region)
        except ValueError as exc:
            raise UsageError(f"--region: {exc}") from None
    if args.delimiter is not None and len(args.delimiter.replace("\\t", "\t")) != 1:
        raise UsageError("--delimiter: one character")
    if not Path(args.file).is_file():
        raise UsageError(f"{args.file}: no such file")
    bar = terminal_progress(args.file)
    try:
        mapping = load_mapping(args.mapping) if args.mapping else None
        with _database(args) as engine:
            report = import_list(
                engine,
                args.file,
                args.campaign,
                region=args.region,
                mapping=mapping,
                encoding=args.encoding,
                delimiter=args.delimiter.replace("\\t", "\t") if args.delimiter else None,
                dry_run=args.dry_run,
                progress=bar,
                create=args.create,
                configured=_configured_campaigns(args),
            )
    except UnknownCampaign as exc:
        raise UsageError(f"--campaign: {exc}") from None
    except ListError as exc:
        raise UsageError(str(exc)) from None
    except LookupError as exc:  # an unknown --encoding
        raise UsageError(f"--encoding: {exc}") from None
    finally:
        if bar is not None:
            bar.close()
    summary = report.summary()
    if not args.json:
        print(
            f"{args.file}: {report.rows} rows, {report.imported} imported, {report.updated} updated, "
            f"{report.rejected} rejected, {report.duplicates} duplicates, "
            f"{report.phonetic_duplicate_groups} phonetic duplicate groups"
            + (" (dry run: nothing written)" if args.dry_run else "")
            + (" (resumed an import that had not ended)" if report.resumed else "")
        )
        for problem in report.problems[:20]:
            print(f"  row {problem.row}: {problem.field}: {problem.reason}")
        if report.rejected_file:
            print(f"  all rejected rows: {report.rejected_file}")
        for group in report.groups[:10]:
            print(
                f"  maybe the same person: {', '.join(group['numbers'])} (keep {group['suggested_keep']})"
            )
    print(json.dumps(summary))
    if report.imported + report.updated == 0:
        what = "would import" if args.dry_run else "imported"
        print(
            f"dirigent: {args.file}: {what} nothing ({report.rows} rows, "
            f"{report.rejected} rejected, {report.duplicates} duplicates)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK


def _configured_campaigns(args: argparse.Namespace) -> tuple[str, ...]:
    """The ``[[campaign]]`` names of ``--config`` (they count as existing)."""
    if not args.config:
        return ()
    import tomllib

    try:
        with open(args.config, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, ValueError):
        return ()  # the database URL look-up has already named what is wrong with the file
    tables = data.get("campaign", [])
    return tuple(
        t["name"] for t in tables if isinstance(t, dict) and isinstance(t.get("name"), str)
    )


def cmd_lists_export(args: argparse.Namespace) -> int:
    from store.pool import export_results

    try:
        with _database(args) as engine:
            n = export_results(engine, args.campaign, args.out)
    except LookupError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"--out: cannot write {args.out}: {exc.strerror}") from None
    print(f"{n} records written to {args.out}")
    return EXIT_OK


def cmd_lists_activate(args: argparse.Namespace) -> int:
    import json

    from store.pool import set_list_active

    try:
        with _database(args) as engine:
            active = args.lists_command == "activate"
            result = set_list_active(engine, args.campaign, args.name, active)
    except LookupError as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        print(json.dumps(result))
    else:
        state = "active" if result["active"] else "inactive"
        print(f"list {args.name!r} of campaign {args.campaign!r} is {state}")
    return EXIT_OK


def cmd_lists_discard(args: argparse.Namespace) -> int:
    import json

    from store.lists_import import discard_import

    try:
        with _database(args) as engine:
            result = discard_import(engine, args.campaign, args.name)
    except (LookupError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        print(json.dumps(result))
    else:
        print(f"the unfinished import of list {args.name!r} of campaign {args.campaign!r} is gone")
    return EXIT_OK


def cmd_lists_merge(args: argparse.Namespace) -> int:
    import json

    from core.numbers import Rejected, normalize
    from store.lists_merge import MergeError, merge

    def number(raw: str, option: str) -> str:
        parsed = normalize(raw, args.region)
        if isinstance(parsed, Rejected):
            raise UsageError(f"{option}: {raw!r}: {parsed.reason}")
        return parsed.e164

    keep = number(args.keep, "--keep")
    drop = [number(n, "--drop") for n in args.drop]
    try:
        with _database(args) as engine:
            report = merge(engine, args.campaign, keep, drop)
    except MergeError as exc:
        raise UsageError(str(exc)) from None
    if not args.json:
        print(
            f"kept record {report.kept}; closed {', '.join(map(str, report.closed))};"
            f" {report.contacts_folded} contacts folded in ({report.numbers_moved} numbers,"
            f" {report.consents_moved} consent records, {report.interactions_moved} interactions)"
        )
    print(json.dumps(report.summary()))
    return EXIT_OK


def cmd_dnc(args: argparse.Namespace) -> int:
    from dialer.lists import ListError
    from store.consent import add_dnc, import_dnc

    try:
        with _database(args) as engine:
            if args.dnc_command == "add":
                result = add_dnc(
                    engine,
                    args.items,
                    campaign=args.campaign,
                    region=args.region,
                    reason=args.reason,
                )
            else:
                result = None
                for path in args.items:
                    part = import_dnc(engine, path, campaign=args.campaign, region=args.region)
                    if result is None:
                        result = part
                    else:
                        result.added += part.added
                        result.already += part.already
                        result.rejected = (result.rejected or []) + (part.rejected or [])
    except (ListError, OSError) as exc:
        raise UsageError(str(exc)) from None
    assert result is not None
    where = f"campaign {args.campaign}" if args.campaign else "the global list"
    print(
        f"do-not-call ({where}): {result.added} added, {result.already} already listed, "
        f"{len(result.rejected or [])} rejected"
    )
    for raw, reason in (result.rejected or [])[:20]:
        print(f"  {raw}: {reason}")
    return EXIT_USAGE if result.rejected and not result.added and not result.already else EXIT_OK


def cmd_consent(args: argparse.Namespace) -> int:
    from dialer.lists import ListError
    from store.consent import record_consent

    try:
        with _database(args) as engine:
            if args.contact is None:
                args.contact = _one_contact(engine, args.phone, args.region)
            record_consent(
                engine,
                args.contact,
                args.channel,
                args.granted,
                source=args.source,
                proof_ref=args.proof,
            )
    except ListError as exc:
        raise UsageError(str(exc)) from None
    print(
        f"consent for contact {args.contact} ({args.channel}): {'granted' if args.granted else 'withdrawn'}"
    )
    return EXIT_OK


def _one_contact(engine: Any, phone: str, region: str | None) -> int:
    """The id of the one contact with ``phone``, or a usage error saying why not."""
    from store.contacts import find_by_phone

    try:
        found = find_by_phone(engine, phone, region)
    except ValueError as exc:
        raise UsageError(f"--{exc}") from None
    if not found.contacts:
        raise UsageError(f"--phone: no contact has {found.e164}")
    if len(found.contacts) > 1:
        ids = ", ".join(str(c.id) for c in found.contacts)
        raise UsageError(f"--phone: {found.e164} belongs to contacts {ids}: give --contact ID")
    return found.contacts[0].id


def cmd_contacts(args: argparse.Namespace) -> int:
    """``dirigent contacts find NUMBER``: the contacts behind a number."""
    import json

    from store.contacts import find_by_phone

    with _database(args) as engine:
        try:
            found = find_by_phone(engine, args.number, args.region)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if not args.json:
        dnc = f"; do not call: {', '.join(found.do_not_call)}" if found.do_not_call else ""
        print(f"{found.e164}: {len(found.contacts)} contact(s){dnc}")
        for c in found.contacts:
            where = ", ".join(x for x in (c.company, c.city) if x)
            print(
                f"  contact {c.id}: {c.display_name or '(no name)'}{f' ({where})' if where else ''}"
            )
            print(f"    phones: {', '.join(c.phones)}")
            for consent in c.consent:
                state = "granted" if consent.granted else "withdrawn"
                print(
                    f"    consent {consent.channel}: {state} ({consent.source}, {consent.given_at})"
                )
            for r in c.records:
                print(
                    f"    campaign {r.campaign}, list {r.list}: record {r.record} {r.status}, "
                    f"{r.attempts} attempts"
                    + (f", last {r.last_outcome}" if r.last_outcome else "")
                )
    print(json.dumps(found.as_dict()))
    return EXIT_OK if found.contacts else EXIT_FAILED


def cmd_user(args: argparse.Namespace) -> int:
    """``dirigent user add NAME --role R [--agent ID]`` and ``user
    list|passwd|disable|enable|remove``; a password comes on standard input
    (asked without echo on a terminal), never on the command line."""
    from cti.auth import hash_password
    from store import db

    if args.user_command == "list":
        return _user_list(args)
    if args.user_command in ("disable", "enable", "remove"):
        with _database(args) as engine:
            if args.user_command == "remove":
                found = db.remove_user(engine, args.username)
            else:
                found = db.set_disabled(engine, args.username, args.user_command == "disable")
        if not found:
            raise UsageError(f"user: no user {args.username!r}")
        done = {"disable": "disabled", "enable": "enabled", "remove": "removed"}[args.user_command]
        ended = "" if args.user_command == "enable" else "; its tokens end within seconds"
        print(f"user {args.username} {done}{ended}")
        return EXIT_OK
    if args.user_command == "add" and args.role == "agent" and not args.agent:
        raise UsageError("--agent: required for the agent role")
    try:
        hashed = hash_password(_read_password())
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    with _database(args) as engine:
        if args.user_command == "passwd":
            if not db.set_password(engine, args.username, hashed):
                raise UsageError(f"user: no user {args.username!r}")
            print(f"password of {args.username} changed; its tokens end within seconds")
            return EXIT_OK
        db.add_user(engine, args.username, hashed, args.role, args.agent)
    print(f"user {args.username} ({args.role}) saved")
    return EXIT_OK


def _read_password() -> str:
    """The password: asked twice without echo on a terminal, else one line of stdin."""
    if sys.stdin.isatty():
        import getpass

        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            raise UsageError("password: the two entries differ")
        return first
    return sys.stdin.readline().rstrip("\n")


def _user_list(args: argparse.Namespace) -> int:
    import json

    from store import db

    with _database(args) as engine:
        users = db.list_users(engine)
    rows = [
        {
            "username": u.username,
            "role": u.role,
            "agent": u.agent,
            "disabled": u.disabled,
            "credentials_changed_at": u.credentials_changed_at.isoformat()
            if u.credentials_changed_at
            else None,
        }
        for u in users
    ]
    if not args.json:
        for r in rows:
            agent = f" (agent {r['agent']})" if r["agent"] else ""
            print(f"{r['username']}: {r['role']}{agent}{', disabled' if r['disabled'] else ''}")
        if not rows:
            print("no users")
    else:
        print(json.dumps({"users": rows}))
    return EXIT_OK


def _api_call(base: str, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
    """One JSON request to the server's API; an API error becomes a
    :class:`UsageError` (bad input) or ``RuntimeError`` (the server failed)."""
    import json
    import urllib.error
    import urllib.request

    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base.rstrip("/") + "/api/" + path, data=data, method=method)
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("error", exc.reason)
        except ValueError:
            message = exc.reason
        if exc.code >= 500:
            raise RuntimeError(message) from None
        raise UsageError(message) from None
    except (urllib.error.URLError, OSError) as exc:
        raise RuntimeError(f"cannot reach {base}: {getattr(exc, 'reason', exc)}") from None


def _format_campaign(v: dict[str, Any]) -> str:
    rates = ", ".join(
        f"{w} {'-' if r is None else f'{r:.2%}'}" for w, r in v["abandon_rate"].items()
    )
    agents = ", ".join(f"{n} {s}" for s, n in sorted(v["agents"].items())) or "none"
    idle = f" ({v['idle_reason']})" if v.get("idle_reason") else ""
    return (
        f"{v['campaign']}: {v['status']}{idle}; {v['mode']}, target {v['abandon_target']:.1%}"
        f" (legal {v['legal_max_abandon']:.1%}), max {v['max_lines_per_agent']:g} lines/agent\n"
        f"  lines {v['lines_in_use']}, agents: {agents}\n"
        f"  dials {v['dials']}, connected {v['connected']}, abandoned {v['abandoned']};"
        f" abandon rate {rates} (with the estimate of persons AMD took for machines)"
    )


def cmd_campaign(args: argparse.Namespace) -> int:
    """``dirigent campaign list|status|start|pause|stop|set NAME``."""
    import json
    import os
    import urllib.parse

    if args.action != "list" and not args.name:
        raise UsageError(f"campaign {args.action}: give the campaign's name")
    changes = {
        key: value
        for key, value in (
            ("abandon_target", args.abandon_target),
            ("max_lines_per_agent", args.max_lines_per_agent),
            ("mode", args.mode),
            ("power_ratio", args.power_ratio),
        )
        if value is not None
    }
    if args.action == "set" and not changes:
        raise UsageError(
            "campaign set: give --abandon-target, --max-lines-per-agent, --mode or --power-ratio"
        )
    password = os.environ.get("DIRIGENT_PASSWORD")
    if password is None:
        password = sys.stdin.readline().rstrip("\n")
    try:
        login = _api_call(
            args.server, "POST", "login", {"username": args.user, "password": password}
        )
        name = urllib.parse.quote(args.name or "", safe="")
        token = login["token"]
        if args.action == "list":
            result: Any = _api_call(args.server, "GET", "campaigns", token=token)
        elif args.action == "status":
            result = _api_call(args.server, "GET", f"campaigns/{name}", token=token)
        elif args.action == "set":
            result = _api_call(args.server, "PATCH", f"campaigns/{name}", changes, token)
        else:
            result = _api_call(args.server, "POST", f"campaigns/{name}/{args.action}", {}, token)
    except RuntimeError as exc:
        print(f"dirigent campaign: {exc}", file=sys.stderr)
        return EXIT_FAILED
    views = result if isinstance(result, list) else [result]
    if args.json:
        print(json.dumps(result))
    else:
        print("\n".join(_format_campaign(v) for v in views) or "no campaigns configured")
    return EXIT_OK


def cmd_erlang(args: argparse.Namespace) -> int:
    import json

    from dialer import erlang

    for option in ("calls", "interval", "aht", "target_sl", "target_time", "shrinkage"):
        if not math.isfinite(getattr(args, option)):
            raise UsageError(f"--{option.replace('_', '-')}: must be a finite number")
    checks = [
        ("--calls", args.calls >= 0, "must be at least 0"),
        ("--interval", args.interval > 0, "must be positive seconds"),
        ("--aht", args.aht > 0, "must be positive seconds"),
        ("--target-sl", 0 < args.target_sl < 1, "must be between 0 and 1"),
        ("--target-time", args.target_time >= 0, "must be at least 0 seconds"),
        ("--shrinkage", 0 <= args.shrinkage < 1, "must be at least 0 and below 1"),
        ("--max-occupancy", 0 < args.max_occupancy <= 1, "must be in (0, 1]"),
        ("--patience", args.patience is None or args.patience > 0, "must be positive seconds"),
        ("--agents", args.agents is None or args.agents >= 0, "must be at least 0"),
    ]
    for option, ok, reason in checks:
        if not ok:
            raise UsageError(f"{option}: {reason}")
    agents = args.agents
    if agents is None:
        try:
            required = erlang.agents_required(
                args.calls,
                args.interval,
                args.aht,
                args.target_sl,
                args.target_time,
                args.max_occupancy,
            )
        except ValueError as exc:  # beyond what it searches (a million agents)
            raise UsageError(
                f"--calls: {args.calls:g} calls of {args.aht:g} s in {args.interval:g} s: {exc}"
            ) from None
        agents = int(required[0])
    if args.patience is not None:
        fig = erlang.erlang_a_figures(
            args.calls, args.interval, args.aht, agents, args.patience, args.target_time
        )
    else:
        fig = erlang.erlang_c_figures(args.calls, args.interval, args.aht, agents, args.target_time)
    traffic = float(fig.load.flat[0])
    # Erlang C has no steady state when the agents cannot carry the traffic:
    # the queue grows without end and the mean wait is infinite, which JSON
    # cannot say (Infinity is not JSON): ASA is null and "stable" false.
    stable = args.patience is not None or agents > traffic or traffic == 0
    result: dict[str, Any] = {
        "agents": agents,
        "agents_scheduled": int(erlang.with_shrinkage(agents, args.shrinkage)),
        "traffic_erlangs": round(traffic, 6),
        "stable": stable,
        "p_wait": _figure(fig.p_wait, 7),
        "service_level": _figure(fig.service_level, 7),
        "asa": _figure(fig.asa, 4) if stable else None,
        "occupancy": _figure(fig.occupancy, 7),
    }
    if traffic == 0:  # nobody calls: nobody waits, nobody is busy
        result.update(p_wait=0.0, service_level=1.0, asa=0.0, occupancy=0.0)
    if fig.p_abandon is not None:
        result["p_abandon"] = _figure(fig.p_abandon, 7)
    if not args.json:
        model = "Erlang A" if args.patience is not None else "Erlang C"
        print(
            f"{model}: {args.calls:g} calls / {args.interval:g} s, AHT {args.aht:g} s "
            f"({result['traffic_erlangs']:g} Erlangs)"
        )
        for key, value in result.items():
            print(f"  {key:17s} {value}")
        if not stable:
            print(
                f"  {agents} agents cannot carry {traffic:g} Erlangs: the queue grows "
                "without end (no finite ASA)"
            )
    print(json.dumps(result, allow_nan=False))
    return EXIT_OK


def _figure(values: Any, digits: int) -> float | None:
    """One figure of a vectorised result, rounded; None where it is not finite."""
    value = float(values.flat[0])
    return round(value, digits) if math.isfinite(value) else None


def cmd_sim(args: argparse.Namespace) -> int:
    if args.sim_command == "phones":
        return cmd_sim_phones(args)
    if args.sim_command == "dialer":
        return cmd_sim_dialer(args)
    secret = args.secret or os.environ.get("DIRIGENT_SIM_SECRET") or "secret"
    if args.agents < 0 or args.inbound_rate < 0:
        raise UsageError("--agents and --inbound-rate must not be negative")

    def setup(reactor: Any) -> None:
        from twisted.logger import Logger

        pbx, server = _make_sim(reactor, args, secret)
        host, port = args.listen
        server.listen(port, host)
        if args.inbound_rate:
            pbx.start_inbound(args.inbound_rate)
        Logger(namespace="dirigent.sim").info(
            "simulated Asterisk listening on {host}:{port} (user {user}, {n} agent phones)",
            host=host,
            port=server.address[1],
            user=args.username,
            n=args.agents,
        )
        if args.duration is not None:
            reactor.callLater(args.duration, reactor.stop)

    return _run(args, "text", setup)


def cmd_sim_dialer(args: argparse.Namespace) -> int:
    from dialer.pacing import PacingError, make_strategy
    from sim import lab as sim_dialer
    from sim.workload import WorkloadError, load_workload, standard_workload

    try:
        counts = [int(n) for n in str(args.agents).split(",")]
    except ValueError:
        raise UsageError(f"--agents: not a number or list of numbers: {args.agents!r}") from None
    if any(n < 1 or n > 2000 for n in counts):
        raise UsageError("--agents: each count must be between 1 and 2000")
    if not 0 < args.hours <= 24 * 31:
        raise UsageError("--hours: must be more than 0 and at most 744")
    if not 1 <= args.max_lines_per_agent <= 10:
        raise UsageError("--max-lines-per-agent: must be between 1 and 10")
    if not 1 <= args.jobs <= 64:
        raise UsageError("--jobs: must be between 1 and 64")
    strategies = sim_dialer.all_strategies() if args.strategy == "all" else [args.strategy]
    try:
        for name in strategies:
            make_strategy(name)
        workload = load_workload(args.workload) if args.workload else standard_workload()
    except (PacingError, WorkloadError) as exc:
        raise _bad_input(exc) from None
    runs = [(n, name) for n in counts for name in strategies]
    options = {
        "hours": args.hours,
        "seed": args.seed,
        "max_lines_per_agent": args.max_lines_per_agent,
    }
    results: dict[int, dict[str, dict[str, Any]]] = {}
    for (n, name), report in zip(
        runs, _sim_reports(workload, runs, options, args.jobs), strict=True
    ):
        results.setdefault(n, {})[name] = report
        if not args.json:
            print(sim_dialer.format_line(report), flush=True)
    if args.plot:
        sim_dialer.plot(results, args.plot, workload.abandon_limit)
        if not args.json:
            print(f"plot written to {args.plot}")
    if args.json:
        by_count = {
            str(n): (r[strategies[0]] if args.strategy != "all" else r) for n, r in results.items()
        }
        print(json.dumps(by_count[str(counts[0])] if len(counts) == 1 else by_count))
    return 0


def _sim_reports(
    workload: Any, runs: list[tuple[int, str]], options: dict[str, Any], jobs: int
) -> Iterator[dict[str, Any]]:
    """The reports of ``runs`` (agents, strategy), in that order; with
    ``jobs`` > 1 from a process pool (a run is one CPU-bound loop)."""
    from sim import lab as sim_dialer

    if jobs == 1 or len(runs) == 1:
        for n, name in runs:
            yield sim_dialer.run(workload, agents=n, strategy=name, **options)
        return
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=min(jobs, len(runs))) as pool:
        futures = [
            pool.submit(sim_dialer.run, workload, agents=n, strategy=name, **options)
            for n, name in runs
        ]
        for future in futures:
            yield future.result()


def cmd_sim_phones(args: argparse.Namespace) -> int:
    """Runs in its own process and threads (pyVoIP), not on the reactor."""
    import signal
    import threading

    from sim.phones import AgentDecider, CustomerDecider, PhoneFarm
    from sim.workload import WorkloadError, load_workload, standard_workload

    if args.agents < 0:
        raise UsageError("--agents must not be negative")
    try:
        workload = load_workload(args.workload) if args.workload else standard_workload()
    except WorkloadError as exc:
        raise _bad_input(exc) from None
    agents = [str(args.first_agent + i) for i in range(args.agents)]
    customers = None if args.no_customers else CustomerDecider(workload, args.seed)
    farm = PhoneFarm(
        args.asterisk,
        agents,
        AgentDecider(),
        customers,
        customer_listen=args.customers,
        first_sip_port=args.first_sip_port,
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    farm.start()
    print(
        f"phones: agents {', '.join(agents) or '-'} registering at {args.asterisk[0]}:{args.asterisk[1]};"
        f" customers {'off' if customers is None else '{}:{}'.format(*args.customers)}",
        flush=True,
    )
    done.wait(args.duration)
    farm.stop()
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


def _demo_campaign(url: str, directory: Path) -> Any:
    """The demo's predictive campaign: 2,000 records from Ofcom's ranges for
    drama (+44 20 7946 0xxx, +44 113 496 0xxx: never a real subscriber) that
    only the simulated PBX answers, imported like any list.  Its rules are
    the UK's except the calling hours (open all day, so the demo dials
    whenever it is started): a demo-only policy, never shipped as a pack."""
    from dialer.campaign import CampaignSettings, validate
    from dialer.compliance import Policy
    from dirigent.config import CampaignConfig
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
    policy = Policy.parse(
        {
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
        },
        "demo policy",
    )
    caller_id = "+442079460999"
    return CampaignConfig(
        validate(
            CampaignSettings(
                DEMO_CAMPAIGN,
                caller_id=caller_id,
                country="GB",
                windows=("day",),
                wrap_up=15.0,
            )
        ),
        policy,
        caller_id,
        "Europe/London",
        auto_start=True,
    )


def cmd_demo(args: argparse.Namespace) -> int:
    from asterisk.session import PbxSettings
    from dirigent.config import (
        AgentSettings,
        DatabaseSettings,
        HttpSettings,
        RoutingSettings,
        Settings,
    )
    from routing.model import QueueConfig
    from store import db

    data = Path(args.data).resolve()
    if args.fresh and data.exists():
        import shutil

        shutil.rmtree(data)
        print(f"demo: emptied {data}", flush=True)
    data.mkdir(parents=True, exist_ok=True)
    url = args.db or f"sqlite:///{data / 'store.db'}"
    print(f"demo: data in {data} (kept between runs; --fresh starts over)", flush=True)
    print("demo: migrating the database, adding users, importing the demo list ...", flush=True)
    db.upgrade(url)
    _demo_users(url, args.agents)
    args.username = "dirigent"
    campaigns = () if args.no_campaign else (_demo_campaign(url, data),)
    queues = ("sales",) if args.no_campaign else ("sales", DEMO_CAMPAIGN)

    def setup(reactor: Any) -> None:
        pbx, server = _make_sim(reactor, args, "demo-secret")
        server.listen(args.ami_port, "127.0.0.1")
        if args.inbound_rate:
            pbx.start_inbound(args.inbound_rate)
        settings = Settings(
            http=HttpSettings("127.0.0.1", args.http_port),
            database=DatabaseSettings(url=url),
            pbxs=(
                PbxSettings(
                    "sim",
                    "127.0.0.1",
                    server.address[1],
                    "dirigent",
                    "demo-secret",
                    keepalive_interval=5.0,
                ),
            ),
            routing=RoutingSettings(
                queues=tuple(QueueConfig(q) for q in queues),
                agents=tuple(
                    AgentSettings(
                        f"agent{1001 + i}",
                        str(1001 + i),
                        mode="ring" if args.no_campaign else "nailed",
                        queues=queues,
                        auto_login=True,
                    )
                    for i in range(args.agents)
                ),
            ),
            campaigns=campaigns,
        )
        app = _start_dirigent(reactor, settings, args.duration)
        DemoReporter(reactor, app, args.summary_every).start()
        print(
            "\nDirigent demo is running (simulated PBX + server, SQLite):\n"
            f"  health:  http://127.0.0.1:{app.http_port}/healthz\n"
            f"  metrics: http://127.0.0.1:{app.http_port}/metrics\n"
            f"  simulated Asterisk AMI: 127.0.0.1:{server.address[1]}"
            f" (user dirigent, {args.agents} agent phones, {args.inbound_rate:g} inbound calls/h)\n"
            f"  simulated agents agent1001..agent{1000 + args.agents} log in to {' and '.join(queues)}"
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

    code = _run(args, "text", setup)
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
        self.app.acd.bus.subscribe(self.on_message)
        if self.every > 0:
            self._loop.start(self.every, now=False)

    def on_message(self, m: dict[str, Any]) -> None:
        if m["type"] == "agent":
            self.states[m["agent"]] = m["state"]
            if m["state"] != "logged_out" and m["agent"] not in self.logged_in:
                self.logged_in.add(m["agent"])
                print(f"demo: {m['agent']} logged in ({m['state']})", flush=True)
        elif (
            m["type"] == "interaction"
            and m.get("direction", "inbound") == "inbound"
            and m["event"] in self.inbound
        ):
            self.inbound[m["event"]] += 1

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
    from sqlalchemy import func, select

    from store import db

    engine = db.make_engine(url)
    try:
        a = db.attempt
        with engine.connect() as conn:
            connected = conn.execute(
                select(func.count()).where(a.c.connected_at.is_not(None))
            ).scalar_one()
            abandoned = conn.execute(
                select(func.count()).where(a.c.abandoned.is_(True))
            ).scalar_one()
            dials = conn.execute(select(func.count()).select_from(a)).scalar_one()
    finally:
        engine.dispose()
    live = connected + abandoned
    rate = f"{abandoned / live:.2%}" if live else "-"
    return (
        f"demo: from the database: {dials} dials, {live} live answers, {connected} connected,"
        f" {abandoned} abandoned: abandon rate {rate} (all runs in this data folder)"
    )


if __name__ == "__main__":
    sys.exit(main())
