"""``dirigent campaign list|status|start|pause|stop|set``: through a running server's API."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Any

from core.events import DialMode, MachineAction
from dialer.campaign import LIVE_SETTINGS
from dirigent.cli.common import EXIT_FAILED, EXIT_OK, UsageError


def register(sub: Any) -> None:
    """Add this group's commands to the ``dirigent`` parser."""
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
    # set: one option per setting a running campaign may change (the API's PATCH)
    # the enums' values, plain text: argparse shows a choice by its repr
    choices = {
        "mode": [m.value for m in DialMode],
        "machine_action": [m.value for m in MachineAction],
    }
    for key, kind in LIVE_SETTINGS.items():
        camp.add_argument(
            "--" + key.replace("_", "-"),
            type=kind,
            choices=choices.get(key),
            default=None,
            help=f"set: {_SET_HELP[key]}",
        )
    camp.add_argument("--json", action="store_true")
    camp.set_defaults(handler=cmd_campaign)


_SET_HELP = {
    "abandon_target": "e.g. 0.02 (at most the country's legal maximum)",
    "max_lines_per_agent": "e.g. 2.5",
    "mode": "the dial mode",
    "power_ratio": "lines per agent in power mode",
    "ring_timeout": "seconds a customer's phone rings (at least 15)",
    "machine_action": "what an answering machine gets",
    "wrap_up": "longest after-call work, seconds",
}


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
    since = dt.datetime.fromtimestamp(v["since"], dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    today = v["today"]
    # the ledger is the drop group's: campaigns measured together (Ofcom)
    group = f" (drop group {v['drop_group']})" if v.get("drop_group") != v["campaign"] else ""
    pbx = f" on PBX {v['pbx']}" if v.get("pbx") else ""
    return (
        f"{v['campaign']}{pbx}: {v['status']}{idle}; {v['mode']}, target {v['abandon_target']:.1%}"
        f" (legal {v['legal_max_abandon']:.1%}), max {v['max_lines_per_agent']:g} lines/agent,"
        f" power ratio {v['power_ratio']:g}\n"
        f"  ring {v['ring_timeout']:g} s, wrap-up {v['wrap_up']:g} s,"
        f" answering machines: {v['machine_action']}\n"
        f"  lines {v['lines_in_use']}, agents: {agents}\n"
        f"  since {since} (this server's start): dials {v['dials']}, connected"
        f" {v['connected']}, abandoned {v['abandoned']}\n"
        f"  today{group}: {today['live']:g} live answers, {today['abandoned']:g} abandoned;"
        f" abandon rate {rates} (with the estimate of persons AMD took for machines)"
    )


def cmd_campaign(args: argparse.Namespace) -> int:
    """``dirigent campaign list|status|start|pause|stop|set NAME``."""
    import json
    import os
    import urllib.parse

    if args.action != "list" and not args.name:
        raise UsageError(f"campaign {args.action}: give the campaign's name")
    changes = {key: getattr(args, key) for key in LIVE_SETTINGS if getattr(args, key) is not None}
    if args.action == "set" and not changes:
        options = ", ".join("--" + key.replace("_", "-") for key in LIVE_SETTINGS)
        raise UsageError(f"campaign set: give one or more of {options}")
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
