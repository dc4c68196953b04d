"""No database work on the reactor thread (issue 16), beyond the campaign's
hour that tests/test_assembled_blended.py watches: every API route a
supervisor, campaign manager or agent uses, and a reconnect to the PBX with
its resync.  A statement on the reactor thread stalls every call, offer and
socket of the server for as long as the database takes (a list import on
SQLite held it for 5 s: issue 15, finding 3)."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import event

from dirigent.cli import DEMO_CAMPAIGN
from tests.conftest import run, settle, wait_for
from tests.test_api import call, token
from tests.test_campaign_service import fast_sim, setup, upload  # noqa: F401  (fixtures)

CSV = b"phone;name\r\n+44 121 496 0501;Hans\r\n+44 117 496 0501;Eva\r\n"


def test_no_route_and_no_reconnect_waits_for_the_database_on_the_reactor_thread(
    setup,  # noqa: F811
    fast_sim,  # noqa: F811
):
    start, _engine = setup
    _pbx, server = fast_sim
    app = start()
    boss, anna = token(app, "boss"), token(app, "anna")
    run(wait_for(lambda: app.acd.router.agent("agent1001").logged_in, what="agents in"))
    reactor_thread, on_reactor = threading.get_ident(), []

    def watch(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if threading.get_ident() == reactor_thread:
            on_reactor.append(" ".join(statement.split())[:70])

    event.listen(app.database.engine, "before_cursor_execute", watch)
    statuses: dict[str, int] = {}

    def hit(method: str, path: str, body: object = None, tok: str | None = boss) -> Any:
        status, answer = call(app, method, path, body, tok)
        statuses[f"{method} {path}"] = status
        return answer

    try:
        token(app, "boss")  # login
        hit("GET", "agents")
        hit("GET", "agents/agent1001")
        hit("GET", "queues")
        hit("GET", "agents/agent1001/report")
        hit("POST", "agents/agent1002/pause", {"reason": "coaching"})
        hit("POST", "agents/agent1002/ready")
        hit("PUT", "agents/agent1002/skills", {"skills": {"english": 3}})
        hit("GET", "campaigns")
        hit("GET", f"campaigns/{DEMO_CAMPAIGN}")
        hit("PATCH", f"campaigns/{DEMO_CAMPAIGN}", {"abandon_target": 0.025})
        hit("GET", f"campaigns/{DEMO_CAMPAIGN}/pool")
        hit("POST", f"campaigns/{DEMO_CAMPAIGN}/pause")
        hit("POST", f"campaigns/{DEMO_CAMPAIGN}/start")
        status, _ = upload(app, f"campaign={DEMO_CAMPAIGN}&name=extra.csv&region=GB", CSV, boss)
        statuses["POST lists"] = status
        hit("PATCH", f"lists/{DEMO_CAMPAIGN}/extra.csv", {"active": False})
        hit("POST", "dnc", {"numbers": ["+44 121 496 0502"]})
        hit("GET", "dnc/+441214960502")
        hit("GET", "contacts?phone=%2B441214960501")
        hit("POST", "consent", {"contact": 1, "channel": "voice", "granted": False, "source": "t"})
        hit("POST", "interactions", {"channel": "chat", "queue": "sales", "customer": "web-1"})
        hit("GET", "agents/agent1001/preview", tok=anna)
        hit("POST", "logout", tok=anna)

        # the PBX link drops and comes back: reconnect, login, resync, re-nail
        connects = app.sessions["sim"].connects
        server.drop_connections()
        run(
            wait_for(
                lambda: app.sessions["sim"].connects > connects and app.sessions["sim"].connected,
                what="the link back",
            )
        )
        settle(1.0)  # the resync and what follows it (takeovers, re-nails, pacing)
    finally:
        event.remove(app.database.engine, "before_cursor_execute", watch)

    assert not [r for r, s in statuses.items() if s >= 500], statuses
    assert not on_reactor, f"{len(on_reactor)} statements on the reactor thread: {on_reactor[:5]}"
