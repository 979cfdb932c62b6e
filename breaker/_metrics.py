"""Prometheus metrics, one registry per service so tests can run several side by side."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from breaker.core import State

PROBE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.state = Gauge(
            "breaker_state",
            "1 for the breaker's current effective state",
            ["name", "state"],
            registry=r,
        )
        self.admit = Gauge(
            "breaker_admit_percent", "Share of traffic admitted", ["name"], registry=r
        )
        self.forced = Gauge(
            "breaker_forced", "1 while an operator force is active", ["name"], registry=r
        )
        self.epoch = Gauge("breaker_epoch", "Monotonic change counter", ["name"], registry=r)
        self.transitions = Counter(
            "breaker_transitions_total",
            "Audited changes by kind and resulting state",
            ["name", "kind", "to"],
            registry=r,
        )
        self.probe_duration = Histogram(
            "breaker_probe_duration_seconds",
            "Probe round-trip time of answered probes",
            ["name"],
            buckets=PROBE_BUCKETS,
            registry=r,
        )
        self.probes = Counter("breaker_probes_total", "Probes sent", ["name"], registry=r)
        self.probe_failures = Counter(
            "breaker_probe_failures_total",
            "Failed probes by reason",
            ["name", "reason"],
            registry=r,
        )
        self.redis_up = Gauge(
            "breaker_redis_up", "1 while the last Redis write succeeded", registry=r
        )
        self.redis_errors = Counter(
            "breaker_redis_errors_total",
            "Failed Redis operations by cause (unreachable, auth, readonly, oom, noperm, ...)",
            ["op", "kind"],
            registry=r,
        )
        self.task_restarts = Counter(
            "breaker_task_restarts_total",
            "Background tasks restarted after an unexpected exception",
            ["task"],
            registry=r,
        )
        self.pending_events = Gauge(
            "breaker_pending_events", "Events waiting for Redis to come back", registry=r
        )
        self.dropped_events = Counter(
            "breaker_dropped_events_total",
            "Events dropped because the pending queue was full",
            registry=r,
        )

    def set_state(self, name: str, state: State, admit: int, forced: bool, epoch: int) -> None:
        for candidate in State:
            self.state.labels(name, candidate.value).set(1 if candidate is state else 0)
        self.admit.labels(name).set(admit)
        self.forced.labels(name).set(1 if forced else 0)
        self.epoch.labels(name).set(epoch)
