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
