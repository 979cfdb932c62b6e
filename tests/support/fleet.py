"""A sidecar watching several SIP stand-ins, each its own process (SIGSTOP freezes it)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

from tests.support.procs import Proc, free_port_both, wait_until
from tests.support.sidecar import Sidecar


class StandinProcess:
    """tests/support/sip_standin.py in its own process group."""

    def __init__(self, workdir: Path, label: str = "standin") -> None:
        self.workdir = workdir
        self.label = label
        self.port = free_port_both()
        self.proc: Proc | None = None

    @property
    def target(self) -> str:
        return f"sip:127.0.0.1:{self.port};transport=udp"

    def start(self) -> StandinProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        counts = self.workdir / f"{self.label}.json"
        self.proc = Proc(
            [
                sys.executable,
                "-m",
                "tests.support.sip_standin",
                "--port",
                str(self.port),
                "--count-file",
                str(counts),
            ],
            self.workdir / f"{self.label}.log",
        )
        wait_until(counts.exists, 10, what=f"stand-in {self.label} to listen")
        return self

    def freeze(self) -> None:
        assert self.proc is not None
        self.proc.signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()
            self.proc = None


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
        super().__init__(workdir, redis_url, first_target, **breaker)
        text = self.config.read_text().replace('name = "presence"', f'name = "{first}"', 1)
        if not open_reads:
            text = text.replace("[api]\n", "[api]\nopen_reads = false\n", 1)
        block = text[text.index("[[breakers]]") :]
        for name, target in others:
            text += (
                block.replace(f'name = "{first}"', f'name = "{name}"', 1)
                .replace(first_target, target, 1)
                .rstrip("\n")
                + "\n"
            )
        self.config.write_text(text)
