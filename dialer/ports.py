"""The campaigns' ports to what keeps them (:mod:`dialer.campaigns` uses them;
:class:`store.dialer.DbCampaignStore` is the database's side, wired in by
``dirigent.service``).  A module of its own so that the store implements
them without importing the campaigns' service, its hub or its metrics."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from twisted.internet.defer import Deferred

from dialer.abandon import DayCount
from dialer.campaign import CampaignSetup, LeadSource
from dialer.compliance import Policy
from dialer.retry import RetryRules
from dialer.runner import AttemptLog


class Hopper(LeadSource, Protocol):
    """A campaign's records behind the gate, claimed ahead of demand."""

    on_filled: Callable[[], None] | None

    def fill(self, now: float) -> Deferred[Any]: ...
    def release_buffer(self) -> int: ...
    def release_orphans(self) -> int:
        """Records a previous run claimed but never dialed, returned (in the store's writer)."""
        ...


class CampaignAttempts(AttemptLog, Protocol):
    campaign_id: int

    def preload_open(self, campaign: str) -> None:
        """The open attempts read ahead (in the store's writer) for ``open_attempts``."""
        ...


class LedgerStore(Protocol):
    """An abandon ledger's day buckets, and its last hour (read at start-up)."""

    def load(self) -> list[DayCount]: ...
    def recent(self, now: float, amd_false_positive: float) -> list[tuple[float, float, float]]: ...
    def save(self, bucket: DayCount) -> None: ...


#: campaign -> (list, active) -> record status -> records
RecordCounts = dict[str, dict[tuple[str, bool], dict[str, int]]]


class CampaignStore(Protocol):
    """What the campaigns keep: one ordered writer off the reactor for every
    write and claim (a refused write retried, then logged, counted and kept);
    the methods marked *start-up* run directly, before the reactor serves."""

    def open(self, setup: CampaignSetup) -> tuple[Hopper, CampaignAttempts]:
        """*Start-up*: the campaign's row (made, or updated with the configured
        mode, country and caller ID), its hopper and its attempt log."""
        ...

    def stored_settings(self, name: str) -> dict[str, Any]:
        """*Start-up*: the live changes kept in the campaign's row."""
        ...

    def ledger(self, group: str, members: Sequence[str]) -> LedgerStore:
        """*Start-up*: the abandon ledger of a drop-rate group."""
        ...

    def recovery(
        self, attempts: Mapping[str, CampaignAttempts]
    ) -> Deferred[dict[str, tuple[str | None, dict[str, Any]]]]:
        """In the writer: each campaign's open attempts read for its runner,
        and its stored status and settings."""
        ...

    def release_orphans(self, source: Hopper) -> Deferred[int]:
        """In the writer: records claimed by a previous run but never dialed, returned."""
        ...

    def set_status(self, name: str, status: str) -> None: ...
    def store_settings(self, name: str, updates: dict[str, Any], **columns: Any) -> None: ...

    def machine_after_answer(
        self, ref: str, now: dt.datetime, retry: RetryRules, policy: Policy | None = None
    ) -> None:
        """In the writer: an ended call that was an answering machine: its
        attempt rewritten "machine", its record retried by the machine rule
        (no earlier than ``policy``'s lock-outs end; None: the country's pack)."""
        ...

    def count_records(self, campaign_ids: Mapping[str, int]) -> Deferred[RecordCounts]:
        """In a thread: records by list and status (a count over whole lists)."""
        ...

    def flush(self) -> Deferred[Any]: ...
    def sweep(self) -> Deferred[Any]: ...
    def close(self) -> None: ...
