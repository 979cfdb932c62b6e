"""What every benchmark shares: the machine, CPU pinning, the load tools, result files."""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab._report import machine
from testbed.cpu import group_cpu_seconds
from testbed.kamailio import PROXY_CFG, Define, Kamailio, proxy_defines
from testbed.procs import LOOPBACK, free_port
from testbed.sidecar import Sidecar, sidecar_toml
from testbed.sipp import SippRun
from testbed.sipp import run_sipp as run_sipp_file
from testbed.verdicts import VerdictWriter

BENCH_DIR = Path(__file__).resolve().parent
SCENARIOS = BENCH_DIR / "scenarios"
RESULTS_VERSION = 1

# With 2+ cores the system under test gets core 0 and the load generators core 1, so
# the generator does not steal the measured process's CPU. The machine is shared: other
# work still runs on both cores, which is why every figure is a ratio against a baseline
# measured in the same run, interleaved round by round.
PINNED = (os.cpu_count() or 1) >= 2
SUT_CPU: list[str] = ["taskset", "-c", "0"] if PINNED else []
LOAD_CPU: list[str] = ["taskset", "-c", "1"] if PINNED else []


@dataclass
class Result:
    """One benchmark's JSON file: what was measured, against what, and whether the goal is met."""

    name: str
    title: str
    goal: str
    quick: bool
    met: bool | None = None
    summary: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)
    duration_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": RESULTS_VERSION,
            "name": self.name,
            "title": self.title,
            "goal": self.goal,
            "met": self.met,
            "summary": self.summary,
            "quick": self.quick,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.started_at)),
            "duration_s": round(self.duration_s, 1),
            "machine": machine(),
            "pinning": {"system_under_test": SUT_CPU, "load": LOAD_CPU},
            "data": self.data,
            "notes": self.notes,
        }

    def write(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.name}.json"
        path.write_text(json.dumps(self.as_dict(), indent=1, default=str) + "\n")
        return path


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); the value itself, never an interpolation."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.4999)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


# ---------------------------------------------------------------- SIP load (sipp)


def run_sipp(
    scenario: str,
    target: int,
    *,
    calls: int,
    rate: float,
    limit: int,
    workdir: Path,
    timeout: float,
) -> SippRun:
    """A bench/scenarios sipp run from the load core against a loopback port."""
    return run_sipp_file(
        SCENARIOS / f"{scenario}.xml",
        (LOOPBACK, target),
        calls=calls,
        rate=rate,
        limit=limit,
        workdir=workdir,
        timeout=timeout,
        wrapper=LOAD_CPU,
    )


def flood(proxy: Kamailio, scenario: str, calls: int, workdir: Path) -> tuple[float, float]:
    """As many PUBLISH as answers allow (100 in flight): (answered/s, proxy CPU µs per PUBLISH)."""
    cpu0 = group_cpu_seconds(proxy.pid)
    run = run_sipp(
        scenario, proxy.port, calls=calls, rate=100_000, limit=100, workdir=workdir, timeout=120
    )
    cpu = group_cpu_seconds(proxy.pid) - cpu0
    if run.successful < calls * 0.99:
        raise RuntimeError(f"{scenario}: only {run.successful}/{calls} answered as expected")
    return run.rate, cpu / run.successful * 1e6


def measured_proxy(
    workdir: Path, responder_port: int, redis_port: int, **extra: Define
) -> Kamailio:
    """The shipped proxy (2 workers, quiet log) on the system-under-test core.

    tm keeps each finished transaction 5 s and Debian's build (memory debugging) makes
    one ~15 kB: a flood needs a larger shm than the 64 MB default.
    """
    port = free_port()
    defines: dict[str, Define] = {"CHILDREN": 2, "DEBUG_LEVEL": 1, **extra}
    return Kamailio(
        PROXY_CFG,
        workdir / f"proxy-{port}",
        port,
        proxy_defines(port, responder_port, redis_port, **defines),
        name="proxy",
        extra_args=["-m", "1024"],
        wrapper=SUT_CPU,
    )


def paced_publish(port: int, rate: int, seconds: float, workdir: Path) -> tuple[SippRun, float]:
    """PUBLISH at `rate` for `seconds` to the proxy on `port`: (the sipp run, wall seconds)."""
    started = time.monotonic()
    sipp = run_sipp(
        "publish",
        port,
        calls=int(rate * seconds),
        rate=rate,
        limit=max(100, rate // 5),
        workdir=workdir,
        timeout=seconds + 30,
    )
    return sipp, time.monotonic() - started


NOT_KAMAILIO = ("info", "config", "hset", "pexpire", "multi", "exec")  # ours, not Kamailio's


def redis_load_at(
    client: Any, proxy_port: int, rate: int, seconds: float, workdir: Path, sent: Sequence[str]
) -> dict[str, Any]:
    """PUBLISH at `rate` through the proxy; what it sent to Redis (commands named in `sent`)
    and what Redis executed, per second, from `INFO commandstats`."""
    client.config_resetstat()
    sipp, elapsed = paced_publish(proxy_port, rate, seconds, workdir)
    stats = client.info("commandstats")
    calls = {
        k.removeprefix("cmdstat_"): int(v["calls"])
        for k, v in stats.items()
        if not k.removeprefix("cmdstat_").startswith(NOT_KAMAILIO)
    }
    by_kamailio = {k: v for k, v in calls.items() if k in sent}
    return {
        "sip_rate_target": rate,
        "answered": sipp.successful,
        "sip_rate_achieved": round(sipp.successful / elapsed, 1),
        "seconds": round(elapsed, 2),
        "commands_sent_per_s": round(sum(by_kamailio.values()) / elapsed, 2),
        "commands_executed_per_s": round(sum(calls.values()) / elapsed, 2),
        "sent": by_kamailio,
        "executed": calls,
    }


RESPONDER_CFG = """#!KAMAILIO
# bench: a fast stateless presence stand-in answering 200 to everything
debug=1
log_stderror=yes
children=CHILDREN
listen=LISTEN
disable_tcp=yes
auto_aliases=no
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "textops.so"
request_route {
	if (is_method("ACK")) {
		exit;
	}
	append_to_reply("SIP-ETag: $ci\\r\\nExpires: 3600\\r\\n");
	sl_send_reply("200", "OK");
}
"""


@contextlib.contextmanager
def fast_responder(workdir: Path, children: int = 1) -> Iterator[Kamailio]:
    """A stateless Kamailio answering 200 on the load core: never the bottleneck."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = workdir / "responder.cfg"
    cfg.write_text(RESPONDER_CFG)
    defines: dict[str, Define] = {"LISTEN": f"udp:{LOOPBACK}:{port}", "CHILDREN": children}
    kam = Kamailio(
        cfg, workdir / f"responder-{port}", port, defines, name="responder", wrapper=LOAD_CPU
    )
    kam.start()
    try:
        yield kam
    finally:
        kam.stop()


def measured_sidecar(workdir: Path, redis_url: str, target_port: int, **breaker: object) -> Sidecar:
    """A started sidecar (quiet log) on the system-under-test core, one breaker `presence`
    probing the SIP server on `target_port`."""
    api_port = free_port()
    target = f"sip:{LOOPBACK}:{target_port};transport=udp"
    text = sidecar_toml(
        redis_url=redis_url,
        api_port=api_port,
        breakers=[{"name": "presence", "target": target, **breaker}],
        level="warning",
    )
    return Sidecar(workdir / "sidecar", text, api_port).start(wrapper=SUT_CPU)


def cpu_model() -> str:
    return str(machine()["cpu_model"])


def verdict_writer(redis_port: int, name: str = "presence") -> VerdictWriter:
    """Writes `breaker:{name}` as the sidecar does, for runs without it; lasts the run."""
    return VerdictWriter(redis_port, name, reason="bench", retry_after=10, ttl_ms=3_600_000)
