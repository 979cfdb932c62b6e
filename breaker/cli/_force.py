"""`breaker force` and `breaker release`: hold a breaker open or closed for a while, or end that.

Both need an operate token. Exit codes: 0 done, 2 error.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from enum import StrEnum
from typing import Annotated

import typer

from breaker._duration import format_duration
from breaker.cli._app import app, duration_option
from breaker.cli._options import ApiOptions, api_options
from breaker.cli._output import print_json, when


class ForceState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


def _reason(value: str) -> str:
    if not value.strip():
        raise typer.BadParameter("must not be empty: say why, for the audit trail")
    return value.strip()


@app.command()
@api_options()
def force(
    name: Annotated[str, typer.Argument(help="the breaker")],
    state: Annotated[ForceState, typer.Argument(help="open: hold traffic back; closed: let it go")],
    ttl: Annotated[
        float,
        duration_option(
            "--for", "until the force expires by itself: 90s, 30m, 2h, or seconds", shown=False
        ),
    ],
    reason: Annotated[
        str,
        typer.Option("--reason", "-r", callback=_reason, help="why, recorded in the audit trail"),
    ],
    opts: ApiOptions,
) -> None:
    """Force a breaker open or closed for a while (needs an operate token)."""
    with opts.client() as api:
        b = api.force(name, state.value, ttl, reason)
    if opts.as_json:
        print_json(asdict(b))
        return
    forced = b.forced
    if forced is None:  # cannot happen with a sidecar of this version
        typer.echo(f"{b.name}: forced, but the sidecar reports no force; state {b.state.value}")
        return
    left = format_duration(forced.until - time.time())
    typer.echo(
        f"{b.name} forced {forced.state.value} by {forced.by} until "
        f"{when(forced.until)} (in {left}): {forced.reason}"
    )
    if forced.state.value != b.computed.value:
        typer.echo(f"the probes say {b.computed.value}; that applies again when the force ends")


@app.command()
@api_options()
def release(
    name: Annotated[str, typer.Argument(help="the breaker")],
    opts: ApiOptions,
) -> None:
    """End a force now; the probes decide again (needs an operate token)."""
    with opts.client() as api:
        before = api.get(name)
        b = api.release(name)
    if opts.as_json:
        print_json(asdict(b))
        return
    if before.forced is None:
        typer.echo(f"{b.name} was not forced; nothing to release (state {b.state.value})")
    else:
        typer.echo(
            f"{b.name} released (was forced {before.forced.state.value} by {before.forced.by}); "
            f"now {b.state.value}, as the probes say"
        )
