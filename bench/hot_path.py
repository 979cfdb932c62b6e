"""Kamailio hot path: PUBLISH/s the proxy answers with the breaker route vs. without it.

The same kamailio-config/kamailio.cfg three ways, round by round (interleaved, so a
noisy neighbour hurts all three alike):
  - baseline: `-A WITHOUT_BREAKER` (no include, no route calls), forwarding;
  - breaker closed: the breaker route, verdict closed, forwarding;
  - breaker open: the breaker route, verdict open, local stateless 503;
  - the same two with `-A WITH_METRICS` (xhttp_prom counters incremented per request).
The proxy runs alone on core 0; sipp (100 PUBLISH in flight, as fast as answers
come) and a stateless Kamailio answering 200 share core 1. Reported per variant:
PUBLISH/s answered (wall clock) and proxy CPU per PUBLISH (utime+stime of every
proxy process); the ratio is against the baseline of the same run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench._common import (
    Result,
    fast_responder,
    flood,
    measured_proxy,
    median,
    verdict_writer,
)
from testbed.kamailio import Define, Kamailio
from testbed.procs import free_port
from testbed.redis import Redis

GOAL = 0.95
VARIANTS: tuple[tuple[str, str | None, str], ...] = (
    ("baseline (no breaker route), forwarding", None, "publish"),
    ("breaker closed, forwarding", "closed", "publish"),
    ("breaker open, local 503", "open", "publish_503"),
    ("breaker closed + metrics, forwarding", "closed", "publish"),
    ("breaker open + metrics, local 503", "open", "publish_503"),
)
WITH_METRICS = {name for name, *_ in VARIANTS if "+ metrics" in name}


def _proxy(
    workdir: Path, responder_port: int, redis_port: int, breaker: bool, metrics: bool = False
) -> Kamailio:
    extra: dict[str, Define] = {}
    if metrics:
        extra["WITH_METRICS"] = True
        extra["METRICS_LISTEN"] = f"tcp:127.0.0.1:{free_port()}"
    if breaker:
        extra["BREAKER_POLL_MS"] = 100
    else:
        extra["WITHOUT_BREAKER"] = True
    return measured_proxy(workdir, responder_port, redis_port, **extra)


TITLE = "Kamailio hot path: PUBLISH/s with vs. without the breaker route"
GOAL_TEXT = f"with the breaker route ≥ {GOAL} x the baseline (closed: forwarded; open: local 503)"


def run(result: Result, workdir: Path) -> Result:
    quick = result.quick
    calls, rounds = (3000, 1) if quick else (30000, 3)
    redis = Redis(workdir / "redis").start()
    writer = verdict_writer(redis.port)
    measured: dict[str, list[tuple[float, float]]] = {name: [] for name, *_ in VARIANTS}
    try:
        with fast_responder(workdir / "responder") as responder:
            for _ in range(rounds):
                for name, state, scenario in VARIANTS:
                    proxy = _proxy(
                        workdir, responder.port, redis.port, state is not None, name in WITH_METRICS
                    )
                    proxy.start()
                    try:
                        if state is not None:
                            epoch = writer.set(state)
                            proxy.wait_verdict(state=state, epoch=epoch)
                        flood(proxy, scenario, max(1000, calls // 10), workdir)  # warm-up
                        measured[name].append(flood(proxy, scenario, calls, workdir))
                    finally:
                        proxy.stop()
    finally:
        writer.close()
        redis.stop()
    base_rate = median([r for r, _ in measured[VARIANTS[0][0]]])
    base_cpu = median([c for _, c in measured[VARIANTS[0][0]]])
    variants: list[dict[str, Any]] = []
    for name, state, _ in VARIANTS:
        rate = median([r for r, _ in measured[name]])
        cpu = median([c for _, c in measured[name]])
        variants.append(
            {
                "variant": name,
                "state": state,
                "answered_per_s": round(rate),
                "answered_ratio": round(rate / base_rate, 3),
                "proxy_cpu_us_per_publish": round(cpu, 1),
                "cpu_capacity_per_core": round(1e6 / cpu) if cpu > 0 else None,
                "cpu_capacity_ratio": round(base_cpu / cpu, 3) if cpu > 0 else None,
                "rounds": [
                    {"answered_per_s": round(r), "cpu_us": round(c, 1)} for r, c in measured[name]
                ],
            }
        )
    closed, opened, closed_m, opened_m = variants[1], variants[2], variants[3], variants[4]
    result.data = {"calls_per_flood": calls, "rounds": rounds, "variants": variants}
    result.met = closed["answered_ratio"] >= GOAL and opened["answered_ratio"] >= GOAL
    result.summary = (
        f"closed {closed['answered_ratio']:.2f}x, open {opened['answered_ratio']:.2f}x the "
        f"baseline's {base_rate:.0f} PUBLISH/s answered (CPU per PUBLISH: closed "
        f"{closed['cpu_capacity_ratio']}x, open {opened['cpu_capacity_ratio']}x capacity); "
        f"with Kamailio metrics on: closed {closed_m['answered_ratio']:.2f}x, "
        f"open {opened_m['answered_ratio']:.2f}x"
    )
    result.notes.append(
        "answered/s is bounded by the load core (sipp + stand-in share core 1); "
        "cpu_capacity_per_core = 1 s / proxy CPU per PUBLISH is what one proxy core could do"
    )
    return result
