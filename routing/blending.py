"""Channel blending: what may be offered on top of what an agent handles.

Rules (configuration: ``dirigent.config`` reads the table, errors name the key)::

    [routing.blending]
    # while handling <channel>, these are not offered
    block = { voice = ["email", "sms", "chat"], chat = ["voice"], email = ["voice"], sms = ["voice"] }
    deferrable = ["email", "sms"]           # media that can wait
    # when more than N calls wait, agents working deferrable media get calls
    offer_calls_to_deferrable_when_calls_waiting_above = 3
    # when at most N calls wait, agents with voice capacity get deferrable media
    # (otherwise they are kept free for calls)
    offer_deferrable_to_voice_agents_when_calls_waiting_at_most = 0

Capacity per channel (voice 1, chat 4, ...) is the agent's own; items in
after-call work still take their slot, so a call's wrap-up blocks the next
call until it ends.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from routing.agent import Agent
from routing.model import Channel


@dataclass(frozen=True)
class BlendingRules:
    block: Mapping[Channel, frozenset[Channel]] = field(
        default_factory=lambda: {
            Channel.VOICE: frozenset({Channel.EMAIL, Channel.SMS, Channel.CHAT}),
            Channel.CHAT: frozenset({Channel.VOICE}),
            Channel.EMAIL: frozenset({Channel.VOICE}),
            Channel.SMS: frozenset({Channel.VOICE}),
        }
    )
    deferrable: frozenset[Channel] = frozenset({Channel.EMAIL, Channel.SMS})
    calls_waiting_interrupt: int | None = 3
    calls_waiting_quiet: int | None = 0

    def may_offer(
        self, agent: Agent, channel: Channel, calls_waiting: int, overdue: bool = False
    ) -> bool:
        """Whether ``channel`` may be offered to ``agent`` now (capacity + rules).

        ``overdue``: the item has waited past its service-level target; then
        the "keep voice agents for calls" rule yields, so deferrable media
        never starve behind a voice queue that is never quiet.
        """
        if not agent.available or agent.load(channel) >= agent.capacity.get(channel, 0):
            return False
        for handling in agent.channels_in_use():
            if channel in self.block.get(handling, ()):
                interrupt = (
                    channel is Channel.VOICE
                    and handling in self.deferrable
                    and self.calls_waiting_interrupt is not None
                    and calls_waiting > self.calls_waiting_interrupt
                )
                if not interrupt:
                    return False
        # keep voice agents free for the calls that wait
        keep_for_voice = (
            not overdue
            and channel in self.deferrable
            and self.calls_waiting_quiet is not None
            and agent.capacity.get(Channel.VOICE, 0) > 0
            and calls_waiting > self.calls_waiting_quiet
        )
        return not keep_for_voice
