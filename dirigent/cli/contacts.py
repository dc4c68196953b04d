"""``dirigent contacts find``, ``consent add`` and ``dnc add|import``: who may be called."""

from __future__ import annotations

import argparse
from typing import Any

from dirigent.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    database,
    record_id,
    region_code,
)


def register(sub: Any) -> None:
    """Add this group's commands to the ``dirigent`` parser."""
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
        p.add_argument(
            "--region", type=region_code, default=None, help="country of national numbers, e.g. DE"
        )
        p.add_argument("--reason", default=None)
        p.add_argument("--db", default=None)
        p.add_argument("--config", default=None)

    consent = sub.add_parser("consent", help="consent records (never overwritten)")
    consentsub = consent.add_subparsers(dest="consent_command", required=True)
    cadd = consentsub.add_parser("add", help="record a grant or a withdrawal")
    who = cadd.add_mutually_exclusive_group(required=True)
    who.add_argument("--contact", type=record_id, help="the contact's id (dirigent contacts find)")
    who.add_argument("--phone", help="the contact's phone number (must name one contact)")
    cadd.add_argument(
        "--region", type=region_code, default=None, help="country of a national --phone, e.g. DE"
    )
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
    cfind.add_argument(
        "--region", type=region_code, default=None, help="country of a national number, e.g. DE"
    )
    cfind.add_argument("--db", default=None)
    cfind.add_argument("--config", default=None)
    cfind.add_argument("--json", action="store_true")
    dnc.set_defaults(handler=cmd_dnc)
    consent.set_defaults(handler=cmd_consent)
    contacts.set_defaults(handler=cmd_contacts)


def cmd_dnc(args: argparse.Namespace) -> int:
    from dialer.lists import ListError
    from dirigent.cli.lists import _configured_campaigns
    from store.consent import add_dnc, import_dnc

    # a campaign's entry needs the campaign to exist (a row, or a [[campaign]]
    # of --config); an entry never makes one (a misspelt name did)
    countries = _configured_campaigns(args) if args.campaign else {}
    configured = tuple(countries)
    region_from = "--region" if args.region else None
    if args.region is None and countries.get(args.campaign):
        # a campaign's number in national format, as the campaign's lists read it (QA4)
        args.region, region_from = countries[args.campaign], "the campaign's country"
    try:
        with database(args) as engine:
            if args.dnc_command == "add":
                result = add_dnc(
                    engine,
                    args.items,
                    campaign=args.campaign,
                    region=args.region,
                    reason=args.reason,
                    configured=configured,
                )
            else:
                result = None
                for path in args.items:
                    part = import_dnc(
                        engine,
                        path,
                        campaign=args.campaign,
                        region=args.region,
                        reason=args.reason,
                        configured=configured,
                    )
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
    if region_from and (result.added or result.already):
        print(f"  national numbers read as {args.region} ({region_from})")
    for raw, reason in (result.rejected or [])[:20]:
        print(f"  {raw}: {reason}")
    return EXIT_USAGE if result.rejected and not result.added and not result.already else EXIT_OK


def cmd_consent(args: argparse.Namespace) -> int:
    from dialer.lists import ListError
    from store.consent import record_consent

    try:
        with database(args) as engine:
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
        found = find_by_phone(engine, phone, region, "--region DE")
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

    with database(args) as engine:
        try:
            found = find_by_phone(engine, args.number, args.region, "--region DE")
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
    else:  # the human text, or the JSON object: not both (as lists import)
        print(json.dumps(found.as_dict()))
    return EXIT_OK if found.contacts else EXIT_FAILED
