"""Sidecars for fleet tests: several observers voting on one Redis, and one sidecar
watching several SIP stand-ins (tests/cli/harness.Standin, SIGSTOP-able)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from testbed.sip_standin import StandinProcess
from tests.support.procs import Proc
from tests.support.sidecar import Sidecar


def start_standin(workdir: Path) -> tuple[Proc, int]:
    """A SIP stand-in (answers OPTIONS) on a fresh loopback port."""
    standin = StandinProcess(workdir)
    return standin.proc, standin.port


def observer(
    workdir: Path, redis_url: str, name: str, port: int, cluster: str = "", **breaker: Any
) -> Sidecar:
    """A sidecar voting as `name` on the stand-in at `port`, not yet started."""
    workdir.mkdir(parents=True, exist_ok=True)
    sidecar = Sidecar(workdir, redis_url, f"sip:127.0.0.1:{port};transport=udp", **breaker)
    text = sidecar.config.read_text()
    sidecar.config.write_text(f'{text}[cluster]\nobserver = "{name}"\n{cluster}')
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
