"""Pacing with blended agents in virtual time: inbound callers routed by the
same router to the campaign's agents, ahead of its calls (issue 15).

The virtual-time benchmark used to meet no inbound traffic, so it could not
see the abandons of the blended demo: an inbound caller took the last ready
agent seconds before a person the pacer had dialed for answered."""

from __future__ import annotations

from typing import Any

import pytest

from dirigent.lab import run as run_lab
from sim import lab
from sim.workload import WorkloadError, parse_workload, standard_workload


def blended(rate_per_hour: float, **inbound: Any) -> Any:
    """Half the dials reach a person (no machines, AMD never errs): every
    abandon in the report is one the pacing caused."""
    return parse_workload(
        {
            "outcomes": {
                "live": 0.5,
                "machine": 0.0,
                "no_answer": 0.5,
                "busy": 0.0,
                "invalid": 0.0,
            },
            "ring": {"dist": "lognormal", "mean": 8.0, "sd": 3.0},
            "talk": {"dist": "lognormal", "mean": 40.0, "sd": 20.0},
            "wrapup": {"dist": "constant", "value": 5.0},
            "amd": {"person_misread": 0.0, "machine_detected": 1.0},
            "inbound": {
                "rate_per_hour": rate_per_hour,
                "handle": {"dist": "lognormal", "mean": 30.0, "sd": 10.0},
                **inbound,
            },
        }
    )


def test_the_pacer_does_not_dial_for_an_agent_an_inbound_caller_is_about_to_take() -> None:
    # three agents, an inbound caller a minute: the old pacer counted the last
    # ready agent, the caller took it, and 5 of 135 persons found nobody (3.7 %).
    # Over three seeds (one seed's single abandon more or less is chance: the
    # figure counts the persons AMD took for machines too)
    runs = [
        run_lab(blended(60.0), agents=3, hours=1.0, strategy="predictive", seed=seed)
        for seed in (1, 2, 3)
    ]
    for r in runs:
        assert r["inbound_answered"] == r["inbound_calls"] > 30
    live = sum(r["live_answers"] for r in runs)
    assert live > 100
    assert sum(r["abandoned"] for r in runs) <= 0.02 * live


def test_the_report_shows_the_inbound_service_level_beside_the_outbound_figures() -> None:
    r = run_lab(
        standard_workload(),
        agents=10,
        hours=0.5,
        strategy="predictive",
        seed=2,
        inbound_share=0.2,
    )
    for key in ("occupancy", "abandon_rate", "worst_hour_abandon_rate", "dials"):
        assert key in r  # the outbound contract is kept
    assert r["inbound_calls"] > 0
    assert 0.0 <= r["inbound_service_level"] <= 1.0
    assert r["inbound_service_target"] == "80% in 20 s"
    assert r["inbound_asa"] >= 0.0
    assert r["inbound_abandoned"] == 0  # no patience in the standard file: callers wait
    # a fifth of ten agents' capacity: two erlangs offered
    assert r["inbound_offered_erlangs"] == pytest.approx(2.0, abs=0.01)
    assert "service level" in lab.format_line({**r, "wall_seconds": 0.0})


def test_callers_with_patience_hang_up_and_are_counted() -> None:
    wl = blended(600.0, patience={"dist": "constant", "value": 5.0})
    r = run_lab(wl, agents=2, hours=0.5, strategy="progressive", seed=1)
    assert r["inbound_abandoned"] > 0
    assert r["inbound_abandoned"] + r["inbound_answered"] <= r["inbound_calls"]
    assert r["inbound_abandon_rate"] > 0


@pytest.mark.parametrize(
    ("inbound", "key"),
    [
        ({"share": 1.5}, "inbound.share"),
        ({"share": 1.0}, "inbound.share"),
        ({"rate_per_hour": -1}, "inbound.rate_per_hour"),
        ({"rate_per_hour": 10, "share": 0.2}, "inbound"),
        ({"service_seconds": 0}, "inbound.service_seconds"),
        ({"service_level": 2}, "inbound.service_level"),
        ({"handle": {"dist": "gamma"}}, "inbound.handle.dist"),
        ({"priority": -1}, "inbound.priority"),
        ({"queue": "x"}, "inbound.queue"),
    ],
)
def test_a_bad_inbound_table_is_refused_naming_the_key(inbound: dict[str, Any], key: str) -> None:
    raw = {
        "outcomes": {"live": 1.0},
        "ring": {"dist": "constant", "value": 5.0},
        "talk": {"dist": "constant", "value": 5.0},
        "wrapup": {"dist": "constant", "value": 5.0},
        "inbound": inbound,
    }
    with pytest.raises(WorkloadError) as err:
        parse_workload(raw)
    assert err.value.key == key


def test_the_simulated_campaign_sets_its_wrap_up_as_an_operator_would() -> None:
    # the server's priors for a new campaign are built on its wrap_up
    # (estimates_for); the simulation builds its runner the same way, so its
    # campaign's limit is the workload's longest usual after-call work, not
    # ten minutes (25 s +- 10 s: 99 % end within a minute)
    assert lab.wrap_up_limit(standard_workload()) == 60.0
    assert lab.wrap_up_limit(blended(60.0)) == 5.0  # a constant 5 s wrap-up
