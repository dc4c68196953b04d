"""The HTTP API's Prometheus metrics (names and labels are a contract:
dashboards and alerts use them)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class HttpMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        #: the route is the pattern matched ("/api/agents/<agent_id>/report"),
        #: never the path asked for, so the labels stay few whatever is requested
        self.errors = Counter(
            "dirigent_http_errors",
            "API requests answered 500: an unexpected exception (each logged with its traceback)",
            ["method", "route"],
            registry=registry,
        )
