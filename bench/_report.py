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
    return [*_peer(data["peer"]), "", *_bound(data["bound"]), "", *_live(data["live"])]


PEER_LABELS = {
    "dispatcher": "Kamailio 5.6 dispatcher (ds_ping_interval 1 s, ds_probing_threshold 3, "
    "fr_timer 2 s)",
    "presence": "sidecar, defaults (interval 1 s, fast_interval 0.5 s, timeout 0.5 s "
    "adaptive: 4 x p99 RTT, floor 0.2 s; fall 3)",
    "fixed": "sidecar, defaults but adaptive_timeout = false",
    "naive": "sidecar, no confirmation probes, fixed timeout (the old defaults)",
}


def _peer(data: dict[str, Any]) -> list[str]:
    rows = [
        [
            PEER_LABELS.get(key, key),
            r.get("n"),
            r.get("p50_s"),
            r.get("p95_s"),
            r.get("min_s"),
            r.get("max_s"),
            r.get("p50_ratio", 1.0 if key == "dispatcher" else None),
            r.get("p95_ratio", 1.0 if key == "dispatcher" else None),
        ]
        for key, r in data["rows"].items()
    ]
    return [
        "### Peer: the same frozen stand-in, watched by Kamailio's dispatcher and the sidecar",
        "",
        f"{data['freezes']} freezes at random phases, one probe per second from every prober; "
        f"median ratio (sidecar defaults / dispatcher): **{data['median_ratio']}**; detection "
        f"bound at the defaults {data['sidecar_settings']['bound_s']} s.",
        "",
        *_table(
            [
                "prober",
                "freezes",
                "p50 s",
                "p95 s",
                "min s",
                "max s",
                "p50 / dispatcher",
                "p95 / dispatcher",
            ],
            rows,
        ),
    ]


def _bound(data: dict[str, Any]) -> list[str]:
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
        "### Bound: lock-up → open → first local 503 through the proxy",
        "",
        f"{data['freezes']} freezes; interval {p['interval']} s, timeout {p['timeout']} s, "
        f"fall {p['fall']}, fast_interval (timeout) and adaptive timeout at their defaults, "
        f"BREAKER_POLL_MS {p['poll_ms']}; bound interval + (fall - 1) x max(fast_interval, "
        "timeout) + timeout (+ poll for the 503).",
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


def _live(data: dict[str, Any]) -> list[str]:
    rows = [
        [label, r.get("n"), r.get("p50_s"), r.get("p95_s"), r.get("max_s"), ", ".join(r["reasons"])]
        for label, r in (
            (f"{data['rate_per_s']} PUBLISH/s through the proxy", data["rows"]["with_traffic"]),
            ("no traffic", data["rows"]["without_traffic"]),
        )
    ]
    first = data["first_503"]
    return [
        "### Live traffic: lock-up → open with and without presence traffic",
        "",
        f"Sidecar defaults + passive_failure_ratio {data['passive_failure_ratio']}; proxy "
        f"BREAKER_PRESENCE_FR_MS {data['presence_fr_ms']}, BREAKER_POLL_MS {data['poll_ms']}; "
        f"interleaved freeze by freeze. With / without traffic (p50): **{data['ratio']}**; "
        f"first local 503 with traffic p50/p95 {first.get('p50_s')}/{first.get('p95_s')} s.",
        "",
        *_table(
            ["traffic", "freezes", "p50 s", "p95 s", "max s", "opened by (last failure)"], rows
        ),
    ]


def _false_alarms(data: dict[str, Any]) -> list[str]:
    def opens(name: str) -> str:
        found = data["opens"].get(name, [])
        alarms = sum(1 for o in found if o["from"] == "closed")
        return f"{alarms} ({len(found)})"

    rows = []
    for name, relay in data["relays"].items():
        probes = data["probes"].get(name, {})
        fixed = data["probes"].get(f"{name}_fixed", {})
        rows.append(
            [
                f"{relay['loss']:.0%}",
                relay["dropped"],
                f"{probes.get('probe_failures')} / {probes.get('probes')}",
                opens(name),
                f"{fixed.get('probe_failures')} / {fixed.get('probes')}",
                opens(f"{name}_fixed"),
                data["dispatcher_downs"].get(name),
            ]
        )
    return [
        f"{data['seconds'] / 60:.1f} min per loss rate, both at once, the relays dropping "
        "each datagram (request or answer) independently. Every open is spurious (the server "
        "answered throughout); in brackets, all opens including reopens from half_open while "
        "recovering from one (any failure there reopens, and the ramp lasts 30 s).",
        "",
        *_table(
            [
                "datagram loss",
                "datagrams dropped",
                "failed / sent probes (defaults)",
                "spurious opens (defaults)",
                "failed / sent (fixed timeout)",
                "spurious opens (fixed timeout)",
                "dispatcher dst-down",
            ],
            rows,
        ),
    ]


DETAILS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "hot_path": _hot_path,
    "redis_load": _redis_load,
    "api": _api,
    "probe_scale": _probe_scale,
    "detection": _detection,
    "failover": _failover,
    "pool": _pool,
    "false_alarms": _false_alarms,
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
