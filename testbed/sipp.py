"""One sipp UAC run to completion, and what it achieved (from its -trace_stat file)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from testbed.procs import LOOPBACK, free_port


@dataclass(frozen=True)
class SippRun:
    """What one sipp UAC run achieved."""

    returncode: int
    successful: int
    failed: int
    elapsed: float
    output: str

    @property
    def rate(self) -> float:
        return self.successful / self.elapsed if self.elapsed > 0 else 0.0


def run_sipp(
    scenario: Path,
    target: tuple[str, int],
    *,
    calls: int,
    rate: float,
    limit: int,
    workdir: Path,
    timeout: float,
    wrapper: Sequence[str] = (),
) -> SippRun:
    """Bounded by -m calls and by `timeout`; `wrapper` e.g. ["taskset", "-c", "1"]."""
    workdir.mkdir(parents=True, exist_ok=True)
    stats = workdir / f"{scenario.stem}-{time.monotonic_ns()}.csv"
    argv = [
        *wrapper,
        "sipp",
        "-sf",
        str(scenario),
        "-m",
        str(calls),
        "-r",
        f"{rate:g}",
        "-l",
        str(limit),
        "-i",
        LOOPBACK,
        "-p",
        str(free_port()),
        "-nostdin",
        "-timeout",
        f"{int(timeout)}s",
        "-timeout_error",
        "-trace_stat",
        "-stf",
        str(stats),
        "-fd",
        "1",
        f"{target[0]}:{target[1]}",
    ]
    started = time.monotonic()
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout + 15, cwd=workdir, check=False
    )
    elapsed = time.monotonic() - started
    successful = failed = 0
    if stats.exists():
        rows = [line.split(";") for line in stats.read_text().splitlines() if line]
        header, last = rows[0], rows[-1]
        successful = int(last[header.index("SuccessfulCall(C)")])
        failed = int(last[header.index("FailedCall(C)")])
        stats.unlink()
    output = done.stdout[-3000:] + done.stderr
    return SippRun(done.returncode, successful, failed, elapsed, output)
