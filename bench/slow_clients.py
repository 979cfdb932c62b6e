"""/allow under 200 slow or idle connections, against the same run without them.

The sidecar runs alone on core 0 (as in bench.api); on core 1, a fixed-rate load on
GET /v1/breakers/presence/allow (bench._httpload, 64 keep-alive connections), measured
three times: without slow clients, with 200 of them (bench._slowclients: half idle,
half trickling headers byte by byte, reconnecting when dropped), and without again.
The goal compares the p99 with slow clients to the worse of the two runs without.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from bench._common import LOAD_CPU, SUT_CPU, Result, fast_responder
from bench.api import _fixed_rate
from breaker.lab._procs import (
    LOOPBACK,
    Child,
    Redis,
    Sidecar,
    free_port,
    sidecar_toml,
    wait_until,
)

SLOW_CONNECTIONS = 200
RATE = 1000
RATIO_GOAL = 2.0
REPO = Path(__file__).resolve().parents[1]


def run(quick: bool, workdir: Path) -> Result:
    seconds = 1.5 if quick else 15.0
    result = Result(
        "slow_clients",
        f"HTTP API: /allow with {SLOW_CONNECTIONS} slow or idle connections",
        f"p99 ≤ {RATIO_GOAL:g} x the same run without them ({RATE} requests/s, 64 connections)",
        quick,
    )
    started = time.monotonic()
    redis = Redis(workdir / "redis").start()
    api_port = free_port()
    try:
        with fast_responder(workdir / "responder") as responder:
            target = f"sip:{LOOPBACK}:{responder.port};transport=udp"
            sidecar = Sidecar(
                workdir / "sidecar",
                sidecar_toml(
                    redis_url=redis.url,
                    api_port=api_port,
                    breakers=[{"name": "presence", "target": target}],
                    level="warning",
                ),
                api_port,
            ).start(wrapper=SUT_CPU)
            try:
                time.sleep(1.0)
                _fixed_rate(api_port, 1.0, workdir)  # warm-up
                before = _fixed_rate(api_port, seconds, workdir)
                ready = workdir / "slow-ready"
                slow = Child(
                    [
                        *LOAD_CPU,
                        sys.executable,
                        "-m",
                        "bench._slowclients",
                        "--port",
                        str(api_port),
                        "--connections",
                        str(SLOW_CONNECTIONS),
                        "--ready",
                        str(ready),
                    ],
                    workdir / "slowclients.log",
                    cwd=REPO,
                )
                try:
                    wait_until(ready.exists, 30, "the slow clients to connect")
                    during = _fixed_rate(api_port, seconds, workdir)
                finally:
                    slow.stop()
                after = _fixed_rate(api_port, seconds, workdir)
            finally:
                sidecar.stop()
    finally:
        redis.stop()
    baseline = max(float(before["p99_ms"]), float(after["p99_ms"]))  # type: ignore[arg-type]
    p99 = float(during["p99_ms"])  # type: ignore[arg-type]
    ratio = round(p99 / baseline, 2) if baseline > 0 else float("inf")
    failed = {k: v for k, v in during.items() if k in ("errors", "statuses")}
    result.data = {
        "rate": RATE,
        "seconds": seconds,
        "slow_connections": SLOW_CONNECTIONS,
        "without_before": before,
        "with_slow_clients": during,
        "without_after": after,
        "p99_ratio": ratio,
    }
    achieved = float(during["rate_achieved"])  # type: ignore[arg-type]
    result.met = ratio <= RATIO_GOAL and achieved >= RATE * 0.97 and not during["errors"]
    result.summary = (
        f"p99 {p99} ms with {SLOW_CONNECTIONS} slow clients vs {before['p99_ms']} / "
        f"{after['p99_ms']} ms without (before/after): ratio {ratio}; {failed}"
    )
    result.notes.append(
        "uvicorn limits from breaker.api._app.UVICORN_LIMITS; half the slow clients send "
        "nothing, half trickle a 4 kB header one byte every 0.2 s and reconnect when dropped"
    )
    result.duration_s = time.monotonic() - started
    return result
