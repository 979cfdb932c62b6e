"""Sidecars for fleet tests: several observers voting on one Redis, and one sidecar
watching several SIP stand-ins (tests/cli/harness.Standin, SIGSTOP-able)."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Any

from tests.support.procs import Proc, RedisServer, free_port_both, wait_until
from tests.support.sidecar import Sidecar


def start_standin(workdir: Path) -> tuple[Proc, int]:
    """A SIP stand-in (answers OPTIONS) on a fresh loopback port."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port_both()
    counts = workdir / "standin.json"
    argv = [sys.executable, "-m", "tests.support.sip_standin", "--port", str(port)]
    proc = Proc([*argv, "--count-file", str(counts)], workdir / "standin.log")
    wait_until(counts.exists, 10, what="stand-in to listen")
    return proc, port


def observer(
    workdir: Path, redis_url: str, name: str, port: int, cluster: str = "", **breaker: Any
) -> Sidecar:
    """A sidecar voting as `name` on the stand-in at `port`, not yet started."""
    workdir.mkdir(parents=True, exist_ok=True)
    sidecar = Sidecar(workdir, redis_url, f"sip:127.0.0.1:{port};transport=udp", **breaker)
    text = sidecar.config.read_text()
    sidecar.config.write_text(f'{text}[cluster]\nobserver = "{name}"\n{cluster}')
    return sidecar


def states_while_partitioned(
    redis: RedisServer, frozen: Proc, observer: str, window: float, key: str = "breaker:{presence}"
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
        workdir.mkdir(parents=True, exist_ok=True)
        (first, first_target), *others = targets.items()
        super().__init__(workdir, redis_url, first_target, open_reads=open_reads, **breaker)
        text = self.config.read_text().replace('name = "presence"', f'name = "{first}"', 1)
        block = text[text.index("[[breakers]]") :]
        for name, target in others:
            text += (
                block.replace(f'name = "{first}"', f'name = "{name}"', 1)
                .replace(first_target, target, 1)
                .rstrip("\n")
                + "\n"
            )
        self.config.write_text(text)
