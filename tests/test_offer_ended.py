"""Every screen pop is taken back when its offer ends, however it ends.

An agent's desktop shows a pop (:class:`OfferMade`) for the interaction it
is offered.  The agent's state alone cannot say when that pop is over nor
how: an agent busy with one chat goes reserved -> busy when it takes a second
one, and reserved -> busy again when that customer leaves first, so the
desktop would keep showing a customer who is gone.  ``offer_ended`` says
it, with how it ended; only for pops that were shown."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets

from center.hub import Hub
from core.events import Channel, OfferEnded, OfferMade, to_message
from routing.agent import Agent, AgentState
from routing.model import QueueConfig
from routing.router import Router
from sim.clock import HeapClock
from tests.conftest import LOOP, run, wait_for
from tests.test_api import assembled, call_sync, token


def _hub(offer_timeout: float = 15.0) -> tuple[HeapClock, Hub, list[dict[str, Any]]]:
    """A hub with agents a1 (two chats at once) and a2, both ready in "web";
    what their desktops would be pushed, in order."""
    clock = HeapClock()
    router = Router({"web": QueueConfig("web")}, offer_timeout=offer_timeout)
    router.add_agent(Agent("a1", capacity={Channel.CHAT: 2}))
    router.add_agent(Agent("a2", capacity={Channel.CHAT: 1}))
    hub = Hub(router, clock, wrap_up=0)
    pushed: list[dict[str, Any]] = []
    for kind in (OfferMade, OfferEnded):
        hub.bus.subscribe(kind, lambda e: pushed.append(to_message(e)))
    hub.login("a1", ["web"])
    return clock, hub, pushed


def _pops(pushed: list[dict[str, Any]], iid: str) -> list[tuple[str, str, str | None]]:
    return [(m["type"], m["agent"], m.get("end")) for m in pushed if m["interaction"] == iid]


def test_an_accepted_offer_ends_accepted() -> None:
    _clock, hub, pushed = _hub()
    chat = hub.create_interaction(Channel.CHAT, "web", customer="c-1")
    hub.accept("a1", chat)
    assert _pops(pushed, chat) == [("offer", "a1", None), ("offer_ended", "a1", "accepted")]


def test_a_second_chat_whose_customer_leaves_is_taken_off_a_busy_agents_screen() -> None:
    clock, hub, pushed = _hub()
    first = hub.create_interaction(Channel.CHAT, "web", customer="c-1")
    hub.accept("a1", first)
    second = hub.create_interaction(Channel.CHAT, "web", customer="c-2")
    assert hub.router.offered_to(second) == "a1"
    clock.advance(3)
    hub.router.abandon(second, clock.seconds())  # the chat gateway: the customer left
    assert hub.router.agents["a1"].state is AgentState.BUSY, "as if a1 had taken it"
    assert _pops(pushed, second) == [("offer", "a1", None), ("offer_ended", "a1", "gone")]
    ended = next(m for m in pushed if m["type"] == "offer_ended" and m["interaction"] == second)
    assert ended["channel"] == "chat" and ended["queue"] == "web" and ended["at"] == 3.0


def test_a_timed_out_offer_ends_timed_out_before_the_colleague_is_popped() -> None:
    clock, hub, pushed = _hub(offer_timeout=5)
    hub.login("a2", ["web"])
    chat = hub.create_interaction(Channel.CHAT, "web", customer="c-3")
    first = hub.router.offered_to(chat)
    other = "a2" if first == "a1" else "a1"
    clock.advance(6)
    hub.tick()
    assert _pops(pushed, chat) == [
        ("offer", first, None),
        ("offer_ended", first, "timed_out"),
        ("offer", other, None),
    ]


def test_declined_withdrawn_and_dropped_offers_end_as_such() -> None:
    clock, hub, pushed = _hub()
    chats = [hub.create_interaction(Channel.CHAT, "web", customer=f"c-{i}") for i in range(3)]
    declined, withdrawn, dropped = chats
    now = clock.seconds()
    hub.route(hub.router.decline("a1", declined, now))
    hub.route(hub.router.withdraw("a1", withdrawn, now, "phone went away"))
    assert hub.router.offered_to(dropped) == "a1"
    hub.router.drop(dropped, now, "pbx-lost")
    ends = {iid: [m.get("end") for m in pushed if m["interaction"] == iid] for iid in chats}
    assert ends[declined][:2] == [None, "declined"]
    assert ends[withdrawn][:2] == [None, "withdrawn"]
    assert ends[dropped] == [None, "gone"]


# -- the assembled server: the pop's end on the agent's own socket only -------------------
@pytest.fixture
def quick_offers(sim, tmp_path):
    """The API tests' server, with offers that time out after 1 s."""
    with assembled(sim, tmp_path, offer_timeout=1.0) as dirigent:
        yield dirigent


def test_an_agents_socket_is_told_when_its_pops_end_and_nobody_elses_is(quick_offers):
    app = quick_offers
    anna, ben, boss = token(app, "anna"), token(app, "ben"), token(app, "boss")
    seen: dict[str, list[dict]] = {"anna": [], "ben": []}
    ids: list[str] = []
    uri = f"ws://127.0.0.1:{app.http_port}/ws"

    async def collect(ws, into: list[dict]) -> None:
        async for raw in ws:
            into.append(json.loads(raw))

    async def scenario() -> None:
        async with (
            websockets.connect(uri, additional_headers={"Authorization": f"Bearer {anna}"}) as wa,
            websockets.connect(uri, additional_headers={"Authorization": f"Bearer {ben}"}) as wb,
        ):
            tasks = [
                asyncio.ensure_future(collect(wa, seen["anna"])),
                asyncio.ensure_future(collect(wb, seen["ben"])),
            ]

            def api(*args):
                return LOOP.run_in_executor(None, lambda: call_sync(app, *args))

            assert (await api("POST", "agents/anna/login", {"queues": ["sales"]}, anna))[0] == 200
            assert (await api("POST", "agents/ben/login", {"queues": ["sales"]}, ben))[0] == 200
            chat = {"channel": "chat", "queue": "sales", "customer": "c-first"}
            status, first = await api("POST", "interactions", chat, boss)
            assert status == 200
            await wait_for(lambda: bool(_types(seen["anna"], "offer")), what="anna's first pop")
            status, _ = await api("POST", f"interactions/{first['id']}/accept", None, anna)
            assert status == 200
            second = {"channel": "chat", "queue": "sales", "customer": "c-second"}
            status, created = await api("POST", "interactions", second, boss)
            assert status == 200
            await wait_for(
                lambda: len(_types(seen["anna"], "offer_ended")) == 2,
                timeout=10,
                what="anna's second pop taken back after its 1 s time-out",
            )
            await asyncio.sleep(0.2)
            for task in tasks:
                task.cancel()
            ids.extend((first["id"], created["id"]))

    run(scenario(), timeout=40)
    first, second = ids
    ends = [(m["interaction"], m["end"]) for m in _types(seen["anna"], "offer_ended")]
    assert ends == [(first, "accepted"), (second, "timed_out")]
    assert all(m.get("agent") == "anna" for m in seen["anna"])
    assert not _types(seen["ben"], "offer_ended"), f"ben was told of anna's pops: {seen['ben']}"


def _types(messages: list[dict], kind: str) -> list[dict]:
    return [m for m in messages if m["type"] == kind]
