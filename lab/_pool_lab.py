"""`python -m lab --scenario pool`: the pool timeline, baseline then protected, and the report."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from lab._lab import Scenario, ScenarioResult
from lab._pool import FROZEN, MEMBERS, PoolParams, PoolRecord, run_pool_timeline
from lab._pool_report import PoolHeadline, PoolSecond, headline, plot, series, spread, summary_table
from lab._record import Outcome

PoolResult = ScenarioResult[PoolHeadline]


def _results(
    outcome: Outcome[PoolParams, PoolRecord, PoolSecond, PoolHeadline],
) -> dict[str, Any]:
    records, headlines = outcome.records, outcome.headlines
    return {
        "scenario": "pool",
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(outcome.started_at)),
        "duration_s": round(time.time() - outcome.started_at, 1),
        "machine": outcome.host,
        "params": outcome.params.as_dict(),
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
                "series": [asdict(r) for r in outcome.rows[mode]],
            }
            for mode in records
        },
    }


def _describe(params: PoolParams) -> str:
    return (
        f"{len(MEMBERS)} presence servers, {FROZEN} locked up {params.freeze:g} s; "
        f"{params.subscribers} subscribers, a PUBLISH each every {params.period:g} s; "
        f"capacity {params.capacity}/s per member."
    )


POOL: Scenario[PoolParams, PoolRecord, PoolSecond, PoolHeadline] = Scenario(
    timeline=run_pool_timeline,
    series=series,
    headline=headline,
    results=_results,
    plot=plot,
    plot_name="pool.png",
    summary_table=summary_table,
    title="breaker lab, pool scenario",
    describe=_describe,
)
