"""`breaker lab`: the incident's timeline twice, baseline then protected, and the report."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from lab._analysis import headline, series
from lab._params import MODES, LabParams, Mode
from lab._plot import plot
from lab._record import Headline
from lab._report import machine, results, summary_table, write_json
from lab._run import run_timeline
from testbed.procs import LabError, require

TOOLS = ("kamailio", "kamcmd", "redis-server")
R = TypeVar("R")


@dataclass(frozen=True)
class LabResult:
    directory: Path
    results_path: Path
    plot_path: Path
    summary_path: Path
    summary: str
    headlines: dict[Mode, Headline]


def _new_directory(root: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    directory = root / stamp
    n = 1
    while directory.exists():
        n += 1
        directory = root / f"{stamp}-{n}"
    directory.mkdir(parents=True)
    return directory


def run_modes(
    modes: Sequence[Mode],
    duration: float,
    directory: Path,
    console: Console,
    timeline: Callable[[Mode, Path, Callable[[Mode, float, str], None]], Coroutine[Any, Any, R]],
) -> dict[Mode, R]:
    """Each mode's timeline in turn (logs in directory/logs/<mode>), one progress bar each."""
    records: dict[Mode, R] = {}
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:>3.0f}/{task.total:.0f} s"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        tasks: dict[Mode, TaskID] = {
            mode: progress.add_task(f"{mode}: waiting", total=duration) for mode in modes
        }

        def tick(mode: Mode, t: float, phase: str) -> None:
            progress.update(tasks[mode], completed=t, description=f"{mode}: {phase}")

        for mode in modes:
            progress.update(tasks[mode], description=f"{mode}: starting processes")
            try:
                records[mode] = asyncio.run(timeline(mode, directory / "logs" / mode, tick))
            except asyncio.CancelledError:  # SIGTERM: everything is stopped already
                raise KeyboardInterrupt from None
            progress.update(tasks[mode], completed=duration, description=f"{mode}: done")
    return records


def run_lab(
    params: LabParams,
    out: Path,
    *,
    modes: Sequence[Mode] = MODES,
    console: Console | None = None,
) -> LabResult:
    """Run the timeline once per mode; write results.json, lab.png, summary.md in out/<ts>/."""
    require(*TOOLS)
    if params.dns:
        require("dnsmasq", "unshare", "mount")
        if os.geteuid() != 0:
            raise LabError(
                "the DNS model needs root (port 53 on a loopback address, and a mount "
                "namespace that gives Kamailio the lab's resolv.conf); run as root or --no-dns"
            )
    console = console or Console(stderr=True)
    directory = _new_directory(out.resolve())  # Kamailio runs with -w: paths must be absolute
    started = time.time()
    host = machine()
    records = run_modes(
        modes,
        params.duration,
        directory,
        console,
        lambda mode, logs, tick: run_timeline(mode, params, logs, tick),
    )
    rows = {mode: series(record, params) for mode, record in records.items()}
    headlines = {mode: headline(records[mode], rows[mode], params) for mode in records}
    data = results(params, records, rows, headlines, started, host)
    results_path = write_json(directory / "results.json", data)
    plot_path = plot(rows, params, directory / "lab.png")
    summary = summary_table(params, headlines)
    summary_path = directory / "summary.md"
    summary_path.write_text(
        f"# breaker lab, {data['started_at']}\n\n"
        f"{host['cores']} cores, {host['cpu_model']}; lock-up {params.freeze:g} s, "
        f"{params.mailboxes} mailboxes per vm-presence run, a new run every {params.cycle:g} s, "
        f"capacity {params.capacity}/s.\n\n{summary}\n![timeline](lab.png)\n"
    )
    return LabResult(directory, results_path, plot_path, summary_path, summary, headlines)
