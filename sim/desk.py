"""The pacing lab's agents' side for a campaign runner
(:class:`dialer.ports.AgentDesk`): the lab runs a runner without a hub, on a
router of its own, and the runner holds this desk, never the router.  Each
method is the router's, unchanged (the same offers, in the same order), so
the lab's figures are those of a runner that commanded the router itself."""

from __future__ import annotations

from collections.abc import Callable

from routing.agent import Agent
from routing.model import Exit, Interaction, Offer
from routing.router import Router


class RouterDesk:
    """A campaign runner's desk on a bare router (no hub: the lab, tests)."""

    def __init__(self, router: Router) -> None:
        #: the router it commands (the lab's and the tests' own, for their set-up)
        self.router = router

    # -- queries
    def agents(self) -> list[Agent]:
        return self.router.all_agents()

    def agent(self, agent_id: str) -> Agent | None:
        return self.router.agent(agent_id)

    def known_agent(self, agent_id: str) -> Agent:
        return self.router.known_agent(agent_id)

    def has_queue(self, name: str) -> bool:
        return self.router.has_queue(name)

    def offered_to(self, interaction: str) -> str | None:
        return self.router.offered_to(interaction)

    def is_waiting(self, interaction: str) -> bool:
        """In the queue now (not offered, not handled): an inbound caller of the lab who may still give up."""
        return self.router.is_waiting(interaction)

    def handler_of(self, interaction: str) -> str | None:
        return self.router.handled_by(interaction)

    def handled(self, interaction: str) -> Interaction | None:
        return self.router.handled(interaction)

    def campaign_of(self, interaction: str) -> str | None:
        return self.router.campaign_of(interaction)

    def listen_agents(self, listener: Callable[[Agent], None]) -> None:
        self.router.listen_agents(listener)

    # -- commands
    def queue_owned(self, interaction: Interaction, now: float) -> list[Offer]:
        return self.router.enqueue(interaction, now)

    def line_ready(self, agent: str, now: float) -> list[Offer]:
        return self.router.ready(agent, now)

    def line_pause(self, agent: str, now: float, reason: str) -> None:
        self.router.pause(agent, now, reason)

    def accept_offer(self, agent: str, interaction: str, now: float) -> Interaction:
        return self.router.accept(agent, interaction, now)

    def decline_offer(self, agent: str, interaction: str, now: float) -> list[Offer]:
        return self.router.decline(agent, interaction, now)

    def withdraw_offer(self, agent: str, interaction: str, now: float, reason: str) -> list[Offer]:
        return self.router.withdraw(agent, interaction, now, reason)

    def agent_finishes(
        self, agent: str, interaction: str, now: float, wrap_up: float
    ) -> list[Offer]:
        return self.router.finish(agent, interaction, now, wrap_up)

    def agent_wrapped_up(self, agent: str, now: float) -> list[Offer]:
        return self.router.end_wrap_up(agent, now)

    def route_agent(self, agent: str, now: float) -> list[Offer]:
        return self.router.route_agent(agent, now)

    def hold_offer(self, interaction: str) -> None:
        self.router.hold_offer(interaction)

    def renew_offer(self, interaction: str, now: float) -> None:
        self.router.renew_offer(interaction, now)

    def abandon(self, interaction: str, now: float) -> Interaction | None:
        return self.router.abandon(interaction, now)

    def drop(self, interaction: str, now: float, reason: str) -> str | None:
        return self.router.drop(interaction, now, reason)

    def tick_routing(self, now: float) -> tuple[list[Offer], list[Exit]]:
        return self.router.tick(now)
