"""`breaker lab`: the incident's timeline twice, baseline then protected, and the report."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

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
from lab._params import MODES, LabParams, Mode, TimelineParams
from lab._plot import plot
from lab._record import Headline, Outcome, RunRecord, Second
from lab._report import machine, results, summary_table, write_json
from lab._run import run_timeline
from testbed.procs import LabError, require

TOOLS = ("kamailio", "kamcmd", "redis-server")
R = TypeVar("R")
Tick = Callable[[Mode, float, str], None]  # mode, seconds into the run, phase
P = TypeVar("P", bound=TimelineParams)
Rec = TypeVar("Rec")
Row = TypeVar("Row")
H = TypeVar("H")


@dataclass(frozen=True)
class ScenarioResult(Generic[H]):
    directory: Path
    results_path: Path
    plot_path: Path
    summary_path: Path
    summary: str
    headlines: dict[Mode, H]


LabResult = ScenarioResult[Headline]


@dataclass(frozen=True)
class Scenario(Generic[P, Rec, Row, H]):
    """One scenario's parts: its timeline, its figures (pure), and how it writes them."""

    timeline: Callable[[Mode, P, Path, Tick], Coroutine[Any, Any, Rec]]
    series: Callable[[Rec, P], list[Row]]
    headline: Callable[[Rec, list[Row], P], H]
    results: Callable[[Outcome[P, Rec, Row, H]], dict[str, Any]]
    plot: Callable[[dict[Mode, list[Row]], P, Path], Path]
    plot_name: str  # the PNG in the run's directory
    summary_table: Callable[[P, dict[Mode, H]], str]
    title: str  # summary.md's heading, before the start time
    describe: Callable[[P], str]  # summary.md's line on the timeline and load, after the machine
    tools: tuple[str, ...] = TOOLS  # programs the timeline runs


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
    timeline: Callable[[Mode, Path, Tick], Coroutine[Any, Any, R]],
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


def run_scenario(
    scenario: Scenario[P, Rec, Row, H],
    params: P,
    out: Path,
    *,
    modes: Sequence[Mode] = MODES,
    console: Console | None = None,
) -> ScenarioResult[H]:
    """Run the timeline once per mode; write results.json, the plot, summary.md in out/<ts>/."""
    require(*scenario.tools)
    console = console or Console(stderr=True)
    directory = _new_directory(out.resolve())  # Kamailio runs with -w: paths must be absolute
    started = time.time()
    host = machine()
    records = run_modes(
        modes,
        params.duration,
        directory,
        console,
        lambda mode, logs, tick: scenario.timeline(mode, params, logs, tick),
    )
    rows = {mode: scenario.series(record, params) for mode, record in records.items()}
    headlines = {mode: scenario.headline(records[mode], rows[mode], params) for mode in records}
    data = scenario.results(Outcome(params, records, rows, headlines, started, host))
    results_path = write_json(directory / "results.json", data)
    plot_path = scenario.plot(rows, params, directory / scenario.plot_name)
    summary = scenario.summary_table(params, headlines)
    summary_path = directory / "summary.md"
    summary_path.write_text(
        f"# {scenario.title}, {data['started_at']}\n\n"
        f"{host['cores']} cores, {host['cpu_model']}; {scenario.describe(params)}\n\n"
        f"{summary}\n![timeline]({scenario.plot_name})\n"
    )
    return ScenarioResult(directory, results_path, plot_path, summary_path, summary, headlines)


def _describe(params: LabParams) -> str:
    return (
        f"lock-up {params.freeze:g} s, {params.mailboxes} mailboxes per vm-presence run, "
        f"a new run every {params.cycle:g} s, capacity {params.capacity}/s."
    )


INCIDENT: Scenario[LabParams, RunRecord, Second, Headline] = Scenario(
    timeline=run_timeline,
    series=series,
    headline=headline,
    results=results,
    plot=plot,
    plot_name="lab.png",
    summary_table=summary_table,
    title="breaker lab",
    describe=_describe,
)


def run_lab(
    params: LabParams,
    out: Path,
    *,
    modes: Sequence[Mode] = MODES,
    console: Console | None = None,
) -> LabResult:
    """Run the timeline once per mode; write results.json, lab.png, summary.md in out/<ts>/."""
    if params.dns:
        require("dnsmasq", "unshare", "mount")
        if os.geteuid() != 0:
            raise LabError(
                "the DNS model needs root (port 53 on a loopback address, and a mount "
                "namespace that gives Kamailio the lab's resolv.conf); run as root or --no-dns"
            )
    return run_scenario(INCIDENT, params, out, modes=modes, console=console)
