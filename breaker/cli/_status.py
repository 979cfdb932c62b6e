"""`breaker status`: every breaker's verdict, once or live (`--watch`).

Exit codes: 0 all shown breakers closed, 1 any not, 2 error (one line on stderr,
printed by breaker.cli._app.main).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.console import Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from breaker._duration import format_duration
from breaker._errors import BreakerError, UnknownBreaker
from breaker.cli._app import EXIT_ERROR, RedisPrefixOption, app, duration_option, redis_url_option
from breaker.cli._options import ApiOptions, api_options
from breaker.cli._output import EXIT_NOT_OK, EXIT_OK, clock, console, print_json
from breaker.client import (
    DEFAULT_PREFIX,
    AsyncClient,
    BreakerStatus,
    EventFeed,
    Overview,
    redis_client,
)
from breaker.core import State

STATE_STYLE = {State.CLOSED: "green", State.HALF_OPEN: "yellow", State.OPEN: "bold red"}


@app.command()
@api_options()
def status(
    name: Annotated[str | None, typer.Argument(help="one breaker (default: all)")] = None,
    *,
    opts: ApiOptions,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="refresh live until Ctrl-C")] = False,
    redis_url: Annotated[
        str | None,
        redis_url_option("with --watch: refresh on breaker:events at once (else poll the API)"),
    ] = None,
    redis_prefix: RedisPrefixOption = DEFAULT_PREFIX,
    interval: Annotated[
        float | None,
        duration_option(
            "--interval",
            "with --watch: poll period (default: 1s; 10s when events arrive from Redis)",
        ),
    ] = None,
) -> None:
    """Every breaker: state, admit %, since, reason, force, last probe.

    Exit 0 if all shown breakers are closed, 1 if any is not, 2 on error.
    """
    if watch:
        code = asyncio.run(
            _watch(
                name,
                opts.as_json,
                opts.async_client(),
                redis_url,
                redis_prefix,
                interval,
            )
        )
        raise typer.Exit(code)
    with opts.client() as api:
        overview = _select(api.overview(), name)
    if opts.as_json:
        print_json(_overview_json(overview))
    else:
        console.print(_render(overview, time.time()))
    raise typer.Exit(EXIT_OK if overview.all_closed else EXIT_NOT_OK)


def _select(overview: Overview, name: str | None) -> Overview:
    if name is None:
        return overview
    chosen = tuple(b for b in overview.breakers if b.name == name)
    if not chosen:
        known = ", ".join(b.name for b in overview.breakers) or "none"
        raise UnknownBreaker(f"unknown breaker {name!r}; known: {known}")
    return Overview(chosen, overview.redis_up)


def _overview_json(overview: Overview) -> dict[str, Any]:
    return {
        "all_closed": overview.all_closed,
        "redis_up": overview.redis_up,
        "breakers": [asdict(b) for b in overview.breakers],
    }


def _render(overview: Overview, now: float) -> RenderableType:
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    for column in ("NAME", "STATE", "ADMIT", "SINCE", "REASON", "FORCED", "LAST PROBE"):
        table.add_column(column, overflow="fold")
    for b, indent in _grouped(overview.breakers):
        state = Text(b.state.value, style=STATE_STYLE[b.state])
        if b.forced is not None:
            state.append(" (forced)", style="dim")
        table.add_row(
            f"{indent}{b.name}" + (" (pool)" if b.kind == "pool" else ""),
            state,
            f"{b.admit}%",
            f"{clock(b.since)} ({format_duration(now - b.since)} ago)",
            b.reason,
            _forced(b, now),
            _probe(b),
        )
    parts: list[RenderableType] = [table]
    if not overview.redis_up:
        parts.append(
            Text(
                "warning: the sidecar cannot reach Redis; proxies reading Redis see no verdict",
                style="bold red",
            )
        )
    return Group(*parts)


def _grouped(breakers: tuple[BreakerStatus, ...]) -> list[tuple[BreakerStatus, str]]:
    """Pools first, each followed by its members (indented), then breakers in no pool."""
    by_name = {b.name: b for b in breakers}
    rows: list[tuple[BreakerStatus, str]] = []
    shown: set[str] = set()
    for pool in (b for b in breakers if b.kind == "pool"):
        rows.append((pool, ""))
        shown.add(pool.name)
        for member in pool.members:
            if member in by_name and member not in shown:
                rows.append((by_name[member], "  "))
                shown.add(member)
    rows += [(b, "") for b in breakers if b.name not in shown]
    return rows


def _forced(b: BreakerStatus, now: float) -> str:
    if b.forced is None:
        return "-"
    f = b.forced
    left = format_duration(f.until - now)
    return f"{f.state.value} by {f.by} until {clock(f.until)} (in {left}): {f.reason}"


def _probe(b: BreakerStatus) -> str:
    p = b.last_probe
    if p is None:
        return "-"
    rtt = f" {p.rtt_ms:.1f} ms" if p.rtt_ms is not None else ""
    result = "ok" if p.ok else f"failed: {p.reason}"
    return f"{result}{rtt}"


async def _watch(
    name: str | None,
    as_json: bool,
    api: AsyncClient,
    redis_url: str | None,
    prefix: str,
    interval: float | None,
) -> int:
    """Redraw on every event (Redis) or every `interval` (API poll) until Ctrl-C.

    A failed fetch shows the error and keeps trying: an on-call screen must not die
    on a blip. The exit code is that of the last view.
    """
    wake = asyncio.Event()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    feed: EventFeed | None = None
    tasks: list[asyncio.Task[None]] = []
    if redis_url:
        feed = EventFeed(redis_client(redis_url, prefix), None, wake.set, prefix)
        tasks.append(asyncio.create_task(feed.run()))
    live = console.is_terminal and not as_json
    code = EXIT_ERROR
    last_shown = ""
    screen = Live(console=console, auto_refresh=False) if live else None
    try:
        with screen or contextlib.nullcontext():
            while not stop.is_set():
                wake.clear()
                try:
                    overview = _select(await api.overview(), name)
                    code = EXIT_OK if overview.all_closed else EXIT_NOT_OK
                    view: RenderableType = _render(overview, time.time())
                    data = json.dumps(_overview_json(overview))
                    change = _significant(overview)
                except BreakerError as exc:
                    code = EXIT_ERROR
                    view = Text(f"breaker: {exc}", style="bold red")
                    data = change = json.dumps({"error": str(exc)})
                if screen is not None:
                    source = (
                        "events from Redis"
                        if feed is not None and feed.subscribed
                        else "polling the API"
                    )
                    header = Text(
                        f"breaker status: {clock(time.time())}, {source}; Ctrl-C to quit",
                        style="dim",
                    )
                    screen.update(Group(header, view), refresh=True)
                elif change != last_shown:  # not a terminal: print changes only
                    last_shown = change
                    if as_json:
                        typer.echo(data)
                    else:
                        console.print(f"--- {clock(time.time())}")
                        console.print(view)
                period = interval or (10.0 if feed is not None and feed.subscribed else 1.0)
                await _first_of(wake, stop, period)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await api.aclose()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return code


def _significant(overview: Overview) -> str:
    """What a change worth printing is: not every probe's round-trip time."""
    return json.dumps(
        [overview.redis_up]
        + [
            [b.name, b.state, b.admit, b.epoch, b.reason, asdict(b.forced) if b.forced else None]
            for b in overview.breakers
        ]
    )


async def _first_of(a: asyncio.Event, b: asyncio.Event, period: float) -> None:
    waits = [asyncio.create_task(a.wait()), asyncio.create_task(b.wait())]
    try:
        await asyncio.wait(waits, timeout=period, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()
