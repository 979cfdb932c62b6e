"""From raw observations to the per-second series and the headline figures. Pure."""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence

from lab._params import LabParams
from lab._record import CanaryResult, Headline, RunRecord, Sample, Second

# A request the proxy relayed within this long after a client saw the first local 503
# was already on its way (the 503 and the relayed datagram cross on loopback).
DETECTION_SLACK = 0.05


def _count(times: Sequence[float], start: float, end: float) -> int:
    """How many sorted times fall in [start, end)."""
    return bisect_left(times, end) - bisect_left(times, start)


def _per_second(times: Sequence[float], t0: float, seconds: int) -> list[int]:
    counts = [0] * seconds
    for t in times:
        index = math.floor(t - t0)
        if 0 <= index < seconds:
            counts[index] += 1
    return counts


def _sample_at(samples: Sequence[Sample], t: float) -> Sample | None:
    """The sample taken at t (the end of the second [t - 1, t)), if there is one."""
    best: Sample | None = None
    for sample in samples:
        if sample.t <= t + 0.5:
            best = sample
    return best if best is not None and abs(best.t - t) < 0.75 else None


def _delta(now: int | float | None, before: int | float | None) -> float | None:
    if now is None or before is None:
        return None
    return max(0.0, float(now) - float(before))


def _sample_delta(later: Sample | None, earlier: Sample | None, counter: str) -> float | None:
    """How much a sampled counter grew between two samples; None when either is missing."""
    if later is None or earlier is None:
        return None
    return _delta(getattr(later, counter), getattr(earlier, counter))


def series(record: RunRecord, params: LabParams) -> list[Second]:
    seconds = max(0, math.floor(record.end_at - record.t0 + 1e-6))
    t0 = record.t0
    requests = _per_second(record.relay_requests, t0, seconds)
    retrans = _per_second(record.relay_retransmissions, t0, seconds)
    answered = _per_second(record.relay_responses, t0, seconds)
    calls_started = _per_second([c.started_at for c in record.calls], t0, seconds)
    calls_ok = _per_second([c.started_at for c in record.calls if c.ok], t0, seconds)
    canary_sent = _per_second([c.sent_at for c in record.canary], t0, seconds)
    deadline = params.call_deadline
    canary_ok = _per_second(
        [c.sent_at for c in record.canary if _on_time(c, deadline)], t0, seconds
    )
    canary_late = _per_second(
        [c.sent_at for c in record.canary if _answered(c) and not _on_time(c, deadline)],
        t0,
        seconds,
    )
    thaw_index = math.floor(record.thaw_at - t0 + 1e-6)
    backlog = _count(record.relay_requests, record.freeze_at, record.thaw_at)
    canary_503 = _per_second([c.done_at for c in record.canary if c.status == 503], t0, seconds)
    verdicts = sorted(record.proxy_verdicts)
    dns_queries = _per_second(
        sorted(t for times in record.dns_queries.values() for t in times), t0, seconds
    )
    dropped_carrier = _per_second(record.dns_dropped.get("carrier", []), t0, seconds)
    dropped_presence = _per_second(record.dns_dropped.get("presence", []), t0, seconds)
    rows: list[Second] = []
    for i in range(seconds):
        end = _sample_at(record.samples, i + 1)
        start = _sample_at(record.samples, i)
        client_retrans = _sample_delta(end, start, "client_retransmissions")
        proxy_503 = _sample_delta(end, start, "proxy_5xx_sent")
        cpu = _sample_delta(end, start, "proxy_cpu_seconds")
        proxy_dns = _sample_delta(end, start, "proxy_dns_slow")
        tcp_refused = _sample_delta(end, start, "proxy_tcp_refused")
        job_dns = _sample_delta(end, start, "job_dns_timeouts")
        enforced = [v for v in verdicts if v[0] <= t0 + i + 1]
        rows.append(
            Second(
                t=i,
                phase=params.phase_at(i + 0.5),
                presence_requests=requests[i],
                presence_load=(
                    min(requests[i] + backlog, answered[i]) if i == thaw_index else requests[i]
                ),
                presence_retransmissions=retrans[i],
                presence_answered=answered[i],
                client_retransmissions=int(client_retrans or 0),
                proxy_503=int(proxy_503) if proxy_503 is not None else None,
                breaker_state=end.breaker_state if end else None,
                admit_percent=end.admit_percent if end else None,
                proxy_verdict=(
                    f"{enforced[-1][1]}:{enforced[-1][2]}"
                    if enforced
                    else (None if record.mode == "baseline" else "none")
                ),
                vm_presence_instances=end.vm_presence_running if end else 0,
                proxy_cpu_percent=round(cpu * 100, 1) if cpu is not None else None,
                proxy_shm_mb=(
                    round(end.proxy_shm_bytes / 2**20, 1)
                    if end and end.proxy_shm_bytes is not None
                    else None
                ),
                proxy_transactions=end.proxy_transactions if end else None,
                calls_started=calls_started[i],
                calls_ok=calls_ok[i],
                canary_sent=canary_sent[i],
                canary_ok=canary_ok[i],
                canary_503=canary_503[i],
                canary_late=canary_late[i],
                dns_queries=dns_queries[i],
                dns_dropped_carrier=dropped_carrier[i],
                dns_dropped_presence=dropped_presence[i],
                proxy_dns_timeouts=int(proxy_dns) if proxy_dns is not None else None,
                job_dns_timeouts=int(job_dns or 0),
                proxy_tcp_connections=end.proxy_tcp_open if end else None,
                proxy_tcp_refused=int(tcp_refused) if tcp_refused is not None else None,
            )
        )
    return rows


def headline(record: RunRecord, rows: Sequence[Second], params: LabParams) -> Headline:
    freeze, thaw = record.freeze_at, record.thaw_at
    first_503 = min((t for t in record.first_503_at if t >= freeze), default=None)
    first_503 = min(
        [t for t in (first_503, _first_canary_503(record, freeze)) if t is not None],
        default=None,
    )
    detection = first_503 - freeze if first_503 is not None and first_503 < thaw else None
    opened = next(
        (
            float(e["at"])
            for e in record.breaker_events
            if e.get("to") == "open" and float(e.get("at", 0)) >= freeze
        ),
        None,
    )
    enforcing = next(
        (at for at, state, _ in sorted(record.proxy_verdicts) if at >= freeze and state == "open"),
        None,
    )
    closed = next(
        (
            float(e["at"])
            for e in record.breaker_events
            if e.get("to") == "closed" and float(e.get("at", 0)) >= thaw
        ),
        None,
    )
    requests = record.relay_requests
    forwarded_after = (
        _count(requests, first_503 + DETECTION_SLACK, thaw)
        if detection is not None and first_503 is not None
        else None
    )
    thaw_index = math.floor(thaw - record.t0 + 1e-6)
    after = [r for r in rows if r.t >= thaw_index]
    normal_from = _restart_to_normal(after, params.capacity)
    incident_calls = [c for c in record.calls if c.started_at >= freeze]
    restart_calls = [c for c in record.calls if c.started_at >= thaw]
    failed: dict[str, int] = {}
    for c in restart_calls:
        if not c.ok:
            reason = "late" if c.setup_status == 200 else str(c.setup_status or "timeout")
            failed[reason] = failed.get(reason, 0) + 1
    first_sample = _sample_at(record.samples, math.floor(freeze - record.t0 + 1e-6))
    last_sample = record.samples[-1] if record.samples else None
    incident_rows = [r for r in rows if r.phase != "normal"]
    by_kind: dict[str, list[int]] = {}
    for c in incident_calls:
        counts = by_kind.setdefault(c.kind, [0, 0])
        counts[0] += 1
        counts[1] += int(c.ok)
    tcp_open = [r.proxy_tcp_connections for r in rows if r.proxy_tcp_connections is not None]
    incident_canary = [c for c in record.canary if c.sent_at >= freeze]
    lockup_rows = [r for r in rows if r.phase == "locked_up"]
    proxy_503 = [r.proxy_503 for r in rows]
    cpu = [r.proxy_cpu_percent for r in rows if r.proxy_cpu_percent is not None]
    shm = [r.proxy_shm_mb for r in rows if r.proxy_shm_mb is not None]
    return Headline(
        detection_bound_s=round(params.detection_bound, 3),
        detection_s=_round(detection),
        breaker_open_s=_round(opened - freeze if opened is not None and opened < thaw else None),
        proxy_enforcing_s=_round(
            enforcing - freeze if enforcing is not None and enforcing < thaw else None
        ),
        sent_to_frozen_requests=_count(requests, freeze, thaw),
        sent_to_frozen_packets=_count(requests, freeze, thaw)
        + _count(record.relay_retransmissions, freeze, thaw),
        forwarded_after_detection=forwarded_after,
        probes_to_frozen=record.probes_during_lockup,
        capacity=params.capacity,
        peak_after_restart_rps=max((r.presence_load for r in after), default=0),
        peak_arrivals_after_restart_rps=max((r.presence_requests for r in after), default=0),
        peak_answered_after_restart_rps=max((r.presence_answered for r in after), default=0),
        restart_to_normal_s=(
            _round(max(0.0, record.t0 + normal_from - thaw)) if normal_from is not None else None
        ),
        restart_to_closed_s=_round(closed - thaw if closed is not None else None),
        calls_incident=len(incident_calls),
        calls_ok_incident=sum(1 for c in incident_calls if c.ok),
        calls_restart=len(restart_calls),
        calls_ok_restart=sum(1 for c in restart_calls if c.ok),
        calls_failed_restart=dict(sorted(failed.items(), key=lambda kv: -kv[1])),
        dns_cap=params.dns_cap if params.dns else None,
        dns_queries_peak_rps=max((r.dns_queries for r in rows), default=0),
        dns_dropped_carrier=_count(record.dns_dropped.get("carrier", []), freeze, record.end_at),
        dns_dropped_presence=_count(record.dns_dropped.get("presence", []), freeze, record.end_at),
        proxy_dns_timeouts=_as_int(_sample_delta(last_sample, first_sample, "proxy_dns_slow")),
        proxy_dns_failed=_as_int(_sample_delta(last_sample, first_sample, "proxy_dns_failed")),
        job_dns_timeouts=sum(r.job_dns_timeouts for r in incident_rows),
        calls_by_kind=dict(sorted(by_kind.items(), reverse=True)),
        tcp_max_connections=params.tcp_max_connections if params.sockets else None,
        tcp_connections_peak=max(tcp_open) if tcp_open and params.sockets else None,
        tcp_send_refused=record.tcp_send_refused,
        tcp_refused=(
            _as_int(_sample_delta(last_sample, first_sample, "proxy_tcp_refused"))
            if params.sockets
            else None
        ),
        canary_incident=len(incident_canary),
        canary_ok_incident=sum(1 for c in incident_canary if _on_time(c, params.call_deadline)),
        max_vm_presence_instances=max((r.vm_presence_instances for r in rows), default=0),
        retransmissions_lockup=sum(
            r.client_retransmissions + r.presence_retransmissions for r in lockup_rows
        ),
        proxy_503_total=(
            sum(v for v in proxy_503 if v is not None)
            if any(v is not None for v in proxy_503)
            else None
        ),
        proxy_cpu_peak_percent=max(cpu) if cpu else None,
        proxy_shm_peak_mb=max(shm) if shm else None,
    )


def _answered(result: CanaryResult) -> bool:
    return result.status is not None and 200 <= result.status < 300


def _on_time(result: CanaryResult, deadline: float) -> bool:
    return _answered(result) and result.done_at - result.sent_at <= deadline


def _first_canary_503(record: RunRecord, since: float) -> float | None:
    return min(
        (c.done_at for c in record.canary if c.status == 503 and c.done_at >= since), default=None
    )


def _restart_to_normal(after: Sequence[Second], capacity: int) -> int | None:
    """Start (s since traffic start) of the first second from which, to the end of the run,
    the presence server gets no more than its capacity and at most one job instance runs."""
    start: int | None = None
    for row in after:
        normal = row.presence_load <= capacity and row.vm_presence_instances <= 1
        if normal and start is None:
            start = row.t
        elif not normal:
            start = None
    return start


def _round(value: float | None, digits: int = 3) -> float | None:
    return round(value, digits) if value is not None else None


def _as_int(value: float | None) -> int | None:
    return int(value) if value is not None else None
