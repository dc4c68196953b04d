"""What happens to a record after an attempt: retry later, or done.

Record lifecycle: ``new`` → ``dialing`` → outcome → ``scheduled`` (a retry
with a due time) | ``completed`` (a person was reached) | ``closed`` (with
a reason: attempts exhausted, invalid number, do not call).

Rules per outcome are configuration (delay, maximum attempts: a
campaign's ``retry`` table, read by ``dirigent.config``); defaults below
are common practice, not law.  Pure.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from core.errors import Invalid

OUTCOMES = (
    "answered",
    "busy",
    "no-answer",
    "machine",
    "congestion",
    "invalid",
    "failed",
    "abandoned",
    "callback",
    "do-not-call",
    "unknown",
)


class RetryError(Invalid):
    """A setting refused; ``key`` (= ``field``) names it (a 400 to the API)."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(key, reason)
        self.key = key


@dataclass(frozen=True)
class Rule:
    delay: float  # seconds until the next attempt
    max_attempts: int  # attempts with this outcome before the record is closed


DEFAULT_RULES: Mapping[str, Rule] = {
    "busy": Rule(15 * 60, 5),
    "no-answer": Rule(2 * 3600, 5),
    "machine": Rule(4 * 3600, 3),
    "congestion": Rule(30 * 60, 3),
    "failed": Rule(3600, 2),
    "abandoned": Rule(3 * 3600, 3),  # UK packs lock this out for 72 h anyway (compliance gate)
    "unknown": Rule(3600, 2),  # the link dropped during the dial: try again later, never at once
}


@dataclass(frozen=True)
class Next:
    status: str  # scheduled | completed | closed
    due: dt.datetime | None = None
    reason: str | None = None


@dataclass(frozen=True)
class RetryRules:
    rules: Mapping[str, Rule] = field(default_factory=lambda: dict(DEFAULT_RULES))
    max_attempts_total: int = 10

    def next(
        self,
        outcome: str,
        now: dt.datetime,
        attempts: int,
        same_outcome_attempts: int,
        callback_at: dt.datetime | None = None,
        not_before: dt.datetime | None = None,
    ) -> Next:
        """``attempts``: all attempts of the record so far, this one included;
        ``same_outcome_attempts``: those that ended with ``outcome``;
        ``not_before``: when the law's lock-outs on the number end
        (:func:`dialer.compliance.lockout_end`): a retry is due no earlier,
        since the gate would refuse it until then.  A call-back keeps its
        time."""
        if outcome not in OUTCOMES:
            raise RetryError("outcome", f"unknown outcome {outcome!r}")
        if outcome == "answered":
            return Next("completed")
        if outcome == "do-not-call":
            return Next("closed", reason="do not call")
        if outcome == "invalid":
            return Next("closed", reason="invalid number")
        if outcome == "callback":
            if callback_at is None or callback_at <= now:
                raise RetryError("callback_at", "a callback needs a time in the future")
            return Next("scheduled", due=callback_at)
        if attempts >= self.max_attempts_total:
            return Next("closed", reason=f"{attempts} attempts (at most {self.max_attempts_total})")
        rule = self.rules[outcome]
        if same_outcome_attempts >= rule.max_attempts:
            return Next(
                "closed",
                reason=f"{same_outcome_attempts} x {outcome} (at most {rule.max_attempts})",
            )
        due = now + dt.timedelta(seconds=rule.delay)
        if not_before is not None and not_before > due:
            due = not_before
        return Next("scheduled", due=due)
