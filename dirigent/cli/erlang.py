"""``dirigent erlang``: Erlang C (and A) staffing for one interval."""

from __future__ import annotations

import argparse
import math
from typing import Any

from dirigent.cli.common import EXIT_OK, UsageError


def register(sub: Any) -> None:
    """Add this group's commands to the ``dirigent`` parser."""
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
    erl.set_defaults(handler=cmd_erlang)


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
    else:  # the human text, or the JSON object: not both (as lists import)
        print(json.dumps(result, allow_nan=False))
    return EXIT_OK


def _figure(values: Any, digits: int) -> float | None:
    """One figure of a vectorised result, rounded; None where it is not finite."""
    value = float(values.flat[0])
    return round(value, digits) if math.isfinite(value) else None
