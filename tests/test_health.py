"""``/healthz`` answers whatever the database does: a database that hangs
(a network partition without a reset, a stopped server) is a 503 naming it
within a moment, not a health check left without an answer."""

from __future__ import annotations

import json
import threading

from twisted.internet import task
from twisted.web.server import NOT_DONE_YET
from twisted.web.test.requesthelper import DummyRequest

from cti.web import DB_ANSWER_WITHIN, HealthResource


def test_a_database_that_does_not_answer_is_a_503_not_a_hang():
    """With PostgreSQL stopped (SIGSTOP) /healthz gave no answer for as long
    as it stayed stopped (curl gave up after 20 s), while /metrics answered
    at once: a load balancer or a supervisor saw a timeout, not "database"."""
    release = threading.Event()
    clock = task.Clock()
    health = HealthResource(
        lambda: {"sim": {"connected": True}}, lambda: release.wait(30) and None, clock
    )
    request = DummyRequest([b""])
    try:
        assert health.render_GET(request) == NOT_DONE_YET
        assert not request.finished
        clock.advance(DB_ANSWER_WITHIN)
        assert request.finished and request.responseCode == 503
        body = json.loads(b"".join(request.written))
        assert body["status"] == "degraded"
        assert body["database"] == f"no answer within {DB_ANSWER_WITHIN:g} s", body
    finally:
        release.set()
