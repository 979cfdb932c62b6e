"""results.json and the Markdown summary table, baseline vs protected."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from lab._params import MODES, LabParams, Mode
from lab._record import Headline, Outcome, RunRecord, Second

RESULTS_VERSION = 1

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


def _seconds(value: float | None, missing: str = "never") -> str:
    return missing if value is None else f"{value:.2f} s"


def _ratio(ok: int, total: int) -> str:
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
    rows: list[tuple[str, dict[str, str], str]] = [
        (
            "lock-up → first local 503",
            {m: _seconds(h[m].detection_s) for m in modes},
            f"≤ {params.detection_bound:.2f} s ({OPEN_FORMULA} + poll)",
        ),
        (
            "lock-up → breaker open (sidecar)",
            {
                m: _seconds(h[m].breaker_open_s) + (" (not enforced)" if m == "baseline" else "")
                for m in modes
            },
            f"≤ {params.open_bound:.2f} s ({OPEN_FORMULA})",
        ),
        (
            "requests sent toward the frozen server (new / with retransmissions)",
            {m: f"{h[m].sent_to_frozen_requests} / {h[m].sent_to_frozen_packets}" for m in modes},
            "",
        ),
        (
            "… forwarded after the first local 503",
            {
                m: "-"
                if h[m].forwarded_after_detection is None
                else str(h[m].forwarded_after_detection)
                for m in modes
            },
            "0",
        ),
        (
            "sidecar probes to the frozen server (direct, not via the proxy)",
            {m: str(h[m].probes_to_frozen) for m in modes},
            "",
        ),
        (
            "peak requests/s reaching the restarted server",
            {m: str(h[m].peak_after_restart_rps) for m in modes},
            f"capacity {params.capacity}/s",
        ),
        (
            "… of which new arrivals / datagrams answered (peak per s)",
            {
                m: f"{h[m].peak_arrivals_after_restart_rps} / "
                f"{h[m].peak_answered_after_restart_rps}"
                for m in modes
            },
            "",
        ),
        (
            "restart → normal (load ≤ capacity, ≤ 1 job instance)",
            {m: _seconds(h[m].restart_to_normal_s, "not within the run") for m in modes},
            "",
        ),
        (
            "restart → breaker closed",
            {m: _seconds(h[m].restart_to_closed_s, "-") for m in modes},
            f"≈ rise x interval + slow_start = {_ramp(params):g} s",
        ),
        (
            f"background calls OK (≤ {params.call_deadline:g} s) from lock-up to end",
            {m: _ratio(h[m].calls_ok_incident, h[m].calls_incident) for m in modes},
            "",
        ),
        (
            f"background calls OK (≤ {params.call_deadline:g} s) in the restart window "
            "(restart → end)",
            {m: _ratio(h[m].calls_ok_restart, h[m].calls_restart) for m in modes},
            "baseline ≤ 50 %, protected ≥ 99 %",
        ),
        (
            "… failed calls in that window, by final answer",
            {m: _failures(h[m].calls_failed_restart) for m in modes},
            "late: set up after 2 s, behind lookups waiting for lost queries; 478: unresolvable",
        ),
        (
            "… outbound calls (carrier, DNS) / inbound calls (PBX, TCP) OK, lock-up → end",
            {m: _kinds(h[m].calls_by_kind) for m in modes},
            "",
        ),
        (
            "registrar TCP connections open, peak",
            {m: _opt(h[m].tcp_connections_peak) for m in modes},
            f"limit {params.tcp_max_connections}" if params.sockets else "sockets not modelled",
        ),
        (
            "TCP connections refused at the limit: incoming, lock-up → end (tcp:local_reject)"
            " / outgoing to the PBX, whole run (log)",
            {m: f"{_opt(h[m].tcp_refused)} / {_opt(h[m].tcp_send_refused)}" for m in modes},
            "",
        ),
        (
            "DNS queries/s at the lab resolver, peak",
            {m: str(h[m].dns_queries_peak_rps) for m in modes},
            f"cap {params.dns_cap}/s" if params.dns else "DNS not modelled",
        ),
        (
            "DNS queries dropped at the cap, lock-up → end (registrar / vm-presence)",
            {m: f"{h[m].dns_dropped_carrier} / {h[m].dns_dropped_presence}" for m in modes},
            "",
        ),
        (
            "registrar DNS lookups timed out / failed (Kamailio dns: slow / failed requests)",
            {m: f"{_opt(h[m].proxy_dns_timeouts)} / {_opt(h[m].proxy_dns_failed)}" for m in modes},
            "",
        ),
        (
            "vm-presence DNS tries timed out, lock-up → end",
            {m: str(h[m].job_dns_timeouts) for m in modes},
            "",
        ),
        (
            f"presence canary PUBLISH OK (≤ {params.call_deadline:g} s) from lock-up to end",
            {m: _ratio(h[m].canary_ok_incident, h[m].canary_incident) for m in modes},
            "",
        ),
        (
            "max concurrent vm-presence instances",
            {m: str(h[m].max_vm_presence_instances) for m in modes},
            "1",
        ),
        (
            "retransmissions on the wire during the lock-up",
            {m: str(h[m].retransmissions_lockup) for m in modes},
            "",
        ),
        (
            "local 503s sent by the proxy",
            {m: "-" if h[m].proxy_503_total is None else str(h[m].proxy_503_total) for m in modes},
            "",
        ),
        (
            "peak proxy CPU (% of one core)",
            {
                m: "-"
                if h[m].proxy_cpu_peak_percent is None
                else f"{h[m].proxy_cpu_peak_percent:.0f} %"
                for m in modes
            },
            "",
        ),
    ]
    rows.append(
        (
            "peak proxy shared memory in use",
            {
                m: "-" if h[m].proxy_shm_peak_mb is None else f"{h[m].proxy_shm_peak_mb:.1f} MB"
                for m in modes
            },
            "",
        )
    )
    if not params.sockets:
        rows = [row for row in rows if "TCP" not in row[0]]
    return markdown_table(modes, rows)


def markdown_table(
    modes: Sequence[Mode], rows: Sequence[tuple[str, Mapping[str, str], str]]
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
