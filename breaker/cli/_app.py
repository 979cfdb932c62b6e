"""The `breaker` command: every error a user can cause ends as one line, never a traceback."""

from __future__ import annotations

import sys
from typing import Annotated, Any, NoReturn

import typer

from breaker._duration import parse_duration
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
EXIT_INTERRUPTED = 130


# ---------------------------------------------------------------- shared options


def duration(text: str | float) -> float:
    """Option parser for `90s`, `30m`, `2h`, plain seconds; a bad value names the option."""
    if isinstance(text, int | float):  # a default, already in seconds
        return float(text)
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def duration_option(
    flag: str, help: str, *, shown: bool | str = True, panel: str | None = None
) -> Any:
    """A `--flag DURATION` option read by `duration`; `shown` as typer's show_default."""
    return typer.Option(
        flag,
        parser=duration,
        metavar="DURATION",
        help=help,
        show_default=shown,
        rich_help_panel=panel,
    )


def redis_url_option(help: str) -> Any:
    """`--redis-url` ($BREAKER_REDIS_URL): the Redis the sidecar writes to."""
    return typer.Option(
        "--redis-url", envvar="BREAKER_REDIS_URL", help=help, rich_help_panel="Redis"
    )


RedisPrefixOption = Annotated[
    str,
    typer.Option(
        "--redis-prefix",
        envvar="BREAKER_REDIS_PREFIX",
        help="key prefix the sidecar uses (its redis.key_prefix)",
        rich_help_panel="Redis",
    ),
]


def main() -> None:
    """Run the CLI; usage errors and BreakerErrors become `breaker: <one line>`, exit 2."""
    try:
        code = app(prog_name="breaker", standalone_mode=False)
    except typer.TyperException as exc:  # click's UsageError, BadParameter, ... (vendored)
        _usage_error(exc)
    except typer.Abort:
        sys.exit(1)
    except BreakerError as exc:
        _fail(str(exc), EXIT_ERROR)
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(code if isinstance(code, int) else 0)


def _usage_error(exc: typer.TyperException) -> None:
    code = int(getattr(exc, "exit_code", EXIT_ERROR))
    message = exc.format_message().strip()
    if not message:  # no arguments at all: the help was printed already
        sys.exit(code)
    ctx = getattr(exc, "ctx", None)
    path = getattr(ctx, "command_path", "")
    hint = f" (see '{path} --help')" if path and code == EXIT_ERROR else ""
    _fail(f"{message}{hint}", code)


def _fail(message: str, code: int) -> NoReturn:
    line = " ".join(message.split())
    print(f"breaker: {line}", file=sys.stderr)
    sys.exit(code)
