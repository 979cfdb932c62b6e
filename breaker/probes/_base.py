"""What every probe returns and promises."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One probe's outcome. `reason` is short and stable: it becomes a metric label."""

    ok: bool
    reason: str  # "ok", or e.g. "timeout", "slow", "icmp-unreachable", "dns", "status 503"
    rtt: float | None  # seconds from send to answer; None when there was no answer
    at: float  # unix seconds when the probe finished
    detail: str = ""  # free text for humans, e.g. "SIP/2.0 200 OK"


class Probe(Protocol):
    """A long-lived prober for one target. `check` never raises: failures are results."""

    async def check(self) -> ProbeResult: ...

    async def aclose(self) -> None: ...
