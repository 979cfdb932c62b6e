"""Prometheus metrics, one registry per service so tests can run several side by side.

docs/metrics.md lists every metric and the alert rules (deploy/prometheus/) that use it.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from breaker.core import State, Verdict

PROBE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry

        def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
            return Gauge(name, doc, labels, registry=r)

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(name, doc, labels, registry=r)

        self.state = gauge(
            "breaker_state", "1 for the breaker's current effective state", ("name", "state")
        )
        self.admit = gauge("breaker_admit_percent", "Share of traffic admitted", ("name",))
        self.forced = gauge("breaker_forced", "1 while an operator force is active", ("name",))
        self.epoch = gauge("breaker_epoch", "Monotonic change counter", ("name",))
        self.transitions = counter(
            "breaker_transitions_total",
            "Audited changes by kind and resulting state",
            ("name", "kind", "to"),
        )
        self.probe_duration = Histogram(
            "breaker_probe_duration_seconds",
            "Probe round-trip time of answered probes",
            ["name"],
            buckets=PROBE_BUCKETS,
            registry=r,
        )
        self.probes = counter("breaker_probes_total", "Probes sent", ("name",))
        self.probe_failures = counter(
            "breaker_probe_failures_total", "Failed probes by reason", ("name", "reason")
        )
        self.redis_up = gauge("breaker_redis_up", "1 while the last Redis write succeeded")
        self.redis_errors = counter(
            "breaker_redis_errors_total",
            "Failed Redis operations by cause (unreachable, auth, readonly, oom, noperm, ...)",
            ("op", "kind"),
        )
        self.task_restarts = counter(
            "breaker_task_restarts_total",
            "Background tasks restarted after an unexpected exception",
            ("task",),
        )
        self.since = gauge(
            "breaker_state_since_timestamp_seconds",
            "When the current effective state began (Unix time)",
            ("name",),
        )
        self.force_expiry = gauge(
            "breaker_force_expiry_timestamp_seconds",
            "When the active force expires by itself (Unix time); 0 when not forced",
            ("name",),
        )
        self.probe_timeout = gauge(
            "breaker_probe_timeout_seconds",
            "Configured probe timeout: the rules compare probe RTT against it",
            ("name",),
        )
        self.info = gauge(
            "breaker_sidecar_info",
            "Always 1; its labels say which observer this sidecar is",
            ("observer",),
        )
        self.guard_runs = GuardRuns()
        r.register(self.guard_runs)

    def show(self, v: Verdict) -> None:
        """The state gauges, from a verdict in unix seconds (alerts compare with time())."""
        for candidate in State:
            self.state.labels(v.name, candidate.value).set(1 if candidate is v.state else 0)
        self.admit.labels(v.name).set(v.admit)
        self.forced.labels(v.name).set(1 if v.force else 0)
        self.epoch.labels(v.name).set(v.epoch)
        self.since.labels(v.name).set(v.since)
        self.force_expiry.labels(v.name).set(v.force.until if v.force else 0.0)


class GuardRuns(Collector):
    """`breaker guard` outcomes, counted in Redis by the short-lived guard processes.

    The guard cannot be scraped (it lives seconds), so each run HINCRBYs its outcome in
    `breaker:{name}:guard` and the sidecar re-exports the totals it last read as counters.
    """

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}

    def update(self, name: str, counts: dict[str, int]) -> None:
        for outcome, value in counts.items():
            self.counts[(name, outcome)] = value

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "breaker_guard_runs",
            "breaker guard runs by outcome (ran, refused_*, stopped_*), read from Redis",
            labels=["name", "outcome"],
        )
        for (name, outcome), value in sorted(self.counts.items()):
            family.add_metric([name, outcome], value)
        yield family
