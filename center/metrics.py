"""The ACD's Prometheus metrics (names and labels are a contract: dashboards use them)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class AcdMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["queue", "channel"]
        self.offered = Counter(
            "dirigent_interactions_offered_total",
            "Interactions that entered a queue",
            labels,
            registry=registry,
        )
        self.answered = Counter(
            "dirigent_interactions_answered_total",
            "Interactions an agent accepted",
            labels,
            registry=registry,
        )
        self.abandoned = Counter(
            "dirigent_interactions_abandoned_total",
            "Interactions the customer left while waiting",
            labels,
            registry=registry,
        )
        self.fallback = Counter(
            "dirigent_interactions_fallback_total",
            "Callers the dialplan fallback took (Dirigent too slow or down, or a call for a queue of another PBX)",
            labels,
            registry=registry,
        )
        self.waiting = Gauge(
            "dirigent_queue_waiting", "Interactions waiting now", labels, registry=registry
        )
        self.oldest = Gauge(
            "dirigent_queue_oldest_wait_seconds",
            "Wait of the oldest waiting interaction",
            labels,
            registry=registry,
        )
        self.service_level = Gauge(
            "dirigent_queue_service_level",
            "Share answered within the target (window: 30m, today)",
            [*labels, "window"],
            registry=registry,
        )
        self.wait = Histogram(
            "dirigent_queue_wait_seconds",
            "Time from arrival to answer or abandon",
            [*labels, "outcome"],
            buckets=(5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600, 86400),
            registry=registry,
        )
        self.handle = Histogram(
            "dirigent_interaction_handle_seconds",
            "Time from answer to end",
            labels,
            buckets=(30, 60, 120, 180, 300, 600, 1200, 3600),
            registry=registry,
        )
        self.agents = Gauge(
            "dirigent_agents",
            "Agents by state, per channel they serve",
            ["state", "channel"],
            registry=registry,
        )
        self.nailup_failures = Counter(
            "dirigent_agent_nailup_failures",
            "Nail-ups of an agent's phone leg that failed (each is retried, backed off)",
            ["reason"],
            registry=registry,
        )
