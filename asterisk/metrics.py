"""Prometheus metrics of the AMI adapter (names fixed in DESIGN.md).

The registry is passed in so that tests and several services in one process
do not collide on the global default registry.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class AmiMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.pbx_up = Gauge(
            "dirigent_pbx_up", "1 while the AMI session is logged in", ["pbx"], registry=registry
        )
        self.events = Counter(
            "dirigent_ami_events_total", "AMI events received", ["pbx", "event"], registry=registry
        )
        self.actions = Counter(
            "dirigent_ami_actions_total",
            "AMI actions sent, by result (success, error, unknown, refused)",
            ["pbx", "action", "result"],
            registry=registry,
        )
        self.reconnects = Counter(
            "dirigent_ami_reconnects_total",
            "Connection attempts after the first",
            ["pbx"],
            registry=registry,
        )
        self.connect_failures = Counter(
            "dirigent_ami_connect_failures_total",
            "Failed connection or login attempts, by reason (unreachable, auth, timeout)",
            ["pbx", "reason"],
            registry=registry,
        )
        self.bad_messages = Counter(
            "dirigent_ami_bad_messages_total",
            "AMI messages that could not be framed and were skipped",
            ["pbx"],
            registry=registry,
        )
        self.stray_responses = Counter(
            "dirigent_ami_stray_responses_total",
            "OriginateResponse events ignored as not ours, by reason (unknown-action: an"
            " ActionID of ours we do not wait for, e.g. of the process before a restart;"
            " foreign-channel: our ActionID on a channel we did not create; other-client)",
            ["pbx", "reason"],
            registry=registry,
        )
        self.resync_seconds = Histogram(
            "dirigent_ami_resync_duration_seconds",
            "Time to rebuild the channel mirror after a (re)connect",
            ["pbx"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
            registry=registry,
        )
        self.channels = Gauge(
            "dirigent_pbx_channels",
            "Channels in the live mirror, as calls come and go; no series while the PBX is down"
            " (its count is not known then: see dirigent_pbx_up)",
            ["pbx"],
            registry=registry,
        )
