"""docs/benchmarks.md, generated from bench/results/*.json."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import BENCHMARKS

VERDICT = {True: "met", False: "**missed**", None: "-"}


def _load(directory: Path) -> list[dict[str, Any]]:
    found = []
    for name in BENCHMARKS:
        path = directory / f"{name}.json"
        if path.exists():
            found.append(json.loads(path.read_text()))
    return found


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join("-" if v is None else str(v) for v in row) + " |" for row in rows]
    return lines


def _hot_path(data: dict[str, Any]) -> list[str]:
    rows = [
        [
            v["variant"],
            v["answered_per_s"],
            f"{v['answered_ratio']:.2f}",
            v["proxy_cpu_us_per_publish"],
            v["cpu_capacity_per_core"],
            f"{v['cpu_capacity_ratio']:.2f}" if v["cpu_capacity_ratio"] is not None else None,
        ]
        for v in data["variants"]
    ]
    return [
        f"{data['calls_per_flood']} PUBLISH per flood, median of {data['rounds']} interleaved "
        "rounds.",
        "",
        *_table(
            [
                "variant",
                "answered/s",
                "x baseline",
                "proxy CPU µs/PUBLISH",
                "PUBLISH/s per proxy core",
                "x baseline",
            ],
            rows,
        ),
    ]


def _redis_load(data: dict[str, Any]) -> list[str]:
    rows = [
        [
            r["sip_rate_target"],
            r["sip_rate_achieved"],
            r["commands_sent_per_s"],
            r["commands_executed_per_s"],
            ", ".join(f"{k} {v}" for k, v in sorted(r["sent"].items())),
        ]
        for r in data["rates"]
    ]
    return [
        f"BREAKER_POLL_MS={data['poll_ms']}; highest/lowest rate: x{data['high_to_low_ratio']}.",
        "",
        *_table(
            [
                "SIP req/s (target)",
                "achieved",
                "commands/s sent",
                "commands/s executed (incl. inside EVAL)",
                "sent, by command",
            ],
            rows,
        ),
    ]


def _pool(data: dict[str, Any]) -> list[str]:
    load = [
        [
            r["members"],
            r["sip_rate_target"],
            r["sip_rate_achieved"],
            r["commands_sent_per_s"],
            r["commands_executed_per_s"],
        ]
        for r in data["redis_load"]
    ]
    hot = [
        [v["variant"], v["answered_per_s"], v["proxy_cpu_us_per_publish"], v["cpu_capacity_ratio"]]
        for v in data["hot_path"]
    ]
    f = data["failover"]
    answered = f["frozen_subscribers_answered_200_after_detection"]
    share = f["share_answered_200_after_detection"]
    failover = [
        ["subscribers, spread over the three members", f"{f['subscribers']}: {f['spread']}"],
        [
            "lock-up → first failed-over 200",
            f"{f['lockup_to_first_failed_over_200_s']} s (bound {f['bound_s']} s)",
        ],
        [
            "frozen member's subscribers answered 200 after detection",
            f"{answered}/{f['frozen_member_subscribers']} ({share:.0%})",
        ],
        ["local 503 after detection (all subscribers)", f["local_503_after_detection"]],
        [
            "recovery: home again / moved more than once",
            f"{f['home_again']} / {f['moved_more_than_once']} "
            f"(ramp {f['slow_start_s']} s, {f['recovery_rounds']} rounds)",
        ],
    ]
    return [
        *_table(["one member of three frozen (SIGSTOP), then thawed", "measured"], failover),
        "",
        f"BREAKER_POLL_MS={data['poll_ms']}; highest/lowest rate by member count: "
        + ", ".join(f"{k} members x{v}" for k, v in data["high_to_low_ratio_by_members"].items())
        + ".",
        "",
        *_table(
            [
                "members",
                "SIP req/s (target)",
                "achieved",
                "commands/s sent",
                "commands/s executed (incl. inside EVAL)",
            ],
            load,
        ),
        "",
        *_table(["variant", "PUBLISH/s answered", "proxy CPU µs/PUBLISH", "capacity ratio"], hot),
    ]


def _api(data: dict[str, Any]) -> list[str]:
    wrk, fixed, redis = data["wrk_max_throughput"], data["fixed_rate"], data["redis_get_baseline"]
    rows = [
        [
            f"API /allow, wrk max throughput ({wrk['seconds']} s)",
            f"{wrk['requests_per_s']:.0f}",
            wrk.get("p50_ms"),
            wrk.get("p99_ms"),
        ],
        [
            f"API /allow, fixed {fixed['rate_target']:.0f}/s ({fixed['seconds']:g} s)",
            f"{fixed['rate_achieved']:.0f}",
            fixed["p50_ms"],
            fixed["p99_ms"],
        ],
        [
            "bare Redis GET (redis-benchmark)",
            f"{redis['requests_per_s']:.0f}",
            redis["p50_ms"],
            redis["p99_ms"],
        ],
    ]
    floor = data.get("floor_bare_asgi_fixed_rate")
    if floor:
        rows.append(
            [
                f"floor: bare ASGI app, fixed {floor['rate_target']:.0f}/s",
                f"{floor['rate_achieved']:.0f}",
                floor["p50_ms"],
                floor["p99_ms"],
            ]
        )
    return [
        "64 connections in every row.",
        "",
        *_table(["run", "requests/s", "p50 ms", "p99 ms"], rows),
        "",
        f"API max throughput / bare Redis GET: x{data['api_to_redis_throughput_ratio']}.",
    ]


def _probe_scale(data: dict[str, Any]) -> list[str]:
    rows = [
        [
            r["targets"],
            r["cpu_percent_of_one_core"],
            r["cpu_ms_per_target_per_s"],
            r["window_s"],
            "yes" if r["all_closed"] else f"no: {r['states']}",
        ]
        for r in data["rows"]
    ]
    return [
        f"{data['method']} over {data['transport']}, interval {data['interval_s']:g} s.",
        "",
        *_table(
            ["targets", "CPU % of one core", "ms CPU per target per s", "window s", "all closed"],
            rows,
        ),
    ]


def _detection(data: dict[str, Any]) -> list[str]:
    rows = []
    for key, label in (("open", "lock-up → breaker open"), ("first_503", "lock-up → first 503")):
        d = data[key]
        rows.append(
            [
                label,
                d["bound_s"],
                d.get("p50_s"),
                d.get("p95_s"),
                d.get("max_s"),
                d.get("p50_ratio"),
                d.get("p95_ratio"),
                d.get("max_ratio"),
            ]
        )
    p = data["policy"]
    return [
        f"{data['freezes']} freezes; interval {p['interval']} s, timeout {p['timeout']} s, "
        f"fall {p['fall']}, BREAKER_POLL_MS {p['poll_ms']}.",
        "",
        *_table(
            ["", "bound s", "p50 s", "p95 s", "max s", "p50/bound", "p95/bound", "max/bound"],
            rows,
        ),
    ]


def _failover(data: dict[str, Any]) -> list[str]:
    keys = (
        "kill_to_switch_s",
        "switch_to_first_write_s",
        "eager_switch_to_first_write_s",
        "kill_to_first_write_s",
    )
    return _table(
        ["round", "kill → promotion s", "promotion → sidecar write s", "… eager writer s",
         "kill → sidecar write s"],
        [[i, *(r[k] for k in keys)] for i, r in enumerate(data["rounds"])]
        + [[f"{i} (down-after 5 s)", *(r[k] for k in keys)]
           for i, r in enumerate(data.get("slow_rounds", []))],
    )  # fmt: skip


DETAILS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "hot_path": _hot_path,
    "redis_load": _redis_load,
    "api": _api,
    "probe_scale": _probe_scale,
    "detection": _detection,
    "failover": _failover,
    "pool": _pool,
}


def render(directory: Path) -> str:
    results = _load(directory)
    lines = [
        "# Benchmarks",
        "",
        "<!-- generated by `python -m bench` (make bench) from bench/results/*.json; "
        "do not edit -->",
        "",
    ]
    if not results:
        return "\n".join([*lines, "No results yet: run `make bench`.", ""])
    host = results[0]["machine"]
    dates = sorted(r["started_at"] for r in results)
    quick = any(r["quick"] for r in results)
    lines += [
        f"Machine: {host['cores']} cores, {host['cpu_model']}, Linux {host['kernel']}, "
        f"Python {host['python']}. Run: {dates[0]} - {dates[-1]}"
        + (" (**quick mode: not representative**)" if quick else "")
        + ".",
        "",
        "The machine is shared and small, so every figure is set against a baseline "
        "measured in the same run on the same machine; where a process can be pinned, the "
        "system under test gets core 0 and the load generators core 1. Reproduce with "
        "`make bench` (`python -m bench`); `python -m bench --quick` is the smoke test.",
        "",
        *_table(
            ["benchmark", "goal", "result", "verdict"],
            [[r["title"], r["goal"], r["summary"], VERDICT[r["met"]]] for r in results],
        ),
        "",
    ]
    for result in results:
        lines += [
            f"## {result['title']}",
            "",
            f"Goal: {result['goal']}. Result: {VERDICT[result['met']]}.",
            "",
        ]
        detail = DETAILS.get(result["name"])
        if detail is not None and result.get("data"):
            try:
                lines += detail(result["data"])
            except (KeyError, TypeError):
                lines.append("(results incomplete)")
        if result.get("notes"):
            lines += ["", *[f"- {note}" for note in result["notes"]]]
        lines += ["", f"_{result['started_at']}, {result['duration_s']} s._", ""]
    return "\n".join(lines)
