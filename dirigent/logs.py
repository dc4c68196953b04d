"""Logging: twisted.logger, human-readable or JSON lines.

The AMI adapter (and panoramisk) log through the standard library; a handler
forwards those records into twisted.logger so that one observer writes
everything in one format.  Secrets: nothing in Dirigent formats a secret into
a log message, and :class:`RedactingFilter` masks any ``Secret:`` header that
a third-party library might print.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Callable
from typing import IO, Any

from prometheus_client import CollectorRegistry, Counter
from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
    formatEventAsClassicLogText,
    globalLogBeginner,
    globalLogPublisher,
)
from twisted.python.failure import Failure
from zope.interface import implementer

_SECRET_RE = re.compile(r"(?i)(secret\s*[:=]\s*)([^\s,'\"}]+)")

_LEVELS = {
    logging.DEBUG: LogLevel.debug,
    logging.INFO: LogLevel.info,
    logging.WARNING: LogLevel.warn,
    logging.ERROR: LogLevel.error,
    logging.CRITICAL: LogLevel.critical,
}


def redact(text: str) -> str:
    return _SECRET_RE.sub(r"\1***", text)


class _ToTwisted(logging.Handler):
    """Standard-library records into twisted.logger, their traceback kept:
    ``log.exception(...)`` carries ``exc_info``, which becomes the event's
    ``log_failure`` so that both formats print it (dropping it once hid why
    an end-of-call update failed)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = redact(record.getMessage())
        except Exception:  # a bad format string must not kill logging
            message = str(record.msg)
        event: dict[str, Any] = {
            "log_format": "{msg}",
            "msg": message,
            "log_level": _LEVELS.get(record.levelno, LogLevel.info),
            "log_namespace": record.name,
            "log_time": record.created,
            "log_system": record.name,
        }
        if record.exc_info and record.exc_info[1] is not None:
            _type, value, tb = record.exc_info
            event["log_failure"] = Failure(value, _type, tb)
        globalLogPublisher(event)


@implementer(ILogObserver)
class TextObserver:
    """twisted.logger's classic text lines (traceback included), redacted."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out

    def __call__(self, event: dict[str, Any]) -> None:
        text = formatEventAsClassicLogText(event)
        if text:
            self.out.write(redact(text))
            self.out.flush()


@implementer(ILogObserver)
class JsonLinesObserver:
    """One JSON object per line: time, level, namespace, message."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out

    def __call__(self, event: dict[str, Any]) -> None:
        level = event.get("log_level")
        record = {
            "time": time.strftime(
                "%Y-%m-%dT%H:%M:%S", time.gmtime(event.get("log_time", time.time()))
            )
            + "Z",
            "level": level.name if level is not None else "info",
            "namespace": event.get("log_namespace", "-"),
            "message": redact(formatEvent(event) or ""),
        }
        failure = event.get("log_failure")
        if failure is not None:
            record["traceback"] = redact(failure.getTraceback())
        self.out.write(json.dumps(record) + "\n")
        self.out.flush()


def setup(log_format: str = "text", level: str = "info", out: IO[str] | None = None) -> None:
    """Start logging once per process (twisted.logger's global beginner)."""
    stream = out or sys.stdout
    base = JsonLinesObserver(stream) if log_format == "json" else TextObserver(stream)
    observer = FilteringLogObserver(
        base, [LogLevelFilterPredicate(defaultLogLevel=LogLevel.levelWithName(level))]
    )
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    root = logging.getLogger()
    root.handlers = [_ToTwisted()]
    root.setLevel(logging.DEBUG if level == "debug" else logging.INFO)
    logging.getLogger("panoramisk").setLevel(logging.WARNING)


def count_errors(registry: CollectorRegistry) -> Callable[[], None]:
    """Count every error and critical log event in
    ``dirigent_log_errors_total{namespace}``, so that a failure that is
    logged is also seen on a dashboard; returns the function that stops it."""
    errors = Counter(
        "dirigent_log_errors",
        "Error and critical log events (each logged with its traceback where there is one)",
        ["namespace"],
        registry=registry,
    )

    @implementer(ILogObserver)
    def observe(event: dict[str, Any]) -> None:
        level = event.get("log_level")
        if level in (LogLevel.error, LogLevel.critical) or event.get("isError"):
            errors.labels(str(event.get("log_namespace", "-")).split("#")[0]).inc()

    globalLogPublisher.addObserver(observe)
    return lambda: globalLogPublisher.removeObserver(observe)
