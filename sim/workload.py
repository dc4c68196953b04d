"""Outbound workload files (``bench/workloads/standard.toml`` schema).

A workload says how called numbers behave: the share of each outcome, how
long they ring, talk and wrap up, how answering-machine detection errs,
optional inbound traffic into the same agents (``[inbound]``, see
:class:`Inbound`), and optional ``[[phase]]`` changes during a run.  Loading validates the file and
names the key at fault; sampling takes an explicit ``random.Random`` so that
a run is reproducible for a seed.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from core.errors import Invalid
from core.tomlfile import read_toml

OUTCOMES = ("live", "machine", "no_answer", "busy", "invalid")


class WorkloadError(ValueError):
    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key


@dataclass(frozen=True)
class Distribution:
    """A positive random duration: lognormal, exponential, constant or mixture."""

    kind: str
    mean: float = 0.0
    sd: float = 0.0
    value: float = 0.0
    parts: tuple[tuple[float, Distribution], ...] = ()

    def sample(self, rng: random.Random) -> float:
        if self.kind == "constant":
            return self.value
        if self.kind == "exponential":
            return rng.expovariate(1.0 / self.mean)
        if self.kind == "lognormal":
            if self.sd == 0:
                return self.mean
            sigma2 = math.log(1.0 + (self.sd / self.mean) ** 2)
            mu = math.log(self.mean) - sigma2 / 2.0
            return rng.lognormvariate(mu, math.sqrt(sigma2))
        # mixture
        pick = rng.random() * sum(w for w, _ in self.parts)
        for weight, dist in self.parts:
            pick -= weight
            if pick <= 0:
                return dist.sample(rng)
        return self.parts[-1][1].sample(rng)

    @property
    def expected(self) -> float:
        if self.kind == "constant":
            return self.value
        if self.kind in ("exponential", "lognormal"):
            return self.mean
        total = sum(w for w, _ in self.parts)
        return sum(w * d.expected for w, d in self.parts) / total

    @classmethod
    def parse(cls, data: Any, key: str) -> Distribution:
        if not isinstance(data, dict):
            raise WorkloadError(key, "must be a table with 'dist'")
        kind = data.get("dist")

        def positive(name: str) -> float:
            value = data.get(name)
            if not isinstance(value, int | float) or value <= 0:
                raise WorkloadError(f"{key}.{name}", "must be a positive number")
            return float(value)

        if kind == "constant":
            value = data.get("value")
            if not isinstance(value, int | float) or value < 0:
                raise WorkloadError(f"{key}.value", "must be a number >= 0")
            return cls("constant", value=float(value))
        if kind == "exponential":
            return cls("exponential", mean=positive("mean"))
        if kind == "lognormal":
            sd = data.get("sd", 0.0)
            if not isinstance(sd, int | float) or sd < 0:
                raise WorkloadError(f"{key}.sd", "must be a number >= 0")
            return cls("lognormal", mean=positive("mean"), sd=float(sd))
        if kind == "mixture":
            parts = data.get("parts")
            if not isinstance(parts, list) or not parts:
                raise WorkloadError(f"{key}.parts", "must be a non-empty list")
            parsed = []
            for i, part in enumerate(parts):
                weight = part.get("weight") if isinstance(part, dict) else None
                if not isinstance(weight, int | float) or weight <= 0:
                    raise WorkloadError(f"{key}.parts[{i}].weight", "must be a positive number")
                parsed.append((float(weight), cls.parse(part, f"{key}.parts[{i}]")))
            return cls("mixture", parts=tuple(parsed))
        raise WorkloadError(
            f"{key}.dist",
            f"unknown distribution {kind!r} (lognormal, exponential, constant, mixture)",
        )


@dataclass(frozen=True)
class Amd:
    delay: float = 1.5
    machine_detected: float = 0.85
    person_misread: float = 0.01
    undetected_machine_talk: float = 6.0


@dataclass(frozen=True)
class Timeouts:
    no_answer: float = 22.0
    busy_detect: float = 4.0
    invalid_detect: float = 3.0


@dataclass(frozen=True)
class Inbound:
    """Inbound calls into the campaign's agents (blended agents).

    Arrivals are Poisson: ``rate_per_hour`` calls an hour, or ``share`` of
    the agents' capacity (``share`` × agents / mean(handle + wrap-up) a
    second: 0.2 keeps a fifth of the agents busy with inbound on average).
    The inbound queue is routed ahead of the campaign (``priority``) and
    yields agents as the server does: one per waiting caller, plus one while
    its service level over 30 minutes is below ``service_level`` within
    ``service_seconds``.  Callers hang up after ``patience`` (none: they wait)."""

    rate_per_hour: float = 0.0
    share: float = 0.0
    handle: Distribution = Distribution("lognormal", mean=180.0, sd=120.0)
    wrapup: Distribution | None = None  # None: the outbound [wrapup]
    service_level: float = 0.8
    service_seconds: float = 20.0
    patience: Distribution | None = None
    priority: int = 1

    @property
    def active(self) -> bool:
        return self.rate_per_hour > 0 or self.share > 0

    def rate(self, agents: int, outbound_wrapup: Distribution) -> float:
        """Arrivals per second for ``agents`` agents."""
        if self.rate_per_hour > 0:
            return self.rate_per_hour / 3600.0
        wrap = (self.wrapup or outbound_wrapup).expected
        return self.share * agents / max(1.0, self.handle.expected + wrap)


@dataclass(frozen=True)
class Phase:
    start: float
    changes: dict[str, Any]


@dataclass(frozen=True)
class Workload:
    name: str
    outcomes: dict[str, float]
    ring: Distribution
    talk: Distribution
    wrapup: Distribution
    timeouts: Timeouts = Timeouts()
    amd: Amd = Amd()
    abandon_limit: float = 0.03
    connect_within: float = 2.0
    inbound: Inbound = Inbound()
    phases: tuple[Phase, ...] = field(default=())

    def sample_outcome(self, rng: random.Random) -> str:
        pick = rng.random()
        for name in OUTCOMES:
            pick -= self.outcomes[name]
            if pick < 0:
                return name
        return OUTCOMES[-1]

    def at(self, seconds: float) -> Workload:
        """The workload in force ``seconds`` into a run (phases applied)."""
        current = self
        for phase in self.phases:
            if phase.start <= seconds:
                current = current._with(phase.changes)
        return current

    def _with(self, changes: dict[str, Any]) -> Workload:
        merged = _raw_of(self)
        for table, values in changes.items():
            if (
                isinstance(values, dict)
                and isinstance(merged.get(table), dict)
                and "dist" not in values
            ):
                merged[table] = {**merged[table], **values}
            else:
                merged[table] = values
        return replace(parse_workload(merged, with_phases=False), phases=self.phases)


def _raw_of(w: Workload) -> dict[str, Any]:
    def dist(d: Distribution) -> dict[str, Any]:
        if d.kind == "mixture":
            return {"dist": "mixture", "parts": [{"weight": wt, **dist(p)} for wt, p in d.parts]}
        if d.kind == "constant":
            return {"dist": "constant", "value": d.value}
        return {"dist": d.kind, "mean": d.mean, "sd": d.sd}

    return {
        "name": w.name,
        "outcomes": dict(w.outcomes),
        "ring": dist(w.ring),
        "talk": dist(w.talk),
        "wrapup": dist(w.wrapup),
        "timeouts": {
            "no_answer": w.timeouts.no_answer,
            "busy_detect": w.timeouts.busy_detect,
            "invalid_detect": w.timeouts.invalid_detect,
        },
        "amd": {
            "delay": w.amd.delay,
            "machine_detected": w.amd.machine_detected,
            "person_misread": w.amd.person_misread,
            "undetected_machine_talk": w.amd.undetected_machine_talk,
        },
        "regulation": {"abandon_limit": w.abandon_limit, "connect_within": w.connect_within},
        "inbound": _raw_inbound(w.inbound, dist),
    }


def _raw_inbound(i: Inbound, dist: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "rate_per_hour": i.rate_per_hour,
        "share": i.share,
        "handle": dist(i.handle),
        "service_level": i.service_level,
        "service_seconds": i.service_seconds,
        "priority": i.priority,
    }
    if i.wrapup is not None:
        raw["wrapup"] = dist(i.wrapup)
    if i.patience is not None:
        raw["patience"] = dist(i.patience)
    return raw


INBOUND_KEYS = (
    "rate_per_hour",
    "share",
    "handle",
    "wrapup",
    "service_level",
    "service_seconds",
    "patience",
    "priority",
)


def parse_inbound(data: Any) -> Inbound:
    """The ``[inbound]`` table (absent: no inbound traffic)."""
    if data is None:
        return Inbound()
    if not isinstance(data, dict):
        raise WorkloadError("inbound", "must be a table")
    for key in data:
        if key not in INBOUND_KEYS:
            raise WorkloadError(f"inbound.{key}", f"unknown key (one of {', '.join(INBOUND_KEYS)})")
    rate = data.get("rate_per_hour", 0.0)
    if not isinstance(rate, int | float) or isinstance(rate, bool) or not 0 <= rate < math.inf:
        raise WorkloadError("inbound.rate_per_hour", "must be a number of calls >= 0")
    share = _fraction(data, "share", "inbound", 0.0)
    if rate > 0 and share > 0:
        raise WorkloadError("inbound", "give rate_per_hour or share, not both")
    if share >= 1.0:
        raise WorkloadError("inbound.share", "must be below 1 (the agents' whole capacity)")
    seconds = _seconds(data, "service_seconds", "inbound", 20.0)
    if seconds <= 0:
        raise WorkloadError("inbound.service_seconds", "must be more than 0 seconds")
    priority = data.get("priority", 1)
    if not isinstance(priority, int) or isinstance(priority, bool) or priority < 0:
        raise WorkloadError("inbound.priority", "must be a whole number >= 0")
    return Inbound(
        rate_per_hour=float(rate),
        share=share,
        handle=Distribution.parse(data["handle"], "inbound.handle")
        if "handle" in data
        else Inbound.handle,
        wrapup=Distribution.parse(data["wrapup"], "inbound.wrapup") if "wrapup" in data else None,
        service_level=_fraction(data, "service_level", "inbound", 0.8),
        service_seconds=seconds,
        patience=Distribution.parse(data["patience"], "inbound.patience")
        if "patience" in data
        else None,
        priority=priority,
    )


def _fraction(table: dict[str, Any], key: str, prefix: str, default: float) -> float:
    value = table.get(key, default)
    if not isinstance(value, int | float) or not 0 <= value <= 1:
        raise WorkloadError(f"{prefix}.{key}", "must be a number between 0 and 1")
    return float(value)


def _seconds(table: dict[str, Any], key: str, prefix: str, default: float) -> float:
    value = table.get(key, default)
    if not isinstance(value, int | float) or value < 0:
        raise WorkloadError(f"{prefix}.{key}", "must be a number of seconds >= 0")
    return float(value)


def parse_workload(data: dict[str, Any], *, with_phases: bool = True) -> Workload:
    known = {
        "name",
        "outcomes",
        "ring",
        "timeouts",
        "amd",
        "talk",
        "wrapup",
        "regulation",
        "inbound",
        "phase",
    }
    for key in data:
        if key not in known:
            raise WorkloadError(key, "unknown key")
    outcomes = data.get("outcomes")
    if not isinstance(outcomes, dict):
        raise WorkloadError("outcomes", "missing table")
    for key in outcomes:
        if key not in OUTCOMES:
            raise WorkloadError(
                f"outcomes.{key}", f"unknown outcome (one of {', '.join(OUTCOMES)})"
            )
    shares = {name: _fraction(outcomes, name, "outcomes", 0.0) for name in OUTCOMES}
    if abs(sum(shares.values()) - 1.0) > 1e-6:
        raise WorkloadError("outcomes", f"shares must add up to 1, not {sum(shares.values()):.4f}")
    timeouts = data.get("timeouts", {})
    amd = data.get("amd", {})
    regulation = data.get("regulation", {})
    t = Timeouts(
        _seconds(timeouts, "no_answer", "timeouts", 22.0),
        _seconds(timeouts, "busy_detect", "timeouts", 4.0),
        _seconds(timeouts, "invalid_detect", "timeouts", 3.0),
    )
    if t.no_answer < 15:
        raise WorkloadError(
            "timeouts.no_answer", "must be at least 15 s (FCC 47 CFR 64.1200(a)(7)(iii))"
        )
    phases: list[Phase] = []
    if with_phases:
        for i, phase in enumerate(data.get("phase", [])):
            start = phase.get("start") if isinstance(phase, dict) else None
            if not isinstance(start, int | float) or start < 0:
                raise WorkloadError(f"phase[{i}].start", "must be seconds >= 0")
            changes = {k: v for k, v in phase.items() if k != "start"}
            base = {k: v for k, v in data.items() if k != "phase"}
            parse_workload({**base, **changes}, with_phases=False)  # validate early
            phases.append(Phase(float(start), changes))
    return Workload(
        name=str(data.get("name", "workload")),
        outcomes=shares,
        ring=Distribution.parse(data.get("ring"), "ring"),
        talk=Distribution.parse(data.get("talk"), "talk"),
        wrapup=Distribution.parse(data.get("wrapup"), "wrapup"),
        timeouts=t,
        amd=Amd(
            _seconds(amd, "delay", "amd", 1.5),
            _fraction(amd, "machine_detected", "amd", 0.85),
            _fraction(amd, "person_misread", "amd", 0.01),
            _seconds(amd, "undetected_machine_talk", "amd", 6.0),
        ),
        abandon_limit=_fraction(regulation, "abandon_limit", "regulation", 0.03),
        connect_within=_seconds(regulation, "connect_within", "regulation", 2.0),
        inbound=parse_inbound(data.get("inbound")),
        phases=tuple(sorted(phases, key=lambda p: p.start)),
    )


def load_workload(path: str | Path) -> Workload:
    try:
        data = read_toml(path, "workload")
    except Invalid as exc:
        raise WorkloadError(exc.field, exc.reason) from None
    return parse_workload(data)


def standard_workload() -> Workload:
    """The standard workload shipped with the package (same as bench/)."""
    return load_workload(Path(__file__).with_name("workloads") / "standard.toml")
