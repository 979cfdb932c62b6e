"""Reading a Kamailio proxy's xhttp_prom /metrics (kamailio.cfg -A WITH_METRICS)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from testbed.procs import free_port
from tests.kamailio.harness import PROXY_CFG, Kamailio, proxy_defines

_LINE = re.compile(r"^(kamailio_\w+)\s*(?:\{([^}]*)\})?\s+(\S+)")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """{(metric, labels): value} from http://127.0.0.1:port/metrics."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    samples = {}
    for line in text.splitlines():
        match = _LINE.match(line)
        if match:
            labels = frozenset(_LABEL.findall(match[2] or ""))
            samples[(match[1], labels)] = float(match[3])
    return samples


def value(port: int, metric: str, **labels: str) -> float | None:
    return scrape(port).get((metric, frozenset(labels.items())))


def metrics_proxy(rundir: Path, presence_port: int, redis_port: int, metrics_port: int) -> Kamailio:
    """The shipped proxy with -A WITH_METRICS, /metrics on metrics_port (not started)."""
    port = free_port()
    defines = proxy_defines(
        port,
        presence_port,
        redis_port,
        WITH_METRICS=True,
        METRICS_LISTEN=f"tcp:127.0.0.1:{metrics_port}",
    )
    return Kamailio(PROXY_CFG, rundir, port, defines)
