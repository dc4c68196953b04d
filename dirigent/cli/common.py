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
    pass


def host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host or "127.0.0.1", int(port)


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


def start_dirigent(reactor: Any, settings: Any, duration: float | None = None) -> Any:
    from dirigent.service import Dirigent, freeze_startup_objects

    app = Dirigent(settings)
    reactor.addSystemEventTrigger("before", "shutdown", app.service.stopService)
    app.service.startService()
    freeze_startup_objects()
    if duration is not None:
        reactor.callLater(duration, reactor.stop)
    return app


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


def database_url(args: argparse.Namespace) -> str:
    """``--db``, else ``[database]`` of ``--config``: the file is checked
    whole, but a command that only touches the database needs nothing else
    of it (no PBX secret in the environment)."""
    from dirigent.config import DEFAULT_DATABASE_URL, ConfigError, load_database_settings

    url = args.db
    if url is None and args.config:
        try:
            url = load_database_settings(args.config).url
        except ConfigError as exc:
            raise bad_input(exc) from None
    return url or os.environ.get("DIRIGENT_DATABASE_URL") or DEFAULT_DATABASE_URL


@contextlib.contextmanager
def database(args: argparse.Namespace) -> Iterator[Any]:
    """The command's database (``--db``, the config, or the default), at the
    newest revision, disposed of when the command is done."""
    from store import db

    url = database_url(args)
    db.upgrade(url)
    engine = db.make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()
