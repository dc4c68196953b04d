"""The answers the API relays from the store and the dialer (``cti.responses``)
keep their JSON exactly, and refuse a shape that drifted.

The models check dicts made below the faces; a key added, dropped or
renamed there, or a count turned into text, must be refused (a 500 the
server logs and counts), never passed on as a silent change of what
clients read.  The JSON through a model is the dict's own JSON, byte for
byte: the same keys in the same order, ``null`` where it was, a key left
out where it was, ``25`` still ``25`` and ``25.0`` still ``25.0``."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError
from pydantic_core import to_json
from sqlalchemy import insert, select, update

from core.events import CampaignView, DomainEvent, HistoryEntry, PreviewShown
from cti.responses import (
    CampaignAnswer,
    ConsentAnswer,
    ContactsAnswer,
    DispositionAnswer,
    DncAnswer,
    DncCheckAnswer,
    ImportAnswer,
    ListActiveAnswer,
    MergeAnswer,
    PoolAnswer,
    PreviewAnswer,
    PreviewDialAnswer,
    PreviewSkipAnswer,
    QueueAnswer,
)
from cti.schemas import TransferAnswer
from dialer.compliance import Campaign, policy_for
from dialer.retry import RetryRules


def dumped(data: Any) -> bytes:
    """``data`` as the API sent it before the models: compact JSON, UTF-8."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def relayed(model: type[BaseModel], data: dict[str, Any]) -> bytes:
    """``data`` through ``model`` as the API sends it now."""
    return to_json(model.model_validate(data))


CAMPAIGN = {
    "campaign": "winback",
    "status": "running",
    "idle_reason": None,
    "pbx": "east",
    "country": "GB",
    "legal_max_abandon": 0.03,
    "abandon_target": 0.03,
    # whole numbers as a configuration gives them: 25 must not become 25.0
    "max_lines_per_agent": 3,
    "mode": "predictive",
    "power_ratio": 2.0,
    "ring_timeout": 25,
    "machine_action": "hangup",
    "wrap_up": 0,
    "lines_in_use": 2,
    "agents": {"ready": 1, "busy": 2},
    "since": 1764662400.125,
    "today": {"live": 4.0, "abandoned": 1.0},
    "dials": 7,
    "connected": 3,
    "abandoned": 1,
    "outcomes": {"answered": 4, "busy": 2},
    "refused": {"dnc": 2},
    "abandon_rate": {"30d": 0.25, "day": None, "1h": 0.0},
    "drop_group": "uk",
}

#: one realistic answer of each route, as the store and the dialer make it
SAMPLES: dict[type[BaseModel], dict[str, Any]] = {
    ImportAnswer: {
        "rows": 3,
        "imported": 1,
        "updated": 0,
        "rejected": 1,
        "duplicates": 1,
        "phonetic_duplicate_groups": 1,
        "formula_like_fields": 0,
        "encoding": "utf-8",
        "delimiter": ",",
        "dry_run": False,
        "region": None,
        "region_from": None,
        "list": "spring.csv",
        "problems": [{"row": 3, "field": "phone", "reason": "too short"}],
        "phonetic_groups": [
            {"key": "MR|AN", "numbers": ["+4930123", "+4930124"], "suggested_keep": "+4930123"}
        ],
    },
    MergeAnswer: {
        "kept": 4,
        "closed": [5, 6],
        "contacts_folded": 2,
        "numbers_moved": 1,
        "consents_moved": 0,
        "interactions_moved": 3,
    },
    ListActiveAnswer: {"campaign": "spring", "list": "a.csv", "active": False, "was_active": True},
    DncAnswer: {
        "added": 1,
        "already": 1,
        "rejected": [{"number": "12", "reason": "too short"}],
        "numbers": {"+442079460077": "added", "+442079460078": "already"},
    },
    DncCheckAnswer: {"number": "+442079460077", "blocked": None},
    ConsentAnswer: {"contact": 7, "channel": "voice", "granted": True},
    DispositionAnswer: {"interaction": "c-1", "disposition": "sale", "record_status": None},
    CampaignAnswer: CAMPAIGN,
    PoolAnswer: {
        "campaign": "spring",
        "records": {"new": 2, "closed": 1},
        "dialable_now": 1,
        "due_later_today": 0,
        "blocked_now": {"dnc": 1},
        "exhausted": 1,
        "sample": 2000,
        "sampled": False,
        "lists": {
            "a.csv": {
                "active": True,
                "records": {"new": 2, "closed": 1},
                "dialable_now": 1,
                "due_later_today": 0,
                "blocked_now": {"dnc": 1},
                "exhausted": 1,
                "sampled": False,
            },
            "b.csv": {
                "active": False,
                "records": {},
                "dialable_now": 0,
                "due_later_today": 0,
                "blocked_now": {},
                "exhausted": 0,
                "sampled": False,
                "importing": "new",
            },
        },
    },
    ContactsAnswer: {
        "e164": "+493012345678",
        "do_not_call": ["global", "spring"],
        "contacts": [
            {
                "id": 1,
                "display_name": "Ada Lovelace",
                "company": "Acme",
                "city": None,
                "phones": ("+493012345678",),
                "consent": (
                    {
                        "channel": "voice",
                        "granted": True,
                        "source": "web",
                        "given_at": "2026-11-01",
                    },
                ),
                "records": (
                    {
                        "campaign": "spring",
                        "list": "a.csv",
                        "record": 9,
                        "status": "new",
                        "attempts": 0,
                        "last_outcome": None,
                    },
                ),
            }
        ],
    },
}

PARAMS = pytest.mark.parametrize("model", list(SAMPLES), ids=lambda m: m.__name__)


@PARAMS
def test_a_relayed_answer_keeps_its_json_byte_for_byte(model):
    data = SAMPLES[model]
    assert relayed(model, data) == dumped(data)


@PARAMS
def test_a_key_the_store_added_is_refused_naming_it(model):
    with pytest.raises(ValidationError) as refused:
        model.model_validate({**SAMPLES[model], "surprise": 1})
    [error] = refused.value.errors()
    assert (error["type"], error["loc"]) == ("extra_forbidden", ("surprise",))


@PARAMS
def test_a_key_the_store_dropped_is_refused_naming_it(model):
    for key in SAMPLES[model]:
        data = {k: v for k, v in SAMPLES[model].items() if k != key}
        with pytest.raises(ValidationError) as refused:
            model.model_validate(data)
        assert [(e["type"], e["loc"]) for e in refused.value.errors()] == [("missing", (key,))]


@PARAMS
def test_a_value_of_another_type_is_refused(model):
    """A count turned into text (``"3"``), or text into a number: strict, no coercion."""
    data = SAMPLES[model]
    counts = [k for k, v in data.items() if isinstance(v, int) and not isinstance(v, bool)]
    texts = [k for k, v in data.items() if isinstance(v, str)]
    for key, wrong in [(k, str(data[k])) for k in counts] + [(k, 1) for k in texts]:
        with pytest.raises(ValidationError) as refused:
            model.model_validate({**data, key: wrong})
        assert refused.value.errors()[0]["loc"][0] == key


def test_nested_drift_is_refused_too():
    pool = json.loads(json.dumps(SAMPLES[PoolAnswer]))
    pool["lists"]["a.csv"]["importing_state"] = "new"
    with pytest.raises(ValidationError, match="importing_state"):
        PoolAnswer.model_validate(pool)
    contacts = json.loads(json.dumps(SAMPLES[ContactsAnswer]))
    del contacts["contacts"][0]["records"][0]["last_outcome"]
    with pytest.raises(ValidationError, match="last_outcome"):
        ContactsAnswer.model_validate(contacts)


def test_a_list_still_importing_says_so_and_a_finished_one_has_no_such_key():
    answer = json.loads(relayed(PoolAnswer, SAMPLES[PoolAnswer]))
    assert answer["lists"]["b.csv"]["importing"] == "new"
    assert "importing" not in answer["lists"]["a.csv"], "not null: left out, as it always was"


def test_whole_and_fractional_figures_are_written_as_they_were_given():
    text = relayed(CampaignAnswer, CAMPAIGN).decode()
    assert '"ring_timeout":25,' in text and '"wrap_up":0,' in text
    assert '"power_ratio":2.0,' in text and '"today":{"live":4.0,"abandoned":1.0}' in text
    with pytest.raises(ValidationError):
        CampaignAnswer.model_validate({**CAMPAIGN, "ring_timeout": True})


def test_the_campaign_answer_is_the_campaign_view_field_for_field_in_its_order():
    """``CampaignFigures.view`` is the name, the status, then every field of
    ``CampaignView``: a field added there must be added to the answer."""
    declared = [f.alias or name for name, f in CampaignAnswer.model_fields.items()]
    assert declared == ["campaign", "status", *(f.name for f in dataclasses.fields(CampaignView))]


def test_a_transfers_history_keeps_each_steps_keys_in_their_order():
    steps = [
        HistoryEntry.queued("sales", 10.5),
        HistoryEntry.answered("anna", 12.0),
        HistoryEntry.transferred("anna", 13.25, to_agent="ben"),
        HistoryEntry.queued("sales", 13.25),
        HistoryEntry.ended("ben", 20),
    ]
    history = [s.to_json() for s in steps]
    answer = TransferAnswer.model_validate({"id": "i1", "history": history})
    assert to_json(answer) == dumped({"id": "i1", "history": history})
    for bad in (
        {**history[0], "agent": "anna"},  # a field its kind does not carry
        {"event": "parked", "at": 1.0},  # a kind of step the API does not know
        {"event": "answered", "at": 1.0},  # its agent missing
    ):
        with pytest.raises(ValidationError):
            TransferAnswer.model_validate({"id": "i1", "history": [bad]})


# -- agents.py's answers: the hub's queue figures, the dialer's preview -------------------------
PREVIEW = {
    "agent": "agent1001",
    "campaign": "winback",
    "record": 42,
    "customer": "+442079460077",
    "name": "Alex Smith",
    "attributes": {"plan": "gold", "since": "2019"},
    "since": 1764662400.5,
    "auto_dial_at": None,
    "dialing": False,
}

#: ``center.hub.Hub.queue_figures`` and ``dialer.campaigns.Campaigns.preview[_decision]``
LIVE: dict[type[BaseModel], dict[str, Any]] = {
    QueueAnswer: {
        "queue": "sales",
        "channels": {
            "voice": {"waiting": 2, "oldest_wait": 12.5},
            "chat": {"waiting": 0, "oldest_wait": 0.0},
            "email": {"waiting": 0, "oldest_wait": 0.0},
            "sms": {"waiting": 0, "oldest_wait": 0.0},
        },
        "service_level_30m": 0.75,
        "service_level_today": None,
        "abandoned": 1,
    },
    PreviewAnswer: PREVIEW,
    PreviewDialAnswer: {"campaign": "winback", "attempt": "winback-7", "dialing": True},
    PreviewSkipAnswer: {"campaign": "winback", "skipped": True},
}

LIVE_PARAMS = pytest.mark.parametrize("model", list(LIVE), ids=lambda m: m.__name__)


@LIVE_PARAMS
def test_a_queue_or_preview_answer_keeps_its_json_byte_for_byte(model):
    assert relayed(model, LIVE[model]) == dumped(LIVE[model])


@LIVE_PARAMS
def test_a_key_the_hub_or_the_dialer_added_is_refused_naming_it(model):
    with pytest.raises(ValidationError) as refused:
        model.model_validate({**LIVE[model], "surprise": 1})
    [error] = refused.value.errors()
    assert (error["type"], error["loc"]) == ("extra_forbidden", ("surprise",))


@LIVE_PARAMS
def test_a_key_the_hub_or_the_dialer_dropped_is_refused_naming_it(model):
    for key in LIVE[model]:
        data = {k: v for k, v in LIVE[model].items() if k != key}
        with pytest.raises(ValidationError) as refused:
            model.model_validate(data)
        assert [(e["type"], e["loc"]) for e in refused.value.errors()] == [("missing", (key,))]


@LIVE_PARAMS
def test_a_queue_or_preview_value_of_another_type_is_refused(model):
    """A figure turned into text, text into a number, a flag into text.  The
    preview's ``record`` is the exception: a lead's record id may be text
    (``dialer.campaign.Lead.record_id``)."""
    data = LIVE[model]
    wrong: list[tuple[str, object]] = []
    for key, value in data.items():
        if isinstance(value, bool):
            wrong.append((key, str(value).lower()))
        elif isinstance(value, int | float) and (model, key) != (PreviewAnswer, "record"):
            wrong.append((key, str(value)))
        elif isinstance(value, str):
            wrong.append((key, 1))
    assert wrong
    for key, value in wrong:
        with pytest.raises(ValidationError) as refused:
            model.model_validate({**data, key: value})
        assert refused.value.errors()[0]["loc"][0] == key


def test_a_queues_channel_that_drifted_is_refused():
    queue = json.loads(json.dumps(LIVE[QueueAnswer]))
    queue["channels"]["voice"]["longest_wait"] = 3.0
    with pytest.raises(ValidationError, match="longest_wait"):
        QueueAnswer.model_validate(queue)
    del queue["channels"]["voice"]["longest_wait"], queue["channels"]["chat"]["waiting"]
    with pytest.raises(ValidationError, match="waiting"):
        QueueAnswer.model_validate(queue)


def test_a_preview_keeps_its_record_id_and_its_seconds_as_they_were_given():
    for record in (42, "orphan-1", None):
        shown = {**PREVIEW, "record": record, "since": 100, "auto_dial_at": 130.5}
        assert relayed(PreviewAnswer, shown) == dumped(shown)
    text = relayed(PreviewAnswer, {**PREVIEW, "since": 100, "auto_dial_at": 130}).decode()
    assert '"since":100,"auto_dial_at":130,' in text, "25 must not become 25.0"
    with pytest.raises(ValidationError):
        PreviewAnswer.model_validate({**PREVIEW, "record": 4.2})


def test_a_previews_attributes_are_the_lists_text_and_nothing_else():
    # an import keeps every cell as text (dialer.lists.cell_text): a number
    # or a nested value here is the store's drift, not the list's column
    for bad in (2019, 20.5, None, ["gold"], {"tier": "gold"}):
        shown = {**PREVIEW, "attributes": {"plan": "gold", "since": bad}}
        with pytest.raises(ValidationError) as refused:
            PreviewAnswer.model_validate(shown)
        assert refused.value.errors()[0]["loc"][:2] == ("attributes", "since")
    assert relayed(PreviewAnswer, {**PREVIEW, "attributes": {}}) == dumped(
        {**PREVIEW, "attributes": {}}
    )


def test_a_decision_answer_says_what_was_decided():
    """``dialing`` and ``skipped`` are always true: false would be a new contract."""
    with pytest.raises(ValidationError):
        PreviewDialAnswer.model_validate({**LIVE[PreviewDialAnswer], "dialing": False})
    with pytest.raises(ValidationError):
        PreviewSkipAnswer.model_validate({**LIVE[PreviewSkipAnswer], "skipped": False})
    with pytest.raises(ValidationError):  # a skip's answer is not a dial's
        PreviewDialAnswer.model_validate(LIVE[PreviewSkipAnswer])


def test_the_preview_answer_is_the_preview_push_message_field_for_field_in_its_order():
    """``Campaigns.preview`` and the ``preview`` push event are made from the
    same view: a field added to the event must be added to the answer."""
    stamped = {f.name for f in dataclasses.fields(DomainEvent)}
    event = [f.name for f in dataclasses.fields(PreviewShown) if f.name not in stamped]
    assert list(PreviewAnswer.model_fields) == event


# -- the store's real answers, on SQLite and PostgreSQL --------------------------------------
@dataclasses.dataclass(frozen=True)
class Rules:
    name: str = "spring"
    retry: RetryRules = dataclasses.field(default_factory=RetryRules)

    def compliance(self) -> Campaign:
        return Campaign(self.name, policy_for("US"), "+12125550199")


LIST = (
    "phone,first_name,last_name,postal_code\n"
    "+1 212 555 0101,Anna,Meyer,10001\n"
    "+1 212 555 0102,Ana,Meier,10001\n"
    "12,Bad,Row,10001\n"
)


def test_the_stores_own_answers_pass_through_unchanged(engine):
    """Every ListOps answer the API relays, made by the real store: the
    models accept it and write the JSON the dict gave."""
    from store import db
    from store.list_ops import ListOps

    ops = ListOps(engine, (Rules(),))
    seen: list[tuple[type[BaseModel], dict[str, Any]]] = []

    def through(model: type[BaseModel], data: dict[str, Any]) -> dict[str, Any]:
        assert relayed(model, data) == dumped(data), model.__name__
        seen.append((model, data))
        return data

    imported = through(
        ImportAnswer, ops.import_upload(io.BytesIO(LIST.encode()), "a.csv", "spring", create=True)
    )
    assert imported["problems"] and imported["phonetic_groups"], "rows refused, names alike"
    through(
        ImportAnswer,
        ops.import_upload(io.BytesIO(LIST.encode()), "b.csv", "spring", region="US", dry_run=True),
    )
    through(DncAnswer, ops.add_dnc(["+1 212 555 0101", "12"], reason="asked"))
    through(DncCheckAnswer, ops.check_dnc("+1 212 555 0101", "spring"))
    through(DncCheckAnswer, ops.check_dnc("+1 212 555 0199", None))
    found = through(ContactsAnswer, ops.find_contacts("+1 212 555 0102"))
    contact = found["contacts"][0]["id"]
    through(ConsentAnswer, ops.add_consent(contact, "voice", True, source="web", proof_ref="f-1"))
    through(ContactsAnswer, ops.find_contacts("+1 212 555 0102"))  # with its consent now

    with engine.begin() as conn:
        record_id, e164 = conn.execute(
            select(db.record.c.id, db.record.c.e164).where(db.record.c.e164 == "+12125550102")
        ).one()
        conn.execute(
            insert(db.attempt).values(
                ref="c-1",
                campaign_id=conn.execute(select(db.campaign.c.id)).scalar_one(),
                record_id=record_id,
                e164=e164,
                pbx="x",
                started_at=dt.datetime(2026, 11, 23, 14, 0, tzinfo=dt.UTC),
                outcome="answered",
            )
        )
    now = dt.datetime(2026, 11, 23, 15, 0, tzinfo=dt.UTC).timestamp()
    through(DispositionAnswer, ops.disposition("c-1", "sale", None, now))
    through(DispositionAnswer, ops.disposition("c-1", "do-not-call", None, now))

    with engine.begin() as conn:  # a list whose import did not finish, beside one that did
        conn.execute(update(db.dial_list).values(import_state="new"))
    more = "phone,first_name\n+1 212 555 0103,Carl\n+1 212 555 0104,Carla\n"
    through(ImportAnswer, ops.import_upload(io.BytesIO(more.encode()), "c.csv", "spring"))
    pool = through(PoolAnswer, ops.pool("spring", now))
    assert (
        pool["lists"]["a.csv"]["importing"] == "new" and "importing" not in pool["lists"]["c.csv"]
    )
    through(ListActiveAnswer, ops.set_active("spring", "c.csv", False))
    through(MergeAnswer, ops.merge("spring", "+1 212 555 0103", ["+1 212 555 0104"]))
    assert {model for model, _ in seen} == set(SAMPLES) - {CampaignAnswer}
