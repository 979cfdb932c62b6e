"""results.json and the Markdown summary table, baseline vs protected."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

from lab._params import MODES, LabParams, Mode
from lab._record import Headline, Outcome, RunRecord, Second

RESULTS_VERSION = 1

H = TypeVar("H")
# a table row's cells: formatted from a run's headline, or given per run
Cells = Callable[[H], str] | Mapping[Mode, str]

OPEN_FORMULA = "interval + (fall-1) x max(fast_interval, timeout) + timeout"


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu_model": model or platform.processor() or "unknown",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def results(outcome: Outcome[LabParams, RunRecord, Second, Headline]) -> dict[str, Any]:
    params, rows, headlines = outcome.params, outcome.rows, outcome.headlines
    runs: dict[str, Any] = {}
    for mode, record in outcome.records.items():
        t0 = record.t0
        runs[mode] = {
            "timeline": {
                "traffic_start": t0,
                "lockup_at_s": round(record.freeze_at - t0, 3),
                "restart_at_s": round(record.thaw_at - t0, 3),
                "end_at_s": round(record.end_at - t0, 3),
            },
            "headline": headlines[mode].as_dict(),
            "cycles": [asdict(c) for c in record.cycles],
            "breaker_events": [
                {k: v for k, v in e.items() if k in ("event", "from", "to", "admit", "reason")}
                | {"at_s": round(float(e.get("at", t0)) - t0, 3)}
                for e in record.breaker_events
            ],
            "proxy_verdicts": [
                {"at_s": round(at - t0, 3), "state": state, "admit": admit}
                for at, state, admit in record.proxy_verdicts
            ],
            "series": [asdict(r) for r in rows[mode]],
            "notes": record.notes,
        }
    return {
        "version": RESULTS_VERSION,
        "kind": "breaker-lab",
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(outcome.started_at)),
        "machine": dict(outcome.host),
        "params": params.as_dict(),
        "bounds": {
            "detection_s": round(params.detection_bound, 3),
            "detection_formula": f"{OPEN_FORMULA} + poll",
            "open_s": round(params.open_bound, 3),
        },
        "counting": COUNTING,
        "runs": runs,
    }


COUNTING = {
    "presence_requests": "new requests (first Via branch + method) arriving at a UDP relay in "
    "front of the presence server; the relay is its own process and counts while the server "
    "is frozen",
    "presence_load": "presence_requests; in the second of the restart, the new requests that "
    "queued in the frozen server's socket buffer plus that second's arrivals, capped by the "
    "responses it sent in that second (an upper bound on what it processed)",
    "presence_answered": "responses the presence server sent, at the relay (copies for "
    "retransmissions included)",
    "client_retransmissions": "RFC 3261 Timer A/E retransmissions sent by vm-presence "
    "instances, the canary and the call client",
    "presence_retransmissions": "the proxy's own retransmissions towards the presence server",
    "proxy_503": "Kamailio sl:5xx_replies per second (the breaker's stateless local 503s)",
    "dns_queries": "DNS queries arriving at the lab resolver's policer (in front of dnsmasq), "
    "all clients; dns_dropped_*: those beyond its cap of dns_cap queries/s, dropped unanswered, "
    "by query name: carrier = the proxy routing a call, presence = vm-presence",
    "proxy_dns_timeouts": "Kamailio dns:slow_dns_request per second: lookups that took at "
    "least 0.9 x dns_retr_time (a loopback answer takes < 1 ms, so each waited for a lost "
    "query)",
    "calls_failed_restart": "calls started after the restart that were not OK, by the final "
    "answer to the INVITE (478 = Unresolvable destination: the carrier's SRV/A lookup timed "
    "out), 'timeout' when none came, 'late' when answered 200 after the deadline",
    "proxy_cpu_percent": "utime+stime of every process in the proxy's process group",
    "detection_s": "SIGSTOP → first 503 received by any client (canary every "
    "1/canary_per_second s, or a vm-presence instance)",
}


def fmt_seconds(value: float | None, missing: str = "never") -> str:
    return missing if value is None else f"{value:.2f} s"


def fmt_share(ok: int, total: int) -> str:
    return f"{100 * ok / total:.0f} % ({ok}/{total})" if total else "-"


def _opt(value: int | None) -> str:
    return "-" if value is None else str(value)


def _kinds(by_kind: Mapping[str, list[int]]) -> str:
    parts = []
    for kind in ("outbound", "inbound"):
        if kind in by_kind:
            started, ok = by_kind[kind]
            parts.append(f"{100 * ok / started:.0f} %" if started else "-")
    return " / ".join(parts) or "-"


def _failures(failed: Mapping[str, int]) -> str:
    return ", ".join(f"{reason} x{count}" for reason, count in failed.items()) or "none"


def _ramp(params: LabParams) -> float:
    return params.rise * params.interval + params.slow_start


def summary_table(params: LabParams, headlines: Mapping[Mode, Headline]) -> str:
    """The headline figures as a Markdown table, one column per run."""
    modes: list[Mode] = [m for m in MODES if m in headlines]
    h = headlines
    rows: list[tuple[str, Cells[Headline], str]] = [
        (
            "lock-up → first local 503",
            lambda x: fmt_seconds(x.detection_s),
            f"≤ {params.detection_bound:.2f} s ({OPEN_FORMULA} + poll)",
        ),
        (
            "lock-up → breaker open (sidecar)",
            {
                m: fmt_seconds(h[m].breaker_open_s) + (" (not enforced)" if m == "baseline" else "")
                for m in modes
            },
            f"≤ {params.open_bound:.2f} s ({OPEN_FORMULA})",
        ),
        (
            "requests sent toward the frozen server (new / with retransmissions)",
            lambda x: f"{x.sent_to_frozen_requests} / {x.sent_to_frozen_packets}",
            "",
        ),
        (
            "… forwarded after the first local 503",
            lambda x: (
                "-" if x.forwarded_after_detection is None else str(x.forwarded_after_detection)
            ),
            "0",
        ),
        (
            "sidecar probes to the frozen server (direct, not via the proxy)",
            lambda x: str(x.probes_to_frozen),
            "",
        ),
        (
            "peak requests/s reaching the restarted server",
            lambda x: str(x.peak_after_restart_rps),
            f"capacity {params.capacity}/s",
        ),
        (
            "… of which new arrivals / datagrams answered (peak per s)",
            lambda x: f"{x.peak_arrivals_after_restart_rps} / {x.peak_answered_after_restart_rps}",
            "",
        ),
        (
            "restart → normal (load ≤ capacity, ≤ 1 job instance)",
            lambda x: fmt_seconds(x.restart_to_normal_s, "not within the run"),
            "",
        ),
        (
            "restart → breaker closed",
            lambda x: fmt_seconds(x.restart_to_closed_s, "-"),
            f"≈ rise x interval + slow_start = {_ramp(params):g} s",
        ),
        (
            f"background calls OK (≤ {params.call_deadline:g} s) from lock-up to end",
            lambda x: fmt_share(x.calls_ok_incident, x.calls_incident),
            "",
        ),
        (
            f"background calls OK (≤ {params.call_deadline:g} s) in the restart window "
            "(restart → end)",
            lambda x: fmt_share(x.calls_ok_restart, x.calls_restart),
            "baseline ≤ 50 %, protected ≥ 99 %",
        ),
        (
            "… failed calls in that window, by final answer",
            lambda x: _failures(x.calls_failed_restart),
            "late: set up after 2 s, behind lookups waiting for lost queries; 478: unresolvable",
        ),
        (
            "… outbound calls (carrier, DNS) / inbound calls (PBX, TCP) OK, lock-up → end",
            lambda x: _kinds(x.calls_by_kind),
            "",
        ),
        (
            "registrar TCP connections open, peak",
            lambda x: _opt(x.tcp_connections_peak),
            f"limit {params.tcp_max_connections}" if params.sockets else "sockets not modelled",
        ),
        (
            "TCP connections refused at the limit: incoming, lock-up → end (tcp:local_reject)"
            " / outgoing to the PBX, whole run (log)",
            lambda x: f"{_opt(x.tcp_refused)} / {_opt(x.tcp_send_refused)}",
            "",
        ),
        (
            "DNS queries/s at the lab resolver, peak",
            lambda x: str(x.dns_queries_peak_rps),
            f"cap {params.dns_cap}/s" if params.dns else "DNS not modelled",
        ),
        (
            "DNS queries dropped at the cap, lock-up → end (registrar / vm-presence)",
            lambda x: f"{x.dns_dropped_carrier} / {x.dns_dropped_presence}",
            "",
        ),
        (
            "registrar DNS lookups timed out / failed (Kamailio dns: slow / failed requests)",
            lambda x: f"{_opt(x.proxy_dns_timeouts)} / {_opt(x.proxy_dns_failed)}",
            "",
        ),
        (
            "vm-presence DNS tries timed out, lock-up → end",
            lambda x: str(x.job_dns_timeouts),
            "",
        ),
        (
            f"presence canary PUBLISH OK (≤ {params.call_deadline:g} s) from lock-up to end",
            lambda x: fmt_share(x.canary_ok_incident, x.canary_incident),
            "",
        ),
        (
            "max concurrent vm-presence instances",
            lambda x: str(x.max_vm_presence_instances),
            "1",
        ),
        (
            "retransmissions on the wire during the lock-up",
            lambda x: str(x.retransmissions_lockup),
            "",
        ),
        (
            "local 503s sent by the proxy",
            lambda x: "-" if x.proxy_503_total is None else str(x.proxy_503_total),
            "",
        ),
        (
            "peak proxy CPU (% of one core)",
            lambda x: (
                "-" if x.proxy_cpu_peak_percent is None else f"{x.proxy_cpu_peak_percent:.0f} %"
            ),
            "",
        ),
    ]
    rows.append(
        (
            "peak proxy shared memory in use",
            lambda x: "-" if x.proxy_shm_peak_mb is None else f"{x.proxy_shm_peak_mb:.1f} MB",
            "",
        )
    )
    if not params.sockets:
        rows = [row for row in rows if "TCP" not in row[0]]
    return figure_table(headlines, rows)


def figure_table(headlines: Mapping[Mode, H], rows: Sequence[tuple[str, Cells[H], str]]) -> str:
    """One row per figure, one column per run that has a headline: a row's cells are its
    figure formatted from each run's headline (or given per run), then the bound or goal."""
    modes = [m for m in MODES if m in headlines]
    table: list[tuple[str, Mapping[Mode, str], str]] = []
    for label, cells, goal in rows:
        values = cells if isinstance(cells, Mapping) else {m: cells(headlines[m]) for m in modes}
        table.append((label, values, goal))
    return markdown_table(modes, table)


def markdown_table(
    modes: Sequence[Mode], rows: Sequence[tuple[str, Mapping[Mode, str], str]]
) -> str:
    """One row per figure: its label, one column per run, the bound or goal."""
    lines = [
        "| | " + " | ".join(modes) + " | bound / goal |",
        "|---|" + "---|" * len(modes) + "---|",
    ]
    for label, values, goal in rows:
        lines.append(f"| {label} | " + " | ".join(values[m] for m in modes) + f" | {goal} |")
    return "\n".join(lines) + "\n"


def write_json(path: Path, data: Mapping[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, default=str) + "\n")
    return path
