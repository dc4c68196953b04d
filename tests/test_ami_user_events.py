"""The inbound caller's number reaches Dirigent (issue 14, finding 6).

The shipped dialplan sends ``UserEvent(DirigentInbound,Queue: ..,CallerIDNum:
${CALLERID(num)},CallUniqueid: ..)``; Asterisk puts the channel block (with
its own ``CallerIDNum``) before ``UserEvent:`` and the body after it, so the
name comes twice.  The normaliser dropped every channel-block name from the
body, and ``interaction.customer`` was empty for every inbound call.
"""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet import task

from asterisk.events import CHANNEL_FIELDS, UserEventReceived, normalize
from asterisk.framing import AmiMessage
from asterisk.telephony import AmiTelephony
from channels.voice import AgentEndpoint
from core.bus import EventBus
from core.events import to_message
from routing.agent import Agent
from routing.model import QueueConfig
from routing.router import Router
from sim.inprocess import SimTelephony
from sim.pbx import SimPbx, shipped_dialplan_path
from tests.acd import InboundAcd
from tests.conftest import run, wait_for

_value = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\r\n"), max_size=20
)
_name = st.from_regex(r"\A[A-Za-z][A-Za-z0-9-]{0,15}\Z")


@given(
    block=st.lists(_value, min_size=len(CHANNEL_FIELDS), max_size=len(CHANNEL_FIELDS)),
    event_name=_name,
    body=st.lists(st.tuples(st.one_of(st.sampled_from(CHANNEL_FIELDS), _name), _value), max_size=8),
)
def test_the_body_is_everything_after_the_user_event_header(block, event_name, body):
    headers = (
        ("Event", "UserEvent"),
        ("Privilege", "user,all"),
        *zip(CHANNEL_FIELDS, block, strict=True),
        ("UserEvent", event_name),
        *body,
    )
    event = normalize("pbx1", AmiMessage(headers))
    assert isinstance(event, UserEventReceived)
    assert event.name == event_name
    assert event.fields == {k: v for k, v in body if k != "ActionID"}  # a repeat: the last
    channel = dict(zip(CHANNEL_FIELDS, block, strict=True))
    assert event.uniqueid == channel["Uniqueid"] and event.caller_num == channel["CallerIDNum"]


def test_the_sim_sends_the_body_the_shipped_dialplan_declares():
    """What the sim's DirigentInbound carries is read from the shipped conf."""
    conf = shipped_dialplan_path().read_text()
    line = re.search(r"UserEvent\(DirigentInbound,(.*)\)\s*$", conf, re.MULTILINE)
    assert line is not None
    declared = [part.split(":", 1)[0].strip() for part in line.group(1).split(",")]
    clock = task.Clock()
    pbx = SimPbx(clock)
    seen: list[list[tuple[str, str]]] = []
    pbx.subscribe(seen.append)
    pbx.inbound_call(queue="sales", caller="+4930555")
    event = next(h for h in seen if ("UserEvent", "DirigentInbound") in h)
    names = [k for k, _ in event]
    assert names[names.index("UserEvent") + 1 :] == declared
    assert names.count("CallerIDNum") == 2, "once in the channel block, once in the body"


def test_the_caller_number_is_in_the_inbound_event_in_process_and_over_ami(sim, session_factory):
    clock = task.Clock()
    local = SimTelephony(SimPbx(clock))
    got: list[UserEventReceived] = []
    local.subscribe(lambda e: got.append(e) if isinstance(e, UserEventReceived) else None)
    local.pbx.inbound_call(queue="sales", caller="+4930111")
    assert got[0].fields["CallerIDNum"] == "+4930111"

    pbx, server = sim
    session = session_factory(server.address)
    wire: list[UserEventReceived] = []
    session.subscribe(lambda e: wire.append(e) if isinstance(e, UserEventReceived) else None)
    session.start()
    run(session.wait_connected(5))
    pbx.inbound_call(queue="sales", caller="+4930222")
    run(wait_for(lambda: wire, what="DirigentInbound"))
    assert wire[0].name == "DirigentInbound" and wire[0].fields["CallerIDNum"] == "+4930222"


def test_a_screen_pop_gets_the_inbound_callers_number(sim, session_factory):
    """The consumer: the ACD's ``interaction queued`` message on the bus."""
    from twisted.internet import reactor

    pbx, server = sim
    session = session_factory(server.address)
    telephony = AmiTelephony(session)
    router = Router({"sales": QueueConfig("sales")}, offer_timeout=30)
    router.add_agent(Agent("agent0"))
    bus = EventBus()
    messages: list[dict] = []
    bus.subscribe_all(lambda e: messages.append(to_message(e)))
    acd = InboundAcd(
        telephony, router, reactor, {"agent0": AgentEndpoint("agent0", "1001", "ring")}, bus=bus
    )
    acd.start()
    session.start()
    run(session.wait_connected(5))
    try:
        caller = pbx.inbound_call(queue="sales", caller="+4930333")
        run(wait_for(lambda: any(m.get("event") == "queued" for m in messages), what="queued"))
        queued = next(m for m in messages if m.get("event") == "queued")
        assert queued["interaction"] == caller.uniqueid and queued["customer"] == "+4930333"
    finally:
        acd.stop()
