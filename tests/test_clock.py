"""The virtual clock of long simulations: calls run at their own time, in
order, and behave as Twisted's delayed calls do when cancelled or moved."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import error
from twisted.internet.task import Clock, LoopingCall

from sim.clock import HeapClock, ScaledClock


def test_each_call_runs_at_its_own_time_in_order_of_time_then_of_scheduling():
    clock = HeapClock()
    seen: list[tuple[float, str]] = []
    for delay, name in ((2.0, "b"), (1.0, "a"), (2.0, "c"), (-5.0, "now")):
        clock.callLater(delay, lambda n=name: seen.append((clock.seconds(), n)))
    clock.run_until(10.0)
    assert seen == [(0.0, "now"), (1.0, "a"), (2.0, "b"), (2.0, "c")]
    assert clock.seconds() == 10.0


def test_cancel_reset_and_delay_as_twisted_defines_them():
    clock = HeapClock()
    seen: list[str] = []
    cancelled = clock.callLater(1.0, seen.append, "cancelled")
    later = clock.callLater(1.0, seen.append, "later")
    earlier = clock.callLater(5.0, seen.append, "earlier")
    delayed = clock.callLater(2.0, seen.append, "delayed")
    cancelled.cancel()
    later.reset(4.0)
    earlier.reset(0.5)
    delayed.delay(1.5)
    assert (later.getTime(), earlier.getTime(), delayed.getTime()) == (4.0, 0.5, 3.5)
    clock.run_until(10.0)
    assert seen == ["earlier", "delayed", "later"]
    assert not cancelled.active() and not later.active()
    with pytest.raises(error.AlreadyCancelled):
        cancelled.cancel()
    with pytest.raises(error.AlreadyCalled):
        later.cancel()
    with pytest.raises(error.AlreadyCalled):
        later.reset(1.0)


def test_a_looping_call_runs_on_the_clock_every_interval():
    clock = HeapClock()
    ticks: list[float] = []
    loop = LoopingCall(lambda: ticks.append(clock.seconds()))
    loop.clock = clock
    loop.start(1.0, now=False)
    clock.run_until(3.5)
    loop.stop()
    clock.run_until(10.0)
    assert ticks == [1.0, 2.0, 3.0] and clock.getDelayedCalls() == []


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0, 100), st.sampled_from(["keep", "cancel", "reset"]), st.floats(0, 100)
        ),
        max_size=40,
    )
)
def test_whatever_is_scheduled_runs_once_at_its_final_time_in_time_order(plan):
    clock = HeapClock()
    ran: list[tuple[float, int]] = []
    expected: list[tuple[float, int]] = []
    for i, (delay, what, new_delay) in enumerate(plan):
        call = clock.callLater(delay, lambda i=i: ran.append((clock.seconds(), i)))
        if what == "cancel":
            call.cancel()
        elif what == "reset":
            call.reset(new_delay)
            expected.append((new_delay, i))
        else:
            expected.append((delay, i))
    clock.run_until(200.0)
    assert sorted(ran) == sorted(expected)
    assert [t for t, _ in ran] == sorted(t for t, _ in ran)


def test_a_scaled_clock_slowed_down_keeps_virtual_time_and_every_due_time():
    """A test on a busy machine slows its ScaledClock down: the virtual time
    goes on from where it was, and a call due in 30 virtual seconds still
    runs 30 virtual seconds after it was made (only real time stretches)."""
    real = Clock()
    clock = ScaledClock(real, 50.0, start=1000.0)
    seen: list[tuple[str, float]] = []
    clock.callLater(30.0, lambda: seen.append(("ring timeout", clock.seconds())))
    clock.callLater(5.0, lambda: seen.append(("amd", clock.seconds())))
    cancelled = clock.callLater(10.0, seen.append, ("cancelled", 0.0))
    cancelled.cancel()
    real.advance(0.1)  # 5 virtual seconds
    clock.set_speed(25.0)
    assert clock.seconds() == pytest.approx(1005.0)
    real.advance(0.4)  # 10 virtual seconds at 25 times: the ring timeout is not due yet
    assert clock.seconds() == pytest.approx(1015.0)
    assert [what for what, _ in seen] == ["amd"]
    real.advance(0.6)  # 15 more
    assert seen == [("amd", pytest.approx(1005.0)), ("ring timeout", pytest.approx(1030.0))]
    with pytest.raises(ValueError, match="speed: must be positive"):
        clock.set_speed(0.0)
