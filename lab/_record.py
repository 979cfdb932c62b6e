"""What one run of the timeline leaves behind: raw observations, then the per-second series."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Generic, TypeVar

from lab._params import Mode

P = TypeVar("P")
Rec = TypeVar("Rec")
Row = TypeVar("Row")
H = TypeVar("H")


@dataclass(frozen=True)
class Sample:
    """Sampled once per second at t (seconds since traffic start); counters are cumulative."""

    t: float
    client_retransmissions: int
    generator_503: int
    proxy_5xx_sent: int | None  # Kamailio `sl:5xx_replies`: the breaker's local 503s
    proxy_cpu_seconds: float | None
    proxy_shm_bytes: int | None
    proxy_transactions: int | None
    breaker_state: str | None
    admit_percent: int | None
    vm_presence_running: int
    job_dns_timeouts: int = 0  # DNS tries of vm-presence instances that got no answer
    proxy_dns_failed: int | None = None  # Kamailio dns:failed_dns_request
    proxy_dns_slow: int | None = None  # Kamailio dns:slow_dns_request (≥ 0.9 x dns_retr_time)
    proxy_tcp_open: int | None = None  # Kamailio tcp:current_opened_connections
    proxy_tcp_refused: int | None = None  # tcp:local_reject: incoming refused at the limit


@dataclass(frozen=True)
class CanaryResult:
    sent_at: float
    done_at: float
    status: int | None


@dataclass(frozen=True)
class CallRecord:
    started_at: float
    ok: bool
    setup_status: int | None
    setup_time: float | None
    kind: str = "outbound"  # outbound: to the carrier (DNS); inbound: to a PBX over TCP


@dataclass(frozen=True)
class Cycle:
    """One start of the job (wrapped in `breaker guard` in the protected run)."""

    number: int
    at: float  # seconds since traffic start
    exit_code: int | None
    outcome: str  # ran, refused-open, refused-locked, stopped-open, still-running, ...


@dataclass
class TimelineRecord:
    """When either scenario's run started traffic, froze, thawed and ended (wall clock)."""

    mode: Mode
    t0: float = 0.0
    freeze_at: float = 0.0
    thaw_at: float = 0.0
    end_at: float = 0.0


@dataclass
class RunRecord(TimelineRecord):
    """Raw observations of one run; wall-clock times unless the name says otherwise."""

    samples: list[Sample] = field(default_factory=list)
    relay_requests: list[float] = field(default_factory=list)
    relay_retransmissions: list[float] = field(default_factory=list)
    relay_responses: list[float] = field(default_factory=list)
    canary: list[CanaryResult] = field(default_factory=list)
    calls: list[CallRecord] = field(default_factory=list)
    first_503_at: list[float] = field(default_factory=list)  # every client's first 503
    breaker_events: list[dict[str, Any]] = field(default_factory=list)
    proxy_verdicts: list[tuple[float, str, int]] = field(default_factory=list)
    cycles: list[Cycle] = field(default_factory=list)
    probes_during_lockup: int | None = None
    # at the lab resolver, per client ("carrier": the proxy, "presence": vm-presence)
    dns_queries: dict[str, list[float]] = field(default_factory=dict)
    dns_dropped: dict[str, list[float]] = field(default_factory=dict)
    tcp_send_refused: int | None = None  # outgoing connections not opened at the limit (log)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Second:
    """One row of the per-second series: what happened in [t, t + 1)."""

    t: int
    phase: str
    presence_requests: int  # new requests reaching the presence server (at the relay)
    # new requests it had to process: arrivals; in the second of the restart also the backlog
    # queued while frozen, capped by what it answered in that second (an upper bound)
    presence_load: int
    presence_retransmissions: int  # the proxy's retransmissions towards it
    presence_answered: int  # responses the presence server sent
    client_retransmissions: int  # vm-presence, canary and call clients towards the proxy
    proxy_503: int | None
    breaker_state: str | None
    admit_percent: int | None
    proxy_verdict: str | None  # what Kamailio enforces (its breaker.verdict log), if it has one
    vm_presence_instances: int
    proxy_cpu_percent: float | None
    proxy_shm_mb: float | None
    proxy_transactions: int | None
    calls_started: int
    calls_ok: int
    canary_sent: int
    canary_ok: int
    canary_503: int
    canary_late: int  # answered 2xx, but after the deadline
    # the shared resolver: queries arriving, and dropped at its cap, by client
    dns_queries: int = 0
    dns_dropped_carrier: int = 0  # the proxy's lookups for calls
    dns_dropped_presence: int = 0  # vm-presence's lookups
    proxy_dns_timeouts: int | None = None  # Kamailio: lookups that waited for a lost query
    job_dns_timeouts: int = 0  # vm-presence: DNS tries with no answer
    proxy_tcp_connections: int | None = None  # open at the end of the second
    proxy_tcp_refused: int | None = None  # connections refused or not opened at the limit


@dataclass(frozen=True)
class Headline:
    """The figures the lab exists for, for one run."""

    detection_bound_s: float
    detection_s: float | None  # lock-up → first local 503 (seen by a client)
    breaker_open_s: float | None  # lock-up → the sidecar's transition to open
    proxy_enforcing_s: float | None  # lock-up → Kamailio logs the open verdict
    sent_to_frozen_requests: int  # new requests reaching the frozen server
    sent_to_frozen_packets: int  # the same plus retransmissions
    forwarded_after_detection: int | None  # new requests after the first local 503
    probes_to_frozen: int | None  # the sidecar's own probes (not through the proxy)
    capacity: int
    peak_after_restart_rps: int  # max presence_load after the restart (backlog included)
    peak_arrivals_after_restart_rps: int  # new requests arriving per second after the restart
    peak_answered_after_restart_rps: int  # datagrams answered per second (copies included)
    restart_to_normal_s: float | None
    restart_to_closed_s: float | None
    calls_incident: int
    calls_ok_incident: int
    calls_restart: int  # calls started from the restart to the end
    calls_ok_restart: int
    calls_failed_restart: dict[str, int]  # final answer ("478", "timeout", "late") -> count
    calls_by_kind: dict[str, list[int]]  # kind -> [started, OK], lock-up to end
    tcp_max_connections: int | None  # the proxy's limit; None: sockets not modelled
    tcp_connections_peak: int | None
    tcp_refused: int | None  # incoming, lock-up to end
    tcp_send_refused: int | None  # outgoing (to the PBX), whole run
    dns_cap: int | None  # queries/s the resolver lets through; None: DNS not modelled
    dns_queries_peak_rps: int  # most queries arriving at the resolver in one second
    dns_dropped_carrier: int  # the proxy's queries dropped at the cap, lock-up to end
    dns_dropped_presence: int  # vm-presence's queries dropped, lock-up to end
    proxy_dns_timeouts: int | None  # Kamailio dns:slow_dns_request, lock-up to end
    proxy_dns_failed: int | None  # Kamailio dns:failed_dns_request, lock-up to end
    job_dns_timeouts: int  # vm-presence DNS tries with no answer, lock-up to end
    canary_incident: int
    canary_ok_incident: int
    max_vm_presence_instances: int
    retransmissions_lockup: int  # client + proxy retransmissions during the lock-up
    proxy_503_total: int | None
    proxy_cpu_peak_percent: float | None
    proxy_shm_peak_mb: float | None  # Kamailio shared memory in use (transactions live in it)

    @property
    def calls_success_incident(self) -> float | None:
        return self.calls_ok_incident / self.calls_incident if self.calls_incident else None

    @property
    def canary_success_incident(self) -> float | None:
        return self.canary_ok_incident / self.canary_incident if self.canary_incident else None

    @property
    def calls_success_restart(self) -> float | None:
        return self.calls_ok_restart / self.calls_restart if self.calls_restart else None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["calls_success_restart"] = self.calls_success_restart
        data["calls_success_incident"] = self.calls_success_incident
        data["canary_success_incident"] = self.canary_success_incident
        return data


@dataclass(frozen=True)
class Outcome(Generic[P, Rec, Row, H]):
    """Every mode's run of one scenario, what results.json is written from."""

    params: P
    records: dict[Mode, Rec]
    rows: dict[Mode, list[Row]]  # the per-second series
    headlines: dict[Mode, H]
    started_at: float
    host: dict[str, Any]  # the machine
