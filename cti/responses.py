"""The answers the HTTP API relays from ``store/``, ``dialer/`` and ``center/``,
as pydantic v2 models.

These answers are made as dicts below the faces (``store.list_ops``,
``dialer.campaigns``, ``center.hub``: packages that may not import ``cti``),
so the models here do not build them: they check them on their way out
(``Model.model_validate(the_dict)`` in the handler) and serialise them.
They are a module of their own, beside :mod:`cti.schemas`, because they are
a different kind of schema: not what a client may send and the API decides,
but what another package hands over, whose every key and type must be the
JSON contract already in use -- and ``schemas.py`` is long enough with the
requests and the answers the faces make themselves.

Every model is strict and refuses a key it does not know
(:class:`Relayed`): a key added, dropped or renamed in the store, or a
count turned into text, is a 500 (logged with its traceback, counted in
``dirigent_http_errors_total``), not a silent change of what clients read.
The JSON is the dicts' own, byte for byte in meaning:

* the fields are declared in the order the dicts hold their keys;
* a figure that may be a whole number or not is :data:`Figure`
  (``int | float``, each kept as it is): a ``float`` field would turn a
  configured ``ring_timeout = 25`` into ``25.0``;
* ``null`` stays ``null`` (``X | None`` without a default: the key must be
  there), and a key the store leaves out is left out again (``importing`` of
  a list whose import is finished).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import ConfigDict, Field

from cti.schemas import Answer

#: a figure the store gives as a whole number or not, each serialised as it is
Figure = int | float


class Relayed(Answer):
    """An answer handed over as a dict: strict types, every key known."""

    model_config = ConfigDict(strict=True, extra="forbid")


def _absent(value: Any) -> bool:
    return value is None


# -- lists: upload, merge, on/off (POST /api/lists, /api/lists/merge, PATCH /api/lists/...) ----
class RowProblemAnswer(Relayed):
    """A rejected row of an upload (``dialer.lists.RowProblem``)."""

    row: int
    field: str
    reason: str


class PhoneticGroupAnswer(Relayed):
    """Possible duplicates by name (``dialer.lists.block_groups``)."""

    key: str
    numbers: list[str]
    suggested_keep: str


class ImportAnswer(Relayed):
    """``POST /api/lists``: ``ImportReport.summary()`` without ``rejected_file``,
    then the list's name, its rejected rows and its phonetic groups
    (``store.list_ops.ListOps.import_upload``)."""

    rows: int
    imported: int
    updated: int
    rejected: int
    duplicates: int
    phonetic_duplicate_groups: int
    formula_like_fields: int
    encoding: str
    delimiter: str
    dry_run: bool
    region: str | None
    region_from: str | None
    list_: str = Field(alias="list")
    problems: list[RowProblemAnswer]
    phonetic_groups: list[PhoneticGroupAnswer]


class MergeAnswer(Relayed):
    """``POST /api/lists/merge`` (``store.lists_merge.MergeReport.summary``)."""

    kept: int
    closed: list[int]
    contacts_folded: int
    numbers_moved: int
    consents_moved: int
    interactions_moved: int


class ListActiveAnswer(Relayed):
    """``PATCH /api/lists/<campaign>/<name>`` (``store.pool.set_list_active``)."""

    campaign: str
    list_: str = Field(alias="list")
    active: bool
    was_active: bool


# -- do-not-call and consent (POST /api/dnc, GET /api/dnc/<number>, POST /api/consent) -------
class DncRejection(Relayed):
    number: str
    reason: str


class DncAnswer(Relayed):
    """``POST /api/dnc``: counts, the numbers refused, and each accepted one
    in E.164 with "added" or "already" (listed before)."""

    added: int
    already: int
    rejected: list[DncRejection]
    numbers: dict[str, str]


class DncCheckAnswer(Relayed):
    """``GET /api/dnc/<number>``: ``blocked`` is "global", "campaign" or null."""

    number: str
    blocked: str | None


class ConsentAnswer(Relayed):
    contact: int
    channel: str
    granted: bool


# -- an outbound call's result (POST /api/interactions/<ref>/disposition) --------------------
class DispositionAnswer(Relayed):
    """``store.pool.apply_disposition``: the code as stored (special codes
    normalised) and the record's new status (null: unchanged)."""

    interaction: str
    disposition: str
    record_status: str | None


# -- campaigns (GET /api/campaigns[/<name>], start/pause/stop, PATCH) ------------------------
class CampaignAnswer(Relayed):
    """A campaign as ``core.events.CampaignFigures.view`` makes it: its name
    and status, then every field of ``core.events.CampaignView`` in its order
    (tests/test_responses.py holds the two together)."""

    campaign: str
    status: str
    idle_reason: str | None
    pbx: str | None
    country: str | None
    legal_max_abandon: Figure
    abandon_target: Figure
    max_lines_per_agent: Figure
    mode: str
    power_ratio: Figure
    ring_timeout: Figure
    machine_action: str
    wrap_up: Figure
    lines_in_use: int
    agents: dict[str, int]
    since: Figure
    today: dict[str, Figure]
    dials: int
    connected: int
    abandoned: int
    outcomes: dict[str, int]
    refused: dict[str, int]
    abandon_rate: dict[str, Figure | None]
    drop_group: str


class ListPoolAnswer(Relayed):
    """One list of a campaign's pool (``store.pool.pool_status``); ``importing``
    only while its import is not finished."""

    active: bool
    records: dict[str, int]
    dialable_now: int
    due_later_today: int
    blocked_now: dict[str, int]
    exhausted: int
    sampled: bool
    importing: str | None = Field(default=None, exclude_if=_absent)


class PoolAnswer(Relayed):
    """``GET /api/campaigns/<name>/pool``: the campaign's figures, then each list's."""

    campaign: str
    records: dict[str, int]
    dialable_now: int
    due_later_today: int
    blocked_now: dict[str, int]
    exhausted: int
    sample: int
    sampled: bool
    lists: dict[str, ListPoolAnswer]


# -- who a number belongs to (GET /api/contacts?phone=) ----------------------------------------
# ``store.contacts`` gives these as ``dataclasses.asdict`` of frozen dataclasses:
# their sequences are tuples, hence ``Sequence`` (a JSON array either way).
class ConsentStateAnswer(Relayed):
    channel: str
    granted: bool
    source: str
    given_at: str


class DialRecordAnswer(Relayed):
    campaign: str
    list_: str = Field(alias="list")
    record: int
    status: str
    attempts: int
    last_outcome: str | None


class ContactAnswer(Relayed):
    id: int
    display_name: str
    company: str | None
    city: str | None
    phones: Sequence[str]
    consent: Sequence[ConsentStateAnswer]
    records: Sequence[DialRecordAnswer]


class ContactsAnswer(Relayed):
    """``store.contacts.NumberLookup.as_dict``: the number in E.164, the
    do-not-call lists holding it ("global" or campaign names), its contacts."""

    e164: str
    do_not_call: list[str]
    contacts: list[ContactAnswer]


# -- queues (GET /api/queues) ------------------------------------------------------------------
class QueueChannelAnswer(Relayed):
    """One channel of a queue: calls (chats, ...) waiting and the oldest's
    wait in seconds (0.0 when none waits)."""

    waiting: int
    oldest_wait: Figure


class QueueAnswer(Relayed):
    """One queue of ``center.hub.Hub.queue_figures``: each channel (in
    ``routing.model.Channel``'s order), the voice service level over the
    last 30 minutes and today (null: no call answered yet), and today's
    callers who left waiting."""

    queue: str
    channels: dict[str, QueueChannelAnswer]
    service_level_30m: Figure | None
    service_level_today: Figure | None
    abandoned: int


# -- preview dialling (GET /api/agents/<id>/preview, POST .../preview-dial|preview-skip) -------
class PreviewAnswer(Relayed):
    """The record on an agent's screen (``dialer.campaigns.Campaigns.preview``),
    the same fields as the push message ``core.events.PreviewShown`` but its
    ``at`` (tests/test_responses.py holds the two together).  ``record`` has
    the types of ``dialer.campaign.Lead.record_id``; ``attributes`` are the
    list's own columns of the record, as imported (text: an import keeps
    every cell as the text a CSV export holds); ``auto_dial_at`` is null
    when the campaign does not dial by itself."""

    agent: str
    campaign: str
    record: int | str | None
    customer: str
    name: str | None
    attributes: dict[str, str]
    since: Figure
    auto_dial_at: Figure | None
    dialing: bool


class PreviewDialAnswer(Relayed):
    """``POST .../preview-dial``, once the attempt is written."""

    campaign: str
    attempt: str
    dialing: Literal[True]


class PreviewSkipAnswer(Relayed):
    """``POST .../preview-skip``: the next record comes up."""

    campaign: str
    skipped: Literal[True]
