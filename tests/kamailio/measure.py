"""Measurements (not tests) for docs/kamailio.md.

    .venv/bin/python -m tests.kamailio.measure [--calls 40000] [--rounds 3]

1. Hot-path cost of the breaker: the same proxy config with and without the
   breaker (WITHOUT_BREAKER drops the include and both route calls), PUBLISH
   flood from sipp, presence stand-in = a stateless Kamailio answering 200. Reports
   PUBLISH/s answered and Kamailio CPU microseconds per PUBLISH:
     - without breaker, forwarding
     - with breaker, closed (forwarding)
     - with breaker, open (local 503)
2. Redis commands per second one Kamailio sends (INFO commandstats delta) at
   10 and at 5000 PUBLISH/s, breaker closed, default poll interval.

Everything runs on 127.0.0.1 ephemeral ports in a temp dir and is cleaned up.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.kamailio.harness import (
    PROXY_CFG,
    BreakerHash,
    Define,
    Kamailio,
    proxy_defines,
    run_sipp,
)
from tests.support.procs import RedisServer, free_port_both

TICKS = os.sysconf("SC_CLK_TCK")
# with 2+ cores: the proxy alone on core 0, load generator and stand-in on core 1,
# so the proxy is the bottleneck and sipp does not steal its CPU
PIN = (os.cpu_count() or 1) >= 2
PROXY_CPU = ["taskset", "-c", "0"] if PIN else []
LOAD_CPU = ["taskset", "-c", "1"] if PIN else []


def group_cpu_seconds(pgid: int) -> float:
    """utime + stime of every process in a process group (Kamailio forks many)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid:  # pgrp
            total += int(fields[11]) + int(fields[12])
    return total / TICKS


RESPONDER_CFG = """#!KAMAILIO
# fast stateless presence stand-in for measurements: 200 to everything
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


@contextmanager
def uas(workdir: Path) -> Iterator[int]:
    """A fast presence stand-in: a stateless Kamailio answering 200 (cheaper than a sipp UAS)."""
    port = free_port_both()
    cfg = workdir / "responder.cfg"
    cfg.write_text(RESPONDER_CFG)
    kam = Kamailio(
        cfg,
        workdir / f"responder-{port}",
        port,
        {"LISTEN": f"udp:127.0.0.1:{port}", "CHILDREN": 1},
        name="responder",
        wrapper=LOAD_CPU,
    )
    kam.start()
    try:
        yield port
    finally:
        kam.stop()


@contextmanager
def proxy(
    workdir: Path, presence_port: int, redis_port: int, **defines: Define
) -> Iterator[Kamailio]:
    port = free_port_both()
    # tm keeps every finished transaction for 5 s (wait timer) and the Debian
    # build's memory debugging makes each ~15 kB: a flood needs a large shm
    kam = Kamailio(
        PROXY_CFG,
        workdir / f"proxy-{port}",
        port,
        proxy_defines(port, presence_port, redis_port, **defines),
        name="proxy",
        extra_args=["-m", "2048"],
        wrapper=PROXY_CPU,
    )
    kam.start()
    try:
        yield kam
    finally:
        kam.stop()


def flood(kam: Kamailio, scenario: str, calls: int, workdir: Path) -> tuple[float, float]:
    """(answered PUBLISH/s, Kamailio CPU us per PUBLISH) for one sipp flood."""
    assert kam.proc is not None
    cpu0, t0 = group_cpu_seconds(kam.proc.pid), time.monotonic()
    result = run_sipp(
        scenario,
        kam.address,
        calls=calls,
        rate=100_000,
        workdir=workdir,
        timeout=120,
        limit=100,
        wrapper=LOAD_CPU,
    )
    elapsed = time.monotonic() - t0
    cpu = group_cpu_seconds(kam.proc.pid) - cpu0
    if result.successful < calls * 0.99:
        raise RuntimeError(f"{scenario}: only {result.successful}/{calls} succeeded")
    return result.successful / elapsed, cpu / result.successful * 1e6


def hot_path(workdir: Path, redis: RedisServer, calls: int, rounds: int) -> None:
    variants: list[tuple[str, dict[str, Define], str | None, str]] = [
        ("without breaker (forward)", {"WITHOUT_BREAKER": True}, None, "mwi_publish"),
        ("breaker closed (forward)", {}, "closed", "mwi_publish"),
        ("breaker open (local 503)", {}, "open", "mwi_publish_rejected"),
    ]
    hash_ = BreakerHash(redis.port)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name, *_ in variants}
    with uas(workdir) as uas_port:
        for round_no in range(rounds):
            for name, defines, state, scenario in variants:
                with proxy(workdir, uas_port, redis.port, **defines) as kam:
                    if state:
                        epoch = hash_.set(state, retry_after=10, ttl_ms=600_000)
                        kam.wait_verdict(state=state, epoch=epoch)
                    flood(kam, scenario, 2000, workdir)  # warm-up
                    results[name].append(flood(kam, scenario, calls, workdir))
                print(
                    f"round {round_no + 1}: {name}: {results[name][-1][0]:.0f}/s, "
                    f"{results[name][-1][1]:.1f} us CPU/request",
                    flush=True,
                )
    hash_.client.close()
    base_rate = statistics.median(r for r, _ in results[variants[0][0]])
    base_cpu = statistics.median(c for _, c in results[variants[0][0]])
    print(
        "\nhot path (median of rounds). 'answered' is bounded by the load generator's core;"
        "\n'capacity' = 1 s / proxy CPU per PUBLISH = PUBLISH/s one proxy core can handle:"
    )
    for name, *_ in variants:
        rate = statistics.median(r for r, _ in results[name])
        cpu = statistics.median(c for _, c in results[name])
        print(
            f"  {name:27s} answered {rate:6.0f}/s (x{rate / base_rate:4.2f})  "
            f"CPU {cpu:5.1f} us/PUBLISH (x{cpu / base_cpu:4.2f})  "
            f"capacity {1e6 / cpu:6.0f}/s per core (x{base_cpu / cpu:4.2f})"
        )


def redis_load(workdir: Path, redis: RedisServer) -> None:
    hash_ = BreakerHash(redis.port)
    print("\nRedis commands/s sent by one Kamailio (breaker closed, BREAKER_POLL_MS=300):")
    with uas(workdir) as uas_port, proxy(workdir, uas_port, redis.port, BREAKER_POLL_MS=300) as kam:
        epoch = hash_.set("closed", ttl_ms=600_000)
        kam.wait_verdict(state="closed", epoch=epoch)
        for rate, seconds in ((10, 10), (5000, 6)):
            hash_.client.config_resetstat()
            t0 = time.monotonic()
            result = run_sipp(
                "mwi_publish",
                kam.address,
                calls=rate * seconds,
                rate=rate,
                workdir=workdir,
                timeout=seconds + 30,
            )
            elapsed = time.monotonic() - t0
            stats = hash_.client.info("commandstats")
            calls = {
                k.removeprefix("cmdstat_"): v["calls"]
                for k, v in stats.items()
                if not k.startswith(("cmdstat_info", "cmdstat_config"))
            }
            sent = {k: v for k, v in calls.items() if k in ("hmget", "eval", "select", "ping")}
            total_sent = sum(sent.values())
            print(
                f"  {rate:5d} PUBLISH/s for {elapsed:4.1f}s ({result.successful} answered): "
                f"{total_sent / elapsed:5.2f} commands/s sent {sent}; "
                f"{sum(calls.values()) / elapsed:5.2f}/s executed incl. script calls {calls}"
            )
    hash_.client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=40_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-hot-path", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="breaker-measure-") as tmp:
        workdir = Path(tmp)
        redis = RedisServer(workdir / "redis").start()
        try:
            where = (
                "proxy pinned to core 0, sipp and the stand-in to core 1"
                if PIN
                else "everything shares one core"
            )
            print(f"cores: {os.cpu_count()}, {where}\n", flush=True)
            if not args.skip_hot_path:
                hot_path(workdir, redis, args.calls, args.rounds)
            redis_load(workdir, redis)
        finally:
            redis.stop()


if __name__ == "__main__":
    main()
