"""The push socket as a browser desktop uses it (headless Chromium against
the assembled server over real TCP).

A browser cannot put a header on a WebSocket, so the desktop sends its
token as the first message; Chromium's own WebSocket client is what the
agent desktop and the supervisor dashboard will run on.  What a desktop
needs of it: an answer to the first message, its own pops and their end,
nothing of another agent's, the application's close code for a bad token
(so the page can send the user back to the login), and a token in the URL
refused outright (proxies and access logs keep URLs)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.browser.conftest import in_browser
from tests.conftest import settle
from tests.test_api import app, call, token

__all__ = ["app"]  # the assembled service fixture, shared with test_api

#: the page's script: named sockets, each logging what it receives and how it closed
SOCKETS = """
window.sockets = {};
window.openSocket = function (name, url, token) {
  const log = (window.sockets[name] = {messages: [], opened: false, closed: null});
  const ws = new WebSocket(url);
  ws.onopen = () => {
    log.opened = true;
    if (token !== null) ws.send(JSON.stringify({type: "auth", token: token}));
  };
  ws.onmessage = (event) => log.messages.push(JSON.parse(event.data));
  ws.onclose = (event) => { log.closed = event.code; };
};
"""


def _sockets(driver: Any) -> dict[str, dict[str, Any]]:
    return in_browser(driver.execute_script, "return window.sockets")


def _until(driver: Any, check: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        seen = _sockets(driver)
        if check(seen):
            return seen
        if time.monotonic() > deadline:
            logs = in_browser(driver.get_log, "browser")
            raise AssertionError(f"timed out waiting for {what}; the page saw {seen}; {logs}")
        settle(0.1)


def _of(seen: dict[str, Any], name: str, kind: str) -> list[dict[str, Any]]:
    return [m for m in seen[name]["messages"] if m["type"] == kind]


def test_a_browser_desktop_authenticates_by_its_first_message_and_sees_only_its_own_pops(
    app, chromium, pages
):
    anna, ben, boss = token(app, "anna"), token(app, "ben"), token(app, "boss")
    uri = f"ws://127.0.0.1:{app.http_port}/ws"
    in_browser(
        chromium.get,
        pages("/desk", f"<!doctype html><title>desk</title><script>{SOCKETS}</script>"),
    )
    for name, url, tok in (
        ("anna", uri, anna),
        ("ben", uri, ben),
        ("forged", uri, "not-a-token"),
        ("in_url", f"{uri}?token={anna}", None),
    ):
        in_browser(chromium.execute_script, "openSocket(...arguments)", name, url, tok)
    _until(
        chromium,
        lambda s: (
            all(_of(s, n, "authenticated") for n in ("anna", "ben"))
            and s["forged"]["closed"] is not None
            and s["in_url"]["closed"] is not None
        ),
        "both desktops authenticated, the forged token and the token in the URL refused",
    )

    assert call(app, "POST", "agents/anna/login", {"queues": ["sales"]}, anna)[0] == 200
    chat = {"channel": "chat", "queue": "sales", "customer": "c-browser-1"}
    status, created = call(app, "POST", "interactions", chat, boss)
    assert status == 200
    _until(chromium, lambda s: bool(_of(s, "anna", "offer")), "anna's screen pop")
    assert call(app, "POST", f"interactions/{created['id']}/accept", None, anna)[0] == 200
    seen = _until(chromium, lambda s: bool(_of(s, "anna", "offer_ended")), "the pop taken back")
    settle(0.3)
    seen = _sockets(chromium)

    (pop,) = _of(seen, "anna", "offer")
    assert pop["customer"] == "c-browser-1" and pop["channel"] == "chat"
    assert [(m["interaction"], m["end"]) for m in _of(seen, "anna", "offer_ended")] == [
        (created["id"], "accepted")
    ]
    pushed = [m for m in seen["anna"]["messages"] if m["type"] != "authenticated"]
    assert pushed and all(m.get("agent") == "anna" for m in pushed), pushed
    assert [m["type"] for m in seen["ben"]["messages"]] == ["authenticated"], (
        f"ben's desktop was pushed anna's work: {seen['ben']['messages']}"
    )
    assert seen["forged"]["opened"] and seen["forged"]["messages"] == []
    assert seen["forged"]["closed"] == 4401, "the page cannot tell a bad token from a drop"
    assert not seen["in_url"]["opened"], "a socket with the token in its URL was let in"
