"""Probes: one long-lived prober per target, answering "is it alive right now?"."""

from __future__ import annotations

from breaker._config import BreakerConfig
from breaker.probes._base import Probe, ProbeResult
from breaker.probes.dns import SipResolver
from breaker.probes.http import HttpProbe
from breaker.probes.sip import SipProbe
from breaker.probes.tcp import TcpProbe

__all__ = ["HttpProbe", "Probe", "ProbeResult", "SipProbe", "SipResolver", "TcpProbe", "make_probe"]


def make_probe(cfg: BreakerConfig, *, resolver: SipResolver | None = None) -> Probe:
    """The prober for `cfg.target`. Share one `resolver` between probes to share its cache."""
    kind = cfg.target.kind
    if kind == "sip":
        return SipProbe(cfg, resolver=resolver)
    if kind == "http":
        return HttpProbe(cfg)
    if kind == "tcp":
        return TcpProbe(cfg, resolver=resolver)
    raise ValueError(f"no probe for target kind {kind!r}")
