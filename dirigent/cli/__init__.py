"""The ``dirigent`` command line (contract in DESIGN.md "Command line").

One module per command group; each adds its commands to the parser
(``register``) and names the handler that runs them.  Exit codes: 0
success, 1 failure of the job, 2 bad usage or bad input; both said in
one line (:class:`UsageError`, :class:`Failed`), never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from dirigent.cli import campaigns, contacts, erlang, lists, server, sim, users
from dirigent.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Failed, UsageError
from dirigent.cli.server import DEMO_CAMPAIGN, _demo_campaign

__all__ = [
    "DEMO_CAMPAIGN",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "Failed",
    "UsageError",
    "_demo_campaign",
    "build_parser",
    "main",
]

#: in the order ``dirigent --help`` lists them
GROUPS = (server, lists, contacts, users, campaigns, erlang, sim)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dirigent", description="CTI and predictive dialer server"
    )
    parser.add_argument("--log-format", choices=["text", "json"], default=None)
    parser.add_argument("--log-level", choices=["debug", "info", "warn", "error"], default="info")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        code = handler(args)
        sys.stdout.flush()  # here, not at exit: a reader gone (| head) is caught below
        return code
    except UsageError as exc:
        print(f"dirigent: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Failed as exc:
        print(f"dirigent: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:
        # `dirigent campaign list | head`: the reader went away (QA4: a traceback);
        # stdout is closed quietly, as other Unix tools do
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
