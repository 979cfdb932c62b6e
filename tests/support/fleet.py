"""Sidecars for fleet tests: several observers voting on one Redis, and one sidecar
watching several SIP stand-ins (tests/cli/harness.Standin, SIGSTOP-able)."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from testbed.procs import Child
from testbed.redis import Redis
from testbed.sip_standin import StandinProcess
from testbed.waiting import wait_until
from tests.support.sidecar import Sidecar


def start_standin(workdir: Path) -> tuple[Child, int]:
    """A SIP stand-in (answers OPTIONS) on a fresh loopback port."""
    standin = StandinProcess(workdir)
    return standin.proc, standin.port


def observer(
    workdir: Path, redis_url: str, name: str, port: int, cluster: str = "", **breaker: Any
) -> Sidecar:
    """A sidecar voting as `name` on the stand-in at `port`, not yet started; `cluster` adds
    raw lines to its [cluster] table."""
    sidecar = Sidecar(workdir, redis_url, sip_target(port), cluster={"observer": name}, **breaker)
    sidecar.config.write_text(sidecar.config.read_text() + cluster)
    return sidecar


def sip_target(port: int) -> str:
    return f"sip:127.0.0.1:{port};transport=udp"


class FleetSidecar(Sidecar):
    """A real `breaker serve` with one breaker per target; `open_reads` as given."""

    def __init__(
        self,
        workdir: Path,
        redis_url: str,
        targets: dict[str, str],
        open_reads: bool = True,
        **breaker: Any,
    ) -> None:
        super().__init__(workdir, redis_url, targets, open_reads=open_reads, **breaker)


def states_while_partitioned(
    redis: Redis, frozen: Child, observer: str, window: float, key: str = "breaker:{presence}"
) -> set[str]:
    """SIGSTOP `frozen` (the stand-in only `observer` probes), wait for that observer's
    open vote, then collect the published states for `window` seconds; resumes it."""
    frozen.signal(signal.SIGSTOP)
    try:
        wait_until(
            lambda: redis.cli("HGET", f"{key}:votes", observer).startswith("open|"),
            5,
            what=f"observer {observer} to vote open",
        )
        states = set()
        deadline = time.monotonic() + window
        while time.monotonic() < deadline:
            states.add(redis.cli("HGET", key, "state"))
            time.sleep(0.05)
        return states
    finally:
        frozen.signal(signal.SIGCONT)
