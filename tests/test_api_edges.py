"""Malformed requests get a named 4xx error, never a 500 or a traceback
(assembled service, real HTTP)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dirigent.cli import DEMO_CAMPAIGN
from tests.conftest import LOOP, run, wait_for
from tests.test_api import app, call, token
from tests.test_campaign_service import fast_sim, setup

__all__ = ["app", "fast_sim", "setup"]


def raw(app, method: str, path: str, data: bytes | None, tok: str | None) -> tuple[int, dict]:
    def go() -> tuple[int, dict]:
        req = urllib.request.Request(
            f"http://127.0.0.1:{app.http_port}{path}", data=data, method=method
        )
        if tok:
            req.add_header("Authorization", f"Bearer {tok}")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    return run(LOOP.run_in_executor(None, go))


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "field"),
    [
        ("GET", "/api/agents/%ff", None, 400, "path"),
        ("GET", "/api/agents/anna/report?from=nan", None, 400, "from"),
        ("GET", "/api/agents/anna/report?from=1e300", None, 400, "from"),
        ("GET", "/api/agents/anna/report?to=-inf", None, 400, "to"),
        (
            "POST",
            "/api/consent",
            {"contact": 10**30, "channel": "voice", "granted": False, "source": "x"},
            400,
            "contact",
        ),
        ("POST", "/api/agents/anna/pause", "[" * 5000 + "]" * 5000, 400, "body"),
        # Python refuses to read an integer of more than 4300 digits (a ValueError,
        # not a JSONDecodeError): it was a 500 with a traceback in the log
        ("POST", "/api/agents/anna/pause", '{"reason": ' + "1" * 5000 + "}", 400, "body"),
    ],
    ids=["bad-utf8-path", "nan", "huge", "minus-inf", "huge-contact", "deep-json", "long-int"],
)
def test_malformed_requests_get_a_named_error(app, method, path, body, status, field):
    boss = token(app, "boss")
    data = body.encode() if isinstance(body, str) else (json.dumps(body).encode() if body else None)
    got, answer = raw(app, method, path, data, boss)
    assert (got, answer.get("field")) == (status, field), answer


def http_errors(app) -> dict[tuple[str, str], float]:
    """``dirigent_http_errors_total`` as /metrics shows it, by (method, route)."""

    def go() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{app.http_port}/metrics", timeout=10) as r:
            return r.read().decode()

    counted: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(run(LOOP.run_in_executor(None, go))):
        for sample in family.samples:
            if sample.name == "dirigent_http_errors_total":
                counted[sample.labels["method"], sample.labels["route"]] = sample.value
    return counted


def test_an_unexpected_failure_is_a_500_without_traceback_and_counted(app):
    """The report's database look-up fails in a way no domain error names:
    the answer is a 500 saying no more than that, and the failure is
    on /metrics by route (the pattern, not the path asked for)."""

    def broken_database(agent: str, start: float, end: float) -> dict[str, float]:
        raise RuntimeError("the report database is on fire")

    api = app.site.resource.getStaticEntity(b"api").api
    api.reports = broken_database
    anna = token(app, "anna")
    route = ("GET", "/api/agents/<agent_id>/report")
    assert http_errors(app).get(route, 0.0) == 0.0
    status, answer = raw(app, "GET", "/api/agents/anna/report", None, anna)
    assert status == 500
    assert answer == {
        "error": "server: internal error, logged with its traceback on the server",
        "field": "server",
    }, "the exception's own text (SQL, paths, URLs) stays in the log"
    assert http_errors(app)[route] == 1.0
    status, _ = raw(app, "GET", "/api/agents/ben/report", None, token(app, "ben"))
    assert status == 500 and http_errors(app)[route] == 2.0, "one route, whatever the agent"


@pytest.mark.parametrize(
    ("bug", "was"),
    [(KeyError("anna"), 404), (ValueError("from: not a time"), 400), (LookupError("x"), 404)],
    ids=["KeyError", "ValueError", "LookupError"],
)
def test_a_stray_built_in_error_is_a_logged_500_not_a_404_or_400(app, bug, was):
    """A ``KeyError`` or ``ValueError`` that escapes a handler is a bug in
    Dirigent: it was answered ``was`` (its text read as "field: reason"),
    telling the client its request was wrong, and nobody saw it; it is a
    500 now, counted on /metrics as every unexpected failure is."""

    def buggy_report(agent: str, start: float, end: float) -> dict[str, float]:
        raise bug

    app.site.resource.getStaticEntity(b"api").api.reports = buggy_report
    route = ("GET", "/api/agents/<agent_id>/report")
    status, answer = raw(app, "GET", "/api/agents/anna/report", None, token(app, "anna"))
    assert (status, answer["field"]) == (500, "server"), f"was {was}: {answer}"
    assert http_errors(app)[route] == 1.0


def test_a_preview_dial_with_the_pbx_link_down_is_a_503_naming_pbx_as_a_transfer_is(
    setup, fast_sim
):
    """The agent did nothing wrong: the PBX is away.  It was a 400 (as if
    the request were bad) while a transfer with the link down was a 503;
    both are a 503 naming ``pbx`` now, and the record stays on screen."""
    start, _engine = setup
    _pbx, server = fast_sim
    app = start()
    runner = app.campaigns.campaigns[DEMO_CAMPAIGN].runner
    boss, anna = token(app, "boss"), token(app, "anna")
    status, _view = call(app, "PATCH", f"campaigns/{DEMO_CAMPAIGN}", {"mode": "preview"}, boss)
    assert status == 200
    run(wait_for(lambda: "agent1001" in runner.previews, timeout=20, what="a preview"))
    shown = runner.previews["agent1001"]
    server.stop()
    run(wait_for(lambda: not app.sessions["sim"].connected, what="the PBX link down"))
    status, error = call(app, "POST", "agents/agent1001/preview-dial", {}, anna)
    assert (status, error) == (
        503,
        {"error": "pbx: the PBX link is down; dial again once it is back", "field": "pbx"},
    )
    assert runner.previews.get("agent1001") is shown and shown.attempt is None, "still on screen"
