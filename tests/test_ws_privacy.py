"""The push socket is private: an agent's desktop carries that agent's own
state, offers and interactions, never another customer's number; the token
never travels in the URL (assembled service, real TCP, real WebSocket)."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
import websockets.exceptions

from tests.conftest import LOOP, run, settle, wait_for
from tests.test_api import app, call_sync, token

__all__ = ["app"]  # the assembled service fixture, shared with test_api


def _uri(app) -> str:
    return f"ws://127.0.0.1:{app.http_port}/ws"


async def _collect(ws, into: list[dict]) -> None:
    async for raw in ws:
        into.append(json.loads(raw))


def test_an_agent_socket_carries_its_own_offers_and_nothing_about_other_customers(app):
    anna, ben, boss = token(app, "anna"), token(app, "ben"), token(app, "boss")
    seen: dict[str, list[dict]] = {"anna": [], "ben": [], "boss": []}

    async def scenario() -> None:
        headers = {"Authorization": f"Bearer {anna}"}
        async with (
            websockets.connect(_uri(app), additional_headers=headers) as ws_anna,
            websockets.connect(_uri(app)) as ws_ben,
            websockets.connect(
                _uri(app), additional_headers={"Authorization": f"Bearer {boss}"}
            ) as ws_boss,
        ):
            # a browser cannot set headers: ben authenticates with his first message
            await ws_ben.send(json.dumps({"type": "auth", "token": ben}))
            assert json.loads(await ws_ben.recv())["type"] == "authenticated"
            tasks = [
                asyncio.ensure_future(_collect(ws, seen[name]))
                for name, ws in (("anna", ws_anna), ("ben", ws_ben), ("boss", ws_boss))
            ]

            def api(*args):
                return LOOP.run_in_executor(None, lambda: call_sync(app, *args))

            # nobody is logged in: the chat waits in the queue, with its customer
            status, created = await api(
                "POST",
                "interactions",
                {"channel": "chat", "queue": "sales", "customer": "c-secret-77"},
                boss,
            )
            assert status == 200 and created["waiting"] is True
            await wait_for(
                lambda: any(m.get("event") == "queued" for m in seen["boss"]),
                what="the supervisor sees the queued chat",
            )
            status, _ = await api("POST", "agents/anna/login", {"queues": ["sales"]}, anna)
            assert status == 200
            await wait_for(
                lambda: any(m["type"] == "offer" for m in seen["anna"]), what="anna's offer"
            )
            await asyncio.sleep(0.2)
            for task in tasks:
                task.cancel()

    run(scenario())
    offer = next(m for m in seen["anna"] if m["type"] == "offer")
    assert offer["agent"] == "anna" and offer["customer"] == "c-secret-77"
    assert all(m.get("agent") == "anna" for m in seen["anna"]), (
        "anna's socket carried messages about others: "
        f"{[m for m in seen['anna'] if m.get('agent') != 'anna']}"
    )
    assert not any(m.get("event") == "queued" for m in seen["anna"]), (
        "a queued interaction (another customer's number) reached an agent"
    )
    assert seen["ben"] == [], f"ben saw anna's work: {seen['ben']}"
    assert any(m.get("customer") == "c-secret-77" for m in seen["boss"])


def test_a_token_in_the_url_is_refused_and_says_where_it_goes(app):
    anna = token(app, "anna")

    async def attempt() -> None:
        async with websockets.connect(f"{_uri(app)}?token={anna}"):
            pass

    with pytest.raises(websockets.exceptions.InvalidStatus) as err:
        run(attempt())
    assert err.value.response.status_code == 400
    assert "Authorization" in err.value.response.reason_phrase


def test_a_bad_header_token_is_refused_and_a_bad_first_message_closes_the_socket(app):
    async def with_header() -> None:
        headers = {"Authorization": "Bearer forged"}
        async with websockets.connect(_uri(app), additional_headers=headers):
            pass

    with pytest.raises(websockets.exceptions.InvalidStatus) as err:
        run(with_header())
    assert err.value.response.status_code == 401

    async def with_message() -> int | None:
        async with websockets.connect(_uri(app)) as ws:
            await ws.send(json.dumps({"type": "auth", "token": "forged"}))
            with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
                await ws.recv()
            return closed.value.rcvd.code if closed.value.rcvd else None

    assert run(with_message()) == 4401


def logged_errors(registry) -> list:
    """What ``dirigent_log_errors_total`` counted (non-zero samples)."""
    return [
        (s.labels, s.value)
        for metric in registry.collect()
        for s in metric.samples
        if s.name == "dirigent_log_errors_total" and s.value
    ]


@pytest.mark.parametrize(
    "first",
    ["[" * 5000 + "]" * 5000, '{"type": "auth", "token": ' + "1" * 5000 + "}"],
    ids=["deep-json", "long-int"],
)
def test_a_first_message_json_cannot_read_closes_the_socket_as_a_bad_token(app, first):
    """5,000 nested arrays (a RecursionError, not a ValueError) escaped the
    handler: a critical traceback in the log and the connection dropped
    without a close code, where a bad token gets 4401."""
    from prometheus_client import CollectorRegistry

    from dirigent.logs import count_errors

    registry = CollectorRegistry()
    stop_counting = count_errors(registry)

    async def with_message() -> int | None:
        async with websockets.connect(_uri(app)) as ws:
            await ws.send(first)
            with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
                await ws.recv()
            return closed.value.rcvd.code if closed.value.rcvd else None

    try:
        assert run(with_message()) == 4401
    finally:
        stop_counting()
    assert not logged_errors(registry), logged_errors(registry)


@pytest.mark.parametrize("how", ["header", "first message"])
def test_a_socket_whose_token_ends_is_closed_before_anything_more_is_pushed(app, how):
    """A logout (or a password change, a disabled or removed user) ends the
    token for the API at once; an open socket went on pushing every
    customer's number to it for as long as it stayed open."""
    boss = token(app, "boss")
    dismissed = token(app, "boss")  # a second session of the supervisor, about to end
    seen: list[dict] = []

    async def scenario() -> int | None:
        headers = {"Authorization": f"Bearer {dismissed}"} if how == "header" else {}
        async with websockets.connect(_uri(app), additional_headers=headers) as ws:
            if how == "first message":
                await ws.send(json.dumps({"type": "auth", "token": dismissed}))
                assert json.loads(await ws.recv())["type"] == "authenticated"

            def api(*args):
                return LOOP.run_in_executor(None, lambda: call_sync(app, *args))

            chat = {"channel": "chat", "queue": "sales", "customer": "c-before"}
            assert (await api("POST", "interactions", chat, boss))[0] == 200
            seen.append(json.loads(await ws.recv()))
            assert (await api("POST", "logout", None, dismissed))[0] == 200
            chat = {"channel": "chat", "queue": "sales", "customer": "c-after-logout"}
            assert (await api("POST", "interactions", chat, boss))[0] == 200
            with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
                while True:
                    seen.append(json.loads(await ws.recv()))
            return closed.value.rcvd.code if closed.value.rcvd else None

    assert run(scenario()) == 4401
    assert [m.get("customer") for m in seen] == ["c-before"], seen


def test_a_plain_http_request_to_the_socket_is_426_and_logs_no_error(app):
    """A load balancer's health check or a scanner GETs /ws without an
    upgrade: each one logged an "Unhandled Error" traceback, and the answer
    was autobahn's status page with its version (and a ?redirect= that sent
    the browser anywhere)."""
    import urllib.error
    import urllib.request

    from prometheus_client import CollectorRegistry

    from dirigent.logs import count_errors

    def get(path: str) -> tuple[int, dict, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{app.http_port}{path}", timeout=5) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    registry = CollectorRegistry()
    stop_counting = count_errors(registry)  # what dirigent_log_errors_total counts
    try:
        for path in ("/ws", "/ws?redirect=https%3A%2F%2Fexample.org%2F"):
            status, headers, body = run(LOOP.run_in_executor(None, get, path))
            assert status == 426, (path, status, body[:200])
            assert "autobahn" not in (str(headers) + body.decode(errors="replace")).lower()
        settle(0.3)  # the connection's close, where the traceback came from
    finally:
        stop_counting()
    assert not logged_errors(registry), logged_errors(registry)
