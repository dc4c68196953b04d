"""Channel blending: what may be offered on top of what an agent handles.

Rules (config, validated at start, errors name the key)::

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
from typing import Any

from routing.agent import Agent
from routing.model import Channel, RoutingError

_KEYS = {
    "block",
    "deferrable",
    "offer_calls_to_deferrable_when_calls_waiting_above",
    "offer_deferrable_to_voice_agents_when_calls_waiting_at_most",
}


def _channel(value: Any, key: str) -> Channel:
    try:
        return Channel(value)
    except ValueError:
        raise RoutingError(
            key, f"unknown channel {value!r} (one of {', '.join(c.value for c in Channel)})"
        ) from None


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

    @classmethod
    def parse(cls, data: Mapping[str, Any], prefix: str = "routing.blending") -> BlendingRules:
        for key in data:
            if key not in _KEYS:
                raise RoutingError(
                    f"{prefix}.{key}", f"unknown key (allowed: {', '.join(sorted(_KEYS))})"
                )
        defaults = cls()
        block = defaults.block
        if "block" in data:
            if not isinstance(data["block"], Mapping):
                raise RoutingError(f"{prefix}.block", "must be a table of channel = [channels]")
            block = {}
            for handling, blocked in data["block"].items():
                ch = _channel(handling, f"{prefix}.block")
                if not isinstance(blocked, list):
                    raise RoutingError(f"{prefix}.block.{handling}", "must be a list of channels")
                block[ch] = frozenset(_channel(b, f"{prefix}.block.{handling}") for b in blocked)
        deferrable = defaults.deferrable
        if "deferrable" in data:
            if not isinstance(data["deferrable"], list):
                raise RoutingError(f"{prefix}.deferrable", "must be a list of channels")
            deferrable = frozenset(_channel(c, f"{prefix}.deferrable") for c in data["deferrable"])
            if Channel.VOICE in deferrable:
                raise RoutingError(
                    f"{prefix}.deferrable", "voice is real-time, it cannot be deferrable"
                )

        def threshold(key: str, default: int | None) -> int | None:
            if key not in data:
                return default
            value = data[key]
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value < 0
            ):
                raise RoutingError(f"{prefix}.{key}", "must be a whole number >= 0")
            return value

        return cls(
            block=block,
            deferrable=deferrable,
            calls_waiting_interrupt=threshold(
                "offer_calls_to_deferrable_when_calls_waiting_above",
                defaults.calls_waiting_interrupt,
            ),
            calls_waiting_quiet=threshold(
                "offer_deferrable_to_voice_agents_when_calls_waiting_at_most",
                defaults.calls_waiting_quiet,
            ),
        )

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
