"""Logging keeps what a failure needs to be understood (its traceback, in
text and JSON lines), never a secret, and counts every error."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest
from prometheus_client import CollectorRegistry

from dirigent import logs

SCRIPT = """
import logging, sys
from dirigent import logs
logs.setup(sys.argv[1])
def end_of_call():
    raise RuntimeError("database is locked (Secret: hunter2)")
try:
    end_of_call()
except RuntimeError:
    logging.getLogger("dirigent.asterisk").exception("PBX lab: subscriber failed on ChannelHungUp")
"""


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_logged_exception_keeps_its_traceback_and_hides_secrets(fmt):
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, fmt], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert "subscriber failed on ChannelHungUp" in out
    if fmt == "json":
        record = json.loads(out.strip().splitlines()[-1])
        assert record["level"] == "error"
        text = record["traceback"]
    else:
        text = out
    assert "Traceback" in text and "end_of_call" in text and "database is locked" in text
    assert "hunter2" not in out


def test_errors_are_counted_by_namespace():
    registry = CollectorRegistry()
    stop = logs.count_errors(registry)
    try:
        logs._ToTwisted().emit(
            logging.LogRecord("store.records", logging.ERROR, __file__, 1, "row failed", (), None)
        )
        logs._ToTwisted().emit(
            logging.LogRecord("store.records", logging.INFO, __file__, 1, "fine", (), None)
        )
    finally:
        stop()
    value = registry.get_sample_value("dirigent_log_errors_total", {"namespace": "store.records"})
    assert value == 1.0
