"""Malformed requests get a named 4xx error, never a 500 or a traceback
(assembled service, real HTTP)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.conftest import LOOP, run
from tests.test_api import app, token

__all__ = ["app"]


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
    ],
    ids=["bad-utf8-path", "nan", "huge", "minus-inf", "huge-contact", "deep-json"],
)
def test_malformed_requests_get_a_named_error(app, method, path, body, status, field):
    boss = token(app, "boss")
    data = body.encode() if isinstance(body, str) else (json.dumps(body).encode() if body else None)
    got, answer = raw(app, method, path, data, boss)
    assert (got, answer.get("field")) == (status, field), answer
