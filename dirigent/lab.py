"""The pacing lab's composition root: ``dirigent sim dialer`` and
``bench/dialer.py`` run a campaign in virtual time through :func:`run`.

It wires the parts as :mod:`dirigent.service` wires the server's, on a
simulated PBX and a virtual clock: the real campaign runner, pacing
strategy and router drive the in-process simulated PBX
(:class:`sim.inprocess.SimTelephony`) under a :class:`sim.clock.HeapClock`,
with the simulated inbound callers of :class:`sim.lab.InboundSim` beside the
campaign and the ground-truth report of :func:`sim.lab.report`.  The models
(customers' fates, agents' after-call work, inbound traffic, the clairvoyant
bounds) stay in :mod:`sim.lab`; what is here is only the building and the
starting, the wiring that may not live outside ``dirigent/``.

The lab has no hub: its router is its own, and the runner and the inbound
callers command it through a :class:`sim.desk.RouterDesk` (each method the
router's unchanged), so that the figures are those of the runner alone,
byte for byte what they were when the lab built them in ``sim/``.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from core.events import DialMode
from dialer.campaign import CampaignSettings, pacing_window, validate
from dialer.pacing import estimates_for, make_strategy
from dialer.runner import Attempt, AttemptNews, CampaignRunner, MemoryAttemptLog
from routing.agent import Agent
from routing.model import Channel, QueueConfig, ServiceLevel
from routing.router import Router
from sim.clock import HeapClock
from sim.desk import RouterDesk
from sim.inprocess import SimTelephony
from sim.lab import (
    CAMPAIGN,
    FIRST_EXTENSION,
    INBOUND,
    MACHINE_HEARD,
    InboundSim,
    SimLeads,
    SimOracle,
    report,
    wrap_time,
    wrap_up_limit,
)
from sim.pbx import SimPbx
from sim.workload import Workload

#: events the lab's PBX never sends its link (as ``exclude_events`` has
#: Asterisk drop them for a server): no part wired here reads what they
#: carry.  VarSet and DeviceStateChange are translated and followed by
#: nothing (the channel variables the mirror keeps are read by no one);
#: DialBegin by nothing at all; NewCallerid and Newstate only update the
#: mirror's record of a channel's caller ID and state, which only a resync
#: reads, and the lab's PBX never goes away.  Together three in five of a
#: dial's events; a test pins the same report with all of them.
LAB_EXCLUDED_EVENTS = ("VarSet", "DeviceStateChange", "DialBegin", "NewCallerid", "Newstate")


def run(
    workload: Workload,
    *,
    agents: int,
    hours: float,
    strategy: str,
    seed: int = 1,
    max_lines_per_agent: float = 3.0,
    inbound_share: float | None = None,
) -> dict[str, Any]:
    """One strategy, one run; returns the report (see ``docs/pacing.md``).

    ``inbound_share`` overrides the workload's ``[inbound]`` traffic: that
    share of the agents' capacity (0: none)."""
    wall = time.perf_counter()
    if inbound_share is not None:
        spec = replace(workload.inbound, share=inbound_share, rate_per_hour=0.0)
        workload = replace(workload, inbound=spec)
    clock = HeapClock()
    pbx = SimPbx(clock, seed=seed, agents=agents, first_agent=FIRST_EXTENSION, workload=workload)
    pbx.fate_log = {}
    telephony = SimTelephony(pbx, exclude_events=LAB_EXCLUDED_EVENTS)
    spec = workload.inbound
    queues = {CAMPAIGN: QueueConfig(CAMPAIGN)}
    if spec.active:
        queues[INBOUND] = QueueConfig(
            INBOUND,
            priority=spec.priority,
            service_levels={Channel.VOICE: ServiceLevel(spec.service_level, spec.service_seconds)},
        )
    router = Router(queues)
    desk = RouterDesk(router)  # the runner and the inbound callers command the router through it
    ids = [str(FIRST_EXTENSION + i) for i in range(agents)]
    for agent_id in ids:
        router.add_agent(Agent(agent_id))
    settings = validate(
        CampaignSettings(
            CAMPAIGN,
            mode=DialMode.PREDICTIVE,
            caller_id="+4930555000",
            abandon_target=workload.abandon_limit,
            legal_max_abandon=workload.abandon_limit,
            ring_timeout=max(15.0, workload.timeouts.no_answer),
            amd_delay=workload.amd.delay,
            amd_false_positive=workload.amd.person_misread,
            connect_within=workload.connect_within,
            # the simulated AMD says "human" this long after the greeting (HUMAN-800-800)
            after_greeting_silence=pbx.amd_silence_ms / 1000.0,
            max_lines_per_agent=max_lines_per_agent,
            power_ratio=min(2.0, max_lines_per_agent),
            wrap_up=wrap_up_limit(workload),
        )
    )
    pacing = make_strategy(
        strategy,
        limit=workload.abandon_limit,
        amd_false_positive=workload.amd.person_misread,
        # the runner's deadline, counted from the greeting's end, as the server's pacing
        connect_window=pacing_window(settings),
    )
    leads = SimLeads()
    attempts = MemoryAttemptLog()
    oracle = SimOracle(pbx, leads, seed) if strategy.startswith("oracle") else None
    inbound = (
        InboundSim(spec, workload, clock, desk, agents, seed, settings.wrap_up)
        if spec.active
        else None
    )
    runner = CampaignRunner(
        settings,
        telephony,
        desk,
        clock,
        leads,
        pacing,
        attempts=attempts,
        # the priors a campaign of these settings starts from in the server
        estimates=estimates_for(settings),
        oracle=oracle,
        foreign_offers=inbound.offers if inbound is not None else None,
        reserved_agents=inbound.needed if inbound is not None else None,
    )
    if inbound is not None:
        hand = inbound.offers
        inbound.route = lambda offers: hand(runner.own_offers(offers))
        inbound.end_wrap_up = runner.end_wrap_up

    def on_attempt(what: AttemptNews, attempt: Attempt) -> None:
        if what is AttemptNews.CONNECTED and oracle is not None and attempt.agent:
            oracle.free_at[attempt.agent] = clock.seconds() + oracle.handle_time(attempt)
        fate = (pbx.fate_log or {}).get(attempt.channel_id)
        if what is AttemptNews.CONNECTED and fate is not None and fate.outcome == "machine":
            # the agent hears a machine's greeting and says so (the disposition)
            clock.callLater(MACHINE_HEARD, runner.answering_machine, attempt.id)
        if (
            what is AttemptNews.ENDED
            and attempt.outcome in ("answered", "machine")
            and attempt.agent
        ):
            agent = attempt.agent
            clock.callLater(
                wrap_time(workload, seed, attempt.lead.number), runner.end_wrap_up, agent
            )

    runner.listeners.append(on_attempt)
    # nail up every agent's phone into its own bridge, then log in
    for agent_id in ids:
        telephony.keep_line(agent_id, agent_id, call=f"agent-{agent_id}")
    clock.run_until(2.0)
    start = clock.seconds()
    for agent_id in ids:
        router.login(agent_id, start, list(queues))
    runner.start()
    end = start + hours * 3600.0
    if inbound is not None:
        inbound.start(start, end)
    clock.run_until(end)
    runner.pause()
    out = report(runner, attempts, desk, pbx, ids, start, end)
    if inbound is not None:
        out.update(inbound.report())
    out["wall_seconds"] = round(time.perf_counter() - wall, 2)
    runner.stop()
    return out
