"""Real Kamailio processes for tests: testbed's Kamailio and verdict writer, a responder."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from testbed.kamailio import (
    BREAKER_CFG,
    PRESENCE_CFG,
    PROXY_CFG,
    Define,
    Kamailio,
    check_config,
    presence_defines,
    quoted,
)
from testbed.kamailio import proxy_defines as shipped_proxy_defines
from testbed.procs import Child, Started, free_port
from testbed.sipp import SippRun
from testbed.sipp import run_sipp as run_sipp_file
from testbed.verdicts import LoggedVerdict as Verdict
from testbed.verdicts import VerdictWriter as BreakerHash
from testbed.waiting import wait_until

__all__ = [
    "BREAKER_CFG",
    "PRESENCE_CFG",
    "PROXY_CFG",
    "BreakerHash",
    "Define",
    "Kamailio",
    "Responder",
    "SippResult",
    "Verdict",
    "check_config",
    "mwi_bucket",
    "presence_defines",
    "proxy_defines",
    "quoted",
    "run_sipp",
    "udp_rx_queue",
]

SCENARIOS = Path(__file__).resolve().parent / "scenarios"


def proxy_defines(
    port: int, presence_port: int, redis_port: int, **extra: Define
) -> dict[str, Define]:
    """The shipped proxy's defines, polling faster so tests wait less."""
    return shipped_proxy_defines(
        port, presence_port, redis_port, **{"BREAKER_POLL_MS": 100, **extra}
    )


class Responder(Started):
    """tests/kamailio/responder.py in its own process group (SIGSTOP freezes it for real)."""

    def __init__(self, workdir: Path, code: int = 200, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.code = code
        self.log = workdir / f"responder-{self.port}.jsonl"
        self.proc: Child | None = None

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def start(self) -> Responder:
        self.workdir.mkdir(parents=True, exist_ok=True)
        script = Path(__file__).resolve().parent / "responder.py"
        argv = [sys.executable, str(script), "--port", str(self.port), "--log", str(self.log)]
        self.proc = Child([*argv, "--code", str(self.code)], self.log.with_suffix(".out"))
        wait_until(lambda: self.log.exists() and "ready" in self.log.read_text(), 10, "responder")
        return self

    def requests(self) -> list[dict[str, object]]:
        if not self.log.exists():
            return []
        lines = self.log.read_text().splitlines()
        return [r for r in map(json.loads, lines) if "method" in r]

    def count(self, method: str | None = None, call_ids: set[str] | None = None) -> int:
        return sum(
            1
            for r in self.requests()
            if (method is None or r["method"] == method)
            and (call_ids is None or r["call_id"] in call_ids)
        )


SippResult = SippRun


def run_sipp(
    scenario: str,
    target: tuple[str, int],
    calls: int,
    rate: int,
    workdir: Path,
    timeout: float = 60.0,
    limit: int | None = None,
    wrapper: Sequence[str] = (),
) -> SippResult:
    """Run one sipp UAC scenario from tests/kamailio/scenarios to completion.

    `limit` caps calls in flight (sipp -l); by default it is the rate (at least 100).
    """
    return run_sipp_file(
        SCENARIOS / f"{scenario}.xml",
        target,
        calls=calls,
        rate=rate,
        limit=limit or max(rate, 100),
        workdir=workdir,
        timeout=timeout,
        wrapper=wrapper,
    )


def udp_rx_queue(port: int) -> int:
    """Bytes waiting in the receive queue of the UDP socket bound to 127.0.0.1:port."""
    total = 0
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        local, queues = fields[1], fields[4]
        if local == f"0100007F:{port:04X}":
            total += int(queues.split(":")[1], 16)
    return total


def mwi_bucket(aor: str) -> int:
    """The bucket breaker.cfg computes for an AoR: md5 hex, its first two decimal digits."""
    digits = [c for c in hashlib.md5(aor.encode()).hexdigest() if c.isdigit()]
    return int("".join(digits[:2]))
