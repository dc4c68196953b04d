"""What happens to one dialed call, drawn once from its own random stream.

The fate of the n-th dial of a number depends only on (seed, number, n) and
the workload in force: the simulated PBX (:mod:`sim.pbx`) and the SIP
customer side of the phone farm (:mod:`sim.phones`) draw the same fates, and
dialing strategies compared on one seed meet the same customers.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from sim.workload import Workload

#: Share of "invalid" numbers that answer 503 (congestion / intercept) rather
#: than 404 (not in service).  A modelling choice, like the workload split.
CONGESTION_SHARE_OF_INVALID = 0.3


@dataclass(frozen=True, slots=True)
class CallFate:
    outcome: str  # live, machine, no_answer, busy, invalid, congestion
    ring: float  # seconds from dial to answer (answered calls)
    talk: float  # seconds of conversation once connected to an agent (live)
    amd_says_machine: bool  # what answering-machine detection will report
    patience: float  # seconds a live person waits in silence before hanging up
    detect: float  # seconds until busy / invalid / congestion is signalled

    @property
    def answers(self) -> bool:
        return self.outcome in ("live", "machine")


def call_rng(seed: int, number: str, n: int) -> random.Random:
    return random.Random(f"{seed}:{number}:{n}")


def draw_fate(workload: Workload, rng: random.Random, forced: str | None = None) -> CallFate:
    """Draw every random quantity of a call up front, in a fixed order."""
    outcome = workload.sample_outcome(rng)
    congestion = rng.random() < CONGESTION_SHARE_OF_INVALID
    ring = workload.ring.sample(rng)
    talk = workload.talk.sample(rng)
    amd_roll = rng.random()
    patience = rng.uniform(3.0, 8.0)
    if forced is not None:
        outcome = forced
    elif outcome == "invalid" and congestion:
        outcome = "congestion"
    amd = workload.amd
    machine = amd_roll < (amd.machine_detected if outcome == "machine" else amd.person_misread)
    detect = (
        workload.timeouts.busy_detect if outcome == "busy" else workload.timeouts.invalid_detect
    )
    return CallFate(outcome, ring, talk, machine, patience, detect)
