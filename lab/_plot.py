"""One PNG: both runs on one time axis, the lock-up and the restart shaded."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from lab._params import LabParams, Mode, TimelineParams
from lab._record import Second

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

COLORS: Mapping[Mode, str] = {"baseline": "#c0392b", "protected": "#1f6fb2"}
Metric = Callable[[Second], float | None]


def _percent(ok: int, total: int) -> float | None:
    return 100.0 * ok / total if total else None


PANELS: Sequence[tuple[str, Metric, Metric | None]] = (
    (
        "requests/s reaching\nthe presence server",
        lambda r: r.presence_load,
        lambda r: r.presence_answered,
    ),
    (
        "retransmissions/s\non the wire",
        lambda r: r.client_retransmissions + r.presence_retransmissions,
        None,
    ),
    ("local 503/s\nsent by the proxy", lambda r: r.proxy_503, None),
    ("breaker admit %\n(sidecar)", lambda r: r.admit_percent, None),
    ("vm-presence\ninstances running", lambda r: r.vm_presence_instances, None),
    ("proxy CPU\n(% of one core)", lambda r: r.proxy_cpu_percent, None),
    (
        "registrar TCP\nconnections open",
        lambda r: r.proxy_tcp_connections,
        None,
    ),
    (
        "DNS queries/s at the\nresolver (dotted: dropped)",
        lambda r: r.dns_queries,
        lambda r: r.dns_dropped_carrier + r.dns_dropped_presence,
    ),
    (
        "background calls OK %\n(by start second)",
        lambda r: _percent(r.calls_ok, r.calls_started),
        None,
    ),
)


def plot(runs: Mapping[Mode, Sequence[Second]], params: LabParams, path: Path) -> Path:
    plt = pyplot()
    panels = [p for p in PANELS if params.sockets or not p[0].startswith("registrar TCP")]
    figure, axes = plt.subplots(len(panels), 1, sharex=True, figsize=(11, 2.0 * len(panels) + 1.2))
    for ax, (label, metric, secondary) in zip(axes, panels, strict=True):
        shade(ax, params)
        for mode, rows in runs.items():
            xs = [r.t + 0.5 for r in rows]

            def line(values: list[float | None], **style: object) -> None:
                ys = [float("nan") if y is None else y for y in values]
                ax.plot(xs, ys, color=COLORS[mode], drawstyle="steps-mid", **style)  # noqa: B023

            dashed = mode == "baseline" and "admit" in label
            line(
                [metric(r) for r in rows],
                linewidth=1.6,
                label=mode,
                linestyle="--" if dashed else "-",
            )
            if secondary is not None:
                answered = f"{mode}: datagrams answered/s" if label.startswith("requests") else None
                line([secondary(r) for r in rows], linewidth=0.8, linestyle=":", label=answered)
        if label.startswith("requests/s"):
            limit_line(ax, params.capacity, f"capacity {params.capacity}/s")
            ax.legend(loc="upper left", fontsize=7, ncol=2)
        if label.startswith("registrar TCP") and params.sockets:
            limit = params.tcp_max_connections
            limit_line(ax, limit, f"tcp_max_connections {limit}")
        if label.startswith("DNS") and params.dns:
            limit_line(ax, params.dns_cap, f"cap {params.dns_cap}/s")
        if "%" in label and "CPU" not in label:
            ax.set_ylim(-5, 105)
        label_panel(ax, label)
    axes[0].set_title(
        "breaker lab: vm-presence vs. a presence server that locks up "
        f"({params.freeze:g} s) and restarts",
        fontsize=10,
    )
    axes[3].text(
        0.01,
        0.05,
        "baseline: verdict computed but not enforced (dashed)",
        transform=axes[3].transAxes,
        fontsize=7,
    )
    return save(figure, axes, params, path)


def pyplot() -> ModuleType:
    """matplotlib.pyplot, drawing to files only."""
    import matplotlib  # imported here: it costs every `breaker` command half a second

    matplotlib.use("Agg")  # no display: a file, always
    import matplotlib.pyplot as plt

    return plt


def limit_line(ax: Axes, value: float, text: str) -> None:
    """A dashed horizontal line at a limit, named at its left end."""
    ax.axhline(value, color="black", linewidth=0.9, linestyle="--")
    ax.text(0.2, value, f" {text}", va="bottom", fontsize=8)


def label_panel(ax: Axes, label: str) -> None:
    ax.set_ylabel(label, fontsize=8)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.25)


def save(figure: Figure, axes: Sequence[Axes], params: TimelineParams, path: Path) -> Path:
    """The shared time axis under the last panel; write the PNG and free the figure."""
    axes[-1].set_xlabel("seconds since traffic start")
    axes[-1].set_xlim(0, params.duration)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    pyplot().close(figure)
    return path


def shade(ax: Axes, params: TimelineParams) -> None:
    lock, restart = params.normal, params.normal + params.freeze
    ax.axvspan(lock, restart, color="#e74c3c", alpha=0.10, linewidth=0)
    ax.axvspan(restart, params.duration, color="#27ae60", alpha=0.07, linewidth=0)
    ax.axvline(lock, color="#e74c3c", linewidth=0.8)
    ax.axvline(restart, color="#27ae60", linewidth=0.8)
    where = ax.get_xaxis_transform()
    ax.text(lock, 1.0, " lock-up", transform=where, fontsize=6, va="top", color="#922b21")
    ax.text(restart, 1.0, " restart", transform=where, fontsize=6, va="top", color="#1e8449")
