"""Erlang math against published values, pyworkforce, limits and a simulation."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialer.erlang import (
    agents_required,
    erlang_a_figures,
    erlang_b,
    erlang_c,
    erlang_c_figures,
    with_shrinkage,
)


def test_published_example_100_calls_per_half_hour_aht_180():
    f = erlang_c_figures(100, 1800, 180, [14, 15], 20)
    assert f.p_wait[0] == pytest.approx(0.1741319, abs=5e-8)
    assert f.service_level[0] == pytest.approx(0.8883500, abs=5e-8)
    assert f.asa[0] == pytest.approx(7.836, abs=5e-4)
    assert f.occupancy[0] == pytest.approx(0.7142857, abs=5e-8)
    assert f.p_wait[1] == pytest.approx(0.10204, abs=5e-6)
    assert f.service_level[1] == pytest.approx(0.94145, abs=5e-6)
    assert agents_required(100, 1800, 180, 0.8, 20)[0] == 14
    assert agents_required(100, 1800, 180, 0.9, 20)[0] == 15


def test_agrees_with_pyworkforce_on_a_grid():
    from pyworkforce.queuing import ErlangC

    calls = [20, 100, 350, 1200]
    ahts = [60, 180, 420]
    targets = [(0.8, 20), (0.9, 30), (0.7, 60)]
    for c, aht, (sl, t) in itertools.product(calls, ahts, targets):
        # pyworkforce takes minutes, and its "asa" is the service-level target time
        theirs = ErlangC(transactions=c, aht=aht / 60, asa=t / 60, interval=30)
        need = theirs.required_positions(service_level=sl, max_occupancy=1.0)
        assert agents_required(c, 1800, aht, sl, t)[0] == need["raw_positions"], (c, aht, sl, t)
        n = need["raw_positions"]
        ours = erlang_c_figures(c, 1800, aht, n, t)
        assert ours.p_wait[0] == pytest.approx(theirs.waiting_probability(n), rel=1e-9)
        assert ours.service_level[0] == pytest.approx(theirs.service_level(n), rel=1e-9)


def test_vectorised_over_intervals_equals_one_by_one():
    calls = np.array([0, 5, 40, 100, 900])
    vector = agents_required(calls, 1800, 180, 0.8, 20)
    single = [agents_required(c, 1800, 180, 0.8, 20)[0] for c in calls]
    assert vector.tolist() == single and vector[0] == 0


def test_stable_for_ten_thousand_agents():
    b = erlang_b(10_000, 9_900.0)
    c = erlang_c(10_000, 9_900.0)
    assert np.isfinite(b) and 0 < b < c < 1
    n = agents_required(9_900 * 1800 / 180, 1800, 180, 0.8, 20)[0]
    assert 9_900 < n < 10_100


@settings(max_examples=60, deadline=None)
@given(st.floats(0.5, 400), st.integers(1, 600))
def test_more_agents_never_hurt(load, extra):
    n = int(load) + 1
    fig = erlang_c_figures(load, 1, 1, [n, n + extra], 20)
    assert fig.p_wait[1] <= fig.p_wait[0] + 1e-12
    assert fig.service_level[1] >= fig.service_level[0] - 1e-12
    assert fig.asa[1] <= fig.asa[0] + 1e-12
    b = erlang_b([n, n + extra], load)
    assert b[1] <= b[0]


def test_unstable_queue_waits_always_and_occupancy_caps_agents():
    f = erlang_c_figures(100, 1800, 180, 10, 20)  # load 10 on 10 agents
    assert f.p_wait[0] == 1.0 and f.service_level[0] == 0.0 and np.isinf(f.asa[0])
    assert agents_required(100, 1800, 180, 0.5, 20, max_occupancy=0.6)[0] == 17


def test_shrinkage():
    assert with_shrinkage(14, 0.3).tolist() == 20
    with pytest.raises(ValueError, match="shrinkage"):
        with_shrinkage(14, 1.0)


def test_erlang_a_tends_to_erlang_c_and_loses_callers_with_short_patience():
    c = erlang_c_figures(100, 1800, 180, 14, 20)
    a = erlang_a_figures(100, 1800, 180, 14, patience=1e7)
    assert a.p_wait[0] == pytest.approx(c.p_wait[0], rel=1e-4)
    assert a.service_level[0] == pytest.approx(c.service_level[0], rel=1e-4)
    short = erlang_a_figures(100, 1800, 180, 10, patience=30)  # overloaded without abandonment
    assert 0 < short.p_abandon[0] < 1 and np.isfinite(short.asa[0])
    assert short.asa[0] == pytest.approx(short.p_abandon[0] * 30, rel=1e-9)  # E[W] = P(Ab)/θ


def _simulate_mmn_m(lam: float, mu: float, theta: float, n: int, t: float, calls: int, seed: int):
    """Discrete-event M/M/N+M: fraction abandoned, mean wait, P(offered wait ≤ t)."""
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1 / lam, calls))
    service = rng.exponential(1 / mu, calls)
    patience = rng.exponential(1 / theta, calls)
    free_at = np.zeros(n)
    import heapq

    heap = list(free_at)
    heapq.heapify(heap)
    waits, abandoned, offered_ok = [], 0, 0
    # FCFS with abandonment: a caller takes the earliest free agent if it frees before patience ends
    for arr, svc, pat in zip(arrivals, service, patience, strict=True):
        start = max(arr, heap[0])
        offered = start - arr
        offered_ok += offered <= t
        if offered > pat:
            abandoned += 1
            waits.append(pat)
            continue
        heapq.heapreplace(heap, start + svc)
        waits.append(offered)
    return abandoned / calls, float(np.mean(waits)), offered_ok / calls


def test_erlang_a_matches_a_simulation():
    lam, aht, patience, n = 100 / 1800, 180.0, 90.0, 10
    fig = erlang_a_figures(100, 1800, aht, n, patience, target_time=20)
    ab, mean_wait, sl = _simulate_mmn_m(lam, 1 / aht, 1 / patience, n, 20, 300_000, seed=2)
    assert fig.p_abandon[0] == pytest.approx(ab, abs=0.01)
    assert fig.asa[0] == pytest.approx(mean_wait, rel=0.05)
    assert fig.service_level[0] == pytest.approx(sl, abs=0.01)


def _erlang(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dirigent.cli", "erlang", *args], capture_output=True, text=True
    )


def test_command_line_prints_the_contract_keys():
    out = _erlang("--calls", "100", "--interval", "1800", "--aht", "180", "--json")
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["agents"] == 14
    assert figures["service_level"] == pytest.approx(0.88835, abs=1e-5)
    assert figures["asa"] == pytest.approx(7.836, abs=1e-3)
    assert figures["occupancy"] == pytest.approx(0.714286, abs=1e-6)
    assert figures["p_wait"] == pytest.approx(0.174132, abs=1e-6)
    shrunk = json.loads(
        _erlang(
            "--calls", "100", "--interval", "1800", "--aht", "180", "--shrinkage", "0.3", "--json"
        ).stdout.splitlines()[-1]
    )
    assert shrunk["agents_scheduled"] == 20
    patient = json.loads(
        _erlang(
            "--calls", "100", "--interval", "1800", "--aht", "180", "--patience", "60", "--json"
        ).stdout.splitlines()[-1]
    )
    assert 0 < patient["p_abandon"] < 0.1


def test_command_line_rejects_bad_input_naming_the_option():
    out = _erlang("--calls", "-5", "--interval", "1800", "--aht", "180")
    assert out.returncode == 2 and "--calls" in out.stderr
    out = _erlang("--calls", "100", "--interval", "1800", "--aht", "180", "--target-sl", "1.5")
    assert out.returncode == 2 and "--target-sl" in out.stderr
