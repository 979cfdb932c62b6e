"""The `breaker` command: every error a user can cause ends as one line, never a traceback."""

from __future__ import annotations

import sys

import typer

from breaker._errors import BreakerError

app = typer.Typer(
    name="breaker",
    help="Circuit breaker for SIP presence servers behind Kamailio.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Circuit breaker for SIP presence servers behind Kamailio."""


EXIT_ERROR = 2  # configuration, usage or connectivity problem


def main() -> None:
    try:
        app()
    except BreakerError as exc:
        print(f"breaker: {exc}", file=sys.stderr)
        sys.exit(EXIT_ERROR)
    except KeyboardInterrupt:
        sys.exit(130)
