"""`breaker check`: may a request go now? For scripts: the answer is the exit code.

Exit codes: 0 allowed, 1 not allowed, 2 cannot tell (one line on stderr).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from breaker.cli._app import app
from breaker.cli._options import ApiOptions, api_options
from breaker.cli._output import EXIT_NOT_OK, EXIT_OK, print_json
from breaker.core import State


@app.command()
@api_options(timeout=2.0, timeout_shown="2s")
def check(
    name: Annotated[str, typer.Argument(help="the breaker")],
    key: Annotated[
        str | None,
        typer.Option("--key", "-k", help="the request's key (an AoR): stable in half_open"),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="print one line")] = False,
    *,
    opts: ApiOptions,
) -> None:
    """May a request go now? Exit 0 yes, 1 no, 2 cannot tell. Quiet unless -v or --json."""
    with opts.client() as api:
        answer = api.allow(name, key)
    if opts.as_json:
        print_json(asdict(answer))
    elif verbose:
        detail = answer.state.value
        if answer.state is State.HALF_OPEN:
            detail += f" at {answer.admit}%" + (f", key {key}" if key else "")
        if not answer.allowed:
            detail += f", retry after {answer.retry_after}s"
        verdict = "allowed" if answer.allowed else "not allowed"
        typer.echo(f"{answer.name}: {verdict} ({detail})")
    raise typer.Exit(EXIT_OK if answer.allowed else EXIT_NOT_OK)
