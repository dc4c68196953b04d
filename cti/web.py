"""The HTTP face: ``/healthz`` and ``/metrics`` (more pages come with cti/)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, cast

from prometheus_client import CollectorRegistry
from prometheus_client.twisted import MetricsResource
from twisted.internet import defer, threads
from twisted.internet.interfaces import IReactorTime
from twisted.web import resource, server

#: seconds ``/healthz`` waits for the database's answer: one that hangs (a
#: network partition without a reset, a stopped server) is away, said in a 503
DB_ANSWER_WITHIN = 2.0


def _database_error(exc: Exception) -> str:
    if isinstance(exc, defer.TimeoutError):
        return f"no answer within {DB_ANSWER_WITHIN:g} s"
    return f"error: {type(exc).__name__}"


class HealthResource(resource.Resource):
    """``/healthz``: 200 when the database answers and every PBX is logged
    in, 503 (``degraded``) otherwise; the body says which part is down."""

    isLeaf = True

    def __init__(
        self,
        pbx_status: Callable[[], dict[str, dict[str, Any]]],
        db_ping: Callable[[], None],
        clock: IReactorTime | None = None,
    ):
        super().__init__()
        self._pbx_status = pbx_status
        self._db_ping = db_ping
        if clock is None:
            from twisted.internet import reactor

            clock = cast(IReactorTime, reactor)
        self._clock: IReactorTime = clock

    def render_GET(self, request: server.Request) -> Any:
        d = threads.deferToThread(self._db_ping)
        d.addTimeout(DB_ANSWER_WITHIN, self._clock)

        def done(db_error: Exception | None) -> None:
            pbxs = self._pbx_status()
            healthy = db_error is None and all(p["connected"] for p in pbxs.values())
            body = {
                "status": "ok" if healthy else "degraded",
                "database": "ok" if db_error is None else _database_error(db_error),
                "pbx": pbxs,
            }
            request.setResponseCode(200 if healthy else 503)
            request.setHeader(b"content-type", b"application/json")
            request.setHeader(b"cache-control", b"no-store")
            request.write(json.dumps(body).encode())
            request.finish()

        d.addCallbacks(lambda _: done(None), lambda f: done(f.value))
        return server.NOT_DONE_YET


class RootResource(resource.Resource):
    def render_GET(self, request: server.Request) -> bytes:
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"Dirigent: /healthz, /metrics, /api, /ws\n"


def make_site(
    registry: CollectorRegistry,
    pbx_status: Callable[[], dict[str, dict[str, Any]]],
    db_ping: Callable[[], None],
    children: dict[bytes, resource.Resource] | None = None,
) -> server.Site:
    root = RootResource()
    for name, child in (children or {}).items():
        root.putChild(name, child)
    root.putChild(b"", root)
    root.putChild(b"healthz", HealthResource(pbx_status, db_ping))
    root.putChild(b"metrics", MetricsResource(registry=registry))
    site = server.Site(root)
    site.displayTracebacks = False
    return site
