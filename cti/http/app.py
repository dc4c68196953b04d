"""The HTTP API assembled: one klein app with every resource group's
routes, one error handler, and the resource mounted at ``/api``.

Every answer is JSON with ``cache-control: no-store``.  Errors are
``{"error": "<field>: <reason>", "field": ...}``: 400 (bad payload), 401
(no or bad token), 403 (not allowed), 404 (unknown), 409 (not possible in
the current state), 413 (upload too large), 429 (login locked out, with
Retry-After), 503 (a part is unavailable); the status comes from the
exception's type (``cti.errors``).  Payloads are validated before anything
changes.  Database work runs in a thread, never on the event loop.
"""

from __future__ import annotations

from typing import Any

from klein import Klein
from klein.interfaces import IKleinRequest
from prometheus_client import CollectorRegistry
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import resource, server
from twisted.web.iweb import IRequest
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.exceptions import NotFound as NoRoute

from cti.auth import LoginThrottle, TokenStore
from cti.errors import answer, error_body
from cti.http import agents, audit, campaigns, contacts, interactions, lists, session
from cti.http.context import (
    ApiContext,
    AuditSink,
    CampaignOps,
    ListOps,
    Operations,
    PbxLink,
    ReportLookup,
    UserLookup,
)
from cti.http.metrics import HttpMetrics

log = Logger(namespace="cti.http")

#: the resource groups, each registering its routes on the app
GROUPS = (session, agents, interactions, campaigns, lists, contacts)


def route_of(request: IRequest) -> str:
    """The route pattern a request matched (``/api/agents/<agent_id>``), the
    label of its metrics; ``-`` when it matched none."""
    try:
        rule, _ = IKleinRequest(request).mapper.match(return_rule=True)
    except HTTPException:
        return "-"
    return f"/api{rule.rule}"


def make_app(api: ApiContext, metrics: HttpMetrics | None = None) -> Klein:
    """The API's routes; an unexpected exception is answered 500 without its
    traceback, logged with it, and counted in ``dirigent_http_errors_total``
    (``metrics``) so a dashboard sees what only the log said."""
    app = Klein()
    for group in GROUPS:
        group.register(app, api)

    @app.handle_errors(Exception)
    def failed(request: IRequest, failure: Failure) -> bytes:
        exc = failure.value
        if isinstance(exc, (NoRoute, MethodNotAllowed)):
            if api.user(request) is None:  # no route is no reason to skip the token check
                found: tuple[int, str, str] | None = (
                    401,
                    "authorization",
                    "a valid bearer token is required (POST /api/login)",
                )
            else:
                method = request.method.decode("latin-1")
                found = (404, "path", f"no route {method} {request.path.decode('utf-8')}")
        elif isinstance(exc, HTTPException):
            found = (exc.code or 400, "path", exc.description or exc.name)
        else:
            found = answer(exc) if exc is not None else None
        if found is None:
            log.failure("HTTP API: {method} {path} failed", failure,
                        method=request.method, path=request.path)  # fmt: skip
            if metrics is not None:
                metrics.errors.labels(request.method.decode("latin-1"), route_of(request)).inc()
            # the exception's text stays in the log: it may hold SQL, paths or a
            # database URL, which are not the caller's to see
            found = (500, "server", "internal error, logged with its traceback on the server")
        status, field, reason = found
        request.setResponseCode(status)
        return error_body(field, reason)

    return app


class ApiResource(resource.Resource):
    """``/api``: the klein app behind the checks every request gets first
    (a path that is UTF-8) and the audit of every change."""

    isLeaf = True

    def __init__(
        self,
        ops: Operations,
        users: UserLookup,
        tokens: TokenStore,
        reports: ReportLookup | None = None,
        *,
        campaigns: CampaignOps | None = None,
        lists: ListOps | None = None,
        throttle: LoginThrottle | None = None,
        audit: AuditSink | None = None,
        registry: CollectorRegistry | None = None,
        pbx_up: PbxLink | None = None,
    ) -> None:
        """``registry``: the server's, where the API's metrics are counted
        (None: a registry of its own, as in tests that build the API alone)."""
        super().__init__()
        self.api = ApiContext(
            ops,
            users,
            tokens,
            reports,
            campaigns=campaigns,
            lists=lists,
            throttle=throttle or LoginThrottle(),
            audit=audit,
            pbx_up=pbx_up,
        )
        self.metrics = HttpMetrics(registry if registry is not None else CollectorRegistry())
        self.app = make_app(self.api, self.metrics)
        self._routes = self.app.resource()

    def render(self, request: server.Request) -> Any:
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        try:
            path = [p.decode() for p in request.postpath or () if p]
        except UnicodeDecodeError:
            request.setResponseCode(400)
            return error_body("path", "not UTF-8 (a %-escape of no character)")
        audit.audit(self.api, request, path)
        return self._routes.render(request)
