"""`python -m lab --scenario pool`: the pool timeline, baseline then protected, and the report."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from lab._lab import TOOLS, _new_directory, run_modes
from lab._params import MODES, Mode
from lab._pool import FROZEN, MEMBERS, PoolParams, PoolRecord, run_pool_timeline
from lab._pool_report import PoolHeadline, PoolSecond, headline, plot, series, spread, summary_table
from lab._report import machine, write_json
from testbed.procs import require


@dataclass(frozen=True)
class PoolResult:
    directory: Path
    results_path: Path
    plot_path: Path
    summary_path: Path
    summary: str
    headlines: dict[Mode, PoolHeadline]


def _results(
    params: PoolParams,
    records: dict[Mode, PoolRecord],
    rows: dict[Mode, list[PoolSecond]],
    headlines: dict[Mode, PoolHeadline],
    started: float,
    host: dict[str, Any],
) -> dict[str, Any]:
    return {
        "scenario": "pool",
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "duration_s": round(time.time() - started, 1),
        "machine": host,
        "params": params.as_dict(),
        "members": list(MEMBERS),
        "frozen": FROZEN,
        "runs": {
            mode: {
                "headline": asdict(headlines[mode]),
                "homes": spread(records[mode]),
                "rotation": [
                    {"t": round(at - records[mode].t0, 3), "member": name, "state": state}
                    for at, name, state in records[mode].rotation
                    if at >= records[mode].freeze_at
                ],
                "series": [asdict(r) for r in rows[mode]],
            }
            for mode in records
        },
    }


def run_pool(
    params: PoolParams,
    out: Path,
    *,
    modes: Sequence[Mode] = MODES,
    console: Console | None = None,
) -> PoolResult:
    """Run the pool timeline once per mode; write results.json, pool.png, summary.md."""
    require(*TOOLS)
    console = console or Console(stderr=True)
    directory = _new_directory(out.resolve())
    started = time.time()
    host = machine()
    records = run_modes(
        modes,
        params.duration,
        directory,
        console,
        lambda mode, logs, tick: run_pool_timeline(mode, params, logs, tick),
    )
    rows = {mode: series(record, params) for mode, record in records.items()}
    headlines = {mode: headline(records[mode], rows[mode], params) for mode in records}
    data = _results(params, records, rows, headlines, started, host)
    results_path = write_json(directory / "results.json", data)
    plot_path = plot(rows, params, directory / "pool.png")
    summary = summary_table(params, headlines)
    summary_path = directory / "summary.md"
    summary_path.write_text(
        f"# breaker lab, pool scenario, {data['started_at']}\n\n"
        f"{host['cores']} cores, {host['cpu_model']}; {len(MEMBERS)} presence servers, "
        f"{FROZEN} locked up {params.freeze:g} s; {params.subscribers} subscribers, "
        f"a PUBLISH each every {params.period:g} s; capacity {params.capacity}/s per member.\n\n"
        f"{summary}\n![timeline](pool.png)\n"
    )
    return PoolResult(directory, results_path, plot_path, summary_path, summary, headlines)
