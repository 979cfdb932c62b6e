"""The pool scenario's figures (pure), its Markdown table and its plot."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from breaker.core import detection_bound
from lab._analysis import _per_second
from lab._params import Mode
from lab._plot import COLORS, label_panel, limit_line, pyplot, save, shade
from lab._pool import FROZEN, MEMBERS, TM_FR_TIMER_S, PoolParams, PoolRecord, Publish
from lab._report import Cells, figure_table, fmt_seconds, fmt_share


@dataclass(frozen=True)
class PoolSecond:
    """One second of one run; t counts from the start of traffic."""

    t: int
    phase: str
    arrived: dict[str, int]  # datagrams (requests and retransmissions) reaching each member
    requests: dict[str, int]  # new requests reaching each member
    answered: dict[str, int]  # responses each member sent
    frozen_subscribers_sent: int  # PUBLISH sent for the frozen member's subscribers
    frozen_subscribers_on_time: int  # … of them answered 200 within publish_deadline
    local_503: int


@dataclass(frozen=True)
class PoolHeadline:
    subscribers: int
    frozen_subscribers: int
    served_during_lockup: int  # frozen member's subscribers with a 200 from another member
    served_share: float | None
    failover_s: float | None  # lock-up → first such 200
    failover_bound_s: float  # protected: the members' detection bound + the proxy's poll
    out_of_rotation_s: float | None  # lock-up → dispatcher down (baseline) / proxy reads open
    back_in_rotation_s: float | None  # restart → dispatcher up / proxy reads half_open
    sent_during_lockup: int  # PUBLISH for the frozen member's subscribers sent in the lock-up
    on_time_during_lockup: int  # … answered 200 within publish_deadline
    queued_requests: int  # new requests that reached the frozen member while it was frozen
    queued_packets: int  # … with the proxy's retransmissions
    normal_rps: float  # new requests/s reaching the frozen member before the lock-up
    # the restarted member's load (new requests/s; in the restart second the queued ones
    # are added, capped by what it answered: the incident scenario's `presence_load`),
    # the peak within burst_window after the restart
    peak_after_restart_rps: int
    burst_ratio: float | None  # peak / normal
    peak_answered_after_restart: int  # datagrams it answered/s (retransmissions too), the peak
    capacity: int
    busiest_other_peak_rps: int  # the highest requests/s on another member during the lock-up
    local_503: int
    unanswered: int  # no final answer, or the proxy's 408


def homes(record: PoolRecord) -> dict[str, str]:
    """Each subscriber's member: the one that answered its PUBLISH before the lock-up."""
    return {
        p.user: p.server
        for p in sorted(record.publishes, key=lambda p: p.done_at)
        if p.status == 200 and p.done_at < record.freeze_at and p.server in MEMBERS
    }


def _ok_within(p: Publish, deadline: float) -> bool:
    return p.status == 200 and p.done_at - p.sent_at <= deadline


def series(record: PoolRecord, params: PoolParams) -> list[PoolSecond]:
    seconds = max(0, math.floor(record.end_at - record.t0 + 1e-6))
    t0 = record.t0
    theirs = {u for u, h in homes(record).items() if h == FROZEN}
    mine = [p for p in record.publishes if p.user in theirs]
    arrived = {
        n: _per_second(sorted(r["requests"] + r["retransmissions"]), t0, seconds)
        for n, r in record.relay.items()
    }
    requests = {n: _per_second(r["requests"], t0, seconds) for n, r in record.relay.items()}
    answered = {n: _per_second(r["responses"], t0, seconds) for n, r in record.relay.items()}
    sent = _per_second([p.sent_at for p in mine], t0, seconds)
    on_time = _per_second(
        [p.sent_at for p in mine if _ok_within(p, params.publish_deadline)], t0, seconds
    )
    rejected = _per_second([p.done_at for p in record.publishes if p.status == 503], t0, seconds)
    return [
        PoolSecond(
            t=i,
            phase=params.phase_at(i),
            arrived={n: counts[i] for n, counts in arrived.items()},
            requests={n: counts[i] for n, counts in requests.items()},
            answered={n: counts[i] for n, counts in answered.items()},
            frozen_subscribers_sent=sent[i],
            frozen_subscribers_on_time=on_time[i],
            local_503=rejected[i],
        )
        for i in range(seconds)
    ]


def _first(
    rotation: Sequence[tuple[float, str, str]], since: float, states: tuple[str, ...]
) -> float | None:
    found = [t for t, name, state in rotation if name == FROZEN and state in states and t >= since]
    return round(min(found) - since, 2) if found else None


def headline(record: PoolRecord, rows: Sequence[PoolSecond], params: PoolParams) -> PoolHeadline:
    home = homes(record)
    theirs = {u for u, h in home.items() if h == FROZEN}
    lockup = (record.freeze_at, record.thaw_at)
    served = [
        p
        for p in record.publishes
        if p.user in theirs
        and p.status == 200
        and p.server != FROZEN
        and lockup[0] <= p.done_at < lockup[1]
    ]
    served_users = {p.user for p in served}
    sent = [p for p in record.publishes if p.user in theirs and lockup[0] <= p.sent_at < lockup[1]]
    relay = record.relay.get(FROZEN, {})
    queued = [t for t in relay.get("requests", []) if lockup[0] <= t < lockup[1]]
    queued_retrans = [t for t in relay.get("retransmissions", []) if lockup[0] <= t < lockup[1]]
    normal = [r.requests.get(FROZEN, 0) for r in rows if 1 <= r.t < params.normal]
    normal_rps = sum(normal) / len(normal) if normal else 0.0
    thaw = math.floor(record.thaw_at - record.t0 + 1e-6)
    after = [r for r in rows if thaw <= r.t < thaw + params.burst_window]

    def load(r: PoolSecond) -> int:
        new = r.requests.get(FROZEN, 0)
        return min(new + len(queued), r.answered.get(FROZEN, 0)) if r.t == thaw else new

    peak = max((load(r) for r in after), default=0)
    others = [
        count
        for r in rows
        if r.phase == "locked_up"
        for name, count in r.arrived.items()
        if name != FROZEN
    ]
    return PoolHeadline(
        subscribers=len(home),
        frozen_subscribers=len(theirs),
        served_during_lockup=len(served_users),
        served_share=round(len(served_users) / len(theirs), 4) if theirs else None,
        failover_s=round(min(p.done_at for p in served) - lockup[0], 2) if served else None,
        failover_bound_s=round(failover_bound(params), 2),
        out_of_rotation_s=_first(record.rotation, lockup[0], ("down", "open")),
        back_in_rotation_s=_first(record.rotation, lockup[1], ("up", "half_open", "closed")),
        sent_during_lockup=len(sent),
        on_time_during_lockup=sum(1 for p in sent if _ok_within(p, params.publish_deadline)),
        queued_requests=len(queued),
        queued_packets=len(queued) + len(queued_retrans),
        normal_rps=round(normal_rps, 1),
        peak_after_restart_rps=peak,
        burst_ratio=round(peak / normal_rps, 1) if normal_rps else None,
        peak_answered_after_restart=max((r.answered.get(FROZEN, 0) for r in after), default=0),
        capacity=params.capacity,
        busiest_other_peak_rps=max(others, default=0),
        local_503=sum(1 for p in record.publishes if p.status == 503),
        unanswered=sum(1 for p in record.publishes if p.status in (None, 408)),
    )


def failover_bound(params: PoolParams) -> float:
    """Protected: lock-up → breaker open (fast_interval = timeout) + the proxy's poll."""
    return detection_bound(params.interval, params.timeout, params.timeout, params.fall) + (
        params.poll_ms / 1000
    )


def dispatcher_bound(params: PoolParams) -> float:
    """Baseline: a ping is sent within one interval, fails after tm's fr_timer, and the
    member is down after `ds_probing_threshold` failures, one interval apart."""
    return params.ds_probing_threshold * params.ds_ping_interval + TM_FR_TIMER_S


def spread(record: PoolRecord) -> dict[str, int]:
    return dict(sorted(Counter(homes(record).values()).items()))


# ---------------------------------------------------------------- the table


def summary_table(params: PoolParams, headlines: Mapping[Mode, PoolHeadline]) -> str:
    """The pool figures as a Markdown table, one column per run."""
    in_lockup = f"none in the {params.freeze:g} s lock-up"
    rows: list[tuple[str, Cells[PoolHeadline], str]] = [
        (
            "frozen member's subscribers with a 200 during the lock-up",
            lambda x: fmt_share(x.served_during_lockup, x.frozen_subscribers),
            "protected ≥ 90 %",
        ),
        (
            "lock-up → first 200 for one of them from another member",
            lambda x: fmt_seconds(x.failover_s, in_lockup),
            f"protected ≤ {failover_bound(params):.2f} s (detection + poll); "
            f"baseline: tm's fr_timer, {TM_FR_TIMER_S:g} s",
        ),
        (
            f"their PUBLISH sent in the lock-up answered 200 within {params.publish_deadline:g} s",
            lambda x: fmt_share(x.on_time_during_lockup, x.sent_during_lockup),
            "",
        ),
        (
            "lock-up → member out of rotation (dispatcher down / proxy reads open)",
            lambda x: fmt_seconds(x.out_of_rotation_s, in_lockup),
            f"baseline ≤ {dispatcher_bound(params):g} s "
            f"({params.ds_probing_threshold} x {params.ds_ping_interval} s pings + fr_timer)",
        ),
        (
            "requests queued at the frozen member (new / with retransmissions)",
            lambda x: f"{x.queued_requests} / {x.queued_packets}",
            "",
        ),
        (
            "restart → back in rotation (dispatcher up / proxy reads half_open)",
            lambda x: (
                "- (never out)"
                if x.out_of_rotation_s is None
                else fmt_seconds(x.back_in_rotation_s, "never")
            ),
            f"protected ≈ rise x interval = {params.rise * params.interval:g} s, "
            f"then slow start {params.slow_start:g} s to its full share",
        ),
        (
            f"restarted member: peak requests/s in the {params.burst_window:g} s after the restart "
            "(new, the queued ones included)",
            lambda x: (
                f"{x.peak_after_restart_rps}"
                + (f" ({x.burst_ratio:g}x normal)" if x.burst_ratio is not None else "")
            ),
            f"≤ capacity {params.capacity}/s",
        ),
        (
            "… datagrams it answered (the proxy's retransmissions too), peak per s",
            lambda x: str(x.peak_answered_after_restart),
            "",
        ),
        (
            "… its normal rate (new requests/s before the lock-up)",
            lambda x: f"{x.normal_rps:g}",
            "",
        ),
        (
            "busiest other member: peak requests/s during the lock-up",
            lambda x: str(x.busiest_other_peak_rps),
            f"≤ capacity {params.capacity}/s",
        ),
        (
            "PUBLISH answered 503 by the proxy / unanswered or 408",
            lambda x: f"{x.local_503} / {x.unanswered}",
            "",
        ),
    ]
    return figure_table(headlines, rows)


# ---------------------------------------------------------------- the plot


def _on_time_percent(r: PoolSecond) -> float | None:
    if not r.frozen_subscribers_sent:
        return None
    return 100.0 * r.frozen_subscribers_on_time / r.frozen_subscribers_sent


def plot(runs: Mapping[Mode, Sequence[PoolSecond]], params: PoolParams, path: Path) -> Path:
    plt = pyplot()
    others = [m for m in MEMBERS if m != FROZEN]
    figure, axes = plt.subplots(3, 1, sharex=True, figsize=(11, 7.2))
    panels: tuple[tuple[str, Callable[[PoolSecond], float | None]], ...] = (
        (f"requests/s reaching\n{FROZEN} (frozen)", lambda r: r.arrived.get(FROZEN, 0)),
        (
            "requests/s reaching\nthe busiest other member",
            lambda r: max(r.arrived.get(n, 0) for n in others),
        ),
        (
            f"its subscribers' PUBLISH\n200 within {params.publish_deadline:g} s, %",
            _on_time_percent,
        ),
    )
    for index, (ax, (label, metric)) in enumerate(zip(axes, panels, strict=True)):
        shade(ax, params)
        for mode, rows in runs.items():
            xs = [r.t + 0.5 for r in rows]
            ys = [metric(r) for r in rows]
            ax.plot(
                xs,
                [float("nan") if y is None else y for y in ys],
                color=COLORS[mode],
                linewidth=1.6,
                label=mode,
                drawstyle="steps-mid",
            )
            if index == 0:
                ax.plot(
                    xs,
                    [r.answered.get(FROZEN, 0) for r in rows],
                    color=COLORS[mode],
                    linewidth=0.8,
                    linestyle=":",
                    label=f"{mode}: answered/s",
                    drawstyle="steps-mid",
                )
        if index < 2:
            ax.set_ylim(bottom=0)
            limit_line(ax, params.capacity, f"capacity {params.capacity}/s")
        else:
            ax.set_ylim(-5, 105)
        label_panel(ax, label)
    axes[0].legend(loc="upper left", fontsize=7, ncol=2)
    axes[0].set_title(
        f"breaker lab, pool: 3 presence servers, {FROZEN} locks up ({params.freeze:g} s) and "
        "restarts; dispatcher alone vs the breaker pool route",
        fontsize=10,
    )
    return save(figure, axes, params, path)
