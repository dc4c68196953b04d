"""A campaign's persons go to agents on nailed-up lines only (QA round 3,
finding 1): a ring-mode agent logged in to a campaign's queue was given a
person the dialer reached, who was moved into that agent's empty
conference (the phone never rang) and heard silence, while Dirigent
recorded a conversation.  Both ways in are refused, naming the field:
the configuration (tests/test_config_db.py) and a login."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from center.hub import Hub
from routing.agent import Agent
from routing.model import QueueConfig, RoutingError
from routing.router import Router


def _hub() -> Hub:
    router = Router({"sales": QueueConfig("sales"), "out": QueueConfig("out")})
    for agent in ("anna", "bert"):
        router.add_agent(Agent(agent))
    return Hub(router, Clock(), campaign_queues=["out"], rung=["anna"])


def test_an_agent_rung_per_call_may_not_log_in_to_a_campaign_queue():
    hub = _hub()
    with pytest.raises(RoutingError) as refused:
        hub.login("anna", ["sales", "out"])
    assert refused.value.field == "queues"
    assert "queue 'out' is a campaign's" in str(refused.value)
    assert not hub.router.agents["anna"].logged_in  # nothing half done
    hub.login("anna", ["sales"])  # inbound queues are hers
    hub.login("bert", ["sales", "out"])  # a nailed-up line may take campaign persons
    assert hub.router.agents["anna"].queues == {"sales"}
    assert hub.router.agents["bert"].queues == {"sales", "out"}


def test_a_transfer_nobody_could_take_is_refused_before_anything_moves():
    """QA5 findings 6, 19: a chat transferred to an agent without chat
    capacity waited for ever; a transfer to oneself was taken."""
    from routing.model import Channel

    hub = _hub()
    hub.router.agents["bert"].capacity = {Channel.VOICE: 1, Channel.CHAT: 1}
    hub.login("anna", ["sales"])
    hub.login("bert", ["sales"])
    chat = hub.create_interaction(Channel.CHAT, "sales")
    assert hub.router.offered_to(chat) == "bert"
    hub.accept("bert", chat)
    for target, field, says in (
        ({"to_agent": "anna"}, "agent", "anna takes no chat"),
        ({"to_agent": "bert"}, "agent", "is bert's already"),
    ):
        with pytest.raises(RoutingError) as refused:
            hub.transfer("bert", chat, **target)
        assert refused.value.field == field and says in str(refused.value)
        assert hub.router.handled_by(chat) == "bert", "nothing moved"
    hub.transfer("bert", chat, queue="sales")  # an inbound queue: fine
    assert hub.router.handled_by(chat) is None


def test_nothing_is_created_in_or_transferred_into_a_campaign_only_queue():
    """QA5 findings 6, 11: a chat created in a queue only a campaign dials
    into waited for ever (its agents are paced for the campaign's calls and
    nobody else is there), and a call transferred into one was dropped by
    the simulated PBX or kept waiting by Asterisk.  Both are refused naming
    ``queue``, nothing moved; a campaign's queue that is an inbound queue
    too ("sales" with a [[queue]] table) takes both."""
    from routing.model import Channel

    router = Router(
        {"sales": QueueConfig("sales"), "out": QueueConfig("out"), "win": QueueConfig("win")}
    )
    for agent in ("anna", "bert"):
        router.add_agent(Agent(agent, capacity={Channel.VOICE: 1, Channel.CHAT: 1}))
    hub = Hub(router, Clock(), campaign_queues=["out", "sales"], campaign_only=["out"])
    hub.login("anna", ["sales", "out"])
    with pytest.raises(RoutingError) as refused:
        hub.create_interaction(Channel.CHAT, "out")
    assert refused.value.field == "queue" and "only campaign calls" in str(refused.value)
    assert hub.router.waiting_in("out", Channel.CHAT)[0] == 0, "nothing was queued"
    chat = hub.create_interaction(Channel.CHAT, "sales")  # inbound too: fine
    hub.accept("anna", chat)
    with pytest.raises(RoutingError) as refused:
        hub.transfer("anna", chat, queue="out")
    assert refused.value.field == "queue" and "only campaign calls" in str(refused.value)
    assert hub.router.handled_by(chat) == "anna", "nothing moved"
    hub.transfer("anna", chat, queue="win")  # no campaign's: fine
    assert hub.router.handled_by(chat) is None
