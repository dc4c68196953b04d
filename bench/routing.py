"""Routing decisions at scale: 5,000 logged-in agents, 200 skills, 2,000
waiting interactions.

Two kinds of decision, timed one by one (nothing is changed by them):
* an interaction arrives: which agent (``Router.best_agent``);
* an agent frees up: which interaction (``Router.best_interaction``).
Baseline in the same run: a naive scan of every agent / every waiting
interaction with the same eligibility, blending and policy rules.

    python bench/routing.py [--agents 5000] [--decisions 4000] [--runs 5] [--json]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import emit, machine
from routing.agent import Agent
from routing.model import Channel, Interaction, QueueConfig
from routing.router import Router

T = TypeVar("T")

CHANNELS = [Channel.VOICE, Channel.CHAT, Channel.EMAIL, Channel.SMS]


def build(
    agents: int, skills: int, waiting: int, queues: int, seed: int
) -> tuple[Router, list[Interaction]]:
    rng = random.Random(seed)
    router = Router({f"q{i}": QueueConfig(f"q{i}") for i in range(queues)})
    names = [f"s{i}" for i in range(skills)]
    for i in range(agents):
        agent = Agent(
            f"a{i:05d}",
            skills={s: rng.randint(1, 10) for s in rng.sample(names, 6)},
            capacity={Channel.VOICE: 1, Channel.CHAT: 3, Channel.EMAIL: 2},
        )
        router.add_agent(agent)
        router.login(
            agent.id, rng.uniform(0, 600), rng.sample(list(router.queues), rng.randint(1, 3))
        )
        if rng.random() < 0.85:  # most agents are busy on a call
            router.agents[agent.id].start(700, f"busy-{i}", Channel.VOICE)
            router._reindex(router.agents[agent.id])
    # fill the queue without routing (agents stay as they are)
    for i in range(waiting):
        it = Interaction(
            f"w{i}",
            rng.choice(CHANNELS[:3]),
            rng.choice(list(router.queues)),
            rng.uniform(0, 900),
            skills={s: rng.randint(1, 5) for s in rng.sample(names, rng.randint(1, 2))},
            priority=rng.choice([0, 0, 0, 1]),
        )
        router._seq += 1
        it.seq = router._seq
        router._push(it)
    probes = [
        Interaction(
            f"p{i}",
            rng.choice(CHANNELS[:3]),
            rng.choice(list(router.queues)),
            1000,
            skills={s: rng.randint(1, 5) for s in rng.sample(names, rng.randint(1, 2))},
        )
        for i in range(400)
    ]
    return router, probes


def naive_best_agent(router: Router, it: Interaction, waiting: int) -> Agent | None:
    best, best_key = None, None
    for agent in router.agents.values():
        if router.eligible(agent, it) and router.rules.may_offer(agent, it.channel, waiting):
            key = router._policy_key(agent, it)
            if best_key is None or key < best_key:
                best, best_key = agent, key
    return best


def naive_best_interaction(
    router: Router, agent: Agent, now: float, waiting: int
) -> Interaction | None:
    best, best_u = None, float("-inf")
    for it in router.waiting.values():
        if router.eligible(agent, it) and router.rules.may_offer(agent, it.channel, waiting):
            u = router._urgency(it, now)
            if u > best_u:
                best, best_u = it, u
    return best


def timed(fn: Callable[[T], object], items: Iterable[T]) -> list[float]:
    out = []
    for item in items:
        t0 = time.perf_counter()
        fn(item)
        out.append(time.perf_counter() - t0)
    return out


def summary(samples: list[float]) -> tuple[float, float]:
    samples = sorted(samples)
    return len(samples) / sum(samples), samples[int(len(samples) * 0.99) - 1] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", type=int, default=5000)
    parser.add_argument("--skills", type=int, default=200)
    parser.add_argument("--waiting", type=int, default=2000)
    parser.add_argument("--queues", type=int, default=20)
    parser.add_argument("--decisions", type=int, default=4000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    router, probes = build(args.agents, args.skills, args.waiting, args.queues, seed=1)
    waiting = router.calls_waiting()
    free_agents = [a for a in router.agents.values() if a.available and not a.work]
    rng = random.Random(2)
    arrivals = [rng.choice(probes) for _ in range(args.decisions)]
    frees = [rng.choice(free_agents) for _ in range(args.decisions)]
    # the two must agree (same rules, same policy, same tie-breaks)
    for it in probes[:50]:
        fast, slow = router.best_agent(it, waiting), naive_best_agent(router, it, waiting)
        assert (fast and fast.id) == (slow and slow.id)
    for agent in free_agents[:50]:
        fast_it = router.best_interaction(agent, 1000, waiting)
        slow_it = naive_best_interaction(router, agent, 1000, waiting)
        assert (fast_it and fast_it.id) == (slow_it and slow_it.id), (agent.id, fast_it, slow_it)
    rates, p99s, base_rates, base_p99s = [], [], [], []
    for _ in range(args.runs):
        samples = timed(lambda it: router.best_agent(it, waiting), arrivals)
        samples += timed(lambda ag: router.best_interaction(ag, 1000, waiting), frees)
        rate, p99 = summary(samples)
        rates.append(rate)
        p99s.append(p99)
        base = timed(
            lambda it: naive_best_agent(router, it, waiting), arrivals[: args.decisions // 10]
        )
        base += timed(
            lambda ag: naive_best_interaction(router, ag, 1000, waiting),
            frees[: args.decisions // 10],
        )
        rate, p99 = summary(base)
        base_rates.append(rate)
        base_p99s.append(p99)
    result = {
        "agents": args.agents,
        "skills": args.skills,
        "waiting": args.waiting,
        "free_agents": len(free_agents),
        "decisions_per_second": round(statistics.median(rates)),
        "p99_decision_ms": round(statistics.median(p99s), 4),
        "baseline_naive_decisions_per_second": round(statistics.median(base_rates)),
        "baseline_naive_p99_decision_ms": round(statistics.median(base_p99s), 3),
        "runs": args.runs,
        "machine": machine(),
    }
    emit(result, args.json)


if __name__ == "__main__":
    main()
