"""`breaker guard NAME -- COMMAND…`: run a batch job only while the breaker lets traffic go.

The work is in breaker.guard; this only reads options. Exit codes (docs/guard.md):
COMMAND's own, or 69 state unknown / 73 locked / 75 breaker open (not started),
79 / 80 stopped because the breaker opened / the state stayed unknown, 126/127
command not runnable / not found, 2 usage or configuration error, 128 + N signal N
came before the job started.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import typer

from breaker.cli._app import RedisPrefixOption, app, duration_option, redis_url_option
from breaker.client import DEFAULT_PREFIX, DEFAULT_REDIS_URL
from breaker.core._guard import OnUnknown
from breaker.guard import GuardOptions, default_lock_key, job_name, run_command


def _say(line: str) -> None:
    print(f"breaker guard: {line}", file=sys.stderr, flush=True)


@app.command(
    context_settings={"help_option_names": ["--help", "-h"]},
    epilog=(
        "Exit codes: COMMAND's own; 75 breaker open, 73 another instance holds the lock, "
        "69 state unknown (none of these started COMMAND); 79 stopped because the breaker "
        "opened; 80 stopped because the state stayed unknown or the lock was lost; "
        "126/127 COMMAND not runnable/not found; 2 usage error; 128+N SIGINT/SIGTERM/SIGHUP "
        "before COMMAND started (not started)."
    ),
)
def guard(
    name: Annotated[str, typer.Argument(help="the breaker that must let traffic through")],
    command: Annotated[
        list[str], typer.Argument(help="the job, after --", metavar="-- COMMAND...")
    ],
    lock: Annotated[
        str | None,
        typer.Option(
            "--lock",
            metavar="KEY",
            help="Redis key of the single-instance lock "
            "(default: breaker:{NAME}:guard:<command basename>)",
            show_default=False,
        ),
    ] = None,
    no_lock: Annotated[
        bool, typer.Option("--no-lock", help="allow several instances at once")
    ] = False,
    lock_ttl: Annotated[
        float,
        duration_option(
            "--lock-ttl",
            "the lock expires this long after a guard dies; renewed every third of it",
            shown="60s",
        ),
    ] = 60.0,
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            help="key for the half_open share (default: the command basename)",
            show_default=False,
        ),
    ] = None,
    on_unknown: Annotated[
        OnUnknown,
        typer.Option(
            "--on-unknown",
            help="state unreadable (Redis down, sidecar dead): refuse to start and stop a "
            "running job after --grace, or run anyway",
        ),
    ] = OnUnknown.REFUSE,
    grace: Annotated[
        float,
        duration_option(
            "--grace",
            "SIGTERM to SIGKILL; also how long an unknown state is tolerated mid-run",
            shown="10s",
        ),
    ] = 10.0,
    poll: Annotated[
        float,
        duration_option(
            "--poll",
            "re-read the verdict at least this often (events wake it at once)",
            shown="1s",
        ),
    ] = 1.0,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q", help="no line when not started because open (75) or locked (73)"
        ),
    ] = False,
    redis_url: Annotated[
        str, redis_url_option("the Redis the sidecar writes to (password: $BREAKER_REDIS_PASSWORD)")
    ] = DEFAULT_REDIS_URL,
    redis_prefix: RedisPrefixOption = DEFAULT_PREFIX,
) -> None:
    """Run COMMAND only while breaker NAME lets traffic through; stop it if it opens.

    One instance at a time (a Redis lock), stdin/stdout/stderr passed through,
    SIGINT/SIGTERM/SIGHUP forwarded to the job's process group (before it started:
    not started, exit 128 + N).
    """
    if not command:
        raise typer.BadParameter("give the job after --", param_hint="COMMAND")
    if poll > 1.0:
        raise typer.BadParameter(
            "at most 1s: the breaker must be re-read every second", param_hint="'--poll'"
        )
    if lock_ttl < 1.0:
        raise typer.BadParameter(
            "at least 1s: a shorter lock could lapse between two renewals",
            param_hint="'--lock-ttl'",
        )
    job = job_name(command)
    opts = GuardOptions(
        name=name,
        key=key or job,
        lock_key=None if no_lock else (lock or default_lock_key(name, job, redis_prefix)),
        lock_ttl=lock_ttl,
        on_unknown=on_unknown,
        grace=grace,
        poll=poll,
        redis_url=redis_url,
        prefix=redis_prefix,
    )
    code = asyncio.run(run_command(command, opts, say=_say, quiet=quiet))
    raise typer.Exit(code)
