"""The typed event bus and the one serialiser of its events to the WebSocket's JSON."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from core.bus import EventBus
from core.errors import Invalid
from core.events import (
    EVENTS,
    AgentState,
    AgentStateChanged,
    CampaignFigures,
    CampaignStatus,
    CampaignView,
    Channel,
    Direction,
    DomainEvent,
    HistoryEntry,
    HistoryEvent,
    InteractionChanged,
    OfferMade,
    Stage,
    to_message,
)
from routing.model import ExpertiseRule, Operator, OverflowAction, OverflowStep, RoutingError


def test_subscribers_get_the_classes_they_named_in_the_order_they_subscribed():
    bus = EventBus()
    seen: list[str] = []
    bus.subscribe(AgentStateChanged, lambda e: seen.append(f"agent:{e.agent}"))
    bus.subscribe_all(lambda e: seen.append(f"all:{e.TYPE}"))
    off = bus.subscribe(OfferMade, lambda e: seen.append(f"offer:{e.interaction}"))
    bus.publish(AgentStateChanged(1.0, "anna", AgentState.READY))
    bus.publish(OfferMade(2.0, "anna", "i-1", Channel.CHAT, "sales"))
    off()
    bus.publish(OfferMade(3.0, "anna", "i-2", Channel.CHAT, "sales"))
    assert seen == ["agent:anna", "all:agent", "all:offer", "offer:i-1", "all:offer"]


def test_the_json_of_each_event_is_what_the_push_always_sent():
    agent = to_message(AgentStateChanged(5.0, "anna", AgentState.PAUSED, "lunch"))
    assert agent == {
        "type": "agent",
        "at": 5.0,
        "agent": "anna",
        "state": "paused",
        "pause_reason": "lunch",
    }
    queued = to_message(
        InteractionChanged(
            7.0,
            Stage.QUEUED,
            "c-1",
            Channel.VOICE,
            "sales",
            "+4930111",
            history=(HistoryEntry.queued("sales", 7.0),),
        )
    )
    # optional fields that are not set are left out (agent, outcome, wait, campaign)
    assert queued == {
        "type": "interaction",
        "at": 7.0,
        "event": "queued",
        "interaction": "c-1",
        "channel": "voice",
        "queue": "sales",
        "customer": "+4930111",
        "direction": "inbound",
        "history": [{"event": "queued", "queue": "sales", "at": 7.0}],
    }
    ended = to_message(
        InteractionChanged(
            9.0,
            Stage.ENDED,
            "d-1",
            Channel.VOICE,
            "out",
            "+4930222",
            Direction.OUTBOUND,
            agent="ben",
            campaign="c",
            outcome="pbx-lost",
        )
    )
    assert ended["event"] == "ended" and ended["outcome"] == "pbx-lost"
    assert ended["agent"] == "ben" and ended["direction"] == "outbound"
    offer = to_message(OfferMade(1.0, "anna", "i-1", Channel.CHAT, "sales", "c-42", {"t": 1}))
    assert offer["deadline"] is None and "campaign" not in offer
    assert offer["attributes"] == {"t": 1} and offer["channel"] == "chat"
    view = CampaignView(
        idle_reason=None,
        pbx="west",
        country="DE",
        legal_max_abandon=0.03,
        abandon_target=0.03,
        max_lines_per_agent=3.0,
        mode="predictive",
        power_ratio=2.0,
        ring_timeout=22.0,
        machine_action="hangup",
        wrap_up=120.0,
        lines_in_use=1,
        agents={"busy": 1},
        since=1.0,
        today={"live": 1.0, "abandoned": 0.0},
        dials=3,
        connected=1,
        abandoned=0,
        outcomes={"answered": 1, "busy": 2},
        refused={},
        abandon_rate={"day": 0.0},
        drop_group="c",
    )
    figures = to_message(CampaignFigures(4.0, "c", CampaignStatus.PAUSED, view))
    assert figures == {
        "type": "campaign",
        "campaign": "c",
        "status": "paused",
        **asdict(view),
        "at": 4.0,
    }
    assert figures["dials"] == 3 and figures["outcomes"] == {"answered": 1, "busy": 2}
    assert list(figures)[:5] == ["type", "campaign", "status", "idle_reason", "pbx"]
    assert list(figures)[-2:] == ["drop_group", "at"]
    json.dumps([agent, queued, ended, offer, figures])  # all of it is JSON


def test_history_entries_are_typed_and_serialise_to_the_json_they_always_had():
    history = (
        HistoryEntry.queued("sales", 1.0),
        HistoryEntry.answered("anna", 2.0),
        HistoryEntry.transferred("anna", 3.0, to_agent="ben"),
        HistoryEntry.queued("sales", 3.0),
        HistoryEntry.answered("ben", 4.0),
        HistoryEntry.ended("ben", 5.0),
    )
    assert [h.event for h in history][:3] == [
        HistoryEvent.QUEUED,
        HistoryEvent.ANSWERED,
        HistoryEvent.TRANSFERRED,
    ]
    pushed = to_message(
        InteractionChanged(5.0, Stage.ENDED, "c-1", Channel.VOICE, "sales", history=history)
    )
    # keys in this order; a transfer names both targets, the one not taken as null
    assert json.dumps(pushed["history"]) == json.dumps(
        [
            {"event": "queued", "queue": "sales", "at": 1.0},
            {"event": "answered", "agent": "anna", "at": 2.0},
            {"event": "transferred", "by": "anna", "to_queue": None, "to_agent": "ben", "at": 3.0},
            {"event": "queued", "queue": "sales", "at": 3.0},
            {"event": "answered", "agent": "ben", "at": 4.0},
            {"event": "ended", "agent": "ben", "at": 5.0},
        ]
    )
    with pytest.raises(Invalid, match="queue: required in a history entry of event 'queued'"):
        HistoryEntry(HistoryEvent.QUEUED, 1.0)
    with pytest.raises(Invalid, match="by: not part of a history entry of event 'answered'"):
        HistoryEntry(HistoryEvent.ANSWERED, 1.0, agent="anna", by="ben")


def test_every_event_class_is_named_once_with_its_message_type():
    assert set(EVENTS) == {"agent", "interaction", "offer", "offer_ended", "preview", "campaign"}
    assert all(issubclass(cls, DomainEvent) and t == cls.TYPE for t, cls in EVENTS.items())


def test_overflow_actions_and_rule_operators_are_enums_read_from_their_text():
    step = OverflowStep(60, "widen", min_level=1)  # as config gives it
    assert step.action is OverflowAction.WIDEN and not step.action.leaves_queue
    assert OverflowStep(60, OverflowAction.VOICEMAIL).action.leaves_queue
    rule = ExpertiseRule("product_age", ">", 5, team="2nd")
    assert rule.op is Operator.GT and rule.matches({"product_age": 6})
    assert not rule.matches({"product_age": "old"})  # incomparable: the rule does not apply
    with pytest.raises(RoutingError, match="action: 'shout' is not one of widen"):
        OverflowStep(60, "shout")
    with pytest.raises(RoutingError, match="op: '=~' is not one of"):
        ExpertiseRule("a", "=~", 1)
