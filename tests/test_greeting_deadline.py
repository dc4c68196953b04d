"""The abandon message starts within 2 s of the end of the person's greeting
(issue 15, QA finding 6).

The law counts from the called person's completed greeting (47 CFR
64.1200(a)(7), Ofcom: 2 s), and AMD says "human" only after
``after_greeting_silence`` (800 ms) of silence after it.  The deadline was
armed at the verdict for ``connect_within`` (2 s): the PBX played the
abandon message 2.8 s after the greeting ended (456.804 answer, 458.307
``AMDSTATUS HUMAN``, ``AMDCAUSE HUMAN-800-800``, 460.314 ``dirigent-abandon``
Playback).  These tests watch the same three PBX events and measure the
gap on a virtual clock.
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet import task

from asterisk.events import UserEventReceived
from asterisk.port import call_event, greeting_silence
from core.telephony import CallClassified, Verdict
from dialer.campaign import (
    MIN_CONNECT_DELAY,
    MOVE_MARGIN,
    CampaignSettings,
    Lead,
    connect_delay,
    pacing_window,
    validate,
)
from dialer.pacing import make_strategy, strategy_for
from dialer.runner import CampaignRunner, MemoryAttemptLog
from routing.agent import Agent
from routing.model import QueueConfig
from routing.router import Router
from sim.clock import HeapClock
from sim.desk import RouterDesk
from sim.inprocess import SimTelephony
from sim.pbx import SimPbx
from sim.workload import parse_workload, standard_workload

#: the causes apps/app_amd.c writes into AMDCAUSE, one of each (milliseconds)
APP_AMD_CAUSES = {
    "HUMAN-800-800": 0.8,
    "HUMAN-1250-800": 1.25,
    "INITIALSILENCE-2500-2500": 0.0,
    "LONGGREETING-1500-1500": 0.0,
    "MAXWORDS-4-3": 0.0,
    "MAXWORDLENGTH-5000": 0.0,
    "TOOLONG-5000": 0.0,
    "NOAUDIODATA-5000": 0.0,
    "": 0.0,
}


def test_each_cause_of_app_amd_gives_its_silence_after_the_greeting() -> None:
    for cause, silence in APP_AMD_CAUSES.items():
        assert greeting_silence(cause) == silence, cause
    assert greeting_silence(None) == 0.0


def _amd_event(status: str, cause: str | None) -> UserEventReceived:
    fields = {"Status": status, "Attempt": "a-1"}
    if cause is not None:
        fields["Cause"] = cause
    return UserEventReceived("pbx1", "DirigentAMD", "cust-1", "PJSIP/customers-0001", fields)


@given(
    cause=st.one_of(
        st.none(),
        st.text(max_size=40),
        st.from_regex(r"\A(HUMAN|TOOLONG|LONGGREETING)(-[0-9-]{0,12})?\Z"),
        st.builds(
            lambda a, b, junk: f"HUMAN-{a}-{b}{junk}",
            st.integers(-(10**9), 10**12),
            st.integers(-5, 10**9),
            st.sampled_from(["", " ", "-", "x", "-800", ".5"]),
        ),
    ),
    status=st.sampled_from(["HUMAN", "MACHINE", "NOTSURE", "HANGUP", ""]),
)
def test_any_cause_gives_a_silence_and_never_an_exception(cause: str | None, status: str) -> None:
    """Whatever a dialplan or a PBX puts in ``Cause``, the verdict arrives:
    with AMD's silence for a well-formed HUMAN cause, 0.0 for anything else."""
    event = call_event(_amd_event(status, cause))
    assert isinstance(event, CallClassified) and event.call == "cust-1"
    assert event.verdict is (Verdict.MACHINE if status == "MACHINE" else Verdict.HUMAN)
    assert math.isfinite(event.silence) and event.silence >= 0.0
    parts = (cause or "").strip().split("-")
    well_formed = (
        len(parts) == 3
        and parts[0] == "HUMAN"
        and all(p.isascii() and p.isdigit() and len(p) <= 7 for p in parts[1:])
    )
    if status == "MACHINE" or not well_formed:
        assert event.silence == 0.0
    else:
        assert event.silence == int(parts[1]) / 1000.0


def test_the_connect_deadline_is_counted_from_the_greeting_end_with_room_for_the_redirect() -> None:
    s = validate(CampaignSettings("c"))
    assert connect_delay(s, 0.8) == 0.9  # 2.0 - 0.8 - 0.3
    assert connect_delay(s, 0.0) == round(2.0 - MOVE_MARGIN, 3)  # no AMD: from the answer
    assert connect_delay(s, 1.9) == MIN_CONNECT_DELAY  # a long silence: the floor
    assert connect_delay(s, -3.0) == connect_delay(s, 0.0)
    # pacing models the same window: with AMD the typical silence, without none
    assert pacing_window(s) == 0.9
    assert pacing_window(s.with_changes(amd=False)) == 1.7
    assert pacing_window(s.with_changes(after_greeting_silence=1.2)) == 0.5
    assert strategy_for(s).connect_window == 0.9  # type: ignore[attr-defined]


class PbxView:
    """What the PBX did and when, from its own events: the AMD verdict (with
    its cause) and the start of the abandon message, per channel."""

    def __init__(self, pbx: SimPbx, clock: Any) -> None:
        self.clock = clock
        self.verdicts: dict[str, tuple[float, str]] = {}
        self.abandon_starts: dict[str, float] = {}
        pbx.subscribe(self)

    def __call__(self, headers: list[tuple[str, str]]) -> None:
        h = dict(headers)
        uid = h.get("Uniqueid", "")
        if h.get("Event") == "UserEvent" and h.get("UserEvent") == "DirigentAMD":
            self.verdicts[uid] = (self.clock.seconds(), h.get("Cause", ""))
        elif (
            h.get("Event") == "Newexten"
            and h.get("Context") == "dirigent-abandon"
            and h.get("Application") == "Playback"
        ):
            self.abandon_starts[uid] = self.clock.seconds()

    def greeting_to_abandon(self) -> list[float]:
        """Seconds from each abandoned person's greeting end (verdict less
        the silence AMD says it heard) to the start of their abandon message."""
        gaps = []
        for uid, start in self.abandon_starts.items():
            verdict_at, cause = self.verdicts[uid]
            gaps.append(start - (verdict_at - greeting_silence(cause)))
        return gaps


def _three_persons_for_one_agent(clock: Any, silence_ms: int, step: float | None) -> PbxView:
    """Ratio 3 with one agent: three persons answer together, two find
    nobody (the agent talks for a minute) and hear the abandon message."""
    wl = parse_workload(
        {
            "outcomes": {
                "live": 1.0,
                "machine": 0.0,
                "no_answer": 0.0,
                "busy": 0.0,
                "invalid": 0.0,
            },
            "ring": {"dist": "constant", "value": 5.0},
            "talk": {"dist": "constant", "value": 60.0},
            "wrapup": {"dist": "constant", "value": 5.0},
            "amd": {"person_misread": 0.0, "machine_detected": 1.0, "delay": 2.0},
        }
    )
    pbx = SimPbx(clock, seed=3, agents=1, workload=wl)
    pbx.amd_silence_ms = silence_ms
    view = PbxView(pbx, clock)
    tel = SimTelephony(pbx)
    router = Router({"c": QueueConfig("c")})
    router.add_agent(Agent("1001"))
    tel.originate("PJSIP/1001", context="dirigent-agent", exten="1001", channel_id="agent-1001")

    def run_until(t: float) -> None:
        if step is None:
            clock.run_until(t)
        else:  # twisted's Clock: in small steps, each call at (nearly) its own time
            while clock.seconds() < t - 1e-9:
                clock.advance(step)

    run_until(2.0)
    router.login("1001", clock.seconds(), ["c"])

    class Three:
        def __init__(self) -> None:
            self.queue = [Lead(i, f"+4930123400{i}") for i in range(3)]

        def take(self, n: int, now: float) -> list[Lead]:
            out, self.queue = self.queue[:n], self.queue[n:]
            return out

        def done(self, lead: Lead, outcome: str, now: float) -> None:
            pass

        def empty_reason(self, now: float) -> str:
            return "list exhausted"

    runner = CampaignRunner(
        validate(CampaignSettings("c", caller_id="+4930555000", amd_false_positive=0.0)),
        tel,
        RouterDesk(router),
        clock,
        Three(),
        make_strategy("ratio:3"),
        attempts=MemoryAttemptLog(),
    )
    runner.start()
    run_until(30.0)
    assert runner.stats.abandoned == 2 and runner.stats.connected == 1
    return view


def test_a_person_with_no_agent_hears_the_abandon_message_within_2_s_of_the_greeting_end() -> None:
    view = _three_persons_for_one_agent(HeapClock(), 800, step=None)
    assert sorted(cause for _, cause in view.verdicts.values()) == ["HUMAN-800-800"] * 3
    gaps = view.greeting_to_abandon()
    assert len(gaps) == 2
    # the deadline fires connect_within - silence - margin after the verdict:
    # the message starts 1.7 s after the greeting (it was 2.8 s)
    assert all(gap <= 2.0 for gap in gaps), gaps
    assert all(abs(gap - (2.0 - MOVE_MARGIN)) < 1e-6 for gap in gaps), gaps


def test_the_deadline_follows_the_silence_amd_says_it_heard() -> None:
    """A longer after-greeting silence (amd.conf at 1200 ms): the verdict
    comes later after the greeting, the abandon message no later for it."""
    view = _three_persons_for_one_agent(task.Clock(), 1200, step=0.01)
    assert sorted(cause for _, cause in view.verdicts.values()) == ["HUMAN-1200-1200"] * 3
    gaps = view.greeting_to_abandon()
    assert len(gaps) == 2 and all(gap <= 2.0 for gap in gaps), gaps
    for uid, start in view.abandon_starts.items():
        verdict_at, _ = view.verdicts[uid]
        assert start - verdict_at < 2.0 - 1.2 + 0.01  # 0.5 s after the verdict, on 10 ms steps


def test_the_simulated_amd_says_human_800_ms_after_the_greeting_of_a_real_pbx() -> None:
    """The lab's timing model agrees with a real Asterisk: its AMD verdict
    comes the workload's 1.5 s after the answer, "hello?" (0.7 s, as
    sim/phones.py's greeting) then amd.conf's 800 ms of silence, and the cause
    says 800."""
    from sim.phones import HUMAN_GREETING

    # 8 kHz, one byte a sample: the tone (greeting) then silence (128)
    greeting = (len(HUMAN_GREETING.rstrip(bytes([128])))) / 8000
    assert abs(greeting - 0.7) < 0.01
    assert abs(standard_workload().amd.delay - (greeting + 0.8)) < 0.01
    assert SimPbx(HeapClock()).amd_silence_ms == 800
