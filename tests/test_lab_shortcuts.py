"""The pacing lab's shortcuts change nothing it reports.

The lab (``dirigent.lab``) is the benchmark of the pacing: its figures are
tuned and chaotic, one decision placed differently moves them all.  What it
does only to run faster is pinned here against the slow way, report for
report."""

from __future__ import annotations

from typing import Any

import pytest

import dirigent.lab
from dirigent.lab import run as run_lab
from sim.workload import standard_workload


def _report(**kw: Any) -> dict[str, Any]:
    out = run_lab(standard_workload(), **kw)
    out.pop("wall_seconds")
    return out


@pytest.mark.parametrize("inbound_share", [None, 0.2])
def test_the_events_the_lab_drops_at_its_pbx_change_no_figure(
    monkeypatch: pytest.MonkeyPatch, inbound_share: float | None
) -> None:
    # VarSet, DeviceStateChange, DialBegin, NewCallerid and Newstate never
    # reach the lab's link: the same report as with every event it knows
    kw: dict[str, Any] = {
        "agents": 8,
        "hours": 0.25,
        "strategy": "predictive",
        "seed": 5,
        "inbound_share": inbound_share,
    }
    dropped = _report(**kw)
    monkeypatch.setattr(dirigent.lab, "LAB_EXCLUDED_EVENTS", ())
    assert _report(**kw) == dropped
