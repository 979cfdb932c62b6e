"""/allow under 200 slow or idle connections, against the same run without them.

The sidecar runs alone on core 0 (as in bench.api); on core 1, a fixed-rate load on
GET /v1/breakers/presence/allow (bench._httpload, 64 keep-alive connections). Rounds
alternate a run without slow clients and one with 200 of them (bench._slowclients:
half idle, half trickling headers byte by byte, reconnecting when dropped), so both
see the same neighbours; the goal compares the medians of the rounds' p99s.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench._common import LOAD_CPU, Result, fast_responder, measured_sidecar
from bench.api import RATE, _fixed_rate
from testbed.procs import Child
from testbed.redis import Redis
from testbed.waiting import wait_until

SLOW_CONNECTIONS = 200
RATIO_GOAL = 2.0
REPO = Path(__file__).resolve().parents[1]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _measured(pid: int, run: Callable[[], dict[str, object]]) -> dict[str, object]:
    """The run's figures plus the sidecar's CPU time per answered request: unlike latency,
    that barely depends on what the neighbours on this shared machine are doing."""
    before = _cpu_seconds(pid)
    data = run()
    done = int(data["completed"])  # type: ignore[call-overload]
    data["sidecar_cpu_us_per_request"] = round((_cpu_seconds(pid) - before) / done * 1e6, 1)
    return data


def _with_slow_clients(api_port: int, seconds: float, workdir: Path) -> dict[str, object]:
    ready = workdir / "slow-ready"
    ready.unlink(missing_ok=True)
    slow = Child(
        [*LOAD_CPU, sys.executable, "-m", "bench._slowclients", "--port", str(api_port),
         "--connections", str(SLOW_CONNECTIONS), "--ready", str(ready)],
        workdir / "slowclients.log",
        cwd=REPO,
    )  # fmt: skip
    try:
        wait_until(ready.exists, 30, "the slow clients to connect")
        return _fixed_rate(api_port, seconds, workdir)
    finally:
        slow.stop()


TITLE = f"HTTP API: /allow with {SLOW_CONNECTIONS} slow or idle connections"
GOAL_TEXT = f"p99 ≤ {RATIO_GOAL:g} x the same run without them ({RATE} requests/s, 64 connections)"


def run(result: Result, workdir: Path) -> Result:
    quick = result.quick
    seconds, rounds = (1.5, 1) if quick else (10.0, 3)
    without: list[dict[str, object]] = []
    with_slow: list[dict[str, object]] = []
    redis = Redis(workdir / "redis").start()
    try:
        with fast_responder(workdir / "responder") as responder:
            sidecar = measured_sidecar(workdir, redis.url, responder.port)
            api_port = sidecar.api_port
            try:
                time.sleep(1.0)
                _fixed_rate(api_port, 1.0, workdir)  # warm-up
                pid = sidecar.pid
                for _ in range(rounds):
                    without.append(_measured(pid, lambda: _fixed_rate(api_port, seconds, workdir)))
                    with_slow.append(
                        _measured(pid, lambda: _with_slow_clients(api_port, seconds, workdir))
                    )
            finally:
                sidecar.stop()
    finally:
        redis.stop()
    base_p99 = statistics.median(float(r["p99_ms"]) for r in without)  # type: ignore[arg-type]
    p99 = statistics.median(float(r["p99_ms"]) for r in with_slow)  # type: ignore[arg-type]
    ratio = round(p99 / base_p99, 2) if base_p99 > 0 else float("inf")
    errors = [e for r in with_slow for e in r["errors"]]  # type: ignore[attr-defined]
    achieved = min(float(r["rate_achieved"]) for r in with_slow)  # type: ignore[arg-type]
    result.data = {
        "rate": RATE,
        "seconds_per_run": seconds,
        "rounds": rounds,
        "slow_connections": SLOW_CONNECTIONS,
        "without": without,
        "with_slow_clients": with_slow,
        "p99_ms_without": [r["p99_ms"] for r in without],
        "p99_ms_with": [r["p99_ms"] for r in with_slow],
        "p99_ratio": ratio,
    }
    cpu_without = statistics.median(float(r["sidecar_cpu_us_per_request"]) for r in without)  # type: ignore[arg-type]
    cpu_with = statistics.median(float(r["sidecar_cpu_us_per_request"]) for r in with_slow)  # type: ignore[arg-type]
    result.data["sidecar_cpu_us_per_request"] = {"without": cpu_without, "with": cpu_with}
    result.data["cpu_ratio"] = round(cpu_with / cpu_without, 2) if cpu_without else None
    baseline_ok = all(float(r["rate_achieved"]) >= RATE * 0.97 for r in without)  # type: ignore[arg-type]
    if not baseline_ok:
        result.met = None  # the runs without slow clients already missed the rate: no verdict
        result.notes.append("no verdict: the machine could not sustain the rate even without")
    else:
        result.met = ratio <= RATIO_GOAL and achieved >= RATE * 0.97 and not errors
    result.summary = (
        f"/allow p99 {p99} ms with {SLOW_CONNECTIONS} slow clients vs {base_p99} ms without "
        f"(medians of {rounds} alternating rounds): ratio {ratio}; sidecar CPU per request "
        f"{cpu_with} vs {cpu_without} µs: ratio {result.data['cpu_ratio']}"
    )
    result.notes.append(
        "uvicorn limits from breaker.api._app.UVICORN_LIMITS; half the slow clients send "
        "nothing, half trickle a 4 kB header one byte a second; the sidecar drops a head "
        "not complete in 10 s and they reconnect; they share the load generator's core"
    )
    return result
