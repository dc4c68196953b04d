"""What every command group shares: exit codes, usage errors, argument
types, the database a command works on, and running the reactor."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad usage or bad input, said in one line (exit 2)."""


class Failed(Exception):
    """The job could not be done, said in one line, no traceback (exit 1):
    a failure the user can act on (a database not reachable), not a bug."""


def host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host or "127.0.0.1", int(port)


def port_number(text: str) -> int:
    """A TCP port on the command line: 0 (any free one) to 65535."""
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0: any free one, to 65535)")
    return int(text)


def region_code(text: str) -> str:
    """A country of national numbers (``--region``): one phonenumbers knows,
    refused before anything is read or written (``XX`` was taken, and every
    national number then failed)."""
    from core.numbers import check_region

    try:
        return check_region(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def record_id(text: str) -> int:
    """A database id on the command line: a whole number from 1 to 2**63 - 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 < value < 2**63:
        raise argparse.ArgumentTypeError(f"{text} is not an id (1 to 2**63 - 1)")
    return value


def bad_input(exc: Exception) -> UsageError:
    return UsageError(str(exc))


def run_reactor(args: argparse.Namespace, log_format: str, setup: Callable[[Any], Any]) -> int:
    """Install the asyncio reactor, start logging, run ``setup`` and the reactor."""
    from dirigent import reactor as reactor_setup

    reactor_setup.install()
    from twisted.internet import reactor
    from twisted.logger import Logger

    from dirigent import logs

    logs.setup(args.log_format or log_format, args.log_level)
    log = Logger(namespace="dirigent")
    status: dict[str, Any] = {"code": EXIT_OK}

    def start() -> None:
        try:
            setup(reactor)
        except UsageError as exc:  # bad input found while setting up: one line, exit 2
            status["error"] = exc
            reactor.stop()
        except Exception as exc:
            said = _start_up_error(exc)
            if said is None:
                log.failure("start-up failed: {exc}", exc=exc)
            else:  # the user's to act on, in one line: no traceback
                log.critical("start-up failed: {why}", why=said)
            status["code"] = EXIT_FAILED
            reactor.stop()

    reactor.callWhenRunning(start)
    reactor.run()
    if "error" in status:
        raise status["error"]  # said by main() as every usage error is (no traceback)
    return status["code"]


def _start_up_error(exc: Exception) -> str | None:
    """What a start-up failure the user can act on says (None: a bug, with its traceback)."""
    from twisted.internet.error import CannotListenError

    from store.instance import DatabaseInUse

    if isinstance(exc, DatabaseInUse | Failed):
        return str(exc)
    if isinstance(exc, CannotListenError):
        why = exc.socketError.strerror if exc.socketError is not None else "refused"
        return (
            f"http: cannot listen on {exc.interface or '*'}:{exc.port} ({why}:"
            " another server on that port?)"
        )
    return None


def start_dirigent(reactor: Any, settings: Any, duration: float | None = None) -> Any:
    """The server, started; a stop signal stops its service tree, the
    campaigns' drain first (dirigent.service).  A timed run (the demo's
    ``--duration``) ends at its time: at once, its lines still in progress
    left to the (simulated) PBX."""
    from dirigent.service import Dirigent, freeze_startup_objects

    app = Dirigent(settings)
    reactor.addSystemEventTrigger("before", "shutdown", app.service.stopService)
    app.service.startService()
    freeze_startup_objects()
    install_stop_signals(reactor, app)
    if duration is not None:

        def time_is_up() -> None:
            app.stop_at_once()
            reactor.stop()

        reactor.callLater(duration, time_is_up)
    return app


def install_stop_signals(reactor: Any, app: Any) -> None:
    """The server's signals (in place of the reactor's own handlers).

    SIGTERM and SIGINT (Ctrl-C) stop it cleanly: no new dials, the lines
    already placed resolve (bounded), then the PBXs are logged off, their
    leases released and the report writer drained.  The same signal again
    while it stops: the drain waits for nothing more (the rest of the stop
    still runs).  SIGHUP is logged and ignored: there is no configuration
    reload (the file is read at start; a restart applies a change), and a
    stray hang-up -- a closed terminal, a tool that sends SIGHUP to reload --
    must not stop a dialing floor."""
    import signal

    from twisted.internet.error import ReactorNotRunning
    from twisted.logger import Logger

    log = Logger(namespace="dirigent")
    stopping = {"now": False}
    # a stop asked otherwise (the end of a timed run) counts too
    reactor.addSystemEventTrigger("before", "shutdown", stopping.update, now=True)

    def stop(name: str) -> None:
        if not stopping["now"]:
            stopping["now"] = True
            try:
                reactor.stop()
            except ReactorNotRunning:
                pass  # a stop asked just now: this signal is the second one
            else:
                log.info(
                    "Received {sig}, shutting down (the same signal again: stop at once,"
                    " without waiting for the lines in progress)",
                    sig=name,
                )
                return
        log.warn(
            "Received {sig} while stopping: stopping at once, lines still in"
            " progress are left to the PBX (the next start settles them)",
            sig=name,
        )
        app.stop_at_once()

    def hang_up() -> None:
        log.warn(
            "Received SIGHUP: ignored, still running (no configuration reload: the"
            " configuration is read at start; restart the server to apply a change)"
        )

    def on_signal(number: int, _frame: Any) -> None:
        # the work on the reactor's thread, not inside the signal handler
        if number == signal.SIGHUP:
            reactor.callFromThread(hang_up)
        else:
            reactor.callFromThread(stop, signal.Signals(number).name)

    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(number, on_signal)


def make_sim(reactor: Any, args: argparse.Namespace, secret: str) -> Any:
    from sim.ami_server import SimAmiServer
    from sim.pbx import SimPbx
    from sim.workload import WorkloadError, load_workload

    workload = None
    if getattr(args, "workload", None):
        try:
            workload = load_workload(args.workload)
        except WorkloadError as exc:
            raise bad_input(exc) from None
    pbx = SimPbx(reactor, seed=args.seed, agents=args.agents, workload=workload)
    server = SimAmiServer(
        pbx, reactor, username=getattr(args, "username", "dirigent"), secret=secret
    )
    return pbx, server


def database_source(args: argparse.Namespace) -> tuple[str, str]:
    """The command's database URL and the key it came from: ``--db``, else
    ``[database]`` of ``--config`` (the file is checked whole, but a command
    that only touches the database needs nothing else of it: no PBX secret
    in the environment), else ``DIRIGENT_DATABASE_URL``, else the default.
    A URL from the command line or the environment gets the checks of
    ``[database] url`` (it is the same setting)."""
    from dirigent.config import DEFAULT_DATABASE_URL, ConfigError, load_database_settings

    if args.db is not None:
        return checked_database_url(args.db, "--db"), "--db"
    env = os.environ.get("DIRIGENT_DATABASE_URL")
    if env:  # it wins over the file's: its errors name it, not database.url
        checked_database_url(env, "DIRIGENT_DATABASE_URL")
    if args.config:
        try:
            url = load_database_settings(args.config).url
        except ConfigError as exc:
            raise bad_input(exc) from None
        key = url_key(url)
        return checked_database_url(url, key), key
    if env:
        return checked_database_url(env, "DIRIGENT_DATABASE_URL"), "DIRIGENT_DATABASE_URL"
    return DEFAULT_DATABASE_URL, "database.url"


def url_key(url: str) -> str:
    """Where a configuration's database URL came from, for an error to name:
    ``DIRIGENT_DATABASE_URL`` wins over ``[database] url`` when it is set."""
    env = os.environ.get("DIRIGENT_DATABASE_URL")
    return "DIRIGENT_DATABASE_URL" if env and env == url else "database.url"


def checked_database_url(url: str, key: str) -> str:
    """``url`` if we can use it, else a :class:`UsageError` naming ``key``.

    First the very checks of ``[database] url`` (dirigent.config: one
    place says which URLs we take), then what only the store knows: that
    it parses and that its driver is installed.  The reasons never quote
    the URL (its password)."""
    from dirigent.config import ConfigError, parse_settings
    from store import db

    try:
        parse_settings({"database": {"url": url}}, env={}, pbxs=False)
    except ConfigError as exc:
        raise UsageError(f"{key}: {exc.reason}") from None
    try:
        db.check_url(url)
    except db.BadDatabaseUrl as exc:
        raise UsageError(f"{key}: {exc}") from None
    return url


def open_database(url: str, key: str, *, upgrade: bool = True) -> None:
    """Reach the database at ``url`` (``key``: where the URL came from) and,
    if ``upgrade``, bring it to the newest revision.  One that cannot be
    opened is a :class:`Failed` naming the key and why, before anything
    else runs: its first query would otherwise be a SQLAlchemy traceback
    from deep inside the command or the server's start-up.  A failure of
    the migrations themselves is not translated: it is not the user's to
    fix."""
    from store import db

    try:
        db.reach(url)
    except db.DatabaseUnreachable as exc:
        raise Failed(f"{key}: cannot open the database: {exc}") from None
    if upgrade:
        db.upgrade(url)


@contextlib.contextmanager
def database(args: argparse.Namespace) -> Iterator[Any]:
    """The command's database (``--db``, the config, or the default), at the
    newest revision, disposed of when the command is done."""
    from store import db

    url, key = database_source(args)
    open_database(url, key)
    engine = db.make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()
