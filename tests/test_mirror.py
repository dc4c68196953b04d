"""The channel mirror and originate classification, as pure logic.

The property test plays random PBX histories: whatever the mirror missed
while "disconnected", a resync from the PBX's truth makes it equal to that
truth, and replaying the resync's events on an old copy gives the same state.
"""

from __future__ import annotations

import copy

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from asterisk.events import (
    BridgeEntered,
    ChannelCreated,
    ChannelHungUp,
    ChannelState,
    Outcome,
    classify_originate,
)
from asterisk.mirror import ChannelMirror, ChannelSnapshot


def test_classify_uses_the_cause_when_the_reason_says_nothing():
    assert classify_originate(0, 17) is Outcome.BUSY
    assert classify_originate(0, 34) is Outcome.CONGESTION
    assert classify_originate(0, 1) is Outcome.INVALID
    assert classify_originate(0, None) is Outcome.FAILED
    assert classify_originate(3, 19) is Outcome.NO_ANSWER
    assert classify_originate(4, None) is Outcome.ANSWERED
    assert classify_originate(5, 17) is Outcome.BUSY
    assert classify_originate(8, None) is Outcome.CONGESTION


def snap(uid: str, state: ChannelState, bridge: str | None) -> ChannelSnapshot:
    return ChannelSnapshot(uid, uid, f"PJSIP/x-{uid}", state, "", "", "ctx", "s", bridge)


class MirrorResync(RuleBasedStateMachine):
    """``truth`` is the PBX; ``mirror`` sees events only while ``linked``."""

    def __init__(self) -> None:
        super().__init__()
        self.truth: dict[str, ChannelSnapshot] = {}
        self.mirror = ChannelMirror("p")
        self.linked = True
        self.synced = True
        self.n = 0

    def _feed(self, event) -> None:
        if self.linked:
            self.mirror.apply(event)

    @rule(state=st.sampled_from([ChannelState.RING, ChannelState.UP]))
    def create(self, state: ChannelState) -> None:
        self.n += 1
        uid = f"c{self.n}"
        self.truth[uid] = snap(uid, state, None)
        self._feed(ChannelCreated("p", uid, uid, f"PJSIP/x-{uid}", state, "", "", "ctx", "s"))

    @rule(data=st.data())
    def hangup(self, data: st.DataObject) -> None:
        if self.truth:
            uid = data.draw(st.sampled_from(sorted(self.truth)))
            del self.truth[uid]
            self._feed(ChannelHungUp("p", uid, f"PJSIP/x-{uid}", 16))

    @rule(data=st.data(), bridge=st.sampled_from(["b1", "b2"]))
    def bridge(self, data: st.DataObject, bridge: str) -> None:
        if self.truth:
            uid = data.draw(st.sampled_from(sorted(self.truth)))
            old = self.truth[uid]
            self.truth[uid] = snap(uid, old.state, bridge)
            self._feed(BridgeEntered("p", bridge, uid, old.name))

    @rule()
    def link_down(self) -> None:
        self.linked = False
        self.synced = False

    @rule()
    def reconnect_and_resync(self) -> None:
        before = copy.deepcopy(self.mirror)
        events = self.mirror.resync(list(self.truth.values()))
        self.linked = self.synced = True
        assert set(self.mirror.channels) == set(self.truth)
        for uid, s in self.truth.items():
            assert self.mirror.channels[uid].state == s.state
            assert self.mirror.channels[uid].bridge_id == s.bridge_id
        for event in events:  # a consumer applying the diff reaches the same state
            before.apply(event)
        assert set(before.channels) == set(self.truth)
        assert {u: c.bridge_id for u, c in before.channels.items()} == {
            u: c.bridge_id for u, c in self.mirror.channels.items()
        }

    @invariant()
    def mirror_follows_truth_while_in_sync(self) -> None:
        if self.synced:
            assert set(self.mirror.channels) == set(self.truth)
            members = {u for m in self.mirror.bridges.values() for u in m}
            assert members == {u for u, s in self.truth.items() if s.bridge_id}


TestMirrorResync = MirrorResync.TestCase
