"""On-call commands over the sidecar's API: status, force, release, history, check.

Each is a thin shell over breaker.client: parse the options, make one call, render.
Exit codes: 0 all closed / allowed, 1 not closed / not allowed, 2 error (one line on
stderr, printed by breaker.cli._app.main).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from breaker._duration import format_duration
from breaker._errors import BreakerError, UnknownBreaker
from breaker.cli._app import (
    EXIT_ERROR,
    JsonOption,
    RedisPrefixOption,
    TimeoutOption,
    TokenFileOption,
    TokenOption,
    UrlOption,
    app,
    duration,
)
from breaker.client import (
    DEFAULT_PREFIX,
    DEFAULT_TIMEOUT,
    DEFAULT_URL,
    AsyncClient,
    BreakerStatus,
    Client,
    EventFeed,
    HistoryEvent,
    Overview,
    read_token,
    redis_client,
)
from breaker.core import State

EXIT_OK = 0
EXIT_NOT_OK = 1  # status: some breaker not closed; check: not allowed

STATE_STYLE = {State.CLOSED: "green", State.HALF_OPEN: "yellow", State.OPEN: "bold red"}

console = Console(highlight=False)


class ForceState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


def _client(url: str, token: str | None, token_file: Path | None, timeout: float) -> Client:
    return Client(url, read_token(token, token_file), timeout)


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=False))


# ---------------------------------------------------------------- status


@app.command()
def status(
    name: Annotated[str | None, typer.Argument(help="one breaker (default: all)")] = None,
    as_json: JsonOption = False,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="refresh live until Ctrl-C")] = False,
    redis_url: Annotated[
        str | None,
        typer.Option(
            "--redis-url",
            envvar="BREAKER_REDIS_URL",
            help="with --watch: refresh on breaker:events at once (else poll the API)",
            rich_help_panel="Redis",
        ),
    ] = None,
    redis_prefix: RedisPrefixOption = DEFAULT_PREFIX,
    interval: Annotated[
        float | None,
        typer.Option(
            "--interval",
            parser=duration,
            metavar="DURATION",
            help="with --watch: poll period (default: 1s; 10s when events arrive from Redis)",
        ),
    ] = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    token_file: TokenFileOption = None,
    timeout: TimeoutOption = DEFAULT_TIMEOUT,
) -> None:
    """Every breaker: state, admit %, since, reason, force, last probe.

    Exit 0 if all shown breakers are closed, 1 if any is not, 2 on error.
    """
    if watch:
        code = asyncio.run(
            _watch(
                name,
                as_json,
                AsyncClient(url, read_token(token, token_file), timeout),
                redis_url,
                redis_prefix,
                interval,
            )
        )
        raise typer.Exit(code)
    with _client(url, token, token_file, timeout) as api:
        overview = _select(api.overview(), name)
    if as_json:
        _print_json(_overview_json(overview))
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
            f"{_clock(b.since)} ({format_duration(now - b.since)} ago)",
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
    return f"{f.state.value} by {f.by} until {_clock(f.until)} (in {left}): {f.reason}"


def _probe(b: BreakerStatus) -> str:
    p = b.last_probe
    if p is None:
        return "-"
    rtt = f" {p.rtt_ms:.1f} ms" if p.rtt_ms is not None else ""
    result = "ok" if p.ok else f"failed: {p.reason}"
    return f"{result}{rtt}"


def _clock(at: float) -> str:
    """Local time; with the date when it is not today."""
    local = time.localtime(at)
    if time.strftime("%Y-%m-%d", local) == time.strftime("%Y-%m-%d"):
        return time.strftime("%H:%M:%S", local)
    return time.strftime("%Y-%m-%d %H:%M:%S", local)


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
                        f"breaker status: {_clock(time.time())}, {source}; Ctrl-C to quit",
                        style="dim",
                    )
                    screen.update(Group(header, view), refresh=True)
                elif change != last_shown:  # not a terminal: print changes only
                    last_shown = change
                    if as_json:
                        typer.echo(data)
                    else:
                        console.print(f"--- {_clock(time.time())}")
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


# ---------------------------------------------------------------- force / release


def _reason(value: str) -> str:
    if not value.strip():
        raise typer.BadParameter("must not be empty: say why, for the audit trail")
    return value.strip()


@app.command()
def force(
    name: Annotated[str, typer.Argument(help="the breaker")],
    state: Annotated[ForceState, typer.Argument(help="open: hold traffic back; closed: let it go")],
    ttl: Annotated[
        float,
        typer.Option(
            "--for",
            parser=duration,
            metavar="DURATION",
            help="until the force expires by itself: 90s, 30m, 2h, or seconds",
            show_default=False,
        ),
    ],
    reason: Annotated[
        str,
        typer.Option("--reason", "-r", callback=_reason, help="why, recorded in the audit trail"),
    ],
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    token_file: TokenFileOption = None,
    timeout: TimeoutOption = DEFAULT_TIMEOUT,
) -> None:
    """Force a breaker open or closed for a while (needs an operate token)."""
    with _client(url, token, token_file, timeout) as api:
        b = api.force(name, state.value, ttl, reason)
    if as_json:
        _print_json(asdict(b))
        return
    forced = b.forced
    if forced is None:  # cannot happen with a sidecar of this version
        typer.echo(f"{b.name}: forced, but the sidecar reports no force; state {b.state.value}")
        return
    left = format_duration(forced.until - time.time())
    typer.echo(
        f"{b.name} forced {forced.state.value} by {forced.by} until "
        f"{_when(forced.until)} (in {left}): {forced.reason}"
    )
    if forced.state.value != b.computed.value:
        typer.echo(f"the probes say {b.computed.value}; that applies again when the force ends")


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(at))


@app.command()
def release(
    name: Annotated[str, typer.Argument(help="the breaker")],
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    token_file: TokenFileOption = None,
    timeout: TimeoutOption = DEFAULT_TIMEOUT,
) -> None:
    """End a force now; the probes decide again (needs an operate token)."""
    with _client(url, token, token_file, timeout) as api:
        before = api.get(name)
        b = api.release(name)
    if as_json:
        _print_json(asdict(b))
        return
    if before.forced is None:
        typer.echo(f"{b.name} was not forced; nothing to release (state {b.state.value})")
    else:
        typer.echo(
            f"{b.name} released (was forced {before.forced.state.value} by {before.forced.by}); "
            f"now {b.state.value}, as the probes say"
        )


# ---------------------------------------------------------------- history


@app.command()
def history(
    name: Annotated[str, typer.Argument(help="the breaker")],
    since: Annotated[
        float | None,
        typer.Option(
            "--since", parser=duration, metavar="DURATION", help="only this far back, e.g. 2h"
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=10000)] = 100,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    token_file: TokenFileOption = None,
    timeout: TimeoutOption = DEFAULT_TIMEOUT,
) -> None:
    """Transitions, forces, releases and expiries, oldest first, with actor and reason."""
    with _client(url, token, token_file, timeout) as api:
        events = list(reversed(api.history(name, since, limit)))
    if as_json:
        _print_json([{**asdict(e), "ttl": e.ttl} for e in events])
        return
    if not events:
        window = f" in the last {format_duration(since)}" if since else ""
        typer.echo(f"no events for {name}{window}")
        return
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    for column in ("TIME", "EVENT", "STATE", "ACTOR", "REASON", "DETAIL"):
        table.add_column(column, overflow="fold")
    for e in events:
        table.add_row(
            _when(e.at),
            e.event,
            f"{e.from_state} -> {e.to_state}" if e.from_state != e.to_state else e.state,
            e.actor,
            e.reason,
            _event_detail(e),
        )
    console.print(table)


def _event_detail(e: HistoryEvent) -> str:
    if e.event == "force" and e.until is not None:
        ttl = format_duration(e.ttl) if e.ttl else "?"
        return f"forced {e.forced} for {ttl}, until {_clock(e.until)}"
    if e.event == "expire":
        return "force ran out; the probes decide again"
    if e.event == "release":
        return "force ended early; the probes decide again"
    if e.event == "transition" and e.forced:
        return f"under a force ({e.forced}); admit {e.admit}%"
    return f"admit {e.admit}%"


# ---------------------------------------------------------------- check


@app.command()
def check(
    name: Annotated[str, typer.Argument(help="the breaker")],
    key: Annotated[
        str | None,
        typer.Option("--key", "-k", help="the request's key (an AoR): stable in half_open"),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="print one line")] = False,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    token_file: TokenFileOption = None,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            parser=duration,
            metavar="DURATION",
            help="how long to wait for the sidecar",
            show_default="2s",
            rich_help_panel="Sidecar",
        ),
    ] = 2.0,
) -> None:
    """May a request go now? Exit 0 yes, 1 no, 2 cannot tell. Quiet unless -v or --json."""
    with _client(url, token, token_file, timeout) as api:
        answer = api.allow(name, key)
    if as_json:
        _print_json(asdict(answer))
    elif verbose:
        detail = answer.state.value
        if answer.state is State.HALF_OPEN:
            detail += f" at {answer.admit}%" + (f", key {key}" if key else "")
        if not answer.allowed:
            detail += f", retry after {answer.retry_after}s"
        verdict = "allowed" if answer.allowed else "not allowed"
        typer.echo(f"{answer.name}: {verdict} ({detail})")
    raise typer.Exit(EXIT_OK if answer.allowed else EXIT_NOT_OK)
