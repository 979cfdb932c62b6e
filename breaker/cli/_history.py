"""`breaker history`: a breaker's transitions, forces, releases and expiries."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table

from breaker._duration import format_duration
from breaker.cli._app import app, duration_option
from breaker.cli._options import ApiOptions, api_options
from breaker.cli._output import clock, console, print_json, when
from breaker.client import HistoryEvent


@app.command()
@api_options()
def history(
    name: Annotated[str, typer.Argument(help="the breaker")],
    since: Annotated[
        float | None,
        duration_option("--since", "only this far back, e.g. 2h"),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=10000)] = 100,
    *,
    opts: ApiOptions,
) -> None:
    """Transitions, forces, releases and expiries, oldest first, with actor and reason."""
    with opts.client() as api:
        events = list(reversed(api.history(name, since, limit)))
    if opts.as_json:
        print_json([{**asdict(e), "ttl": e.ttl} for e in events])
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
            when(e.at),
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
        return f"forced {e.forced} for {ttl}, until {clock(e.until)}"
    if e.event == "expire":
        return "force ran out; the probes decide again"
    if e.event == "release":
        return "force ended early; the probes decide again"
    if e.event == "transition" and e.forced:
        return f"under a force ({e.forced}); admit {e.admit}%"
    return f"admit {e.admit}%"
