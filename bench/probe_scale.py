"""Probe scale: sidecar CPU for 1, 100 and 1,000 targets probed at 1 Hz.

The sidecar runs alone on core 0 with N breakers (interval 1 s, timeout 0.5 s, SIP
OPTIONS over UDP), each probing its own 127.0.0.1 port; one stand-in process on
core 1 listens on all N ports and answers 200 (testbed.sip_standin). After a warm-up,
CPU is utime+stime from /proc/<pid>/stat over a fixed window, as % of one core.
It includes everything the sidecar does per target: the probe, the state machine,
one Redis write per breaker per interval, metrics.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

from bench._common import LOAD_CPU, SUT_CPU, Result
from testbed.cpu import process_cpu_seconds
from testbed.procs import LOOPBACK, free_port
from testbed.redis import Redis
from testbed.sidecar import Sidecar, sidecar_toml
from testbed.sip_standin import start_targets

COUNTS = (1, 100, 1000)
GOAL_PERCENT = 30.0
FIRST_PORT = 21000


def _states(api_port: int) -> dict[str, int]:
    with urllib.request.urlopen(f"http://{LOOPBACK}:{api_port}/v1/breakers", timeout=10) as r:
        data = json.load(r)
    states: dict[str, int] = {}
    for breaker in data["breakers"]:
        states[breaker["state"]] = states.get(breaker["state"], 0) + 1
    return states


def _one(count: int, workdir: Path, warmup: float, window: float) -> dict[str, object]:
    work = workdir / f"targets-{count}"
    work.mkdir(parents=True, exist_ok=True)
    standin, ports = start_targets(work, FIRST_PORT, count, wrapper=LOAD_CPU)
    redis = Redis(work / "redis").start()
    try:
        api_port = free_port()
        breakers = [
            {
                "name": f"t{i:04d}",
                "target": f"sip:{LOOPBACK}:{port};transport=udp",
                "interval": 1.0,
                "timeout": 0.5,
            }
            for i, port in enumerate(ports)
        ]
        sidecar = Sidecar(
            work / "sidecar",
            sidecar_toml(
                redis_url=redis.url, api_port=api_port, breakers=breakers, level="warning"
            ),
            api_port,
        ).start(ready_timeout=60, wrapper=SUT_CPU)
        try:
            time.sleep(warmup)
            cpu0, t0 = process_cpu_seconds(sidecar.pid), time.monotonic()
            time.sleep(window)
            cpu1, t1 = process_cpu_seconds(sidecar.pid), time.monotonic()
            states = _states(api_port)
        finally:
            sidecar.stop()
    finally:
        standin.stop()
        redis.stop()
    percent = (cpu1 - cpu0) / (t1 - t0) * 100
    return {
        "targets": count,
        "cpu_percent_of_one_core": round(percent, 2),
        "cpu_ms_per_target_per_s": round((cpu1 - cpu0) / (t1 - t0) / count * 1000, 3),
        "window_s": round(t1 - t0, 2),
        "states": states,
        "all_closed": states.get("closed", 0) == count,
    }


TITLE = "Probe scale: sidecar CPU per probed target at 1 Hz"
GOAL_TEXT = f"1,000 targets at 1 Hz under {GOAL_PERCENT:g} % of one core"


def run(result: Result, workdir: Path) -> Result:
    quick = result.quick
    warmup, window = (2.0, 4.0) if quick else (5.0, 20.0)
    rows = [_one(count, workdir, warmup, window) for count in COUNTS]
    result.data = {"interval_s": 1.0, "method": "OPTIONS", "transport": "udp", "rows": rows}
    biggest = rows[-1]
    percent = float(biggest["cpu_percent_of_one_core"])  # type: ignore[arg-type]
    result.met = percent < GOAL_PERCENT and bool(biggest["all_closed"])
    result.summary = ", ".join(
        f"{r['targets']} targets: {r['cpu_percent_of_one_core']} % "
        f"({r['cpu_ms_per_target_per_s']} ms CPU per target per second)"
        for r in rows
    )
    result.notes.append(
        "targets: one UDP port each on 127.0.0.1, all served by one stand-in process on the "
        "load core; all_closed says every probe kept succeeding during the window"
    )
    return result
