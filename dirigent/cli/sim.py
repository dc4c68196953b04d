"""``dirigent sim pbx|dialer|phones``: the simulated PBX, the pacing lab, the phone farm."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterator
from typing import Any

from dirigent.cli.common import EXIT_OK, UsageError, bad_input, host_port, make_sim, run_reactor


def register(sub: Any) -> None:
    """Add this group's commands to the ``dirigent`` parser."""
    sim = sub.add_parser("sim", help="simulations")
    simsub = sim.add_subparsers(dest="sim_command", required=True)
    pbx = simsub.add_parser("pbx", help="stand-alone simulated Asterisk (AMI over TCP)")
    pbx.add_argument("--listen", type=host_port, default=("127.0.0.1", 5038))
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
        "--asterisk", type=host_port, default=("127.0.0.1", 5060), help="Asterisk SIP HOST:PORT"
    )
    phones.add_argument("--agents", type=int, default=3, help="agent phones 1001.. that register")
    phones.add_argument("--first-agent", type=int, default=1001)
    phones.add_argument(
        "--first-sip-port", type=int, default=5071, help="local SIP port of agent 1"
    )
    phones.add_argument(
        "--customers",
        type=host_port,
        default=("127.0.0.1", 5080),
        help="where the customer side listens (the trunk's contact)",
    )
    phones.add_argument("--no-customers", action="store_true", help="agent phones only")
    phones.add_argument("--seed", type=int, default=0)
    phones.add_argument("--workload", default=None, help="workload TOML (default: standard)")
    phones.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    sim.set_defaults(handler=cmd_sim)


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

        pbx, server = make_sim(reactor, args, secret)
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

    return run_reactor(args, "text", setup)


def cmd_sim_dialer(args: argparse.Namespace) -> int:
    from dialer.pacing import PacingError, make_strategy
    from sim import lab
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
    strategies = lab.all_strategies() if args.strategy == "all" else [args.strategy]
    try:
        for name in strategies:
            make_strategy(name)
        workload = load_workload(args.workload) if args.workload else standard_workload()
    except (PacingError, WorkloadError) as exc:
        raise bad_input(exc) from None
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
            print(lab.format_line(report), flush=True)
    if args.plot:
        lab.plot(results, args.plot, workload.abandon_limit)
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
    from dirigent.lab import run as run_lab

    if jobs == 1 or len(runs) == 1:
        for n, name in runs:
            yield run_lab(workload, agents=n, strategy=name, **options)
        return
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=min(jobs, len(runs))) as pool:
        futures = [
            pool.submit(run_lab, workload, agents=n, strategy=name, **options) for n, name in runs
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
        raise bad_input(exc) from None
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
