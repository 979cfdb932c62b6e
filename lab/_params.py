"""The lab's knobs: traffic, timeline, the breaker's policy, and the two presets."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Literal, Self

from breaker.core import detection_bound

Mode = Literal["baseline", "protected"]
MODES: tuple[Mode, ...] = ("baseline", "protected")
Phase = Literal["normal", "locked_up", "restarted"]


@dataclass(frozen=True)
class TimelineParams:
    """Either scenario's timeline (seconds): normal traffic, a lock-up (SIGSTOP), then
    after the restart; each scenario's parameters add their own knobs to it."""

    normal: float = 15.0
    freeze: float = 30.0
    settle: float = 25.0

    def with_overrides(self, **changes: Any) -> Self:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @property
    def duration(self) -> float:
        return self.normal + self.freeze + self.settle

    def phase_at(self, t: float) -> Phase:
        if t < self.normal:
            return "normal"
        if t < self.normal + self.freeze:
            return "locked_up"
        return "restarted"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LabParams(TimelineParams):
    """Everything one `breaker lab` run depends on; recorded in results.json."""

    # the vm-presence job: a new instance every `cycle` seconds, finished or not
    cycle: float = 5.0
    mailboxes: int = 150  # a run takes 3 s of its 5 s cycle when all is well
    rate: float = 50.0  # PUBLISH started per second per instance
    window: int = 32  # PUBLISH in flight per instance (each first looks up the service)
    max_attempts: int = 5
    retry_delay: float = 1.0
    # the presence server's design limit (requests/s); the protected proxy's
    # BREAKER_PRESENCE_MAX_RATE
    capacity: int = 100
    rate_cap: bool = True
    # background traffic through the proxy
    calls_per_second: float = 5.0
    call_deadline: float = 2.0  # a call counts as OK when set up and hung up within this
    canary_per_second: float = 10.0  # PUBLISH for rotating canary AoRs: detection + presence OK
    # the breaker (sidecar) and its Kamailio side
    interval: float = 0.5
    timeout: float = 0.25
    fall: int = 3
    rise: int = 2
    slow_start: float = 8.0
    probe_method: Literal["OPTIONS", "PUBLISH"] = "OPTIONS"
    poll_ms: int = 300
    fr_timer_ms: int = 5000  # the proxy's PRESENCE_FR_TIMER: 408 after this
    proxy_children: int = 2
    presence_children: int = 2
    guard_grace: float = 2.0
    # DNS (docs/lab.md "The shared resolver"): dnsmasq behind a packet-rate policer that
    # every lookup goes through: the registrar's per call (SRV + A for the carrier) and
    # vm-presence's per PUBLISH (NAPTR + SRV + A + AAAA for the presence service)
    dns: bool = True
    # queries/s the resolver's interface lets through (production: 1,024 packets/s): ~1.4x
    # the normal peak (one job run: rate x 4 lookups, plus calls x 2)
    dns_cap: int = 300
    dns_timeout: int = 1  # s per try: Kamailio's dns_retr_time and vm-presence's (glibc: 5)
    dns_tries: int = 2  # tries per lookup: Kamailio's dns_retr_no and vm-presence's (glibc: 2)
    # sockets (docs/lab.md "The registrar's sockets", off by default: see there why):
    # vm-presence keeps one TCP connection per PUBLISH in flight, and every other
    # background call is inbound, to a PBX over TCP
    sockets: bool = False
    tcp_max_connections: int = 128  # the proxy's tcp_max_connections (Kamailio's default 2048)

    @classmethod
    def quick(cls) -> LabParams:
        """≤ 60 s for both runs: for tests and a first look."""
        return cls(
            normal=5.0,
            freeze=12.0,
            settle=8.0,
            cycle=2.5,
            mailboxes=70,
            rate=40.0,
            window=32,
            max_attempts=4,
            calls_per_second=5.0,
            slow_start=3.0,
            dns_cap=240,
        )

    @property
    def detection_bound(self) -> float:
        """Lock-up → first local 503: the open bound + poll."""
        return self.open_bound + self.poll_ms / 1000

    @property
    def open_bound(self) -> float:
        """Lock-up → breaker open in the sidecar (fast_interval: the default, timeout)."""
        return detection_bound(self.interval, self.timeout, self.timeout, self.fall)
