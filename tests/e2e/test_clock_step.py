"""NTP steps the wall clock of a real sidecar (libfaketime): recovery and ramp keep their pace."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from testbed.procs import Child
from testbed.redis import Redis
from testbed.waiting import wait_until
from tests.support.faketime import LIBFAKETIME, WallClock
from tests.support.sidecar import Sidecar

SLOW_START = 2.0
INTERVAL = 0.2
RISE = 2
SLACK = 0.6  # a loaded 2-core CI box delays timers

pytestmark = pytest.mark.skipif(not LIBFAKETIME.exists(), reason="Debian package faketime")


def state(redis: Redis) -> str:
    try:
        return redis.cli("HGET", "breaker:{presence}", "state")
    except Exception:
        return ""


def stepped_back(sidecar: Sidecar) -> bool:
    """The sidecar's probe stamps read an hour behind real time. (Redis's stamps do not
    move: the vote script writes `updated` and `since` on Redis's clock.)"""
    probe = sidecar.get("/v1/breakers/presence").json().get("last_probe") or {}
    return abs(float(probe.get("at") or 0) - (time.time() - 3600)) < 5


def test_wall_clock_steps_change_neither_recovery_nor_ramp(
    tmp_path: Path, redis_server: Redis, standin: tuple[Child, int]
) -> None:
    proc, port = standin
    clock = WallClock(tmp_path)
    target = f"sip:127.0.0.1:{port};transport=udp"
    sidecar = Sidecar(tmp_path, redis_server.url, target, slow_start=SLOW_START, rise=RISE)
    sidecar.start(env=clock.env)
    try:
        wait_until(lambda: state(redis_server) == "closed", 10, what="closed")
        proc.signal(signal.SIGSTOP)
        wait_until(lambda: state(redis_server) == "open", 10, what="open")
        clock.set(-3600)  # NTP steps the clock back an hour while open
        wait_until(lambda: stepped_back(sidecar), 5, what="the sidecar to see the step")
        resumed = time.monotonic()
        proc.signal(signal.SIGCONT)
        wait_until(lambda: state(redis_server) == "half_open", 5, what="half_open after the step")
        recovery = time.monotonic() - resumed
        bound = (RISE + 1) * INTERVAL + SLACK
        assert recovery <= bound, f"expected half_open within {bound:.1f}s, took {recovery:.2f}s"

        clock.set(0)  # ...and forward an hour during the ramp
        ramp_from = time.monotonic()
        seen_admits: set[int] = set()

        def closed() -> bool:
            admit = redis_server.cli("HGET", "breaker:{presence}", "admit")
            if admit.isdigit():
                seen_admits.add(int(admit))
            return state(redis_server) == "closed"

        wait_until(closed, 10, interval=0.02, what="closed after the ramp")
        ramp = time.monotonic() - ramp_from
        assert ramp >= SLOW_START * 0.6, (
            f"expected the ramp to take about {SLOW_START}s after a +1h step, it ended in "
            f"{ramp:.2f}s (admits seen {sorted(seen_admits)})"
        )
        assert ramp <= SLOW_START + SLACK + INTERVAL, f"ramp took {ramp:.2f}s"
        assert sidecar.proc is not None and "Traceback" not in sidecar.proc.output()
    finally:
        sidecar.stop()
