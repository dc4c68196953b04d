"""``dirigent lists import|merge|export|activate|deactivate|discard``: dial lists."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from dirigent.cli.common import EXIT_FAILED, EXIT_OK, UsageError, database, region_code


def register(sub: Any) -> None:
    """Add this group's commands to the ``dirigent`` parser."""
    lists = sub.add_parser("lists", help="dial lists")
    listsub = lists.add_subparsers(dest="lists_command", required=True)
    imp = listsub.add_parser("import", help="import a CSV or .xlsx list into a campaign")
    imp.add_argument("file")
    imp.add_argument("--campaign", required=True)
    imp.add_argument(
        "--create", action="store_true", help="make the campaign if it does not exist yet"
    )
    imp.add_argument(
        "--region",
        type=region_code,
        default=None,
        help="default country of national numbers, e.g. DE",
    )
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
    mrg.add_argument(
        "--region", type=region_code, default=None, help="country of national numbers, e.g. DE"
    )
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
    lists.set_defaults(handler=cmd_lists)


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
    from store import db
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
    configured = _configured_campaigns(args)
    bar = terminal_progress(args.file)
    try:
        mapping = load_mapping(args.mapping) if args.mapping else None
        with database(args) as engine:
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
                configured=tuple(configured),
                country=configured.get(args.campaign),
            )
    except UnknownCampaign as exc:
        raise UsageError(f"--campaign: {exc}; --create makes a new one") from None
    except ListError as exc:
        how = "; or name it with --mapping FILE" if exc.field == "header" else ""
        raise UsageError(f"{exc}{how}") from None
    except LookupError as exc:  # an unknown --encoding
        raise UsageError(f"--encoding: {exc}") from None
    except Exception as exc:  # the store's errors: a lost connection is said in one line
        if not db.transient(exc):
            raise
        # a PostgreSQL restart mid-import (QA4 finding 5: 207 lines of tracebacks)
        print(
            f"dirigent: {args.file}: the database went away during the import"
            f" ({type(exc).__name__}); the list is not dialed until it is whole:"
            " run the same command again to resume it, or"
            f" `dirigent lists discard --campaign {args.campaign} {Path(args.file).name}`"
            " to drop what it wrote",
            file=sys.stderr,
        )
        return EXIT_FAILED
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
        if report.region_from == "campaign":
            print(
                f"  national numbers read as {report.region}"
                " (the campaign's country; --region overrides)"
            )
        elif report.region:
            print(f"  national numbers read as {report.region} (--region)")
        for problem in report.problems[:20]:
            print(f"  row {problem.row}: {problem.field}: {problem.reason}")
        if report.rejected_file:
            print(f"  all rejected rows: {report.rejected_file}")
        for group in report.groups[:GROUPS_SHOWN]:
            print(
                f"  maybe the same person: {_first_numbers(group['numbers'])}"
                f" (keep {group['suggested_keep']})"
            )
    else:  # the human summary, or the JSON object: not both (QA4)
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


#: the suspected-duplicate groups an import prints, and the numbers of each
#: (a list with many identical names made one group of thousands; the API's
#: answer keeps every number of its groups)
GROUPS_SHOWN = 10
NUMBERS_SHOWN = 5


def _first_numbers(numbers: list[str]) -> str:
    """The first :data:`NUMBERS_SHOWN` numbers, then how many more."""
    shown = ", ".join(numbers[:NUMBERS_SHOWN])
    more = len(numbers) - NUMBERS_SHOWN
    return f"{shown} … and {more} more" if more > 0 else shown


def _configured_campaigns(args: argparse.Namespace) -> dict[str, str | None]:
    """The ``[[campaign]]`` names of ``--config`` (they count as existing),
    each with its country as a region (``UK`` is ``GB``; None if no policy
    pack knows it): the default region of the import's national numbers.

    Only these two keys: a file that is not valid TOML has been named already
    by the database look-up (or is not used: ``--db`` given), and an import
    needs nothing else of it (no PBX secret)."""
    if not args.config:
        return {}
    from dialer.compliance import PolicyError, policy_for
    from dirigent.config import ConfigError, read_toml

    try:
        data = read_toml(args.config)
    except ConfigError:
        return {}
    out: dict[str, str | None] = {}
    for t in data.get("campaign", []):
        if not isinstance(t, dict) or not isinstance(t.get("name"), str):
            continue
        country = t.get("country")
        try:
            out[t["name"]] = policy_for(country).country if isinstance(country, str) else None
        except PolicyError:
            out[t["name"]] = None
    return out


def cmd_lists_export(args: argparse.Namespace) -> int:
    from store.pool import export_results

    try:
        with database(args) as engine:
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
        with database(args) as engine:
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
        with database(args) as engine:
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
        with database(args) as engine:
            report = merge(engine, args.campaign, keep, drop)
    except MergeError as exc:
        raise UsageError(str(exc)) from None
    if not args.json:
        print(
            f"kept record {report.kept}; closed {', '.join(map(str, report.closed))};"
            f" {report.contacts_folded} contacts folded in ({report.numbers_moved} numbers,"
            f" {report.consents_moved} consent records, {report.interactions_moved} interactions)"
        )
    else:  # the human text, or the JSON object: not both (as lists import)
        print(json.dumps(report.summary()))
    return EXIT_OK
